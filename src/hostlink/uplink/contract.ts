/**
 * What the uplink needs from the terminal's journal (src/terminal/journal): the outbox, the
 * negative card file, and for reconciliation its reader sequence and value totals, nothing else. Types only: the host link layer sits below the terminal layer
 * and never loads the journal's code; the terminal hands its Journal in, which has this shape.
 *
 * Behaviour the uplink relies on (journal.ts states it in full):
 * - nextOutbound(limit, now): the waiting entries in queue order from the oldest, stopping at the
 *   first whose backoff has not run out, so nothing overtakes an earlier record;
 * - markSent(id, reference): idempotent with the same reference; deferOutbound(id, until, error):
 *   counts an attempt and holds the entry (and so every later one) until `until`;
 * - every entry's `key` is what the host deduplicates on (`txn/<terminal>/<reader seq>`);
 * - applyNegativeDelta: all or nothing, refused (NegativeListVersionError) unless it starts at the
 *   current version; replaceNegativeList: a whole snapshot, all or nothing.
 */
import type {
  JournalIdentity,
  JournalRow,
  NegativeDelta,
  NegativeDeltaResult,
  NegativeEntryInput,
  OutboundEntry,
  ValueTotal,
} from '../../terminal/journal/index.js';

export type {
  AnomalyRecord,
  JournalIdentity,
  JournalRow,
  NegativeDelta,
  NegativeDeltaResult,
  NegativeEntryInput,
  OutboundEntry,
  OutboundRecord,
  TransactionRecord,
  ValueTotal,
} from '../../terminal/journal/index.js';

export interface UplinkJournal {
  /** The journal file (the uplink's state file goes next to it by default). */
  readonly path: string;
  readonly identity: JournalIdentity | null;
  /** The terminal's local time offset (minutes from UTC): card date-times are local (purse config). */
  readonly dayOffsetMinutes: number;
  nextOutbound(limit?: number, nowMs?: number): OutboundEntry[];
  outbox(filter?: { waitingOnly?: boolean; limit?: number }): OutboundEntry[];
  markSent(id: number, hostReference: string): 'sent' | 'already-sent';
  deferOutbound(id: number, untilMs: number, error: string): boolean;
  outboundCount(): number;
  negativeListVersion(): number;
  applyNegativeDelta(delta: NegativeDelta): NegativeDeltaResult;
  replaceNegativeList(version: number, entries: readonly NegativeEntryInput[]): NegativeDeltaResult;
  get(id: number): JournalRow | null;
  /** The last reader sequence number handed out (0 before the first), null without identity. */
  lastReaderSequence(): number | null;
  /** Value moved (complete, recovered) per currency and type over reader sequences first..last (reconcile.ts). */
  valueTotals(firstSeq: number, lastSeq: number): ValueTotal[];
}
