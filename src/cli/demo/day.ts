/**
 * The scripted day (issue 7), in order. The amounts are the script; every outcome is measured.
 *
 *   open              reader enrolment with an operator's one-time code, sign-on, negative list
 *   sales             loads (issuer-authorized) and purchases on four cards; advices forwarded
 *   blocked card      operator blocks card C at the host → negative-list delta → C refused
 *   stolen reader     a second reader enrols, is blocked by the operator → its sign-on refused
 *   torn purchase     card B pulled right after DEBIT → pending → presented again → recovered
 *   rolled-back card  card D's image copied, two purchases, copy restored → refused, flagged, reported
 *                     to the issuer (0620), listed once there
 *   host outage       hosts stopped → offline purchases queued → restarted → delivered once
 *   close             per-card and host-ledger reconciliation (reconcile.ts)
 */
import { CardRollbackError, IssuerUnavailableError, loadPurse } from '../../terminal/purse/index.js';
import { PURSE_INS } from '../../terminal/purse/protocol.js';
import { caught, errorText, verdict, type Script } from './script.js';
import { look, money, withCard } from './till.js';
import type { CardPlan, DemoCard, World } from './world.js';
import { blockedCard, openTerminal, sell, stolenReader, uplinkOf, type DayContext } from './day-morning.js';
import { hostOutage, rolledBackCard, tornPurchase } from './day-faults.js';
import type { DemoFault } from './faults.js';

/** The cards the bureau issues for the day (empty purses: every yen comes through the terminal). */
export const DAY_CARDS: readonly CardPlan[] = Object.freeze([
  { label: 'A', role: 'everyday card', issued: 0 },
  { label: 'B', role: 'torn purchase', issued: 0 },
  { label: 'C', role: 'blocked at the host', issued: 0 },
  { label: 'D', role: 'image rolled back', issued: 0 },
]);

const LOADS: readonly [string, number][] = [
  ['A', 20_000],
  ['B', 10_000],
  ['C', 5_000],
  ['D', 8_000],
];
const MORNING_PURCHASES: readonly [string, number][] = [
  ['A', 1_250],
  ['B', 800],
  ['C', 2_000],
  ['D', 500],
  ['A', 3_000],
];

async function loadOn(w: World, card: DemoCard, amount: number): Promise<{ balanceAfter: number; counter: number }> {
  const r = await withCard(w, card, () => loadPurse(w.terminal(), uplinkOf(w), amount));
  return { balanceAfter: r.receipt.balanceAfter, counter: r.receipt.counter };
}

export async function runDay(w: World, s: Script, faults: ReadonlySet<DemoFault>): Promise<void> {
  const card = (label: string): DemoCard => {
    const c = w.cards.find((x) => x.label === label);
    if (c === undefined) throw new Error(`no card ${label} in the day's plan`);
    return c;
  };
  const c: DayContext = { w, s, faults, card, load: (k, amount) => loadOn(w, k, amount) };

  await openTerminal(c);
  await sell(c, LOADS, MORNING_PURCHASES);
  await blockedCard(c, 'C', 700);
  await stolenReader(c);
  await tornPurchase(c, 'B', 1_500, 400);
  await rolledBackCard(c, 'D', [600, 900], 300);
  await s.step('load on rolled-back card D refused', 'no value onto a card whose counter went back: refused before any 0200 or LOAD', async () => {
    const d = card('D');
    const loadsBefore = d.tap.count(PURSE_INS.load);
    const e = await caught(withCard(w, d, () => loadPurse(w.terminal(), uplinkOf(w), 1_000)));
    const issuerSaw = (await w.admin.anomalies({ serial: d.serialHex })).map((a) => `${a.kind}${a.source === 'terminal' ? ' (terminal)' : ''}`);
    return verdict(`${e instanceof CardRollbackError ? `refused (${e.code}, ${e.kind})` : e === null ? 'LOADED' : errorText(e)}; issuer anomalies for D: ${issuerSaw.length === 0 ? 'none (nothing reached it)' : issuerSaw.join(', ')}`, {
      'refused as rolled back': e instanceof CardRollbackError,
      'no LOAD reached the card': d.tap.count(PURSE_INS.load) === loadsBefore,
    });
  });
  await hostOutage(
    c,
    [
      ['A', 450],
      ['B', 350],
      ['A', 200],
    ],
    () => offlineLoad(c, 'A', 2_000),
  );
}

/** A load tried while the hosts are down: no authorization, nothing credited (used inside the outage). */
export async function offlineLoad(c: DayContext, label: string, amount: number): Promise<void> {
  const { w, s } = c;
  const k = c.card(label);
  await s.step(`load ${money(amount)} on card ${label} offline`, 'no issuer, no load: the row fails, the card is not credited', async () => {
    const e = await caught(withCard(w, k, () => loadPurse(w.terminal(), uplinkOf(w), amount)));
    const after = (await look(w, k)).status;
    const row = w.journal.query({ cardSerial: k.serialHex, type: 'load', limit: 1 })[0];
    return verdict(`${e instanceof IssuerUnavailableError ? `refused: issuer unavailable (${e.code}); journal row ${row?.id ?? '-'} ${row?.status ?? '-'}` : e === null ? 'LOADED' : errorText(e)}; card still ${money(after.balance)}`, {
      'issuer unavailable': e instanceof IssuerUnavailableError,
      'row failed': row !== undefined && row.status === 'failed',
      'card not credited': after.balance === k.known.balance && after.counter === k.known.counter,
    });
  });
}
