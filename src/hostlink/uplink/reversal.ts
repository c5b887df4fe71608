/**
 * Load reversals (0400, repeated as 0401), terminal side.
 *
 * When: a load authorization (0200) that may stand on the host while the terminal will not load
 *   - 'no-answer': the 0200 went on the wire and no answer came (timeout, connection lost, an answer
 *     that does not parse). The host may have approved it: its cryptogram never reached the card,
 *     so the authorization is reversed. load.ts records it before throwing LoadInDoubtError;
 *     `reverseUnanswered()` does the same for a 0200 left without an answer by a crash;
 *   - 'not-loaded': the 0200 was approved but the terminal decided not to send LOAD
 *     (`recordLoadReversal` through Uplink.reverseLoad).
 *
 * How: the reversal is recorded in the uplink store first (durable, with its own STAN), then sent:
 * 0400 the first time, 0401 once it went on the wire before (noted before the bytes leave, as the
 * forwarder does for advices). Field 90 names the original: MTI 0200, its STAN (the row's reader
 * sequence) and its field 7. The issuer (src/hosts/issuer.ts) keys reversals by (terminal, original
 * MTI, original STAN) and answers a repeat from its store, so sending it again is harmless.
 *
 * The issuer's answers, and what they mean here:
 *   00  the authorization is reversed, or there was nothing to reverse (never received, declined,
 *       reversed before): either way no authorization stands → status 'reversed';
 *   12  refused: the load was already certified (its advice arrived: value moved, refund instead),
 *       or serial/amount do not match the authorization → status 'refused' (final);
 *   91, 96, 76 twice, 63, no answer → retried with backoff (min(maxMs, baseMs × 2^attempts) less
 *       jitter, the attempt count kept in the store so the wait survives restarts) until answered;
 *   80 / 79 → ReaderRefusedError, the reversal stays pending.
 */
import { RC, RESPONSE_CODES, currencyNumeric, parseReversalResponse, reversalRequest } from '../messages.js';
import { fromHex } from '../../util/bytes.js';
import { BadInputError } from '../../util/errors.js';
import { backoffDelay, DEFAULT_IDLE_POLL_MS, type BackoffPolicy } from './config.js';
import { ReaderRefusedError, UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';
import type { ReversalRecord, UplinkStore } from './store.js';
import { errorText, sleep } from './retry.js';


export type ReversalEvent =
  | { kind: 'reversed'; readerSeq: number; responseCode: string; repeat: boolean }
  | { kind: 'refused'; readerSeq: number; responseCode: string }
  | { kind: 'deferred'; readerSeq: number; untilMs: number; error: string };

export interface ReversalStats {
  /** Answered 00. */
  reversed: number;
  /** Answered with a final refusal. */
  refused: number;
  /** Failed attempts (deferred with backoff). */
  deferred: number;
  /** 0401 repeats sent. */
  repeats: number;
}

export interface ReversalSenderOptions {
  link: UplinkLink;
  backoff?: Readonly<BackoffPolicy>;
  clock?: () => number;
  random?: () => number;
  log?: (event: ReversalEvent) => void;
}

export const newReversalStats = (): ReversalStats => ({ reversed: 0, refused: 0, deferred: 0, repeats: 0 });

/**
 * Records the reversal of the approved load authorization of journal row `transactionId`, whose LOAD
 * the terminal will not send. BadInputError when the row is not a load, moved value already
 * (complete, recovered: the host would refuse; refund instead), or has no approved authorization.
 */
export function recordLoadReversal(journal: UplinkJournal, store: UplinkStore, transactionId: number): ReversalRecord {
  const row = journal.get(transactionId);
  if (row === null) throw new BadInputError(`journal row ${transactionId} does not exist`);
  if (row.type !== 'load') throw new BadInputError(`journal row ${row.id} is a ${row.type}, not a load`);
  const existing = store.reversal(row.readerSeq);
  if (existing !== null) return existing;
  if (row.status === 'complete' || row.status === 'recovered') {
    throw new BadInputError(`journal row ${row.id}: the load reached the card (${row.status}); a certified load is final, refund it instead`);
  }
  const sent = store.authorizationSend(row.readerSeq);
  if (sent === null) throw new BadInputError(`journal row ${row.id}: no load authorization was sent for it, nothing to reverse`);
  if (sent.responseCode !== null && sent.responseCode !== RC.approved) {
    throw new BadInputError(`journal row ${row.id}: its load authorization was declined (${sent.responseCode}), nothing to reverse`);
  }
  return store.recordReversal({
    readerSeq: sent.readerSeq,
    serial: sent.serial,
    amount: sent.amount,
    currency: sent.currency,
    originalTransmitted: sent.transmitted,
    reason: sent.responseCode === null ? 'no-answer' : 'not-loaded',
  });
}

/**
 * Records reversals for 0200s left without an answer by an earlier process (sent before `beforeMs`:
 * late enough that no request of a live process can still be waiting for the answer).
 */
export function reverseUnanswered(store: UplinkStore, beforeMs: number): ReversalRecord[] {
  return store.unansweredAuthorizations(beforeMs).map((a) =>
    store.recordReversal({ readerSeq: a.readerSeq, serial: a.serial, amount: a.amount, currency: a.currency, originalTransmitted: a.transmitted, reason: 'no-answer' }),
  );
}

/** Sends one pending reversal once; returns its record afterwards. Throws ReaderRefusedError only. */
export async function sendReversal(o: ReversalSenderOptions, readerSeq: number, stats: ReversalStats = newReversalStats()): Promise<ReversalRecord> {
  const { link } = o;
  const store = link.store;
  const clock = o.clock ?? Date.now;
  const log = o.log ?? (() => undefined);
  const r = store.reversal(readerSeq);
  if (r === null) throw new BadInputError(`no reversal recorded for reader sequence ${readerSeq}`);
  if (r.status !== 'pending') return r;
  const defer = (error: unknown): void => {
    const text = errorText(error);
    const untilMs = clock() + backoffDelay(o.backoff ?? link.config.backoff, r.attempts, o.random);
    store.deferReversal(readerSeq, untilMs, text);
    stats.deferred++;
    log({ kind: 'deferred', readerSeq, untilMs, error: text });
  };
  const input = {
    kind: 'load' as const,
    serial: fromHex(r.serial),
    amount: { minor: r.amount, currency: currencyNumeric(r.currency) },
    original: { mti: '0200', stan: r.readerSeq, transmitted: r.originalTransmitted, acquirer: '' },
  };
  let answer;
  let repeat = false;
  try {
    const session = await link.session();
    repeat = store.noteReversalSending(readerSeq) > 0; // before the bytes leave
    if (repeat) stats.repeats++;
    answer = await session.request((h) => reversalRequest(h, { ...input, repeat }), { stan: r.stan });
  } catch (e) {
    if (e instanceof ReaderRefusedError) throw e;
    if (e instanceof UplinkError && e.reason === 'identity') throw e;
    await link.drop();
    defer(e);
    return store.reversal(readerSeq) as ReversalRecord;
  }
  let rc: string;
  try {
    const parsed = parseReversalResponse(answer);
    if (parsed.original !== undefined && parsed.original.stan !== r.readerSeq) throw new UplinkError('protocol', `reversal: the host answered for STAN ${parsed.original.stan}, not ${r.readerSeq}`);
    rc = parsed.responseCode;
  } catch (e) {
    await link.drop();
    defer(e);
    return store.reversal(readerSeq) as ReversalRecord;
  }
  const info = RESPONSE_CODES.get(rc);
  if (rc === RC.approved) {
    store.finishReversal(readerSeq, 'reversed', rc);
    stats.reversed++;
    log({ kind: 'reversed', readerSeq, responseCode: rc, repeat });
  } else if (info?.retry === true || rc === RC.securityViolation || rc === RC.readerNotSignedOn) {
    defer(new UplinkError('protocol', `the host answered ${rc} (${info?.meaning ?? 'unknown'})`));
  } else {
    store.finishReversal(readerSeq, 'refused', rc);
    stats.refused++;
    log({ kind: 'refused', readerSeq, responseCode: rc });
  }
  return store.reversal(readerSeq) as ReversalRecord;
}

/** Sends every pending reversal whose backoff has run out, once each, in reader-sequence order. */
export async function sendDueReversals(o: ReversalSenderOptions, stats: ReversalStats = newReversalStats()): Promise<ReversalStats> {
  const clock = o.clock ?? Date.now;
  for (const r of o.link.store.reversals({ pendingOnly: true })) {
    if (r.nextAttemptAt > clock()) continue;
    await sendReversal(o, r.readerSeq, stats);
  }
  return stats;
}

export interface ReversalLoopOptions extends ReversalSenderOptions {
  signal?: AbortSignal;
  /** Return once no reversal is pending (default: keep watching until `signal` aborts). */
  untilDone?: boolean;
  idlePollMs?: number;
}

/** Sends pending reversals, with backoff, until none is pending (`untilDone`) or `signal` aborts. */
export async function reversalLoop(o: ReversalLoopOptions): Promise<ReversalStats> {
  const clock = o.clock ?? Date.now;
  const idlePollMs = o.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
  const stats = newReversalStats();
  while (!o.signal?.aborted) {
    await sendDueReversals(o, stats);
    const pending = o.link.store.reversals({ pendingOnly: true });
    if (pending.length === 0 && o.untilDone) break;
    const next = pending.reduce((m, r) => Math.min(m, r.nextAttemptAt), Number.POSITIVE_INFINITY);
    await sleep(Math.min(Math.max(1, next - clock()), idlePollMs), o.signal);
  }
  return stats;
}
