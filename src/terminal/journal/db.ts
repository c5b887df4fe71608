/**
 * The terminal journal's SQLite file: loading better-sqlite3, opening, configuring, checking and
 * migrating it. `journal.ts` builds the Journal on top; nothing else touches the file.
 *
 * Opening a path, in order:
 *   1. the folder is created (read-write opens only); a folder or a missing file (with mustExist) is refused;
 *   2. better-sqlite3 is loaded; a load failure (not installed, native part not built or built for
 *      another Node) becomes MissingDependencyError;
 *   3. the header is read, nothing written yet: bytes that are not an SQLite database are STORE_CORRUPT;
 *      a journal carries JOURNAL_APPLICATION_ID in the header's application_id, so an SQLite file of
 *      another application (or, read-only, an empty one) is BAD_INPUT and left exactly as it was;
 *   4. PRAGMAs: journal_mode=WAL, synchronous=FULL, foreign_keys=ON, busy_timeout (see `configure`);
 *   5. `PRAGMA quick_check`: anything but "ok" is STORE_CORRUPT;
 *   6. schema version (user_version): a journal written by a newer hilt is NOT_SUPPORTED; an older one
 *      (or a new empty file) is migrated, read-write opens only;
 *   7. migrations run in one IMMEDIATE transaction: each is recorded in `schema_migrations`, and
 *      user_version moves with them, so a crash during a migration leaves the previous version intact.
 *
 * better-sqlite3 is synchronous, and so is this module and the Journal: a transaction is one
 * uninterrupted function call, so no other code of the process can interleave with it.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { BadInputError, HiltError, MissingDependencyError } from '../../util/errors.js';

export type SqliteDatabase = BetterSqlite3.Database;
type SqliteConstructor = new (filename: string, options?: BetterSqlite3.Options) => SqliteDatabase;

/** `PRAGMA application_id` of every journal file: "HLTJ" in ASCII. */
export const JOURNAL_APPLICATION_ID = 0x484c544a;

/** How long a connection waits for another connection's write lock before failing (SQLITE_BUSY). */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** How many quick_check messages an error quotes. */
const MAX_CHECK_MESSAGES = 3;

export const SQLITE_INSTALL_HINT =
  'install a C++ toolchain (g++, make, python3) and run `npm install` so better-sqlite3 builds its native part';

/** Codes a journal open can fail with, besides MISSING_DEPENDENCY. */
export type JournalStoreErrorCode = 'STORE_CORRUPT' | 'BAD_INPUT' | 'NOT_SUPPORTED';

/**
 * The journal file cannot be used: damaged or not a database (STORE_CORRUPT), not a journal or not a
 * usable path (BAD_INPUT), or written by a newer hilt (NOT_SUPPORTED). The message names the file.
 */
export class JournalStoreError extends HiltError {
  readonly path: string;
  constructor(code: JournalStoreErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, `journal ${path}: ${message}`, options);
    this.path = path;
  }
}

/** One schema step. Versions are 1, 2, 3... in order; a released step is never edited, only added to. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

// Card serials are stored as upper-case hex, 1 to 32 bytes.
const SERIAL_CHECK = (col: string) =>
  `length(${col}) BETWEEN 2 AND 64 AND length(${col}) % 2 = 0 AND ${col} NOT GLOB '*[^0-9A-F]*'`;

/**
 * The schema as data. Tables are STRICT (a wrong type is an error, not a silent conversion).
 * Times are milliseconds since the Unix epoch (UTC); money is INTEGER minor units with an ISO 4217
 * alphabetic currency code ("JPY", "EUR"): readable in the CLI and in uplink records, and the one form
 * that is unambiguous without a table; flows convert a card's numeric code (0392) at the edge.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'transactions, reader sequence, card coherence, anomalies, outbox, negative card file',
    sql: `
CREATE TABLE schema_migrations (
  version INTEGER PRIMARY KEY,
  description TEXT NOT NULL,
  applied_at INTEGER NOT NULL
) STRICT;

-- One row: whose journal this is, and the reader sequence counter. The counter only ever grows and
-- is incremented in the same transaction as the row that uses the number.
CREATE TABLE identity (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  last_reader_seq INTEGER NOT NULL CHECK (last_reader_seq >= 0),
  created_at INTEGER NOT NULL
) STRICT;

CREATE TRIGGER identity_seq_monotonic BEFORE UPDATE ON identity
WHEN NEW.last_reader_seq < OLD.last_reader_seq OR NEW.terminal_id <> OLD.terminal_id OR NEW.reader_id <> OLD.reader_id
BEGIN SELECT RAISE(ABORT, 'journal identity: the reader sequence never goes back and the ids never change'); END;

CREATE TABLE transactions (
  id INTEGER PRIMARY KEY,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER NOT NULL CHECK (reader_seq >= 1),
  terminal_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('purchase', 'load', 'refund')),
  card_serial TEXT NOT NULL CHECK (${SERIAL_CHECK('card_serial')}),
  counter_before INTEGER NOT NULL CHECK (counter_before >= 0),
  counter_after INTEGER CHECK (counter_after IS NULL OR counter_after >= counter_before),
  amount INTEGER NOT NULL CHECK (amount > 0),
  currency TEXT NOT NULL CHECK (length(currency) = 3 AND currency NOT GLOB '*[^A-Z]*'),
  status TEXT NOT NULL CHECK (status IN ('pending', 'complete', 'failed', 'never-happened', 'recovered')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  certificate BLOB,
  balance_after INTEGER CHECK (balance_after IS NULL OR balance_after >= 0),
  error TEXT,
  UNIQUE (reader_id, reader_seq),
  CHECK (status NOT IN ('complete', 'recovered') OR (certificate IS NOT NULL AND counter_after IS NOT NULL))
) STRICT;

CREATE INDEX transactions_card ON transactions (card_serial, created_at);
CREATE INDEX transactions_created ON transactions (created_at);
CREATE INDEX transactions_pending ON transactions (card_serial) WHERE status = 'pending';

-- The journal is append-only and a final state is final, whatever code runs against the file.
CREATE TRIGGER transactions_no_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'journal rows are never deleted'); END;
CREATE TRIGGER transactions_final BEFORE UPDATE ON transactions WHEN OLD.status <> 'pending'
BEGIN SELECT RAISE(ABORT, 'a journal row in a final state never changes'); END;
CREATE TRIGGER transactions_fixed BEFORE UPDATE ON transactions
WHEN NEW.reader_id IS NOT OLD.reader_id OR NEW.reader_seq IS NOT OLD.reader_seq OR NEW.terminal_id IS NOT OLD.terminal_id
  OR NEW.card_serial IS NOT OLD.card_serial OR NEW.counter_before IS NOT OLD.counter_before OR NEW.amount IS NOT OLD.amount
  OR NEW.currency IS NOT OLD.currency OR NEW.type IS NOT OLD.type OR NEW.provider IS NOT OLD.provider OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'what a journal row records about the request never changes'); END;

-- Card coherence: the highest counter this terminal has seen for each card.
CREATE TABLE card_seen (
  card_serial TEXT PRIMARY KEY CHECK (${SERIAL_CHECK('card_serial')}),
  last_counter INTEGER NOT NULL CHECK (last_counter >= 0),
  last_seen_at INTEGER NOT NULL,
  last_transaction_id INTEGER REFERENCES transactions (id)
) STRICT;

CREATE TABLE anomalies (
  id INTEGER PRIMARY KEY,
  created_at INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('rollback', 'repeat', 'clone', 'gap', 'blocked-card', 'other')),
  card_serial TEXT NOT NULL CHECK (${SERIAL_CHECK('card_serial')}),
  counter INTEGER,
  last_counter INTEGER,
  transaction_id INTEGER REFERENCES transactions (id),
  details TEXT NOT NULL CHECK (json_valid(details) AND json_type(details) = 'object')
) STRICT;
CREATE INDEX anomalies_card ON anomalies (card_serial, id);

-- Store-and-forward queue. AUTOINCREMENT: an id is never reused, so "sent in id order" holds forever.
-- key is what the host deduplicates on (terminal id + reader sequence for a transaction).
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('transaction', 'anomaly')),
  key TEXT NOT NULL UNIQUE,
  transaction_id INTEGER UNIQUE REFERENCES transactions (id),
  anomaly_id INTEGER UNIQUE REFERENCES anomalies (id),
  payload TEXT NOT NULL CHECK (json_valid(payload)),
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  sent_at INTEGER,
  host_reference TEXT,
  CHECK ((kind = 'transaction') = (transaction_id IS NOT NULL)),
  CHECK ((kind = 'anomaly') = (anomaly_id IS NOT NULL)),
  CHECK ((sent_at IS NULL) = (host_reference IS NULL))
) STRICT;
CREATE INDEX outbox_waiting ON outbox (id) WHERE sent_at IS NULL;

CREATE TRIGGER outbox_sent_final BEFORE UPDATE ON outbox WHEN OLD.sent_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a sent outbox entry never changes'); END;
CREATE TRIGGER outbox_payload_fixed BEFORE UPDATE ON outbox
WHEN NEW.payload IS NOT OLD.payload OR NEW.key IS NOT OLD.key OR NEW.kind IS NOT OLD.kind
  OR NEW.transaction_id IS NOT OLD.transaction_id OR NEW.anomaly_id IS NOT OLD.anomaly_id
BEGIN SELECT RAISE(ABORT, 'an outbox record never changes once queued'); END;

-- Negative card file: one version number for the whole list, moved only by deltas that start from it.
CREATE TABLE negative_list (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  version INTEGER NOT NULL CHECK (version >= 0),
  updated_at INTEGER NOT NULL
) STRICT;
INSERT INTO negative_list (singleton, version, updated_at) VALUES (1, 0, 0);

CREATE TABLE negative_cards (
  card_serial TEXT PRIMARY KEY CHECK (${SERIAL_CHECK('card_serial')}),
  reason TEXT NOT NULL,
  added_in_version INTEGER NOT NULL CHECK (added_in_version >= 1)
) STRICT;
`,
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Returns the better-sqlite3 module, or anything a test substitutes for it. */
export type SqliteLoader = () => unknown;

export interface OpenJournalDbOptions {
  /** Open without writing anything: no folder, no migration; the file must be a current journal. */
  readonly?: boolean;
  /** Refuse to create a new file (implied by readonly). */
  mustExist?: boolean;
  busyTimeoutMs?: number;
  /** Loads better-sqlite3; injectable so tests can simulate a missing or broken native module. */
  load?: SqliteLoader;
  /** Clock for schema_migrations.applied_at; default Date.now. */
  clock?: () => number;
}

function defaultLoad(): unknown {
  return createRequire(import.meta.url)('better-sqlite3');
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0].trim();
}

function missing(why: string): MissingDependencyError {
  return new MissingDependencyError(`the terminal journal needs better-sqlite3, which could not be loaded (${why}); ${SQLITE_INSTALL_HINT}`);
}

/**
 * Loads the better-sqlite3 constructor. The module's JavaScript loads here; its native part loads on
 * the first `new Database(...)`, which `openJournalDb` guards the same way.
 */
export function loadSqlite(load: SqliteLoader = defaultLoad): SqliteConstructor {
  let loaded: unknown;
  try {
    loaded = load();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw missing(code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND' ? 'it is not installed' : firstLine(e));
  }
  const ctor = typeof loaded === 'object' && loaded !== null && 'default' in loaded ? (loaded as { default: unknown }).default : loaded;
  if (typeof ctor !== 'function') throw missing('the module does not export a Database constructor');
  return ctor as SqliteConstructor;
}

/** SQLite reports its own failures as SqliteError with an SQLITE_* code. */
function sqliteCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** Turns an SQLite failure met while opening into a JournalStoreError; anything else is rethrown. */
function storeError(path: string, e: unknown): unknown {
  if (e instanceof HiltError) return e;
  const code = sqliteCode(e);
  if (code === undefined) return e;
  if (code === 'SQLITE_NOTADB') return new JournalStoreError('STORE_CORRUPT', path, 'not an SQLite database, or its header is damaged', { cause: e });
  if (code.startsWith('SQLITE_CORRUPT')) return new JournalStoreError('STORE_CORRUPT', path, `damaged: ${firstLine(e)}`, { cause: e });
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')) {
    return new JournalStoreError('BAD_INPUT', path, `cannot be opened: ${firstLine(e)} (${code})`, { cause: e });
  }
  return e;
}

function pragmaValue(db: SqliteDatabase, name: string): unknown {
  return db.pragma(name, { simple: true });
}

/**
 * Per-connection settings, applied on every open.
 *
 * journal_mode=WAL: a commit appends to the write-ahead log instead of rewriting pages in place, so a
 * crash (SIGKILL, power cut) mid-write leaves either the old or the new state; and `hilt journal` can
 * read while the terminal writes.
 *
 * synchronous=FULL, the choice for money: in WAL mode NORMAL only syncs the log at checkpoints, so a
 * commit survives the process dying but the last commits can vanish on a power cut or kernel crash.
 * Here a vanished commit is a reader sequence number handed out twice, a pending row forgotten (tear
 * recovery would not know to look), or a completed debit lost with its certificate. FULL syncs the log
 * on every commit; it costs one fsync per transaction, small beside a card round trip.
 *
 * foreign_keys=ON: SQLite leaves REFERENCES unenforced otherwise. busy_timeout: a second connection
 * (the CLI, an uplink process) waits for a writer instead of failing at once.
 */
function configure(db: SqliteDatabase, path: string, readonly: boolean, busyTimeoutMs: number): void {
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  if (readonly) {
    const mode = pragmaValue(db, 'journal_mode');
    if (mode !== 'wal') throw new JournalStoreError('BAD_INPUT', path, `not a hilt terminal journal (journal_mode is ${String(mode)}, not wal)`);
  } else {
    const mode = pragmaValue(db, 'journal_mode = WAL');
    if (mode !== 'wal') throw new JournalStoreError('NOT_SUPPORTED', path, `cannot use write-ahead logging here (journal_mode stayed ${String(mode)})`);
  }
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
}

/** `PRAGMA quick_check`: structure and constraints, without the full index comparison of integrity_check. */
function checkIntegrity(db: SqliteDatabase, path: string): void {
  const rows = db.pragma('quick_check') as Array<Record<string, unknown>>;
  const messages = rows.map((r) => String(Object.values(r)[0]));
  if (messages.length === 1 && messages[0] === 'ok') return;
  const shown = messages.slice(0, MAX_CHECK_MESSAGES).join('; ');
  const more = messages.length > MAX_CHECK_MESSAGES ? ` (and ${messages.length - MAX_CHECK_MESSAGES} more)` : '';
  throw new JournalStoreError('STORE_CORRUPT', path, `failed its integrity check: ${shown}${more}`);
}

function objectCount(db: SqliteDatabase): number {
  return Number(db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get());
}

/** Applies the migrations above `from`, atomically. */
function migrate(db: SqliteDatabase, path: string, clock: () => number): void {
  const run = db.transaction(() => {
    // Read again under the write lock: another process may have migrated since we looked.
    const appId = Number(pragmaValue(db, 'application_id'));
    const current = Number(pragmaValue(db, 'user_version'));
    if (appId === 0 && objectCount(db) > 0) throw new JournalStoreError('BAD_INPUT', path, 'an SQLite database, but not a hilt terminal journal');
    if (appId !== 0 && appId !== JOURNAL_APPLICATION_ID) throw new JournalStoreError('BAD_INPUT', path, 'an SQLite database, but not a hilt terminal journal');
    const record = () => db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)');
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      record().run(m.version, m.description, clock());
      db.pragma(`user_version = ${m.version}`);
    }
    db.pragma(`application_id = ${JOURNAL_APPLICATION_ID}`);
  });
  run.immediate();
}

/** What the file is, read without writing anything. */
type FileKind = 'journal' | 'empty' | 'foreign';

function classify(db: SqliteDatabase): FileKind {
  const appId = Number(pragmaValue(db, 'application_id')); // first read of the header: SQLITE_NOTADB shows here
  if (appId === JOURNAL_APPLICATION_ID) return 'journal';
  return appId === 0 && objectCount(db) === 0 ? 'empty' : 'foreign';
}

/** Refuses what is not a journal before anything is written to the file (not even the WAL switch). */
function refuseForeign(kind: FileKind, path: string, readonly: boolean): void {
  if (kind === 'foreign') throw new JournalStoreError('BAD_INPUT', path, 'an SQLite database, but not a hilt terminal journal');
  if (kind === 'empty' && readonly) throw new JournalStoreError('BAD_INPUT', path, 'an empty database, not a hilt terminal journal');
}

/** Brings a journal (or an empty file) to SCHEMA_VERSION. */
function upgrade(db: SqliteDatabase, path: string, readonly: boolean, clock: () => number): void {
  const version = Number(pragmaValue(db, 'user_version'));
  if (version > SCHEMA_VERSION) {
    throw new JournalStoreError('NOT_SUPPORTED', path, `written by a newer hilt (schema version ${version}; this one knows up to ${SCHEMA_VERSION})`);
  }
  if (version === SCHEMA_VERSION) return;
  if (readonly) throw new JournalStoreError('NOT_SUPPORTED', path, `schema version ${version} is older than ${SCHEMA_VERSION}; open it read-write once to migrate it`);
  migrate(db, path, clock);
}

/**
 * Opens (creating when allowed) a journal database, configured, checked and at SCHEMA_VERSION.
 * Throws JournalStoreError, BadInputError or MissingDependencyError; never returns a half-open database.
 */
export function openJournalDb(path: string, options: OpenJournalDbOptions = {}): SqliteDatabase {
  if (typeof path !== 'string' || path.trim() === '') throw new BadInputError('journal path: expected a file name, got an empty string');
  if (path.trim() === ':memory:' || path.startsWith('file:')) throw new BadInputError(`journal path: expected a file name, got "${path}" (a journal must be durable)`);
  const readonly = options.readonly === true;
  const mustExist = readonly || options.mustExist === true;
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0 || busyTimeoutMs > 600_000) {
    throw new BadInputError(`busyTimeoutMs: expected an integer from 0 to 600000, got ${String(busyTimeoutMs)}`);
  }
  const full = resolve(path);
  if (existsSync(full)) {
    if (statSync(full).isDirectory()) throw new JournalStoreError('BAD_INPUT', path, 'is a folder, not a journal file');
  } else if (mustExist) {
    throw new JournalStoreError('BAD_INPUT', path, 'no such file');
  } else {
    mkdirSync(dirname(full), { recursive: true });
  }

  const Database = loadSqlite(options.load);
  let db: SqliteDatabase;
  try {
    db = new Database(full, { readonly, fileMustExist: mustExist, timeout: busyTimeoutMs });
  } catch (e) {
    const mapped = storeError(path, e);
    if (mapped !== e || sqliteCode(e) !== undefined) throw mapped;
    // Not SQLite speaking: the native addon did not load (missing build, wrong Node ABI, missing .so).
    throw missing(firstLine(e));
  }
  try {
    refuseForeign(classify(db), path, readonly);
    configure(db, path, readonly, busyTimeoutMs);
    checkIntegrity(db, path);
    upgrade(db, path, readonly, options.clock ?? Date.now);
    return db;
  } catch (e) {
    db.close();
    throw storeError(path, e);
  }
}
