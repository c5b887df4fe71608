/**
 * The second half of the day: what goes wrong in a terminal's life, each with what must come of it.
 *
 *   torn purchase     the card is pulled right after it processed DEBIT (its answer lost): the row
 *                     stays pending; presented again, the row is recovered from the card's log and
 *                     nothing is debited twice
 *   rolled-back card  the card's memory is copied, purchases are made, the copy is put back: the
 *                     terminal sees its counter go backwards and refuses it before any DEBIT; its
 *                     anomaly record goes to the issuer (0620), which lists it once (admin API)
 *   host outage       the hosts stop; purchases go on offline, their advices wait in the journal;
 *                     the hosts restart on the same folder and the queue is delivered, nothing lost
 *                     or applied twice (counted through the admin API)
 */
import { join } from 'node:path';
import { CardRollbackError, PurchaseInterruptedError, terminalIdBytes } from '../../terminal/purse/index.js';
import { PURSE_INS } from '../../terminal/purse/protocol.js';
import { bytesEqual } from '../../util/bytes.js';
import { isHiltError } from '../../util/errors.js';
import { caught, errorText, verdict } from './script.js';
import { debitsSeen, look, money, pay } from './till.js';
import { DEMO_TERMINAL, type World } from './world.js';
import { adviceCount, deliver, purchaseStep, uplinkOf, type DayContext } from './day-morning.js';
import type { Anomaly } from '../../terminal/journal/index.js';

/** How long the forwarder keeps trying while the hosts are down. */
const OFFLINE_TRY_MS = 300;

export async function tornPurchase(c: DayContext, label: string, torn: number, next: number): Promise<void> {
  const { w, s } = c;
  const card = c.card(label);
  s.part('torn purchase');
  let pending: { id: number; readerSeq: number } | null = null;
  await s.step(`answer to DEBIT lost on card ${label}`, 'card pulled right after it debited: interrupted, journal row stays pending', async () => {
    const debits = debitsSeen(card);
    // Right after the card has processed DEBIT (and committed it), before its answer leaves: pull it.
    card.tap.arm({ ins: PURSE_INS.debit, after: () => void card.client.removeCard() });
    const e = await caught(pay(w, card, torn));
    card.tap.disarm();
    if (!(e instanceof PurchaseInterruptedError)) return { ok: false, happened: e === null ? `${money(torn)} APPROVED (no tear happened)` : errorText(e) };
    const row = w.journal.get(e.journalId);
    pending = { id: e.journalId, readerSeq: e.readerSeq };
    return verdict(`${money(torn)} interrupted (${e.code}): journal row ${e.journalId} ${row?.status ?? 'missing'}, reader seq ${e.readerSeq}`, {
      'row pending': row?.status === 'pending',
      'the card processed the DEBIT': debitsSeen(card) === debits + 1,
    });
  });
  await s.step(`card ${label} presented again`, `torn row recovered from the card's log, then ${money(next)} approved; debited once`, async () => {
    const before = card.known;
    const debits = debitsSeen(card);
    const r = await pay(w, card, next);
    card.known = { balance: r.receipt.balanceAfter, counter: r.receipt.counter };
    const rec = r.recovered.find((o) => o.journalId === pending?.id);
    const row = pending === null ? null : w.journal.get(pending.id);
    const tid = terminalIdBytes(DEMO_TERMINAL.terminalId);
    const logged = (await look(w, card)).log.filter((e) => e.type === 'debit' && e.terminalSequence === pending?.readerSeq && bytesEqual(e.terminalId, tid));
    return verdict(
      `row ${pending?.id ?? '-'} ${row?.status ?? '-'} at counter ${rec?.counter ?? '-'}; ${money(next)} approved: ${money(before.balance)} → ${money(r.receipt.balanceAfter)}`,
      {
        'row recovered': rec?.resolution === 'recovered' && row?.status === 'recovered',
        'only the new DEBIT sent': debitsSeen(card) === debits + 1,
        'torn amount debited once': r.receipt.balanceAfter === before.balance - torn - next && r.receipt.counter === before.counter + 2,
        'the card logged the torn debit once': logged.length === 1 && logged[0].amount === torn,
      },
    );
  });
}

export async function rolledBackCard(c: DayContext, label: string, afterCopy: readonly number[], attempt: number): Promise<void> {
  const { w, s } = c;
  const card = c.card(label);
  s.part('rolled-back card');
  const copy = join(w.dir, `card-${label}-copy.img`);
  const saved = { ...card.known };
  await s.step(`image of card ${label} copied`, "the card's memory saved as it is", async () => {
    w.copyImage(card, copy);
    return { ok: true, happened: `saved at counter ${saved.counter}, balance ${money(saved.balance)}` };
  });
  for (const amount of afterCopy) await purchaseStep(c, label, amount, ', after copy');
  await s.step(`copy restored onto card ${label}`, 'the card shows its old counter and balance again', async () => {
    const now = { ...card.known };
    w.restoreImage(card, copy);
    const status = (await look(w, card)).status;
    card.rolledBackBy = status.balance - now.balance;
    return verdict(`card shows counter ${status.counter}, balance ${money(status.balance)} (was ${now.counter}, ${money(now.balance)})`, {
      'old state back': status.counter === saved.counter && status.balance === saved.balance,
    });
  });
  let flagged: Anomaly | undefined;
  await s.step(`rolled-back card ${label} refused`, 'counter below what this terminal saw: refused before any DEBIT, anomaly journaled', async () => {
    const debits = debitsSeen(card);
    const lastId = Math.max(0, ...w.journal.anomalies({ cardSerial: card.serialHex }).map((a) => a.id));
    const e = await caught(pay(w, card, attempt));
    const anomalies = w.journal.anomalies({ cardSerial: card.serialHex }).filter((a) => a.id > lastId);
    flagged = anomalies.find((a) => a.kind === 'rollback' || a.kind === 'repeat');
    const refused = e instanceof CardRollbackError;
    return verdict(refused ? `refused (${e.code}, ${e.kind}): card counter ${e.counter}, terminal saw ${e.lastCounter}; journal anomaly ${anomalies.map((a) => a.kind).join(', ') || 'none'}` : e === null ? `${money(attempt)} APPROVED` : errorText(e), {
      'refused as rolled back': refused,
      'no DEBIT reached the card': debitsSeen(card) === debits,
      'anomaly journaled': flagged !== undefined,
    });
  });
  await s.step(`card ${label}'s anomaly reaches the issuer`, "queue forwarded, the anomaly as an 0620; GET /anomalies lists the terminal's anomaly for the card, once", async () => {
    const queued = w.journal.outboundCount();
    const stats = await deliver(w);
    const reported = await w.admin.anomalies({ serial: card.serialHex, source: 'terminal' });
    const mine = reported.filter((a) => flagged !== undefined && a.details.anomalySequence === flagged.id);
    const shown = mine.map((a) => `${a.kind} (anomaly seq ${String(a.details.anomalySequence)}, counter ${a.counter ?? '-'}, terminal saw ${String(a.details.lastCounter)})`).join(', ');
    return verdict(`${queued} queued → ${adviceCount(stats)}; issuer lists ${reported.length} terminal anomal${reported.length === 1 ? 'y' : 'ies'} for ${label}${shown === '' ? '' : `: ${shown}`}`, {
      'outbox empty': w.journal.outboundCount() === 0,
      'sent as an anomaly report': stats.anomalies >= 1,
      'listed once': reported.length === 1 && mine.length === 1,
      'as the terminal journaled it': flagged !== undefined && mine[0]?.kind === flagged.kind && mine[0]?.counter === flagged.counter && mine[0]?.details.lastCounter === flagged.lastCounter,
    });
  });
}

/** Everything the journal holds in a final state: each must be on the host exactly once. */
function finalRows(w: World): number {
  return w.journal.query({ order: 'asc', limit: 100_000 }).filter((r) => r.status !== 'pending').length;
}

export async function hostOutage(c: DayContext, offline: readonly [string, number][], alsoOffline?: () => Promise<void>): Promise<void> {
  const { w, s } = c;
  s.part('host outage');
  await s.step('hosts stopped', 'outbox empty first; then the gateway is gone: sign-on fails', async () => {
    await deliver(w);
    const queued = w.journal.outboundCount();
    await w.stopHosts();
    const u = uplinkOf(w);
    await u.link.drop();
    const e = await caught(u.connect());
    const why = e === null ? 'SUCCEEDED' : `fails (${isHiltError(e) ? e.code : 'error'}${/ECONNREFUSED/.test(errorText(e)) ? ', connection refused' : ''})`;
    return verdict(`queue ${queued} before; hosts closed; sign-on now ${why}`, { 'nothing queued before': queued === 0, 'host unreachable': e !== null });
  });
  for (const [label, amount] of offline) await purchaseStep(c, label, amount, ' offline');
  if (alsoOffline !== undefined) await alsoOffline();
  let held = 0;
  await s.step('advices held in the journal', `forwarder retries for ${OFFLINE_TRY_MS} ms: nothing delivered, nothing dropped`, async () => {
    const queued = w.journal.outboundCount();
    const stats = await deliver(w, OFFLINE_TRY_MS);
    held = w.journal.outboundCount();
    if (c.faults.has('drop-advice')) {
      const [victim] = w.journal.outbox({ waitingOnly: true, limit: 1 });
      if (victim !== undefined) w.journal.markSent(victim.id, 'fault injected: dropped');
    }
    return verdict(`${queued} queued; ${stats.sessionFailures} failed sign-on(s), ${stats.delivered} delivered; ${held} still queued`, {
      'all offline purchases queued': queued >= offline.length,
      'none delivered': stats.delivered === 0,
      'none dropped': held === queued,
    });
  });
  await s.step('hosts restarted, queue delivered', 'same folder and ports; every held advice delivered once', async () => {
    await w.restartHosts();
    const stats = await deliver(w);
    return verdict(`${adviceCount(stats)}; outbox ${w.journal.outboundCount()}`, {
      'outbox empty': w.journal.outboundCount() === 0,
      'each held advice delivered once': stats.delivered === held && stats.duplicates === 0,
    });
  });
  await s.step('nothing lost or doubled', "host (admin API): one advice per final journal row, no gaps, no repeats", async () => {
    const seq = await w.admin.sequence(DEMO_TERMINAL.terminalId, DEMO_TERMINAL.readerId);
    const repeats = (await w.admin.anomalies({ terminalId: DEMO_TERMINAL.terminalId })).filter((a) => a.kind === 'reader-repeat' || a.kind === 'card-repeat');
    const rows = finalRows(w);
    return verdict(`journal ${rows} final rows; host ${seq?.advices ?? 0} advices, gaps ${seq?.missing.length ?? '-'}, repeats ${repeats.length}`, {
      'one advice per row': seq !== null && seq.advices === rows,
      'no gaps': seq !== null && seq.missing.length === 0 && seq.lastSequence === w.journal.lastReaderSequence(),
      'no repeats': repeats.length === 0,
    });
  });
}
