/**
 * The mock hosts' SQLite files: one per host (the reader registry of the gateway, the e-money issuer),
 * opened, configured, checked and migrated the same way as the terminal journal:
 *
 *   1. the folder is created; better-sqlite3 is loaded (MissingDependencyError when it cannot be);
 *   2. the header is read before anything is written: a file that is not SQLite is STORE_CORRUPT, an
 *      SQLite file of another application (another application_id, or tables without one) is
 *      BAD_INPUT and left as it was;
 *   3. journal_mode=WAL, synchronous=FULL (every commit is on disk when the host answers: the host
 *      acknowledges an advice only after its commit, so an acknowledged advice survives a power cut),
 *      foreign_keys=ON, busy_timeout;
 *   4. `PRAGMA quick_check` must say "ok" (STORE_CORRUPT otherwise);
 *   5. user_version: newer than this build knows is NOT_SUPPORTED; older (or a new file) is migrated
 *      in one IMMEDIATE transaction that also records each step in schema_migrations and sets the
 *      application_id, so a crash mid-migration leaves the previous version.
 *
 * better-sqlite3 is synchronous: a transaction is one uninterrupted function call, so no other code
 * of the process interleaves with it.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { BadInputError, HiltError, MissingDependencyError } from '../util/errors.js';

export type HostDatabase = BetterSqlite3.Database;
type SqliteConstructor = new (filename: string, options?: BetterSqlite3.Options) => HostDatabase;

/** How long a connection waits for another's write lock (the admin API and the gateway share a file). */
export const HOST_DB_BUSY_TIMEOUT_MS = 5_000;

/** One schema step; a released step is never edited, only added to. */
export interface HostMigration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export interface HostSchema {
  /** For messages: "reader registry", "e-money issuer". */
  readonly name: string;
  /** PRAGMA application_id of the file. */
  readonly applicationId: number;
  readonly migrations: readonly HostMigration[];
}

export type HostStoreErrorCode = 'STORE_CORRUPT' | 'BAD_INPUT' | 'NOT_SUPPORTED';

/** The host file cannot be used; the message names the file. */
export class HostStoreError extends HiltError {
  readonly path: string;
  constructor(code: HostStoreErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(code, `host store ${path}: ${message}`, options);
    this.path = path;
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
}

function missing(why: string): MissingDependencyError {
  return new MissingDependencyError(`the mock hosts need better-sqlite3, which could not be loaded (${why}); install a C++ toolchain and run \`npm install\``);
}

function loadSqlite(): SqliteConstructor {
  let loaded: unknown;
  try {
    loaded = createRequire(import.meta.url)('better-sqlite3');
  } catch (e) {
    throw missing(firstLine(e));
  }
  const ctor = typeof loaded === 'object' && loaded !== null && 'default' in loaded ? (loaded as { default: unknown }).default : loaded;
  if (typeof ctor !== 'function') throw missing('the module does not export a Database constructor');
  return ctor as SqliteConstructor;
}

function sqliteCode(e: unknown): string | undefined {
  const code = e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

function storeError(path: string, e: unknown): unknown {
  if (e instanceof HiltError) return e;
  const code = sqliteCode(e);
  if (code === undefined) return e;
  if (code === 'SQLITE_NOTADB') return new HostStoreError('STORE_CORRUPT', path, 'not an SQLite database, or its header is damaged', { cause: e });
  if (code.startsWith('SQLITE_CORRUPT')) return new HostStoreError('STORE_CORRUPT', path, `damaged: ${firstLine(e)}`, { cause: e });
  if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')) {
    return new HostStoreError('BAD_INPUT', path, `cannot be opened: ${firstLine(e)} (${code})`, { cause: e });
  }
  return e;
}

function pragma(db: HostDatabase, text: string): unknown {
  return db.pragma(text, { simple: true });
}

function objectCount(db: HostDatabase): number {
  return Number(db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get());
}

function checkOwner(db: HostDatabase, path: string, schema: HostSchema): void {
  const appId = Number(pragma(db, 'application_id')); // first read of the header: SQLITE_NOTADB shows here
  if (appId === schema.applicationId) return;
  if (appId === 0 && objectCount(db) === 0) return;
  throw new HostStoreError('BAD_INPUT', path, `an SQLite database, but not a hilt ${schema.name} store`);
}

function migrate(db: HostDatabase, path: string, schema: HostSchema, clock: () => number): void {
  const last = schema.migrations[schema.migrations.length - 1]?.version ?? 0;
  const current = Number(pragma(db, 'user_version'));
  if (current > last) throw new HostStoreError('NOT_SUPPORTED', path, `written by a newer hilt (schema version ${current}; this one knows up to ${last})`);
  if (current === last) return;
  const run = db.transaction(() => {
    checkOwner(db, path, schema); // again, under the write lock
    const from = Number(pragma(db, 'user_version'));
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT');
    for (const m of schema.migrations) {
      if (m.version <= from) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, clock());
      db.pragma(`user_version = ${m.version}`);
    }
    db.pragma(`application_id = ${schema.applicationId}`);
  });
  run.immediate();
}

export interface OpenHostDbOptions {
  clock?: () => number;
  busyTimeoutMs?: number;
}

/** Opens (creating) a host's database, configured, checked and migrated; never returns it half open. */
export function openHostDb(path: string, schema: HostSchema, options: OpenHostDbOptions = {}): HostDatabase {
  if (typeof path !== 'string' || path.trim() === '' || path.trim() === ':memory:' || path.startsWith('file:')) {
    throw new BadInputError(`host store path: expected a file name, got ${JSON.stringify(path)} (the hosts' storage must be durable)`);
  }
  const full = resolve(path);
  if (existsSync(full)) {
    if (statSync(full).isDirectory()) throw new HostStoreError('BAD_INPUT', path, 'is a folder, not a database file');
  } else {
    mkdirSync(dirname(full), { recursive: true });
  }
  const busy = options.busyTimeoutMs ?? HOST_DB_BUSY_TIMEOUT_MS;
  const Database = loadSqlite();
  let db: HostDatabase;
  try {
    db = new Database(full, { timeout: busy });
  } catch (e) {
    const mapped = storeError(path, e);
    if (mapped !== e || sqliteCode(e) !== undefined) throw mapped;
    throw missing(firstLine(e));
  }
  try {
    checkOwner(db, path, schema);
    db.pragma(`busy_timeout = ${busy}`);
    const mode = pragma(db, 'journal_mode = WAL');
    if (mode !== 'wal') throw new HostStoreError('NOT_SUPPORTED', path, `cannot use write-ahead logging here (journal_mode stayed ${String(mode)})`);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    const check = (db.pragma('quick_check') as Array<Record<string, unknown>>).map((r) => String(Object.values(r)[0]));
    if (!(check.length === 1 && check[0] === 'ok')) throw new HostStoreError('STORE_CORRUPT', path, `failed its integrity check: ${check.slice(0, 3).join('; ')}`);
    migrate(db, path, schema, options.clock ?? Date.now);
    return db;
  } catch (e) {
    db.close();
    throw storeError(path, e);
  }
}

/** Card serials are stored as upper-case hex, 1 to 32 bytes. */
export const SERIAL_CHECK = (col: string): string => `length(${col}) BETWEEN 2 AND 64 AND length(${col}) % 2 = 0 AND ${col} NOT GLOB '*[^0-9A-F]*'`;

/**
 * Prepared statements by SQL text, prepared once per connection (preparing costs more than running
 * most of the hosts' statements). The set of SQL texts is fixed in the code, so the cache is bounded.
 * Each call hands the statement back in row mode; chain `.pluck()` for a single column.
 */
export function statementCache(db: HostDatabase): (sql: string) => BetterSqlite3.Statement {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return (sql) => {
    let s = cache.get(sql);
    if (s === undefined) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    // A caller may have switched it to pluck mode; each use starts from rows.
    return s.reader ? s.pluck(false) : s;
  };
}
