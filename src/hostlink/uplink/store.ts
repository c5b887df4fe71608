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
 *   by reader sequence, so the load's advice can carry it.
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
export const UPLINK_STORE_SCHEMA_VERSION = 1;
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
}
