/**
 * The first half of the day: the terminal opens (reader enrolment with an operator's one-time code,
 * sign-on, negative list), sells (loads and purchases on several cards, advices forwarded), then the
 * operator blocks a card at the host and a stolen reader.
 */
import { PurseRefusedError } from '../../terminal/purse/index.js';
import { ReaderRefusedError, type ForwarderStats, type Uplink } from '../../hostlink/uplink/index.js';
import { UplinkError } from '../../hostlink/uplink/errors.js';
import { caught, errorText, verdict, type Script } from './script.js';
import { debitsSeen, look, money, pay } from './till.js';
import { DEMO_TERMINAL, STOLEN_TERMINAL, type DemoCard, type World } from './world.js';
import type { DemoFault } from './faults.js';

/** Bound of one "deliver everything queued" on loopback. */
export const DELIVER_BOUND_MS = 5_000;

/** A card that was lost before the day began: on the host's negative file from the start. */
export const LOST_CARD = '48494C5400000999';

export interface DayContext {
  w: World;
  s: Script;
  faults: ReadonlySet<DemoFault>;
  /** Cards by role. */
  card: (label: string) => DemoCard;
  /** Loads a card through the terminal (issuer authorization, LOAD, advice queued). */
  load: (card: DemoCard, amount: number) => Promise<{ balanceAfter: number; counter: number }>;
}

export function uplinkOf(w: World): Uplink {
  if (w.uplink === null) throw new UplinkError('identity', 'the terminal has no uplink: its reader was not enrolled');
  return w.uplink;
}

/** Forwards the outbox until it is empty (bounded). */
export function deliver(w: World, bound = DELIVER_BOUND_MS): Promise<ForwarderStats> {
  return uplinkOf(w).forward({ untilEmpty: true, signal: AbortSignal.timeout(bound) });
}

export function adviceCount(stats: ForwarderStats): string {
  const reports = stats.anomalies > 0 ? `, ${stats.anomalies} anomaly report${stats.anomalies === 1 ? '' : 's'}` : '';
  return `${stats.delivered} delivered (${stats.duplicates} repeats, ${stats.refused} refused${reports})`;
}

export async function openTerminal(c: DayContext): Promise<void> {
  const { w, s } = c;
  s.part('open');
  await s.step('reader enrolment + sign-on', 'one-time code from the admin API; R-01 enrols its P-256 key and signs on', async () => {
    const code = await w.admin.enrolmentCode(DEMO_TERMINAL.terminalId, DEMO_TERMINAL.readerId);
    const uplink = w.openUplink(code);
    await uplink.connect();
    const r = await w.admin.reader(DEMO_TERMINAL.readerId);
    return verdict(`code issued; host: ${r.status}, key enrolled, signed on`, {
      'enrolled on the host': r.enrolledAt !== null && r.publicKey !== null,
      'signed on': r.signedOnUntil !== null,
    });
  });
  await s.step('negative-list sync', `snapshot from the host: the lost card ${LOST_CARD} listed`, async () => {
    await w.admin.blockCard(LOST_CARD, 'lost before the day began');
    const r = await uplinkOf(w).syncNegativeList();
    const host = await w.admin.negativeCards();
    return verdict(`version ${r.fromVersion} → ${r.toVersion}, ${r.snapshots} snapshot, ${r.added} card(s) added`, {
      'terminal at the host version': w.journal.negativeListVersion() === host.version,
      'lost card listed': w.journal.isBlocked(LOST_CARD),
    });
  });
}

/** Loads then purchases on every card, the advices forwarded. */
export async function sell(c: DayContext, loads: readonly [string, number][], purchases: readonly [string, number][]): Promise<void> {
  const { w, s } = c;
  s.part('sales');
  for (const [label, amount] of loads) {
    const card = c.card(label);
    await s.step(`load ${money(amount)} on card ${label}`, 'issuer authorizes (0200/0210); card credited', async () => {
      const before = card.known;
      const r = await c.load(card, amount);
      card.known = { balance: r.balanceAfter, counter: r.counter };
      return verdict(`approved: ${money(before.balance)} → ${money(r.balanceAfter)}, counter ${r.counter}`, {
        'credited by the amount': r.balanceAfter === before.balance + amount,
        'counter +1': r.counter === before.counter + 1,
      });
    });
  }
  for (const [label, amount] of purchases) await purchaseStep(c, label, amount);
  await s.step('advices forwarded', 'every queued advice delivered once (0220 → 0230 00)', async () => {
    const queued = w.journal.outboundCount();
    const stats = await deliver(w);
    const seq = await w.admin.sequence(DEMO_TERMINAL.terminalId, DEMO_TERMINAL.readerId);
    return verdict(`${queued} queued → ${adviceCount(stats)}; host at seq ${seq?.lastSequence ?? '-'}, ${seq?.missing.length ?? '-'} gaps`, {
      'outbox empty': w.journal.outboundCount() === 0,
      'all delivered': stats.delivered === queued && stats.duplicates === 0,
      'host has the last reader sequence': seq !== null && seq.lastSequence === w.journal.lastReaderSequence(),
      'no gaps on the host': seq !== null && seq.missing.length === 0,
    });
  });
}

/** One approved purchase: the card's balance down by the amount, its counter up by one. */
export async function purchaseStep(c: DayContext, label: string, amount: number, note = ''): Promise<void> {
  const card = c.card(label);
  await c.s.step(`purchase ${money(amount)} on card ${label}${note}`, `approved; −${money(amount)}, counter +1`, async () => {
    const before = card.known;
    const { receipt } = await pay(c.w, card, amount);
    card.known = { balance: receipt.balanceAfter, counter: receipt.counter };
    return verdict(`approved, seq ${receipt.readerSeq}: ${money(before.balance)} → ${money(receipt.balanceAfter)}, counter ${receipt.counter}`, {
      'debited by the amount': receipt.balanceAfter === before.balance - amount,
      'counter +1': receipt.counter === before.counter + 1,
    });
  });
}

/** The operator blocks a card at the host; after the next negative-list update the terminal refuses it. */
export async function blockedCard(c: DayContext, label: string, amount: number): Promise<void> {
  const { w, s } = c;
  const card = c.card(label);
  s.part('blocked card');
  await s.step(`operator blocks card ${label}`, 'admin API: card on the negative file, new list version', async () => {
    const r = await w.admin.blockCard(card.serialHex, 'reported stolen by its holder');
    return verdict(`negative file version ${r.version} (+${r.added})`, { 'card added': r.added === 1 });
  });
  if (c.faults.has('skip-negative-sync')) {
    await s.step('negative-list update', '(fault injected: not fetched)', async () => ({ ok: true, happened: 'skipped: injected fault skip-negative-sync' }));
  } else {
    await s.step('negative-list update', 'a delta: the blocked card added, list at the host version', async () => {
      const r = await uplinkOf(w).syncNegativeList();
      const host = await w.admin.negativeCards();
      return verdict(`version ${r.fromVersion} → ${r.toVersion}: ${r.deltas} delta, +${r.added}`, {
        'at the host version': w.journal.negativeListVersion() === host.version,
        'card listed on the terminal': w.journal.isBlocked(card.serialHex),
      });
    });
  }
  await s.step(`blocked card ${label} refused`, 'refused (negative-file) before any DEBIT; card unchanged', async () => {
    const debits = debitsSeen(card);
    const e = await caught(pay(w, card, amount));
    const after = (await look(w, card)).status;
    const refused = e instanceof PurseRefusedError && e.reason === 'negative-file';
    if (e === null) card.known = { balance: after.balance, counter: after.counter };
    return verdict(refused ? `refused (${e.reason}); card balance ${money(after.balance)}, counter ${after.counter}` : e === null ? `APPROVED: card debited to ${money(after.balance)}` : errorText(e), {
      'refused for the negative file': refused,
      'no DEBIT reached the card': debitsSeen(card) === debits,
      'balance unchanged': after.balance === card.known.balance,
    });
  });
}

/** A second reader enrols, is reported stolen, the operator blocks it: its next sign-on is refused. */
export async function stolenReader(c: DayContext): Promise<void> {
  const { w, s } = c;
  s.part('stolen reader');
  let other: ReturnType<World['openOtherTerminal']> | null = null;
  try {
    await s.step(`reader ${STOLEN_TERMINAL.readerId} enrolled`, `${STOLEN_TERMINAL.terminalId}/${STOLEN_TERMINAL.readerId} enrols with its own code and signs on`, async () => {
      other = w.openOtherTerminal(await w.admin.enrolmentCode(STOLEN_TERMINAL.terminalId, STOLEN_TERMINAL.readerId));
      await other.uplink.connect();
      const r = await w.admin.reader(STOLEN_TERMINAL.readerId);
      return verdict(`host: ${r.status}, signed on`, { enrolled: r.enrolledAt !== null, 'signed on': r.signedOnUntil !== null });
    });
    await s.step(`stolen reader ${STOLEN_TERMINAL.readerId} refused`, 'operator blocks it (admin API); its next sign-on is refused with 80', async () => {
      if (other === null) return { ok: false, happened: 'the reader was never enrolled' };
      const blocked = await w.admin.blockReader(STOLEN_TERMINAL.readerId, 'reported stolen');
      await other.uplink.link.drop();
      const e = await caught(other.uplink.connect());
      const refused = e instanceof ReaderRefusedError && e.reason === 'blocked';
      return verdict(refused ? `host: ${blocked.status}; sign-on refused (${e.responseCode} ${e.reason})` : e === null ? 'SIGNED ON' : errorText(e), {
        'refused as blocked': refused,
      });
    });
    await s.step(`reader ${DEMO_TERMINAL.readerId} unaffected`, 'the terminal of the day still signs on', async () => {
      const u = uplinkOf(w);
      await u.link.drop();
      await u.connect();
      const r = await w.admin.reader(DEMO_TERMINAL.readerId);
      return verdict(`host: ${r.status}, signed on`, { active: r.blockedAt === null && r.signedOnUntil !== null });
    });
  } finally {
    await (other as ReturnType<World['openOtherTerminal']> | null)?.close();
  }
}
