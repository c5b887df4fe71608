/**
 * Close of day: is value conserved? Three independent books are read, none from the script:
 *
 *   the terminal's journal   per card, what was loaded and spent here (complete and recovered rows)
 *   the cards                their balances, read from each card
 *   the issuer (admin API)   per card, the shadow balance its certificates give; per terminal, the
 *                            totals of the advices it accepted
 *
 * Per card: issued (bureau) + loaded − spent = card balance = issuer shadow balance, and the issuer
 * holds every counter since it first saw the card (the shadow follows the highest counter, so a
 * lost advice below it would not move the shadow: it shows as a missing counter). A card whose
 * image was rolled back shows exactly the value spent after the copy above the ledger, and is
 * flagged; the issuer's shadow still follows the ledger. Over all cards: the shadows sum to what
 * the bureau issued plus the host's accepted loads minus its accepted purchases, and the host's
 * totals equal the journal's (count and amount). Then the terminal's own 0500 (run-demo.ts): the
 * issuer compares the terminal's totals with its books and answers 00 (in balance) or 95.
 */
import type { JournalRow } from '../../terminal/journal/index.js';
import type { Tally } from '../../hostlink/messages.js';
import type { ReconciliationResult } from '../../hostlink/uplink/index.js';
import { look, money } from './till.js';
import { DEMO_TERMINAL, type DemoCard, type World } from './world.js';

export interface CardReconciliation {
  card: string;
  serial: string;
  role: string;
  /** Balance the bureau issued the card with. */
  issued: number;
  /** Loads at the terminal (journal). */
  loaded: number;
  /** Purchases at the terminal (journal). */
  spent: number;
  /** issued + loaded − spent: what the card should hold. */
  ledger: number;
  card_balance: number;
  host_shadow: number | null;
  note: string;
  ok: boolean;
}

export interface LedgerReconciliation {
  journal: { loads: Tally; purchases: Tally };
  host: { loads: Tally; purchases: Tally };
  issued: number;
  /** Σ host shadow balances. */
  shadows: number;
  /** issued + host loads − host purchases. */
  expectedShadows: number;
  ok: boolean;
}

export interface Reconciliation {
  cards: CardReconciliation[];
  ledger: LedgerReconciliation;
  /** The terminal's 0500 and the issuer's 0510 (Uplink.reconcile); null until it ran. */
  settlement: ReconciliationResult | null;
}

function moved(rows: readonly JournalRow[], type: JournalRow['type']): Tally {
  return rows
    .filter((r) => r.type === type && (r.status === 'complete' || r.status === 'recovered'))
    .reduce((t, r) => ({ count: t.count + 1, amount: t.amount + r.amount }), { count: 0, amount: 0 });
}

async function reconcileCard(w: World, card: DemoCard, rows: readonly JournalRow[]): Promise<CardReconciliation> {
  const mine = rows.filter((r) => r.cardSerial === card.serialHex);
  const loaded = moved(mine, 'load').amount;
  const spent = moved(mine, 'purchase').amount;
  const ledger = card.issuedBalance + loaded - spent;
  const onCard = (await look(w, card)).status.balance;
  const view = await w.admin.card(card.serialHex);
  const shadow = view?.balance ?? null;
  const excess = onCard - ledger;
  // The shadow follows the highest certified counter: a lost advice below it shows as a missing counter.
  const missing = view?.missingCounters ?? [];
  const hostOk = shadow === ledger && missing.length === 0;
  let note: string;
  let ok: boolean;
  if (missing.length > 0) {
    ok = false;
    note = `host misses counter(s) ${missing.map((m) => (m.from === m.to ? `${m.from}` : `${m.from}-${m.to}`)).join(', ')}`;
  } else if (card.rolledBackBy > 0) {
    ok = hostOk && excess === card.rolledBackBy;
    note = excess === card.rolledBackBy ? `rolled back: card +${money(excess)} = spent after the copy; refused` : `rolled back: card +${money(excess)}, expected +${money(card.rolledBackBy)}`;
  } else {
    ok = hostOk && excess === 0;
    note = ok ? 'balanced' : `card ${excess >= 0 ? '+' : '−'}${money(Math.abs(excess))} vs ledger; host ${shadow === null ? 'has no shadow' : `${shadow - ledger >= 0 ? '+' : '−'}${money(Math.abs(shadow - ledger))} vs ledger`}`;
  }
  return { card: card.label, serial: card.serialHex, role: card.role, issued: card.issuedBalance, loaded, spent, ledger, card_balance: onCard, host_shadow: shadow, note, ok };
}

export async function reconcile(w: World): Promise<Reconciliation> {
  const rows = w.journal.query({ order: 'asc', limit: 100_000 });
  const cards: CardReconciliation[] = [];
  for (const card of w.cards) cards.push(await reconcileCard(w, card, rows));
  const totals = await w.admin.totals(DEMO_TERMINAL.terminalId);
  const zero: Tally = { count: 0, amount: 0 };
  const host = totals
    .filter((t) => t.currency === DEMO_TERMINAL.currency || t.currency === '392')
    .reduce(
      (h, t) => ({
        loads: { count: h.loads.count + t.totals.loads.count, amount: h.loads.amount + t.totals.loads.amount },
        purchases: { count: h.purchases.count + t.totals.purchases.count, amount: h.purchases.amount + t.totals.purchases.amount },
      }),
      { loads: zero, purchases: zero },
    );
  const journal = { loads: moved(rows, 'load'), purchases: moved(rows, 'purchase') };
  const issued = w.cards.reduce((s, c) => s + c.issuedBalance, 0);
  const shadows = cards.reduce((s, c) => s + (c.host_shadow ?? 0), 0);
  const expectedShadows = issued + host.loads.amount - host.purchases.amount;
  const same = (a: Tally, b: Tally): boolean => a.count === b.count && a.amount === b.amount;
  const ok = shadows === expectedShadows && same(journal.loads, host.loads) && same(journal.purchases, host.purchases);
  return { cards, ledger: { journal, host, issued, shadows, expectedShadows, ok }, settlement: null };
}
