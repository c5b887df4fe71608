/**
 * The uplink's own small durable state, in one SQLite file next to the terminal journal
 * (`uplink.db` by default, mode 0600 because it holds the reader's private key). The journal keeps
 * the transactions and the outbox; this file keeps only what the host link adds to them:
 *
 * - reader_key: the reader's P-256 key pair (identity.ts), and when the host confirmed enrolment;
 * - stan: the counter of field 11 for network management and negative-list messages, which carry no
 *   journal row (transactions use their reader sequence number, so the host sees the reader sequence
 *   without gaps);
 * - sends: which outbox entries were put on the wire, written BEFORE the bytes leave, so after any
 *   crash a record that may have reached the host goes again as a repeat (0221), never as an original;
 * - load_authorizations: the issuer reference of each approved load authorization (0210 field 37),
 *   by reader sequence, so the load's advice can carry it;
 * - mac_key: the MAC key a key change (0800 161) handed out, with its version, written BEFORE the
 *   terminal uses it (key-change.ts); it outranks a configured key of a lower or equal version;
 * - authorization_sends: each load authorization (0200) put on the wire, noted BEFORE the bytes
 *   leave, and its answer code once it came: a 0200 without an answer is in doubt (reversal.ts);
 * - reversals: the load reversals (0400/0401) to send or sent, each with its own STAN, kept until
 *   the host answered and afterwards (reconciliation counts them).
 *
 * Same settings as the journal (WAL, synchronous=FULL): a commit survives SIGKILL and power loss.
 * One file belongs to one terminal and reader (stored on first use, checked on every open).
 */
import { createRequire } from 'node:module';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { BadInputError, ChannelClosedError, HiltError, MissingDependencyError } from '../../util/errors.js';
import { assertBytes, assertInt } from '../../util/assert.js';

type SqliteConstructor = new (filename: string, options?: BetterSqlite3.Options) => BetterSqlite3.Database;

/** `PRAGMA application_id` of an uplink state file: "HLTU". */
export const UPLINK_STORE_APPLICATION_ID = 0x484c5455;
export const UPLINK_STORE_SCHEMA_VERSION = 2;
/** The file name next to the journal. */
export const UPLINK_STORE_FILE = 'uplink.db';
/** File mode: the private key is in it. */
export const UPLINK_STORE_MODE = 0o600;
const BUSY_TIMEOUT_MS = 5_000;
/** Largest STAN (field 11 is n 10); the counter wraps to 1 after it (network messages only). */
export const MAX_MANAGEMENT_STAN = 9_999_999_999;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS owner (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS reader_key (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  private_key BLOB NOT NULL,
  public_key BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  enrolled_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS stan (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  last INTEGER NOT NULL CHECK (last >= 0)
) STRICT;
CREATE TABLE IF NOT EXISTS sends (
  outbox_id INTEGER PRIMARY KEY,
  count INTEGER NOT NULL CHECK (count >= 1),
  first_at INTEGER NOT NULL,
  last_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS load_authorizations (
  reader_seq INTEGER PRIMARY KEY,
  issuer_reference TEXT NOT NULL,
  authorization_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS mac_key (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  version INTEGER NOT NULL CHECK (version BETWEEN 1 AND 255),
  key BLOB NOT NULL CHECK (length(key) IN (16, 24, 32)),
  changed_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS authorization_sends (
  reader_seq INTEGER PRIMARY KEY,
  serial TEXT NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  transmitted TEXT NOT NULL,
  sends INTEGER NOT NULL CHECK (sends >= 1),
  sent_at INTEGER NOT NULL,
  response_code TEXT,
  answered_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS reversals (
  reader_seq INTEGER PRIMARY KEY,
  stan INTEGER NOT NULL,
  serial TEXT NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  original_transmitted TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('no-answer', 'not-loaded')),
  status TEXT NOT NULL CHECK (status IN ('pending', 'reversed', 'refused')),
  response_code TEXT,
  sends INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  done_at INTEGER
) STRICT;
`;

export interface StoredReaderKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  createdAt: number;
  /** When the host last confirmed the key (enrolment or a sign-on it accepted); null: never yet. */
  enrolledAt: number | null;
}

export interface LoadAuthorizationRecord {
  readerSeq: number;
  issuerReference: string;
  authorizationId: string;
}

export interface StoredMacKey {
  version: number;
  key: Uint8Array;
  changedAt: number;
}

/** A load authorization (0200) as it went on the wire: what a reversal of it must carry. */
export interface AuthorizationSend {
  readerSeq: number;
  /** Upper-case hex. */
  serial: string;
  amount: number;
  /** ISO 4217 numeric (field 49). */
  currency: string;
  /** Field 7 of the last transmission, MMDDhhmmss (a reversal's field 90 names it). */
  transmitted: string;
  sends: number;
  sentAt: number;
  /** Field 39 of the answer; null: no answer kept (in doubt). */
  responseCode: string | null;
  answeredAt: number | null;
}

export type ReversalReason = 'no-answer' | 'not-loaded';
/** pending: to send; reversed: the host answered 00 (reversed, or it held nothing to reverse); refused: another final answer. */
export type ReversalStatus = 'pending' | 'reversed' | 'refused';

export interface ReversalRecord {
  /** The reader sequence = STAN of the 0200 it reverses. */
  readerSeq: number;
  /** Field 11 of the reversal itself (the same for every repeat). */
  stan: number;
  serial: string;
  amount: number;
  currency: string;
  originalTransmitted: string;
  reason: ReversalReason;
  status: ReversalStatus;
  responseCode: string | null;
  /** Times it went on the wire (the first as 0400, the others as 0401). */
  sends: number;
  /** Failed attempts (the backoff counts them). */
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  createdAt: number;
  doneAt: number | null;
}

export interface UplinkStoreOptions {
  terminalId: string;
  readerId: string;
  clock?: () => number;
}

function loadSqlite(): SqliteConstructor {
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)('better-sqlite3');
  } catch (e) {
    throw new MissingDependencyError(`the uplink state file needs better-sqlite3, which could not be loaded (${(e as Error).message.split('\n')[0]})`);
  }
  const ctor = typeof mod === 'object' && mod !== null && 'default' in mod ? (mod as { default: unknown }).default : mod;
  if (typeof ctor !== 'function') throw new MissingDependencyError('better-sqlite3 does not export a Database constructor');
  return ctor as SqliteConstructor;
}

/** The state file's path for a journal at `journalPath`: `uplink.db` in the same folder. */
export function uplinkStorePathFor(journalPath: string): string {
  return join(dirname(journalPath), UPLINK_STORE_FILE);
}

export class UplinkStore {
  readonly path: string;
  readonly terminalId: string;
  readonly readerId: string;
  private readonly db: BetterSqlite3.Database;
  private readonly clock: () => number;
  private closed = false;

  private constructor(db: BetterSqlite3.Database, path: string, o: UplinkStoreOptions) {
    this.db = db;
    this.path = path;
    this.terminalId = o.terminalId;
    this.readerId = o.readerId;
    this.clock = o.clock ?? Date.now;
  }

  /** Opens (creates, mode 0600) the state file of terminal `terminalId`, reader `readerId`. */
  static open(path: string, o: UplinkStoreOptions): UplinkStore {
    if (typeof path !== 'string' || path.length === 0) throw new BadInputError('uplink store path: expected a file path');
    if (typeof o !== 'object' || o === null || typeof o.terminalId !== 'string' || typeof o.readerId !== 'string') {
      throw new BadInputError('uplink store: expected { terminalId, readerId }');
    }
    const Database = loadSqlite();
    mkdirSync(dirname(path), { recursive: true });
    if (!existsSync(path)) {
      // Create the file with its final mode before SQLite writes a byte into it (the WAL and shared
      // memory files SQLite makes next to it take the database file's mode).
      closeSync(openSync(path, 'a', UPLINK_STORE_MODE));
    }
    chmodSync(path, UPLINK_STORE_MODE);
    const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    try {
      const appId = db.pragma('application_id', { simple: true }) as number;
      const version = db.pragma('user_version', { simple: true }) as number;
      if (appId !== 0 && appId !== UPLINK_STORE_APPLICATION_ID) throw new BadInputError(`${path} is not a hilt uplink state file`);
      if (version > UPLINK_STORE_SCHEMA_VERSION) throw new HiltError('NOT_SUPPORTED', `${path} was written by a newer hilt (schema ${version})`);
      if (db.pragma('journal_mode = WAL', { simple: true }) !== 'wal') throw new HiltError('NOT_SUPPORTED', `${path}: cannot use write-ahead logging`);
      db.pragma('synchronous = FULL');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new HiltError('STORE_CORRUPT', `${path}: ${String(check)}`);
      const clock = o.clock ?? Date.now;
      db.transaction(() => {
        db.exec(SCHEMA);
        db.pragma(`application_id = ${UPLINK_STORE_APPLICATION_ID}`);
        db.pragma(`user_version = ${UPLINK_STORE_SCHEMA_VERSION}`);
        db.prepare('INSERT OR IGNORE INTO owner (singleton, terminal_id, reader_id, created_at) VALUES (1, ?, ?, ?)').run(o.terminalId, o.readerId, clock());
        db.prepare('INSERT OR IGNORE INTO stan (singleton, last) VALUES (1, 0)').run();
      }).immediate();
      const owner = db.prepare('SELECT terminal_id, reader_id FROM owner').get() as { terminal_id: string; reader_id: string };
      if (owner.terminal_id !== o.terminalId || owner.reader_id !== o.readerId) {
        throw new BadInputError(`${path} belongs to terminal ${owner.terminal_id}, reader ${owner.reader_id}, not terminal ${o.terminalId}, reader ${o.readerId}`);
      }
    } catch (e) {
      db.close();
      throw e;
    }
    return new UplinkStore(db, path, o);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new ChannelClosedError(`uplink store ${this.path} is closed`);
  }

  // -------------------------------------------------------------------------------------------
  // Reader key

  readerKey(): StoredReaderKey | null {
    this.ensureOpen();
    const r = this.db.prepare('SELECT private_key, public_key, created_at, enrolled_at FROM reader_key').get() as
      | { private_key: Uint8Array; public_key: Uint8Array; created_at: number; enrolled_at: number | null }
      | undefined;
    if (r === undefined) return null;
    return { privateKey: new Uint8Array(r.private_key), publicKey: new Uint8Array(r.public_key), createdAt: r.created_at, enrolledAt: r.enrolled_at };
  }

  /** Stores a new key pair (replacing any: a re-key needs a new enrolment), not yet enrolled. */
  saveReaderKey(privateKey: Uint8Array, publicKey: Uint8Array): void {
    this.ensureOpen();
    assertBytes(privateKey, 'reader private key');
    assertBytes(publicKey, 'reader public key');
    this.db
      .prepare(
        `INSERT INTO reader_key (singleton, private_key, public_key, created_at, enrolled_at) VALUES (1, ?, ?, ?, NULL)
         ON CONFLICT (singleton) DO UPDATE SET private_key = excluded.private_key, public_key = excluded.public_key, created_at = excluded.created_at, enrolled_at = NULL`,
      )
      .run(privateKey, publicKey, this.clock());
  }

  /** The host accepted the key (enrolment, or a sign-on proof). */
  markEnrolled(): void {
    this.ensureOpen();
    this.db.prepare('UPDATE reader_key SET enrolled_at = coalesce(enrolled_at, ?)').run(this.clock());
  }

  // -------------------------------------------------------------------------------------------
  // STANs of messages without a journal row

  nextStan(): number {
    this.ensureOpen();
    return this.db.transaction(() => {
      const last = this.db.prepare('SELECT last FROM stan').pluck().get() as number;
      const next = last >= MAX_MANAGEMENT_STAN ? 1 : last + 1;
      this.db.prepare('UPDATE stan SET last = ?').run(next);
      return next;
    }).immediate();
  }

  // -------------------------------------------------------------------------------------------
  // Sends

  /** Records that outbox entry `outboxId` is about to go on the wire; returns how often it went before. */
  noteSending(outboxId: number): number {
    this.ensureOpen();
    assertInt(outboxId, 'outbox id', 1, Number.MAX_SAFE_INTEGER);
    const now = this.clock();
    const r = this.db
      .prepare(
        `INSERT INTO sends (outbox_id, count, first_at, last_at) VALUES (?, 1, ?, ?)
         ON CONFLICT (outbox_id) DO UPDATE SET count = count + 1, last_at = excluded.last_at RETURNING count`,
      )
      .pluck()
      .get(outboxId, now, now) as number;
    return r - 1;
  }

  /** How often outbox entry `outboxId` went on the wire. */
  sendCount(outboxId: number): number {
    this.ensureOpen();
    return (this.db.prepare('SELECT count FROM sends WHERE outbox_id = ?').pluck().get(outboxId) as number | undefined) ?? 0;
  }

  /** Forgets the sends of entries below `outboxId` (they are acknowledged: the journal has them as sent). */
  forgetSendsBefore(outboxId: number): void {
    this.ensureOpen();
    this.db.prepare('DELETE FROM sends WHERE outbox_id < ?').run(outboxId);
  }

  // -------------------------------------------------------------------------------------------
  // Load authorizations

  recordLoadAuthorization(a: LoadAuthorizationRecord): void {
    this.ensureOpen();
    assertInt(a.readerSeq, 'reader sequence', 1, Number.MAX_SAFE_INTEGER);
    this.db
      .prepare(
        `INSERT INTO load_authorizations (reader_seq, issuer_reference, authorization_id, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (reader_seq) DO UPDATE SET issuer_reference = excluded.issuer_reference, authorization_id = excluded.authorization_id`,
      )
      .run(a.readerSeq, a.issuerReference, a.authorizationId, this.clock());
  }

  loadAuthorization(readerSeq: number): LoadAuthorizationRecord | null {
    this.ensureOpen();
    const r = this.db.prepare('SELECT reader_seq, issuer_reference, authorization_id FROM load_authorizations WHERE reader_seq = ?').get(readerSeq) as
      | { reader_seq: number; issuer_reference: string; authorization_id: string }
      | undefined;
    return r === undefined ? null : { readerSeq: r.reader_seq, issuerReference: r.issuer_reference, authorizationId: r.authorization_id };
  }

  // -------------------------------------------------------------------------------------------
  // The MAC key from the last key change

  macKey(): StoredMacKey | null {
    this.ensureOpen();
    const r = this.db.prepare('SELECT version, key, changed_at FROM mac_key').get() as { version: number; key: Uint8Array; changed_at: number } | undefined;
    return r === undefined ? null : { version: r.version, key: new Uint8Array(r.key), changedAt: r.changed_at };
  }

  /** Stores the MAC key of `version` (committed, synchronous=FULL, when this returns). */
  saveMacKey(version: number, key: Uint8Array): void {
    this.ensureOpen();
    assertInt(version, 'key version', 1, 255);
    assertBytes(key, 'MAC key', [16, 24, 32]);
    this.db
      .prepare(
        `INSERT INTO mac_key (singleton, version, key, changed_at) VALUES (1, ?, ?, ?)
         ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, key = excluded.key, changed_at = excluded.changed_at`,
      )
      .run(version, key, this.clock());
  }

  // -------------------------------------------------------------------------------------------
  // Load authorizations on the wire

  /** Notes that the 0200 of `readerSeq` is about to go on the wire (again). */
  noteAuthorizationSending(a: { readerSeq: number; serial: string; amount: number; currency: string; transmitted: string }): void {
    this.ensureOpen();
    assertInt(a.readerSeq, 'reader sequence', 1, Number.MAX_SAFE_INTEGER);
    this.db
      .prepare(
        `INSERT INTO authorization_sends (reader_seq, serial, amount, currency, transmitted, sends, sent_at) VALUES (?, ?, ?, ?, ?, 1, ?)
         ON CONFLICT (reader_seq) DO UPDATE SET transmitted = excluded.transmitted, sends = sends + 1, sent_at = excluded.sent_at`,
      )
      .run(a.readerSeq, a.serial, a.amount, a.currency, a.transmitted, this.clock());
  }

  /** The host answered the 0200 of `readerSeq` with `responseCode`. */
  noteAuthorizationAnswer(readerSeq: number, responseCode: string): void {
    this.ensureOpen();
    this.db.prepare('UPDATE authorization_sends SET response_code = ?, answered_at = ? WHERE reader_seq = ?').run(responseCode, this.clock(), readerSeq);
  }

  authorizationSend(readerSeq: number): AuthorizationSend | null {
    this.ensureOpen();
    const r = this.db.prepare(`SELECT ${AUTH_SEND_COLUMNS} FROM authorization_sends WHERE reader_seq = ?`).get(readerSeq) as AuthSendRow | undefined;
    return r === undefined ? null : toAuthorizationSend(r);
  }

  /** The 0200s sent with a reader sequence in first..last, in order. */
  authorizationSends(first: number, last: number): AuthorizationSend[] {
    this.ensureOpen();
    const rows = this.db.prepare(`SELECT ${AUTH_SEND_COLUMNS} FROM authorization_sends WHERE reader_seq BETWEEN ? AND ? ORDER BY reader_seq`).all(first, last) as AuthSendRow[];
    return rows.map(toAuthorizationSend);
  }

  /** 0200s without an answer, last sent before `beforeMs`, with no reversal recorded yet. */
  unansweredAuthorizations(beforeMs: number): AuthorizationSend[] {
    this.ensureOpen();
    const rows = this.db
      .prepare(
        `SELECT ${AUTH_SEND_COLUMNS} FROM authorization_sends a WHERE response_code IS NULL AND sent_at < ?
         AND NOT EXISTS (SELECT 1 FROM reversals r WHERE r.reader_seq = a.reader_seq) ORDER BY reader_seq`,
      )
      .all(beforeMs) as AuthSendRow[];
    return rows.map(toAuthorizationSend);
  }

  // -------------------------------------------------------------------------------------------
  // Reversals

  /**
   * Records the reversal of the 0200 of `readerSeq` (its STAN drawn now), or returns the one already
   * recorded: a load is reversed once, whatever asks for it again.
   */
  recordReversal(r: { readerSeq: number; serial: string; amount: number; currency: string; originalTransmitted: string; reason: ReversalReason }): ReversalRecord {
    this.ensureOpen();
    assertInt(r.readerSeq, 'reader sequence', 1, Number.MAX_SAFE_INTEGER);
    return this.db.transaction(() => {
      const existing = this.reversal(r.readerSeq);
      if (existing !== null) return existing;
      const stan = this.nextStan();
      const now = this.clock();
      this.db
        .prepare(
          `INSERT INTO reversals (reader_seq, stan, serial, amount, currency, original_transmitted, reason, status, next_attempt_at, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
        )
        .run(r.readerSeq, stan, r.serial, r.amount, r.currency, r.originalTransmitted, r.reason, now, now);
      return this.reversal(r.readerSeq) as ReversalRecord;
    }).immediate();
  }

  reversal(readerSeq: number): ReversalRecord | null {
    this.ensureOpen();
    const r = this.db.prepare(`SELECT ${REVERSAL_COLUMNS} FROM reversals WHERE reader_seq = ?`).get(readerSeq) as ReversalRow | undefined;
    return r === undefined ? null : toReversal(r);
  }

  /** Reversals by reader sequence; `pendingOnly`: those still to send. */
  reversals(filter: { pendingOnly?: boolean } = {}): ReversalRecord[] {
    this.ensureOpen();
    const where = filter.pendingOnly === true ? "WHERE status = 'pending'" : '';
    return (this.db.prepare(`SELECT ${REVERSAL_COLUMNS} FROM reversals ${where} ORDER BY reader_seq`).all() as ReversalRow[]).map(toReversal);
  }

  /** Notes that the reversal is about to go on the wire; returns how often it went before. */
  noteReversalSending(readerSeq: number): number {
    this.ensureOpen();
    const n = this.db.prepare('UPDATE reversals SET sends = sends + 1 WHERE reader_seq = ? RETURNING sends').pluck().get(readerSeq) as number | undefined;
    if (n === undefined) throw new BadInputError(`no reversal recorded for reader sequence ${readerSeq}`);
    return n - 1;
  }

  /** A failed attempt: counted, held until `untilMs`. */
  deferReversal(readerSeq: number, untilMs: number, error: string): void {
    this.ensureOpen();
    this.db.prepare("UPDATE reversals SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE reader_seq = ? AND status = 'pending'").run(untilMs, error, readerSeq);
  }

  /** The host's final answer. */
  finishReversal(readerSeq: number, status: Exclude<ReversalStatus, 'pending'>, responseCode: string): void {
    this.ensureOpen();
    this.db
      .prepare("UPDATE reversals SET status = ?, response_code = ?, done_at = ?, last_error = NULL WHERE reader_seq = ? AND status = 'pending'")
      .run(status, responseCode, this.clock(), readerSeq);
  }
}

const AUTH_SEND_COLUMNS = 'reader_seq, serial, amount, currency, transmitted, sends, sent_at, response_code, answered_at';
interface AuthSendRow {
  reader_seq: number;
  serial: string;
  amount: number;
  currency: string;
  transmitted: string;
  sends: number;
  sent_at: number;
  response_code: string | null;
  answered_at: number | null;
}
function toAuthorizationSend(r: AuthSendRow): AuthorizationSend {
  return {
    readerSeq: r.reader_seq,
    serial: r.serial,
    amount: r.amount,
    currency: r.currency,
    transmitted: r.transmitted,
    sends: r.sends,
    sentAt: r.sent_at,
    responseCode: r.response_code,
    answeredAt: r.answered_at,
  };
}

const REVERSAL_COLUMNS =
  'reader_seq, stan, serial, amount, currency, original_transmitted, reason, status, response_code, sends, attempts, next_attempt_at, last_error, created_at, done_at';
interface ReversalRow {
  reader_seq: number;
  stan: number;
  serial: string;
  amount: number;
  currency: string;
  original_transmitted: string;
  reason: ReversalReason;
  status: ReversalStatus;
  response_code: string | null;
  sends: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  done_at: number | null;
}
function toReversal(r: ReversalRow): ReversalRecord {
  return {
    readerSeq: r.reader_seq,
    stan: r.stan,
    serial: r.serial,
    amount: r.amount,
    currency: r.currency,
    originalTransmitted: r.original_transmitted,
    reason: r.reason,
    status: r.status,
    responseCode: r.response_code,
    sends: r.sends,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    createdAt: r.created_at,
    doneAt: r.done_at,
  };
}
