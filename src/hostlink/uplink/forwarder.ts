/**
 * Store-and-forward: the journal's outbox, sent to the host in queue order, each record applied by
 * the host exactly once.
 *
 * One round of the loop:
 *   1. `journal.nextOutbound(window)`: the due entries from the oldest waiting one; none due → wait
 *      for the head's backoff to run out (or, with an empty outbox, for new records), bounded by
 *      `idlePollMs` so new records and an abort are seen;
 *   2. a signed-on session from the link (connect + sign-on when there is none). Failing that, the
 *      head entry is deferred with backoff (its attempt count grows, so the wait survives restarts);
 *   3. for each entry, in order: the store notes the send BEFORE the bytes leave (store.ts), then its
 *      message goes out: a transaction record as an advice, 0220, or 0221 when it went on the wire
 *      before without an answer we kept, with the record's reader sequence number as STAN; an
 *      anomaly record as an administrative advice, 0620 / 0621, with its anomaly sequence (the
 *      journal's anomaly id) as STAN. The STAN is the key the host deduplicates on, per message
 *      kind: (terminal id, reader sequence) for advices, (terminal id, anomaly sequence) for reports;
 *   4. the answers, in order:
 *        00 approved, 94 duplicate (applied before)    → markSent ("0230 00", "0630 94", ...)
 *        retry codes (91, 96, 76 again), 63 (MAC)        → deferOutbound with backoff
 *        any other refusal (30, 05, 12, ...)             → markSent with reference "refused <rc>":
 *                                                          the host has it and decided; sending it
 *                                                          again would get the same answer
 *        no answer (timeout, connection lost, bad MAC)   → deferOutbound with backoff; the session is
 *                                                          dropped (the record may have been applied:
 *                                                          the repeat will be answered 94)
 *        80 blocked / 79 unknown reader                  → the forwarder stops with ReaderRefusedError
 *
 * Exactly once: the host applies a record once per (terminal id, reader sequence) and answers a
 * repeat with 94. A crash anywhere (before the send, between the host's commit and markSent, during
 * markSent) leaves the entry unsent in the journal; it goes again after the restart and the host
 * recognises it. Nothing is ever marked sent without the host's answer, so nothing is lost.
 *
 * Order: with `window` 1 (the default) a record goes only after the one before it was answered. A
 * larger window (≤ MAX_WINDOW) sends up to that many back to back on the one connection; they are
 * written in order, but one that fails is retried after later ones were applied.
 *
 * Anomaly records travel in the queue like transactions (same order, window, backoff and answers);
 * the stats count them in `delivered` / `duplicates` / `refused` like advices, and in `anomalies`.
 *
 * A record the message set cannot express (UplinkError 'unsendable') stops the forwarder: it stays
 * at the head of the outbox, as does everything after it. Nothing is dropped to get past it.
 */
import { adviceRequest, anomalyReportRequest, parseAdviceResponse, parseAnomalyReportResponse, RC, RESPONSE_CODES, type RequestHeader, type SimpleResponse } from '../messages.js';
import type { IsoMessage } from '../iso8583/message.js';
import { assertInt } from '../../util/assert.js';
import { backoffDelay, DEFAULT_IDLE_POLL_MS, DEFAULT_WINDOW, MAX_WINDOW, type BackoffPolicy } from './config.js';
import { adviceInputOf, anomalyReportInputOf } from './records.js';
import { ReaderRefusedError, UplinkError } from './errors.js';
import type { OutboundEntry, UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';
import type { UplinkSession } from './session.js';
import { errorText, sleep } from './retry.js';

/** Acknowledged entries between two prunings of the store's send notes. */
const PRUNE_EVERY = 64;

export type ForwarderEvent =
  | { kind: 'delivered'; outboxId: number; key: string; responseCode: string; repeat: boolean }
  | { kind: 'refused'; outboxId: number; key: string; responseCode: string }
  | { kind: 'deferred'; outboxId: number; key: string; untilMs: number; error: string }
  | { kind: 'session-failed'; error: string };

export interface ForwarderOptions {
  journal: UplinkJournal;
  link: UplinkLink;
  /** Entries in flight at once, 1..MAX_WINDOW; default DEFAULT_WINDOW (1). */
  window?: number;
  /** Default: the link's configuration. */
  backoff?: Readonly<BackoffPolicy>;
  /** Longest wait before the outbox is looked at again; default DEFAULT_IDLE_POLL_MS. */
  idlePollMs?: number;
  /** Return once the outbox is empty (default: keep watching it until `signal` aborts). */
  untilEmpty?: boolean;
  signal?: AbortSignal;
  clock?: () => number;
  /** [0, 1), for the backoff's jitter; default Math.random. */
  random?: () => number;
  /** What happened to each entry (a terminal's log; never required). */
  log?: (event: ForwarderEvent) => void;
}

export interface ForwarderStats {
  /** Acknowledged with 00. */
  delivered: number;
  /** Acknowledged with 94: the host had applied it before (a repeat after a lost answer). */
  duplicates: number;
  /** Answered with a final refusal (marked sent with "refused <rc>"). */
  refused: number;
  /** Of the acknowledged (00, 94) and refused: anomaly records (0620), the rest are advices (0220). */
  anomalies: number;
  /** Deferrals (failed attempts). */
  deferred: number;
  /** 0221 / 0621 repeats sent. */
  repeats: number;
  /** Connects or sign-ons that failed. */
  sessionFailures: number;
}

interface Prepared {
  entry: OutboundEntry;
  /** Field 11: the reader sequence (advice) or the anomaly sequence (report). */
  stan: number;
  /** The response MTI, for the reference markSent records. */
  answers: '0230' | '0630';
  build(h: RequestHeader, repeat: boolean): IsoMessage;
  parse(answer: IsoMessage): SimpleResponse;
}

type Outcome = { ok: true; answer: IsoMessage; repeat: boolean } | { ok: false; error: unknown };

/** Forwards the outbox until `signal` aborts (or, with `untilEmpty`, until it is empty). */
export async function forwardOutbox(o: ForwarderOptions): Promise<ForwarderStats> {
  const { journal, link, signal } = o;
  const window = o.window ?? DEFAULT_WINDOW;
  assertInt(window, 'window', 1, MAX_WINDOW);
  const idlePollMs = o.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
  assertInt(idlePollMs, 'idlePollMs', 1, 3_600_000);
  const backoff = o.backoff ?? link.config.backoff;
  const clock = o.clock ?? Date.now;
  const random = o.random ?? Math.random;
  const log = o.log ?? (() => undefined);
  const config = link.config;
  const store = link.store;
  const identity = journal.identity;
  if (identity === null || identity.terminalId !== config.terminalId || identity.readerId !== config.readerId) {
    throw new UplinkError(
      'identity',
      `the journal belongs to ${identity === null ? 'no terminal yet' : `${identity.terminalId}/${identity.readerId}`}, the uplink is ${config.terminalId}/${config.readerId}`,
    );
  }
  const stats: ForwarderStats = { delivered: 0, duplicates: 0, refused: 0, anomalies: 0, deferred: 0, repeats: 0, sessionFailures: 0 };

  const defer = (entry: OutboundEntry, error: unknown): void => {
    const text = errorText(error);
    const untilMs = clock() + backoffDelay(backoff, entry.attempts, random);
    if (journal.deferOutbound(entry.id, untilMs, text)) {
      stats.deferred++;
      log({ kind: 'deferred', outboxId: entry.id, key: entry.key, untilMs, error: text });
    }
  };
  let acknowledgedSincePrune = 0;
  const prune = (): void => {
    acknowledgedSincePrune = 0;
    const head = journal.outbox({ waitingOnly: true, limit: 1 })[0];
    store.forgetSendsBefore(head === undefined ? Number.MAX_SAFE_INTEGER : head.id);
  };
  const acknowledge = (entry: OutboundEntry, reference: string): void => {
    journal.markSent(entry.id, reference);
    if (++acknowledgedSincePrune >= PRUNE_EVERY) prune();
  };

  /** The message of an entry, checked by building it once; UplinkError 'unsendable' when it cannot be. */
  const prepare = (entry: OutboundEntry): Prepared => {
    const record = entry.record;
    const ctx = { terminalId: config.terminalId, utcOffsetMinutes: journal.dayOffsetMinutes };
    let p: Prepared;
    let what: string;
    if (record.kind === 'anomaly') {
      const input = anomalyReportInputOf(record, ctx);
      what = `journal anomaly ${record.anomalyId}`;
      p = { entry, stan: record.anomalyId, answers: '0630', build: (h, repeat) => anomalyReportRequest(h, { ...input, repeat }), parse: parseAnomalyReportResponse };
    } else {
      const issuerReference = record.type === 'load' ? store.loadAuthorization(record.readerSeq)?.issuerReference : undefined;
      const input = adviceInputOf(record, { ...ctx, issuerReference });
      what = `journal record of reader sequence ${record.readerSeq}`;
      p = { entry, stan: record.readerSeq, answers: '0230', build: (h, repeat) => adviceRequest(h, { ...input, repeat }), parse: parseAdviceResponse };
    }
    try {
      p.build({ terminalId: config.terminalId, readerId: config.readerId, stan: p.stan, at: new Date(clock()), keyVersion: link.keys?.version ?? config.keyVersion }, false);
    } catch (e) {
      throw new UplinkError('unsendable', `${what} cannot go to the host: ${(e as Error).message}`, { cause: e });
    }
    return p;
  };

  const send = async (session: UplinkSession, p: Prepared): Promise<Outcome> => {
    // Noted before the bytes leave: after a crash from here on, the entry goes again as a repeat.
    const repeat = store.noteSending(p.entry.id) > 0;
    if (repeat) stats.repeats++;
    try {
      const answer = await session.request((h) => p.build(h, repeat), { stan: p.stan });
      return { ok: true, answer, repeat };
    } catch (error) {
      return { ok: false, error };
    }
  };

  while (!signal?.aborted) {
    const due = journal.nextOutbound(window, clock());
    if (due.length === 0) {
      const head = journal.outbox({ waitingOnly: true, limit: 1 })[0];
      if (head === undefined) {
        if (o.untilEmpty) break;
        await sleep(idlePollMs, signal);
      } else {
        await sleep(Math.min(Math.max(1, head.nextAttemptAt - clock()), idlePollMs), signal);
      }
      continue;
    }

    // The batch: the due entries, advices and anomaly reports alike; a record that cannot be sent ends
    // it (and stops the forwarder when it reaches the head).
    const batch: Prepared[] = [];
    for (const entry of due) {
      try {
        batch.push(prepare(entry));
      } catch (e) {
        if (batch.length === 0) throw e;
        break;
      }
    }

    let session: UplinkSession;
    try {
      session = await link.session();
    } catch (error) {
      // The reader refused, or a journal / state file of another terminal: no retry will help.
      if (error instanceof ReaderRefusedError || (error instanceof UplinkError && error.reason === 'identity')) throw error;
      stats.sessionFailures++;
      log({ kind: 'session-failed', error: errorText(error) });
      defer(batch[0].entry, error);
      continue;
    }

    // Sends go out back to back, in order (each request() writes its frame before the next starts).
    const outcomes = await Promise.all(batch.map((p) => send(session, p)));
    let refusedReader: ReaderRefusedError | null = null;
    let broken = false;
    for (let i = 0; i < batch.length; i++) {
      const { entry, answers, parse } = batch[i];
      const anomaly = entry.record.kind === 'anomaly';
      const outcome = outcomes[i];
      if (!outcome.ok) {
        if (outcome.error instanceof ReaderRefusedError) refusedReader = outcome.error;
        else {
          broken = true;
          defer(entry, outcome.error);
        }
        continue;
      }
      let rc: string;
      try {
        rc = parse(outcome.answer).responseCode;
      } catch (error) {
        broken = true;
        defer(entry, error);
        continue;
      }
      const info = RESPONSE_CODES.get(rc);
      if (rc === RC.approved || rc === RC.duplicate) {
        acknowledge(entry, `${answers} ${rc}`);
        if (rc === RC.approved) stats.delivered++;
        else stats.duplicates++;
        if (anomaly) stats.anomalies++;
        log({ kind: 'delivered', outboxId: entry.id, key: entry.key, responseCode: rc, repeat: outcome.repeat });
      } else if (info?.retry === true || rc === RC.securityViolation) {
        defer(entry, new UplinkError('protocol', `the host answered ${rc} (${info?.meaning ?? 'unknown'})`));
      } else {
        acknowledge(entry, `${answers} ${rc} refused`);
        stats.refused++;
        if (anomaly) stats.anomalies++;
        log({ kind: 'refused', outboxId: entry.id, key: entry.key, responseCode: rc });
      }
    }
    if (refusedReader !== null) throw refusedReader;
    if (broken) await link.drop();
  }
  prune();
  return stats;
}
