/**
 * The terminal's durable journal: every value-moving transaction, written before the card is touched
 * and resolved after; the reader sequence; card counter coherence and anomalies; spending sums for
 * limits; the negative card file; the store-and-forward outbox.
 *
 * The purchase flow (DESIGN.md, "Host link"; issue 6):
 *
 *   beginTransaction(...)  → pending row + fresh reader sequence number, one commit, BEFORE the debit
 *   debit on the card
 *   complete(id, {...})    → complete + certificate + outbox record, one commit
 *   (debit refused)        → fail(id, ...)
 *   (answer lost: tear)    → row stays pending; next time the card is presented the flow reads its
 *                            counter and log and calls recover(id, ...) (the debit is in the log: the
 *                            certificate is taken from it) or neverHappened(id, ...) (it is not).
 *
 * Guarantees, each one SQLite transaction (IMMEDIATE, WAL, synchronous=FULL, see db.ts):
 * - a reader sequence number is allocated in the same commit as the row that carries it, so a number
 *   is never handed out twice and never lost from the journal, whatever moment the process dies at;
 *   `nextReaderSequence()` alone commits the bare number (a deliberate gap);
 * - a card with a pending row cannot begin another transaction (PendingTransactionError): the tear
 *   must be resolved first, so a card is never debited twice for one purchase;
 * - pending → complete | failed | never-happened | recovered, and nothing leaves those (TransitionError;
 *   triggers in the schema refuse it too);
 * - every row that reaches a final state gets exactly one outbox record in the same commit. Rows that
 *   moved no money (failed, never-happened) are uplinked too, so the host sees every reader sequence
 *   number and can tell a real gap from a declined purchase. The host keys records by `key`
 *   (`txn/<terminal id>/<reader seq>`) and applies each once.
 *
 * One journal belongs to one terminal and one reader (its `identity`, fixed on first use), so the
 * reader sequence is unique per terminal and the host's key (terminal id, reader sequence) is too.
 *
 * Days for limits: a transaction's day is the calendar day of its created_at shifted by the journal's
 * `dayOffsetMinutes` (0 = UTC, 540 = Japan); the offset is applied when sums are asked for, so changing
 * it re-buckets history consistently. No DST: a terminal that needs it re-opens with the new offset.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { SqliteDatabase } from './db.js';
import { openJournalDb, type SqliteLoader } from './db.js';
import { BadInputError, ChannelClosedError, HiltError, ProtocolError } from '../../util/errors.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { assertBytes, assertInt } from '../../util/assert.js';

// ---------------------------------------------------------------------------------------------
// Vocabulary (data tables)

export const TRANSACTION_TYPES = ['purchase', 'load', 'refund'] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];

export const TRANSACTION_STATUSES = ['pending', 'complete', 'failed', 'never-happened', 'recovered'] as const;
export type TransactionStatus = (typeof TRANSACTION_STATUSES)[number];
export type FinalStatus = Exclude<TransactionStatus, 'pending'>;

/** The state machine: the states each state may move to. Final states have none. */
export const TRANSITIONS: Readonly<Record<TransactionStatus, readonly FinalStatus[]>> = {
  pending: ['complete', 'failed', 'never-happened', 'recovered'],
  complete: [],
  failed: [],
  'never-happened': [],
  recovered: [],
};

/** States in which the card's value really moved (a completed debit, or one found in the card's log). */
export const VALUE_MOVED_STATUSES: readonly TransactionStatus[] = ['complete', 'recovered'];

export const ANOMALY_KINDS = ['rollback', 'repeat', 'clone', 'gap', 'blocked-card', 'other'] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

/** Terminal, reader and service provider ids: letters, digits, '.', '_', ':', '-'; 1..64 characters. */
export const JOURNAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** ISO 4217 alphabetic currency code. */
export const CURRENCY_PATTERN = /^[A-Z]{3}$/;
export const MAX_SERIAL_BYTES = 32;
export const MAX_CERTIFICATE_BYTES = 4096;
export const MAX_TEXT_LENGTH = 1000;
/** A gap lists at most this many missing counter values; `missingCount` has the full number. */
export const MAX_GAP_LISTED = 64;
export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 100_000;
export const MAX_OUTBOUND_BATCH = 1000;
export const MAX_NEGATIVE_DELTA_ENTRIES = 100_000;
const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Errors

/** A transition the state machine does not allow (the row is in a final state). Code BAD_INPUT. */
export class TransitionError extends HiltError {
  readonly id: number;
  readonly from: TransactionStatus;
  readonly to: FinalStatus;
  constructor(id: number, from: TransactionStatus, to: FinalStatus) {
    super('BAD_INPUT', `journal row ${id} is ${from}: it cannot become ${to} (a final state never changes)`);
    this.id = id;
    this.from = from;
    this.to = to;
  }
}

/** beginTransaction for a card whose earlier transaction is still pending (unresolved tear). BAD_INPUT. */
export class PendingTransactionError extends HiltError {
  readonly cardSerial: string;
  readonly pendingIds: readonly number[];
  constructor(cardSerial: string, pendingIds: readonly number[]) {
    super('BAD_INPUT', `card ${cardSerial} has a pending transaction (journal row ${pendingIds.join(', ')}): resolve it by tear recovery first`);
    this.cardSerial = cardSerial;
    this.pendingIds = pendingIds;
  }
}

/** A negative-list delta that does not start at the terminal's current version. Code PROTOCOL. */
export class NegativeListVersionError extends HiltError {
  readonly currentVersion: number;
  readonly fromVersion: number;
  readonly toVersion: number;
  constructor(currentVersion: number, fromVersion: number, toVersion: number) {
    super('PROTOCOL', `negative list delta ${fromVersion} → ${toVersion} does not apply: the terminal's list is at version ${currentVersion}`);
    this.currentVersion = currentVersion;
    this.fromVersion = fromVersion;
    this.toVersion = toVersion;
  }
}

// ---------------------------------------------------------------------------------------------
// Shapes

export interface JournalIdentity {
  terminalId: string;
  readerId: string;
}

export interface JournalOptions {
  /** Whose journal this is. Stored on first use; a later open with other ids is refused. */
  identity?: JournalIdentity;
  /** Read only (the CLI): no migration, no write; the file must exist. */
  readonly?: boolean;
  /** Business-day offset from UTC in minutes, -840..840; default 0 (UTC). */
  dayOffsetMinutes?: number;
  /** Milliseconds since the epoch; default Date.now. Injectable for tests. */
  clock?: () => number;
  busyTimeoutMs?: number;
  /** Loads better-sqlite3 (tests simulate a missing module). */
  load?: SqliteLoader;
}

export type CardSerialInput = Uint8Array | string;

export interface BeginInput {
  /** Service provider id (e.g. the e-money issuer's domain). */
  provider: string;
  type: TransactionType;
  cardSerial: CardSerialInput;
  /** The card's transaction counter read before the operation. */
  cardCounter: number;
  /** Minor units, > 0. */
  amount: number;
  /** ISO 4217 alphabetic code, upper case. */
  currency: string;
}

export interface Begun {
  id: number;
  readerSeq: number;
}

/** The card's answer to a value-moving command (complete) or what its log shows (recover). */
export interface CompletionInput {
  /** The card's counter after the operation (≥ the counter before). */
  cardCounter: number;
  certificate: Uint8Array;
  balanceAfter: number;
}

export interface FailureInput {
  error: string;
  /** The card's counter when it refused, when known. */
  cardCounter?: number;
}

export interface NeverHappenedInput {
  /** The counter the card showed at recovery (the operation is not in its log). */
  cardCounter: number;
  note?: string;
}

export interface JournalRow {
  id: number;
  readerId: string;
  readerSeq: number;
  terminalId: string;
  provider: string;
  type: TransactionType;
  /** Upper-case hex. */
  cardSerial: string;
  counterBefore: number;
  counterAfter: number | null;
  amount: number;
  currency: string;
  status: TransactionStatus;
  createdAt: number;
  updatedAt: number;
  certificate: Uint8Array | null;
  balanceAfter: number | null;
  error: string | null;
}

export interface JournalFilter {
  status?: TransactionStatus | readonly TransactionStatus[];
  cardSerial?: CardSerialInput;
  type?: TransactionType;
  /** created_at ≥ from (ms or Date). */
  from?: number | Date;
  /** created_at < to (ms or Date). */
  to?: number | Date;
  /** Default DEFAULT_QUERY_LIMIT, at most MAX_QUERY_LIMIT. */
  limit?: number;
  /** By id; default 'desc' (newest first). */
  order?: 'asc' | 'desc';
}

/**
 * What the card's counter says against this terminal's history of the card (`last` is the highest
 * counter this terminal recorded for it: counters read before transactions, after debits, at recovery).
 * - 'first-seen': no history.
 * - 'ok': the card shows `last`, so nothing moved its value since this terminal saw it.
 * - gap: higher than `last`: the card transacted elsewhere; `missing` lists the counter values it went
 *   through unseen here (last+1 .. counter, at most MAX_GAP_LISTED of them). Flag, do not refuse.
 * - repeat: lower than `last`, equal to the counter a debit completed here started from: the card is
 *   back in the state before that debit (a replayed image, or a clone made before it). Refuse.
 * - rollback: lower than `last` otherwise: an older state (restored image, clone). Refuse.
 * Resolve the card's pending rows (tear recovery) before asking: a pending row's debit may have moved
 * the counter without the journal knowing yet.
 */
export type CounterCheck =
  | 'ok'
  | 'first-seen'
  | { kind: 'gap'; last: number; missing: number[]; missingCount: number }
  | { kind: 'repeat'; last: number; transactionId: number; readerSeq: number }
  | { kind: 'rollback'; last: number };

export interface CardHistory {
  cardSerial: string;
  lastCounter: number;
  lastSeenAt: number;
  lastTransactionId: number | null;
}

export type AnomalyDetails = Record<string, string | number | boolean | null>;

export interface AnomalyInput {
  kind: AnomalyKind;
  cardSerial: CardSerialInput;
  counter?: number;
  lastCounter?: number;
  transactionId?: number;
  details?: AnomalyDetails;
  /** Queue it for the host too; default true. */
  uplink?: boolean;
}

export interface Anomaly {
  id: number;
  createdAt: number;
  kind: AnomalyKind;
  cardSerial: string;
  counter: number | null;
  lastCounter: number | null;
  transactionId: number | null;
  details: AnomalyDetails;
}

/** A transaction as the host receives it (frozen when queued). */
export interface TransactionRecord {
  kind: 'transaction';
  terminalId: string;
  readerId: string;
  readerSeq: number;
  provider: string;
  type: TransactionType;
  cardSerial: string;
  counterBefore: number;
  counterAfter: number | null;
  amount: number;
  currency: string;
  status: FinalStatus;
  createdAt: number;
  updatedAt: number;
  /** Upper-case hex, or null for rows that moved no money. */
  certificate: string | null;
  balanceAfter: number | null;
  error: string | null;
}

export interface AnomalyRecord {
  kind: 'anomaly';
  terminalId: string;
  readerId: string;
  anomalyId: number;
  anomaly: AnomalyKind;
  cardSerial: string;
  counter: number | null;
  lastCounter: number | null;
  /** The reader sequence of the transaction the anomaly concerns, if any. */
  readerSeq: number | null;
  createdAt: number;
  details: AnomalyDetails;
}

export type OutboundRecord = TransactionRecord | AnomalyRecord;

export interface OutboundEntry {
  /** Queue position: entries are sent in ascending id. */
  id: number;
  /** What the host deduplicates on: `txn/<terminal>/<reader seq>` or `anomaly/<terminal>/<anomaly id>`. */
  key: string;
  record: OutboundRecord;
  transactionId: number | null;
  anomalyId: number | null;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  sentAt: number | null;
  hostReference: string | null;
}

export interface NegativeEntryInput {
  cardSerial: CardSerialInput;
  reason: string;
}

export interface NegativeEntry {
  cardSerial: string;
  reason: string;
  addedInVersion: number;
}

export interface NegativeDelta {
  fromVersion: number;
  toVersion: number;
  add: readonly NegativeEntryInput[];
  remove: readonly CardSerialInput[];
}

export interface NegativeDeltaResult {
  version: number;
  added: number;
  removed: number;
}

/** One line of valueTotals(): rows of one currency and type that moved value. */
export interface ValueTotal {
  currency: string;
  type: TransactionType;
  count: number;
  /** Minor units. */
  amount: number;
}

export interface JournalSummary {
  transactions: number;
  byStatus: Record<TransactionStatus, number>;
  outboxWaiting: number;
  negativeListVersion: number;
  lastReaderSeq: number | null;
}

/** A business day, 'YYYY-MM-DD', or a moment (ms) whose day is meant. */
export type DayRef = string | number;
/** A business month, 'YYYY-MM', or a moment (ms) whose month is meant. */
export type MonthRef = string | number;

// ---------------------------------------------------------------------------------------------
// Input checks

function assertJournalId(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string' || !JOURNAL_ID_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? `"${value.length > 40 ? value.slice(0, 40) + '…' : value}"` : String(value);
    throw new BadInputError(`${name}: expected 1 to 64 letters, digits, '.', '_', ':' or '-', got ${shown}`);
  }
}

/** Card serial as stored: upper-case hex of 1..32 bytes. */
export function normalizeCardSerial(serial: CardSerialInput, name = 'card serial'): string {
  let bytes: Uint8Array;
  if (serial instanceof Uint8Array) bytes = serial;
  else if (typeof serial === 'string') {
    try {
      bytes = fromHex(serial);
    } catch (e) {
      throw new BadInputError(`${name}: ${(e as Error).message}`);
    }
  } else throw new BadInputError(`${name}: expected hex or Uint8Array, got ${serial === null ? 'null' : typeof serial}`);
  if (bytes.length < 1 || bytes.length > MAX_SERIAL_BYTES) throw new BadInputError(`${name}: expected 1 to ${MAX_SERIAL_BYTES} bytes, got ${bytes.length}`);
  return toHex(bytes).toUpperCase();
}

function assertCounter(value: unknown, name: string): asserts value is number {
  assertInt(value, name, 0, Number.MAX_SAFE_INTEGER);
}

function assertText(value: unknown, name: string, allowEmpty = false): asserts value is string {
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0) || value.length > MAX_TEXT_LENGTH) {
    throw new BadInputError(`${name}: expected a string of ${allowEmpty ? 0 : 1} to ${MAX_TEXT_LENGTH} characters, got ${typeof value === 'string' ? `${value.length} characters` : typeof value}`);
  }
}

function assertCurrency(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !CURRENCY_PATTERN.test(value)) {
    throw new BadInputError(`currency: expected an ISO 4217 alphabetic code in upper case such as "JPY" or "EUR", got ${typeof value === 'string' ? `"${value}"` : typeof value}`);
  }
}

function assertOneOf<T extends string>(value: unknown, allowed: readonly T[], name: string): asserts value is T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new BadInputError(`${name}: expected one of ${allowed.join(', ')}, got ${typeof value === 'string' ? `"${value}"` : typeof value}`);
  }
}

function assertRowId(value: unknown, name = 'journal row id'): asserts value is number {
  assertInt(value, name, 1, Number.MAX_SAFE_INTEGER);
}

function assertCertificate(value: unknown): asserts value is Uint8Array {
  assertBytes(value, 'certificate');
  if (value.length < 1 || value.length > MAX_CERTIFICATE_BYTES) {
    throw new BadInputError(`certificate: expected 1 to ${MAX_CERTIFICATE_BYTES} bytes, got ${value.length}`);
  }
}

function toMs(value: number | Date, name: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms)) throw new BadInputError(`${name}: expected a Date or integer milliseconds, got ${String(value)}`);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// Row mapping

interface TransactionDbRow {
  id: number;
  reader_id: string;
  reader_seq: number;
  terminal_id: string;
  provider: string;
  type: TransactionType;
  card_serial: string;
  counter_before: number;
  counter_after: number | null;
  amount: number;
  currency: string;
  status: TransactionStatus;
  created_at: number;
  updated_at: number;
  certificate: Uint8Array | null;
  balance_after: number | null;
  error: string | null;
}

interface OutboxDbRow {
  id: number;
  key: string;
  transaction_id: number | null;
  anomaly_id: number | null;
  payload: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  sent_at: number | null;
  host_reference: string | null;
}

interface AnomalyDbRow {
  id: number;
  created_at: number;
  kind: AnomalyKind;
  card_serial: string;
  counter: number | null;
  last_counter: number | null;
  transaction_id: number | null;
  details: string;
}

function toRow(r: TransactionDbRow): JournalRow {
  return {
    id: r.id,
    readerId: r.reader_id,
    readerSeq: r.reader_seq,
    terminalId: r.terminal_id,
    provider: r.provider,
    type: r.type,
    cardSerial: r.card_serial,
    counterBefore: r.counter_before,
    counterAfter: r.counter_after,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    // better-sqlite3 hands out Buffers: copy into a plain Uint8Array (public APIs never expose Buffer).
    certificate: r.certificate === null ? null : new Uint8Array(r.certificate),
    balanceAfter: r.balance_after,
    error: r.error,
  };
}

function toOutbound(r: OutboxDbRow): OutboundEntry {
  return {
    id: r.id,
    key: r.key,
    record: JSON.parse(r.payload) as OutboundRecord,
    transactionId: r.transaction_id,
    anomalyId: r.anomaly_id,
    createdAt: r.created_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    sentAt: r.sent_at,
    hostReference: r.host_reference,
  };
}

function toAnomaly(r: AnomalyDbRow): Anomaly {
  return {
    id: r.id,
    createdAt: r.created_at,
    kind: r.kind,
    cardSerial: r.card_serial,
    counter: r.counter,
    lastCounter: r.last_counter,
    transactionId: r.transaction_id,
    details: JSON.parse(r.details) as AnomalyDetails,
  };
}

function transactionRecord(row: JournalRow, status: FinalStatus): TransactionRecord {
  return {
    kind: 'transaction',
    terminalId: row.terminalId,
    readerId: row.readerId,
    readerSeq: row.readerSeq,
    provider: row.provider,
    type: row.type,
    cardSerial: row.cardSerial,
    counterBefore: row.counterBefore,
    counterAfter: row.counterAfter,
    amount: row.amount,
    currency: row.currency,
    status,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    certificate: row.certificate === null ? null : toHex(row.certificate).toUpperCase(),
    balanceAfter: row.balanceAfter,
    error: row.error,
  };
}

/** The host's deduplication key of a transaction record. */
export function transactionKey(terminalId: string, readerSeq: number): string {
  return `txn/${terminalId}/${readerSeq}`;
}

export function anomalyKey(terminalId: string, anomalyId: number): string {
  return `anomaly/${terminalId}/${anomalyId}`;
}

// ---------------------------------------------------------------------------------------------
// Days

const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH_PATTERN = /^(\d{4})-(\d{2})$/;

/** [from, to) in ms of a business day, for a journal whose days start at UTC midnight + offset. */
export function dayRange(day: DayRef, dayOffsetMinutes = 0): { fromMs: number; toMs: number } {
  const offsetMs = dayOffsetMinutes * MINUTE_MS;
  let startLocal: number;
  if (typeof day === 'number') {
    const ms = toMs(day, 'day');
    startLocal = Math.floor((ms + offsetMs) / DAY_MS) * DAY_MS;
  } else {
    const m = typeof day === 'string' ? DAY_PATTERN.exec(day) : null;
    const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
    if (!m || Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== day) {
      throw new BadInputError(`day: expected a date YYYY-MM-DD or milliseconds, got ${typeof day === 'string' ? `"${day}"` : typeof day}`);
    }
    startLocal = t;
  }
  return { fromMs: startLocal - offsetMs, toMs: startLocal + DAY_MS - offsetMs };
}

/** [from, to) in ms of a business month. */
export function monthRange(month: MonthRef, dayOffsetMinutes = 0): { fromMs: number; toMs: number } {
  const offsetMs = dayOffsetMinutes * MINUTE_MS;
  let year: number;
  let index: number;
  if (typeof month === 'number') {
    const local = new Date(toMs(month, 'month') + offsetMs);
    year = local.getUTCFullYear();
    index = local.getUTCMonth();
  } else {
    const m = typeof month === 'string' ? MONTH_PATTERN.exec(month) : null;
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) {
      throw new BadInputError(`month: expected YYYY-MM or milliseconds, got ${typeof month === 'string' ? `"${month}"` : typeof month}`);
    }
    year = Number(m[1]);
    index = Number(m[2]) - 1;
  }
  return { fromMs: Date.UTC(year, index, 1) - offsetMs, toMs: Date.UTC(year, index + 1, 1) - offsetMs };
}

// ---------------------------------------------------------------------------------------------
// The journal

const TX_COLUMNS =
  'id, reader_id, reader_seq, terminal_id, provider, type, card_serial, counter_before, counter_after, amount, currency, status, created_at, updated_at, certificate, balance_after, error';
const OUTBOX_COLUMNS = 'id, key, transaction_id, anomaly_id, payload, created_at, attempts, next_attempt_at, last_error, sent_at, host_reference';

export class Journal {
  readonly path: string;
  readonly readonly: boolean;
  readonly dayOffsetMinutes: number;
  private readonly db: SqliteDatabase;
  private readonly clock: () => number;
  private readonly identityValue: JournalIdentity | null;
  private closed = false;
  /** Prepared statements by SQL text; the set of texts is fixed, so the cache is bounded. */
  private readonly statements = new Map<string, BetterSqlite3.Statement>();

  private constructor(db: SqliteDatabase, path: string, readonly: boolean, dayOffsetMinutes: number, clock: () => number, identity: JournalIdentity | null) {
    this.db = db;
    this.path = path;
    this.readonly = readonly;
    this.dayOffsetMinutes = dayOffsetMinutes;
    this.clock = clock;
    this.identityValue = identity;
  }

  /**
   * Opens (creates) the journal at `path`. With `identity`, a new journal takes it and an existing
   * one must already have it. Also checks that no row carries a reader sequence above the stored
   * counter (STORE_CORRUPT otherwise: numbers could be handed out twice).
   */
  static open(path: string, options: JournalOptions = {}): Journal {
    const dayOffsetMinutes = options.dayOffsetMinutes ?? 0;
    assertInt(dayOffsetMinutes, 'dayOffsetMinutes', -840, 840);
    const clock = options.clock ?? Date.now;
    if (options.identity !== undefined) {
      assertJournalId(options.identity.terminalId, 'terminal id');
      assertJournalId(options.identity.readerId, 'reader id');
    }
    const readonly = options.readonly === true;
    const db = openJournalDb(path, { readonly, busyTimeoutMs: options.busyTimeoutMs, load: options.load, clock });
    try {
      const identity = Journal.settleIdentity(db, path, options.identity, readonly, clock);
      const maxSeq = db.prepare('SELECT max(reader_seq) FROM transactions').pluck().get() as number | null;
      const lastSeq = db.prepare('SELECT last_reader_seq FROM identity').pluck().get() as number | undefined;
      if (maxSeq !== null && (lastSeq === undefined || maxSeq > lastSeq)) {
        throw new HiltError('STORE_CORRUPT', `journal ${path}: a row carries reader sequence ${maxSeq} but the counter is at ${String(lastSeq ?? 'none')}`);
      }
      return new Journal(db, path, readonly, dayOffsetMinutes, clock, identity);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private static settleIdentity(db: SqliteDatabase, path: string, wanted: JournalIdentity | undefined, readonly: boolean, clock: () => number): JournalIdentity | null {
    const read = () => db.prepare('SELECT terminal_id AS terminalId, reader_id AS readerId FROM identity').get() as JournalIdentity | undefined;
    const stored = read();
    if (stored && wanted && (stored.terminalId !== wanted.terminalId || stored.readerId !== wanted.readerId)) {
      throw new BadInputError(
        `journal ${path} belongs to terminal ${stored.terminalId}, reader ${stored.readerId}, not terminal ${wanted.terminalId}, reader ${wanted.readerId}`,
      );
    }
    if (stored || !wanted || readonly) return stored ? { terminalId: stored.terminalId, readerId: stored.readerId } : null;
    db.transaction(() => {
      db.prepare('INSERT OR IGNORE INTO identity (singleton, terminal_id, reader_id, last_reader_seq, created_at) VALUES (1, ?, ?, 0, ?)').run(
        wanted.terminalId,
        wanted.readerId,
        clock(),
      );
    }).immediate();
    // Another process may have won the race with other ids: check what is stored now.
    return Journal.settleIdentity(db, path, wanted, readonly, clock);
  }

  /** Whose journal this is; null until a journal is opened with an identity. */
  get identity(): JournalIdentity | null {
    return this.identityValue === null ? null : { ...this.identityValue };
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new ChannelClosedError(`journal ${this.path} is closed`);
  }

  private ensureWritable(): JournalIdentity {
    this.ensureOpen();
    if (this.readonly) throw new BadInputError(`journal ${this.path} was opened read-only`);
    if (this.identityValue === null) throw new BadInputError(`journal ${this.path} has no identity yet: open it with { identity: { terminalId, readerId } }`);
    return this.identityValue;
  }

  /** A cached prepared statement; `pluck` ones (first column only) are cached apart. */
  private sql(text: string, pluck = false): BetterSqlite3.Statement {
    const key = (pluck ? 'p:' : 'r:') + text;
    let st = this.statements.get(key);
    if (st === undefined) {
      st = this.db.prepare(text);
      if (pluck) st.pluck();
      this.statements.set(key, st);
    }
    return st;
  }

  private value(text: string, ...params: unknown[]): unknown {
    return this.sql(text, true).get(...params);
  }

  /** Runs fn in one IMMEDIATE transaction (the write lock is taken at BEGIN, so no upgrade deadlock). */
  private write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  // -------------------------------------------------------------------------------------------
  // Reader sequence

  private allocateSequence(): number {
    const seq = this.value('UPDATE identity SET last_reader_seq = last_reader_seq + 1 RETURNING last_reader_seq') as number | undefined;
    if (seq === undefined) throw new BadInputError(`journal ${this.path} has no identity`);
    return seq;
  }

  /**
   * Allocates and commits the next reader sequence number on its own, for a record that is not a
   * journal row. The number is never handed out again; unused, it is a gap the host will see.
   */
  nextReaderSequence(): number {
    this.ensureWritable();
    return this.write(() => this.allocateSequence());
  }

  /** The last reader sequence number handed out (0 before the first), null without identity. */
  lastReaderSequence(): number | null {
    this.ensureOpen();
    const v = this.value('SELECT last_reader_seq FROM identity') as number | undefined;
    return v ?? null;
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  /**
   * Writes the pending row with a freshly allocated reader sequence number, and records the card's
   * counter, in one commit. Call it before the card is asked to move value.
   */
  beginTransaction(input: BeginInput): Begun {
    const identity = this.ensureWritable();
    if (typeof input !== 'object' || input === null) throw new BadInputError('transaction: expected an object');
    assertJournalId(input.provider, 'provider');
    assertOneOf(input.type, TRANSACTION_TYPES, 'type');
    const serial = normalizeCardSerial(input.cardSerial);
    assertCounter(input.cardCounter, 'card counter');
    assertInt(input.amount, 'amount', 1, Number.MAX_SAFE_INTEGER);
    assertCurrency(input.currency);
    return this.write(() => {
      const pending = this.pendingIds(serial);
      if (pending.length > 0) throw new PendingTransactionError(serial, pending);
      const readerSeq = this.allocateSequence();
      const now = this.clock();
      const result = this.db
        .prepare(
          `INSERT INTO transactions (reader_id, reader_seq, terminal_id, provider, type, card_serial, counter_before, amount, currency, status, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
        )
        .run(identity.readerId, readerSeq, identity.terminalId, input.provider, input.type, serial, input.cardCounter, input.amount, input.currency, now, now);
      const id = Number(result.lastInsertRowid);
      this.noteCounter(serial, input.cardCounter, now, id);
      return { id, readerSeq };
    });
  }

  /** The card answered the debit: complete + certificate + outbox record, one commit. */
  complete(id: number, input: CompletionInput): JournalRow {
    this.checkCompletion(input);
    return this.transition(id, 'complete', { counterAfter: input.cardCounter, certificate: input.certificate, balanceAfter: input.balanceAfter, error: null });
  }

  /** Tear recovery found the operation in the card's log: recovered + certificate from the log. */
  recover(id: number, input: CompletionInput): JournalRow {
    this.checkCompletion(input);
    return this.transition(id, 'recovered', { counterAfter: input.cardCounter, certificate: input.certificate, balanceAfter: input.balanceAfter, error: null });
  }

  /** The card refused the operation (nothing moved). */
  fail(id: number, input: FailureInput): JournalRow {
    if (typeof input !== 'object' || input === null) throw new BadInputError('failure: expected an object');
    assertText(input.error, 'error');
    if (input.cardCounter !== undefined) assertCounter(input.cardCounter, 'card counter');
    return this.transition(id, 'failed', { counterAfter: input.cardCounter ?? null, certificate: null, balanceAfter: null, error: input.error });
  }

  /** Tear recovery found no trace of the operation on the card: it never happened. */
  neverHappened(id: number, input: NeverHappenedInput): JournalRow {
    if (typeof input !== 'object' || input === null) throw new BadInputError('recovery: expected an object');
    assertCounter(input.cardCounter, 'card counter');
    if (input.note !== undefined) assertText(input.note, 'note');
    return this.transition(id, 'never-happened', { counterAfter: input.cardCounter, certificate: null, balanceAfter: null, error: input.note ?? null });
  }

  private checkCompletion(input: CompletionInput): void {
    if (typeof input !== 'object' || input === null) throw new BadInputError('completion: expected an object');
    assertCounter(input.cardCounter, 'card counter');
    assertCertificate(input.certificate);
    assertInt(input.balanceAfter, 'balance after', 0, Number.MAX_SAFE_INTEGER);
  }

  private transition(
    id: number,
    to: FinalStatus,
    fields: { counterAfter: number | null; certificate: Uint8Array | null; balanceAfter: number | null; error: string | null },
  ): JournalRow {
    const identity = this.ensureWritable();
    assertRowId(id);
    return this.write(() => {
      const before = this.getRow(id);
      if (!before) throw new BadInputError(`journal row ${id} does not exist`);
      if (!TRANSITIONS[before.status].includes(to)) throw new TransitionError(id, before.status, to);
      if (fields.counterAfter !== null && fields.counterAfter < before.counterBefore) {
        throw new BadInputError(`card counter: ${fields.counterAfter} is below the counter before the operation (${before.counterBefore}) of journal row ${id}`);
      }
      const now = this.clock();
      const changed = this.db
        .prepare(
          `UPDATE transactions SET status = ?, counter_after = ?, certificate = ?, balance_after = ?, error = ?, updated_at = ?
           WHERE id = ? AND status = 'pending'`,
        )
        .run(to, fields.counterAfter, fields.certificate, fields.balanceAfter, fields.error, now, id).changes;
      if (changed !== 1) throw new TransitionError(id, before.status, to);
      if (fields.counterAfter !== null) this.noteCounter(before.cardSerial, fields.counterAfter, now, id);
      const after = this.getRow(id)!;
      this.enqueue('transaction', transactionKey(identity.terminalId, after.readerSeq), transactionRecord(after, to), id, null, now);
      return after;
    });
  }

  private getRow(id: number): JournalRow | null {
    const r = this.sql(`SELECT ${TX_COLUMNS} FROM transactions WHERE id = ?`).get(id) as TransactionDbRow | undefined;
    return r ? toRow(r) : null;
  }

  private pendingIds(serial: string): number[] {
    return this.sql("SELECT id FROM transactions WHERE card_serial = ? AND status = 'pending' ORDER BY id", true).all(serial) as number[];
  }

  get(id: number): JournalRow | null {
    this.ensureOpen();
    assertRowId(id);
    return this.getRow(id);
  }

  bySequence(readerSeq: number): JournalRow | null {
    this.ensureOpen();
    assertInt(readerSeq, 'reader sequence', 1, Number.MAX_SAFE_INTEGER);
    const r = this.sql(`SELECT ${TX_COLUMNS} FROM transactions WHERE reader_seq = ? ORDER BY id LIMIT 1`).get(readerSeq) as TransactionDbRow | undefined;
    return r ? toRow(r) : null;
  }

  /** The card's pending rows (tear recovery), oldest first. At most one unless the file was edited by hand. */
  pendingFor(cardSerial: CardSerialInput): JournalRow[] {
    this.ensureOpen();
    const serial = normalizeCardSerial(cardSerial);
    const rows = this.sql(`SELECT ${TX_COLUMNS} FROM transactions WHERE card_serial = ? AND status = 'pending' ORDER BY id`).all(serial) as TransactionDbRow[];
    return rows.map(toRow);
  }

  /** Every pending row, oldest first (what a terminal checks when it starts). */
  pending(): JournalRow[] {
    this.ensureOpen();
    const rows = this.sql(`SELECT ${TX_COLUMNS} FROM transactions WHERE status = 'pending' ORDER BY id`).all() as TransactionDbRow[];
    return rows.map(toRow);
  }

  /** Rows matching every given criterion, newest first unless `order: 'asc'`. */
  query(filter: JournalFilter = {}): JournalRow[] {
    this.ensureOpen();
    const where: string[] = [];
    const params: Array<string | number> = [];
    if (filter.status !== undefined) {
      const list: readonly unknown[] = typeof filter.status === 'string' ? [filter.status] : filter.status;
      if (!Array.isArray(list) || list.length === 0) throw new BadInputError(`status: expected one or more of ${TRANSACTION_STATUSES.join(', ')}`);
      for (const s of list) assertOneOf(s, TRANSACTION_STATUSES, 'status');
      where.push(`status IN (${list.map(() => '?').join(', ')})`);
      params.push(...(list as string[]));
    }
    if (filter.cardSerial !== undefined) {
      where.push('card_serial = ?');
      params.push(normalizeCardSerial(filter.cardSerial));
    }
    if (filter.type !== undefined) {
      assertOneOf(filter.type, TRANSACTION_TYPES, 'type');
      where.push('type = ?');
      params.push(filter.type);
    }
    if (filter.from !== undefined) {
      where.push('created_at >= ?');
      params.push(toMs(filter.from, 'from'));
    }
    if (filter.to !== undefined) {
      where.push('created_at < ?');
      params.push(toMs(filter.to, 'to'));
    }
    const limit = filter.limit ?? DEFAULT_QUERY_LIMIT;
    assertInt(limit, 'limit', 1, MAX_QUERY_LIMIT);
    const order = filter.order ?? 'desc';
    assertOneOf(order, ['asc', 'desc'] as const, 'order');
    const sql = `SELECT ${TX_COLUMNS} FROM transactions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`;
    const rows = this.sql(sql).all(...params, limit) as TransactionDbRow[];
    return rows.map(toRow);
  }

  /** Counts for a status line: rows by status, outbox waiting, negative list version, last reader seq. */
  summary(): JournalSummary {
    this.ensureOpen();
    const byStatus = Object.fromEntries(TRANSACTION_STATUSES.map((s) => [s, 0])) as Record<TransactionStatus, number>;
    let transactions = 0;
    const rows = this.sql('SELECT status, count(*) AS n FROM transactions GROUP BY status').all() as Array<{ status: TransactionStatus; n: number }>;
    for (const r of rows) {
      byStatus[r.status] = r.n;
      transactions += r.n;
    }
    return {
      transactions,
      byStatus,
      outboxWaiting: this.outboundCount(),
      negativeListVersion: this.negativeListVersion(),
      lastReaderSeq: this.lastReaderSequence(),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Card coherence

  /** Raises the card's last seen counter (never lowers it: a rolled-back card stays detectable). */
  private noteCounter(serial: string, counter: number, now: number, transactionId: number | null): void {
    this.db
      .prepare(
        `INSERT INTO card_seen (card_serial, last_counter, last_seen_at, last_transaction_id) VALUES (?, ?, ?, ?)
         ON CONFLICT (card_serial) DO UPDATE SET
           last_counter = max(last_counter, excluded.last_counter),
           last_seen_at = excluded.last_seen_at,
           last_transaction_id = coalesce(excluded.last_transaction_id, last_transaction_id)`,
      )
      .run(serial, counter, now, transactionId);
  }

  /** Records a counter read outside any transaction (a balance inquiry), for later coherence checks. */
  recordCardSeen(cardSerial: CardSerialInput, cardCounter: number): void {
    this.ensureWritable();
    const serial = normalizeCardSerial(cardSerial);
    assertCounter(cardCounter, 'card counter');
    this.write(() => this.noteCounter(serial, cardCounter, this.clock(), null));
  }

  cardHistory(cardSerial: CardSerialInput): CardHistory | null {
    this.ensureOpen();
    const serial = normalizeCardSerial(cardSerial);
    const r = this.sql('SELECT card_serial, last_counter, last_seen_at, last_transaction_id FROM card_seen WHERE card_serial = ?').get(serial) as
      | { card_serial: string; last_counter: number; last_seen_at: number; last_transaction_id: number | null }
      | undefined;
    return r ? { cardSerial: r.card_serial, lastCounter: r.last_counter, lastSeenAt: r.last_seen_at, lastTransactionId: r.last_transaction_id } : null;
  }

  /** Compares the counter a card shows now with this terminal's history of it (see CounterCheck). */
  checkCounter(cardSerial: CardSerialInput, cardCounter: number): CounterCheck {
    const history = this.cardHistory(cardSerial);
    assertCounter(cardCounter, 'card counter');
    if (history === null) return 'first-seen';
    const last = history.lastCounter;
    if (cardCounter === last) return 'ok';
    if (cardCounter > last) {
      const missingCount = cardCounter - last;
      const listed = Math.min(missingCount, MAX_GAP_LISTED);
      return { kind: 'gap', last, missing: Array.from({ length: listed }, (_, i) => last + 1 + i), missingCount };
    }
    const replayed = this.db
      .prepare(
        `SELECT id, reader_seq FROM transactions WHERE card_serial = ? AND counter_before = ? AND status IN ('complete', 'recovered')
         ORDER BY id DESC LIMIT 1`,
      )
      .get(history.cardSerial, cardCounter) as { id: number; reader_seq: number } | undefined;
    if (replayed) return { kind: 'repeat', last, transactionId: replayed.id, readerSeq: replayed.reader_seq };
    return { kind: 'rollback', last };
  }

  /** Records an anomaly the flow found (and by default queues it for the host in the same commit). */
  recordAnomaly(input: AnomalyInput): Anomaly {
    const identity = this.ensureWritable();
    if (typeof input !== 'object' || input === null) throw new BadInputError('anomaly: expected an object');
    assertOneOf(input.kind, ANOMALY_KINDS, 'anomaly kind');
    const serial = normalizeCardSerial(input.cardSerial);
    if (input.counter !== undefined) assertCounter(input.counter, 'counter');
    if (input.lastCounter !== undefined) assertCounter(input.lastCounter, 'last counter');
    if (input.transactionId !== undefined) assertRowId(input.transactionId, 'transaction id');
    const details = input.details ?? {};
    if (typeof details !== 'object' || details === null || Array.isArray(details)) throw new BadInputError('anomaly details: expected an object');
    for (const [k, v] of Object.entries(details)) {
      if (v !== null && !['string', 'number', 'boolean'].includes(typeof v)) throw new BadInputError(`anomaly details: "${k}" must be a string, number, boolean or null`);
    }
    const detailsJson = JSON.stringify(details);
    if (detailsJson.length > 10 * MAX_TEXT_LENGTH) throw new BadInputError(`anomaly details: at most ${10 * MAX_TEXT_LENGTH} characters of JSON`);
    return this.write(() => {
      let readerSeq: number | null = null;
      if (input.transactionId !== undefined) {
        const row = this.getRow(input.transactionId);
        if (!row) throw new BadInputError(`journal row ${input.transactionId} does not exist`);
        readerSeq = row.readerSeq;
      }
      const now = this.clock();
      const r = this.db
        .prepare('INSERT INTO anomalies (created_at, kind, card_serial, counter, last_counter, transaction_id, details) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(now, input.kind, serial, input.counter ?? null, input.lastCounter ?? null, input.transactionId ?? null, detailsJson);
      const anomaly: Anomaly = {
        id: Number(r.lastInsertRowid),
        createdAt: now,
        kind: input.kind,
        cardSerial: serial,
        counter: input.counter ?? null,
        lastCounter: input.lastCounter ?? null,
        transactionId: input.transactionId ?? null,
        details: JSON.parse(detailsJson) as AnomalyDetails,
      };
      if (input.uplink !== false) {
        const record: AnomalyRecord = {
          kind: 'anomaly',
          terminalId: identity.terminalId,
          readerId: identity.readerId,
          anomalyId: anomaly.id,
          anomaly: anomaly.kind,
          cardSerial: serial,
          counter: anomaly.counter,
          lastCounter: anomaly.lastCounter,
          readerSeq,
          createdAt: now,
          details: anomaly.details,
        };
        this.enqueue('anomaly', anomalyKey(identity.terminalId, anomaly.id), record, null, anomaly.id, now);
      }
      return anomaly;
    });
  }

  anomalies(filter: { cardSerial?: CardSerialInput; limit?: number } = {}): Anomaly[] {
    this.ensureOpen();
    const limit = filter.limit ?? DEFAULT_QUERY_LIMIT;
    assertInt(limit, 'limit', 1, MAX_QUERY_LIMIT);
    const cols = 'id, created_at, kind, card_serial, counter, last_counter, transaction_id, details';
    const rows =
      filter.cardSerial === undefined
        ? (this.sql(`SELECT ${cols} FROM anomalies ORDER BY id DESC LIMIT ?`).all(limit) as AnomalyDbRow[])
        : (this.sql(`SELECT ${cols} FROM anomalies WHERE card_serial = ? ORDER BY id DESC LIMIT ?`).all(normalizeCardSerial(filter.cardSerial), limit) as AnomalyDbRow[]);
    return rows.map(toAnomaly);
  }

  // -------------------------------------------------------------------------------------------
  // Limits

  /**
   * Sum of the amounts of rows that moved value (complete, recovered) of `type` (default purchase),
   * in `currency`, created in [fromMs, toMs); one card, or every card of this reader without cardSerial.
   */
  spent(q: { currency: string; fromMs: number; toMs: number; cardSerial?: CardSerialInput; type?: TransactionType }): number {
    this.ensureOpen();
    assertCurrency(q.currency);
    const fromMs = toMs(q.fromMs, 'fromMs');
    const toMsValue = toMs(q.toMs, 'toMs');
    const type = q.type ?? 'purchase';
    assertOneOf(type, TRANSACTION_TYPES, 'type');
    const base = `SELECT coalesce(sum(amount), 0) FROM transactions
      WHERE currency = ? AND type = ? AND status IN ('complete', 'recovered') AND created_at >= ? AND created_at < ?`;
    const v =
      q.cardSerial === undefined
        ? this.value(base, q.currency, type, fromMs, toMsValue)
        : this.value(`${base} AND card_serial = ?`, q.currency, type, fromMs, toMsValue, normalizeCardSerial(q.cardSerial));
    return Number(v);
  }

  /** Purchases by the card on a business day (default: today by the journal's clock and offset). */
  spentToday(cardSerial: CardSerialInput, currency: string, day: DayRef = this.clock()): number {
    const { fromMs, toMs: to } = dayRange(day, this.dayOffsetMinutes);
    return this.spent({ cardSerial, currency, fromMs, toMs: to });
  }

  /** Purchases by the card in a business month (default: this month). */
  spentThisMonth(cardSerial: CardSerialInput, currency: string, month: MonthRef = this.clock()): number {
    const { fromMs, toMs: to } = monthRange(month, this.dayOffsetMinutes);
    return this.spent({ cardSerial, currency, fromMs, toMs: to });
  }

  // -------------------------------------------------------------------------------------------
  // Reconciliation

  /**
   * What moved value (complete, recovered) among the rows with a reader sequence in first..last:
   * count and sum of amounts per currency and type, ordered by currency then type. What the uplink's
   * reconciliation (0500) compares with the host's books.
   */
  valueTotals(firstSeq: number, lastSeq: number): ValueTotal[] {
    this.ensureOpen();
    assertInt(firstSeq, 'first reader sequence', 0, Number.MAX_SAFE_INTEGER);
    assertInt(lastSeq, 'last reader sequence', firstSeq, Number.MAX_SAFE_INTEGER);
    const rows = this.sql(
      `SELECT currency, type, count(*) AS n, coalesce(sum(amount), 0) AS total FROM transactions
       WHERE reader_seq BETWEEN ? AND ? AND status IN ('complete', 'recovered') GROUP BY currency, type ORDER BY currency, type`,
    ).all(firstSeq, lastSeq) as Array<{ currency: string; type: TransactionType; n: number; total: number }>;
    return rows.map((r) => ({ currency: r.currency, type: r.type, count: r.n, amount: r.total }));
  }

  // -------------------------------------------------------------------------------------------
  // Negative card file

  negativeListVersion(): number {
    this.ensureOpen();
    return this.value('SELECT version FROM negative_list') as number;
  }

  isBlocked(cardSerial: CardSerialInput): boolean {
    return this.negativeEntry(cardSerial) !== null;
  }

  negativeEntry(cardSerial: CardSerialInput): NegativeEntry | null {
    this.ensureOpen();
    const r = this.sql('SELECT card_serial, reason, added_in_version FROM negative_cards WHERE card_serial = ?').get(normalizeCardSerial(cardSerial)) as
      | { card_serial: string; reason: string; added_in_version: number }
      | undefined;
    return r ? { cardSerial: r.card_serial, reason: r.reason, addedInVersion: r.added_in_version } : null;
  }

  negativeList(): NegativeEntry[] {
    this.ensureOpen();
    const rows = this.sql('SELECT card_serial, reason, added_in_version FROM negative_cards ORDER BY card_serial').all() as Array<{
      card_serial: string;
      reason: string;
      added_in_version: number;
    }>;
    return rows.map((r) => ({ cardSerial: r.card_serial, reason: r.reason, addedInVersion: r.added_in_version }));
  }

  private checkEntries(add: readonly NegativeEntryInput[], remove: readonly CardSerialInput[]): { add: NegativeEntry[]; remove: string[] } {
    if (!Array.isArray(add) || !Array.isArray(remove)) throw new BadInputError('negative list delta: add and remove must be arrays');
    if (add.length + remove.length > MAX_NEGATIVE_DELTA_ENTRIES) throw new BadInputError(`negative list delta: at most ${MAX_NEGATIVE_DELTA_ENTRIES} entries`);
    const seen = new Set<string>();
    const adds: NegativeEntry[] = [];
    for (const e of add) {
      if (typeof e !== 'object' || e === null) throw new BadInputError('negative list entry: expected { cardSerial, reason }');
      const serial = normalizeCardSerial(e.cardSerial, 'negative list card serial');
      assertText(e.reason, 'negative list reason');
      if (seen.has(serial)) throw new BadInputError(`negative list delta: card ${serial} appears twice`);
      seen.add(serial);
      adds.push({ cardSerial: serial, reason: e.reason, addedInVersion: 0 });
    }
    const removes: string[] = [];
    for (const s of remove) {
      const serial = normalizeCardSerial(s, 'negative list card serial');
      if (seen.has(serial)) throw new BadInputError(`negative list delta: card ${serial} appears twice`);
      seen.add(serial);
      removes.push(serial);
    }
    return { add: adds, remove: removes };
  }

  /**
   * Moves the list from `fromVersion` to `toVersion`, all or nothing. A delta that does not start at the
   * current version is refused with NegativeListVersionError (ask the host for the delta from
   * `currentVersion`, or a full list). Adding a listed card replaces its reason; removing an unlisted
   * card is not an error (counted in `removed` only when it was there).
   */
  applyNegativeDelta(delta: NegativeDelta): NegativeDeltaResult {
    this.ensureOpen();
    if (this.readonly) throw new BadInputError(`journal ${this.path} was opened read-only`);
    if (typeof delta !== 'object' || delta === null) throw new BadInputError('negative list delta: expected an object');
    assertInt(delta.fromVersion, 'fromVersion', 0, Number.MAX_SAFE_INTEGER);
    assertInt(delta.toVersion, 'toVersion', 1, Number.MAX_SAFE_INTEGER);
    if (delta.toVersion <= delta.fromVersion) throw new BadInputError(`negative list delta: toVersion ${delta.toVersion} must be above fromVersion ${delta.fromVersion}`);
    const { add, remove } = this.checkEntries(delta.add, delta.remove);
    return this.write(() => {
      const current = this.negativeListVersion();
      if (current !== delta.fromVersion) throw new NegativeListVersionError(current, delta.fromVersion, delta.toVersion);
      const upsert = this.sql(
        `INSERT INTO negative_cards (card_serial, reason, added_in_version) VALUES (?, ?, ?)
         ON CONFLICT (card_serial) DO UPDATE SET reason = excluded.reason, added_in_version = excluded.added_in_version`,
      );
      for (const e of add) upsert.run(e.cardSerial, e.reason, delta.toVersion);
      const del = this.sql('DELETE FROM negative_cards WHERE card_serial = ?');
      let removed = 0;
      for (const s of remove) removed += del.run(s).changes;
      this.sql('UPDATE negative_list SET version = ?, updated_at = ?').run(delta.toVersion, this.clock());
      return { version: delta.toVersion, added: add.length, removed };
    });
  }

  /** Replaces the whole list with a full snapshot at `version` (when the delta chain is broken). */
  replaceNegativeList(version: number, entries: readonly NegativeEntryInput[]): NegativeDeltaResult {
    this.ensureOpen();
    if (this.readonly) throw new BadInputError(`journal ${this.path} was opened read-only`);
    assertInt(version, 'version', 1, Number.MAX_SAFE_INTEGER);
    const { add } = this.checkEntries(entries, []);
    return this.write(() => {
      const removed = this.sql('DELETE FROM negative_cards').run().changes;
      const insert = this.sql('INSERT INTO negative_cards (card_serial, reason, added_in_version) VALUES (?, ?, ?)');
      for (const e of add) insert.run(e.cardSerial, e.reason, version);
      this.sql('UPDATE negative_list SET version = ?, updated_at = ?').run(version, this.clock());
      return { version, added: add.length, removed };
    });
  }

  // -------------------------------------------------------------------------------------------
  // Outbox (store-and-forward)

  private enqueue(kind: 'transaction' | 'anomaly', key: string, record: OutboundRecord, transactionId: number | null, anomalyId: number | null, now: number): void {
    this.db
      .prepare('INSERT INTO outbox (kind, key, transaction_id, anomaly_id, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(kind, key, transactionId, anomalyId, JSON.stringify(record), now, now);
  }

  /**
   * The entries to send now, in queue order: the waiting entries from the oldest on, stopping at the
   * first one whose backoff has not expired (so nothing overtakes an earlier record), at most `limit`.
   */
  nextOutbound(limit = 16, nowMs: number = this.clock()): OutboundEntry[] {
    this.ensureOpen();
    assertInt(limit, 'limit', 1, MAX_OUTBOUND_BATCH);
    const now = toMs(nowMs, 'nowMs');
    const rows = this.sql(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?`).all(limit) as OutboxDbRow[];
    const due: OutboundEntry[] = [];
    for (const r of rows) {
      if (r.next_attempt_at > now) break;
      due.push(toOutbound(r));
    }
    return due;
  }

  outboundEntry(id: number): OutboundEntry | null {
    this.ensureOpen();
    assertRowId(id, 'outbox id');
    const r = this.sql(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE id = ?`).get(id) as OutboxDbRow | undefined;
    return r ? toOutbound(r) : null;
  }

  /** Entries in queue order, sent ones included (diagnostics, tests). */
  outbox(filter: { waitingOnly?: boolean; limit?: number } = {}): OutboundEntry[] {
    this.ensureOpen();
    const limit = filter.limit ?? DEFAULT_QUERY_LIMIT;
    assertInt(limit, 'limit', 1, MAX_QUERY_LIMIT);
    const where = filter.waitingOnly ? 'WHERE sent_at IS NULL' : '';
    return (this.sql(`SELECT ${OUTBOX_COLUMNS} FROM outbox ${where} ORDER BY id LIMIT ?`).all(limit) as OutboxDbRow[]).map(toOutbound);
  }

  /**
   * The host acknowledged the entry. Idempotent: acknowledging again with the same reference is
   * 'already-sent'; with a different reference it is a ProtocolError (the host applied it twice).
   */
  markSent(id: number, hostReference: string): 'sent' | 'already-sent' {
    this.ensureOpen();
    if (this.readonly) throw new BadInputError(`journal ${this.path} was opened read-only`);
    assertRowId(id, 'outbox id');
    assertText(hostReference, 'host reference');
    return this.write(() => {
      const r = this.sql('SELECT sent_at, host_reference FROM outbox WHERE id = ?').get(id) as { sent_at: number | null; host_reference: string | null } | undefined;
      if (!r) throw new BadInputError(`outbox entry ${id} does not exist`);
      if (r.sent_at !== null) {
        if (r.host_reference !== hostReference) {
          throw new ProtocolError(`outbox entry ${id} was acknowledged as "${r.host_reference}" and now as "${hostReference}"`);
        }
        return 'already-sent';
      }
      this.sql('UPDATE outbox SET sent_at = ?, host_reference = ?, last_error = NULL WHERE id = ? AND sent_at IS NULL').run(this.clock(), hostReference, id);
      return 'sent';
    });
  }

  /**
   * A send failed: count the attempt, remember why, and hold the entry (and, by queue order, every
   * later one) until `untilMs`. Returns false when the entry was already sent (a late failure report).
   */
  deferOutbound(id: number, untilMs: number, error: string): boolean {
    this.ensureOpen();
    if (this.readonly) throw new BadInputError(`journal ${this.path} was opened read-only`);
    assertRowId(id, 'outbox id');
    const until = toMs(untilMs, 'untilMs');
    assertText(error, 'error');
    return this.write(() => {
      const r = this.sql('SELECT sent_at FROM outbox WHERE id = ?').get(id) as { sent_at: number | null } | undefined;
      if (!r) throw new BadInputError(`outbox entry ${id} does not exist`);
      if (r.sent_at !== null) return false;
      this.sql('UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ? AND sent_at IS NULL').run(until, error, id);
      return true;
    });
  }

  /** Entries not yet acknowledged by the host. */
  outboundCount(): number {
    this.ensureOpen();
    return this.value('SELECT count(*) FROM outbox WHERE sent_at IS NULL') as number;
  }

  /** `PRAGMA quick_check` now ("ok" or the problems found); the open does the same. */
  quickCheck(): string[] {
    this.ensureOpen();
    return (this.db.pragma('quick_check') as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0]));
  }
}
