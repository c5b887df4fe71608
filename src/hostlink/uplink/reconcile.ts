/**
 * Reconciliation (0500 / 0510), terminal side: the terminal's totals over a range of its reader
 * sequence numbers, one 0500 per currency, compared by the issuer with its own books.
 *
 * The totals follow the issuer's definition (src/hosts/issuer.ts `totals()`), field by field, for the
 * terminal and currency over reader sequences first..last:
 *   loads (74/86)             journal rows that moved value (complete, recovered) of type load or
 *                             refund: count and sum of amounts (journal.valueTotals);
 *   purchases (76/88)         the same for type purchase;
 *   load reversals (75/87)    reversals the host answered 00 (uplink store) of a 0200 in the range
 *                             that was approved or never answered (an answered decline has nothing
 *                             to reverse: the host records "nothing to reverse" and does not count it;
 *                             an approval its failed-load advice let lapse is still reversed, and
 *                             counted, by the host, so advice and reversal may arrive in any order);
 *   purchase reversals (77/89) 0: purchases are final (a certified debit is refunded, not reversed);
 *   authorizations (81)       0200s put on the wire with a STAN in the range, whatever the answer.
 * The issuer counts only advices it accepted (00): an advice it refused (12, a bad certificate) stays
 * in the terminal's totals, and shows as a difference, which is what it is.
 *
 * Two things make the terminal's view uncertain, and the result names them: a 0200 that got no
 * answer (the terminal counts it sent, the host counts it only if it arrived;
 * `unansweredAuthorizations`), and its reversal, answered 00 whether it reversed something or not.
 *
 * Outbox not empty. The host's books hold only what reached it, so by default the outbox and the
 * pending reversals are drained first (Uplink.forward until empty, bounded by `drainTimeoutMs`).
 * What is still unsent afterwards (the host unreachable, a record refused for retry) makes the
 * comparison meaningless: no 0500 is sent and the result is status 'unsent' with the counts
 * (`allowUnsent: true` sends anyway, for a diagnosis).
 *
 * Range: default 1 .. the journal's last reader sequence. Currencies: default every currency with
 * value moved or an authorization in the range.
 */
import {
  RC,
  RESPONSE_CODES,
  currencyNumeric,
  parseReconciliationResponse,
  reconciliationRequest,
  type ReconciliationTotals,
  type Tally,
} from '../messages.js';
import { assertInt } from '../../util/assert.js';
import { UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';
import type { UplinkStore } from './store.js';
import { findCurrencyByNumeric } from '../../util/iso4217.js';

/** Default bound of the drain before a reconciliation. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

export interface ReconcileOptions {
  /** One currency (ISO 4217 letters or digits); default every currency active in the range. */
  currency?: string;
  /** Default 1. */
  firstSequence?: number;
  /** Default the journal's last reader sequence. */
  lastSequence?: number;
  /** Default true: forward the outbox and the pending reversals first. */
  drain?: boolean;
  drainTimeoutMs?: number;
  /** Send the 0500 even with records unsent (default false: status 'unsent', nothing sent). */
  allowUnsent?: boolean;
}

export interface CurrencyReconciliation {
  /** ISO 4217 numeric (field 49). */
  currency: string;
  /** Its letters when hilt knows them, else the digits. */
  currencyName: string;
  /** Field 39 of the 0510: 00 in balance, 95 not. */
  responseCode: string;
  inBalance: boolean;
  terminal: ReconciliationTotals;
  host: ReconciliationTotals;
  /** host − terminal, per total (0 everywhere when in balance). */
  differences: ReconciliationTotals;
}

export interface ReconciliationResult {
  /** in-balance: every currency agreed; out-of-balance: at least one did not; unsent: nothing compared. */
  status: 'in-balance' | 'out-of-balance' | 'unsent';
  inBalance: boolean;
  firstSequence: number;
  lastSequence: number;
  /** Journal outbox entries in the range still waiting for the host (after the drain). */
  unsent: number;
  /** Reversals still waiting for the host's answer (after the drain). */
  pendingReversals: number;
  /** Reader sequences of 0200s in the range that never got an answer (see the top of the file). */
  unansweredAuthorizations: number[];
  /** One per currency compared (empty with 'unsent', or when nothing happened in the range). */
  currencies: CurrencyReconciliation[];
}

export interface ReconcileContext {
  journal: UplinkJournal;
  link: UplinkLink;
  /** Forwards the outbox and the reversals until both are empty or `signal` aborts. */
  drain: (signal: AbortSignal) => Promise<unknown>;
}

const zeroTally = (): Tally => ({ count: 0, amount: 0 });
export const zeroTotals = (): ReconciliationTotals => ({ loads: zeroTally(), loadReversals: zeroTally(), purchases: zeroTally(), purchaseReversals: zeroTally(), authorizations: 0 });

function add(t: Tally, count: number, amount: number): void {
  t.count += count;
  t.amount += amount;
}

/** host − terminal, per total. */
export function totalsDifference(host: ReconciliationTotals, terminal: ReconciliationTotals): ReconciliationTotals {
  const d = (a: Tally, b: Tally): Tally => ({ count: a.count - b.count, amount: a.amount - b.amount });
  return {
    loads: d(host.loads, terminal.loads),
    loadReversals: d(host.loadReversals, terminal.loadReversals),
    purchases: d(host.purchases, terminal.purchases),
    purchaseReversals: d(host.purchaseReversals, terminal.purchaseReversals),
    authorizations: host.authorizations - terminal.authorizations,
  };
}

function sameTotals(a: ReconciliationTotals, b: ReconciliationTotals): boolean {
  const d = totalsDifference(a, b);
  return [d.loads, d.loadReversals, d.purchases, d.purchaseReversals].every((t) => t.count === 0 && t.amount === 0) && d.authorizations === 0;
}

function currencyName(numeric: string): string {
  return findCurrencyByNumeric(Number(numeric))?.alpha ?? numeric;
}

/** The terminal's totals per currency (numeric) over first..last: see the top of this file. */
export function terminalTotals(journal: UplinkJournal, store: UplinkStore, first: number, last: number): Map<string, ReconciliationTotals> {
  const out = new Map<string, ReconciliationTotals>();
  const of = (currency: string): ReconciliationTotals => {
    let t = out.get(currency);
    if (t === undefined) out.set(currency, (t = zeroTotals()));
    return t;
  };
  for (const v of journal.valueTotals(first, last)) {
    let numeric: string;
    try {
      numeric = currencyNumeric(v.currency);
    } catch {
      throw new UplinkError('unsendable', `reconciliation: the journal's currency ${v.currency} has no numeric code here`);
    }
    const t = of(numeric);
    add(v.type === 'purchase' ? t.purchases : t.loads, v.count, v.amount);
  }
  const sends = store.authorizationSends(first, last);
  for (const a of sends) of(a.currency).authorizations++;
  const answered = new Map(sends.map((a) => [a.readerSeq, a.responseCode]));
  for (const r of store.reversals()) {
    if (r.readerSeq < first || r.readerSeq > last || r.status !== 'reversed') continue;
    const rc = answered.get(r.readerSeq);
    if (rc === null || rc === RC.approved) add(of(r.currency).loadReversals, 1, r.amount);
  }
  return out;
}

/** Reconciles the terminal's books with the host's (see the top of this file). */
export async function reconcile(ctx: ReconcileContext, o: ReconcileOptions = {}): Promise<ReconciliationResult> {
  const { journal, link } = ctx;
  const store = link.store;
  const first = o.firstSequence ?? 1;
  assertInt(first, 'firstSequence', 1, 0xffffffff);
  const last = o.lastSequence ?? journal.lastReaderSequence() ?? 0;
  if (o.lastSequence !== undefined) assertInt(last, 'lastSequence', first, 0xffffffff);
  const only = o.currency === undefined ? undefined : currencyNumeric(o.currency.toUpperCase());
  const drainTimeoutMs = o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  assertInt(drainTimeoutMs, 'drainTimeoutMs', 1, 3_600_000);

  if (o.drain !== false) {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), drainTimeoutMs);
    try {
      await ctx.drain(stop.signal);
    } finally {
      clearTimeout(timer);
    }
  }
  const inRange = (seq: number | null): boolean => seq !== null && seq >= first && seq <= last;
  const unsent = journal
    .outbox({ waitingOnly: true, limit: 100_000 })
    .filter((e) => e.record.kind === 'transaction' && inRange(e.record.readerSeq)).length;
  const pendingReversals = store.reversals({ pendingOnly: true }).filter((r) => inRange(r.readerSeq)).length;
  const unansweredAuthorizations = last >= first ? store.authorizationSends(first, last).filter((a) => a.responseCode === null).map((a) => a.readerSeq) : [];
  const result: ReconciliationResult = {
    status: 'in-balance',
    inBalance: true,
    firstSequence: first,
    lastSequence: last,
    unsent,
    pendingReversals,
    unansweredAuthorizations,
    currencies: [],
  };
  if (last < first) return result; // nothing happened yet
  if ((unsent > 0 || pendingReversals > 0) && o.allowUnsent !== true) {
    result.status = 'unsent';
    result.inBalance = false;
    return result;
  }
  const totals = terminalTotals(journal, store, first, last);
  if (only !== undefined && !totals.has(only)) totals.set(only, zeroTotals());
  const currencies = [...totals.keys()].filter((c) => only === undefined || c === only).sort();
  let session;
  try {
    session = await link.session();
  } catch (e) {
    await link.drop();
    throw e;
  }
  for (const currency of currencies) {
    const terminal = totals.get(currency) as ReconciliationTotals;
    let answer;
    try {
      answer = parseReconciliationResponse(await session.request((h) => reconciliationRequest(h, { currency, firstSequence: first, lastSequence: last, totals: terminal })));
    } catch (e) {
      if (!(e instanceof UplinkError)) await link.drop();
      throw e;
    }
    if ((answer.responseCode !== RC.approved && answer.responseCode !== RC.reconcileError) || answer.totals === undefined) {
      throw new UplinkError('protocol', `reconciliation of ${currencyName(currency)}: the host answered ${answer.responseCode} (${RESPONSE_CODES.get(answer.responseCode)?.meaning ?? 'unknown'})`);
    }
    if (answer.currency !== undefined && answer.currency !== currency) throw new UplinkError('protocol', `reconciliation: asked for currency ${currency}, the host answered for ${answer.currency}`);
    const host = answer.totals;
    const agree = answer.responseCode === RC.approved;
    if (agree !== sameTotals(host, terminal)) {
      throw new UplinkError('protocol', `reconciliation of ${currencyName(currency)}: the host answered ${answer.responseCode} but its totals ${agree ? 'differ from' : 'equal'} ours`);
    }
    result.currencies.push({ currency, currencyName: currencyName(currency), responseCode: answer.responseCode, inBalance: agree, terminal, host, differences: totalsDifference(host, terminal) });
    if (!agree) {
      result.inBalance = false;
      result.status = 'out-of-balance';
    }
  }
  return result;
}
