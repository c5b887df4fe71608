/**
 * Opening the journal file: PRAGMAs, schema version and migrations record, integrity check, typed
 * refusals of files that are not journals, and better-sqlite3 load failures.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  openJournalDb,
  loadSqlite,
  JournalStoreError,
  JOURNAL_APPLICATION_ID,
  SCHEMA_VERSION,
  MIGRATIONS,
  Journal,
} from '../../../src/terminal/journal/index.js';
import { HiltError, MissingDependencyError } from '../../../src/util/errors.js';
import { tempDir, openJournal, PURCHASE, certFor } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});
function dir(): string {
  const t = tempDir();
  cleanups.push(t.remove);
  return t.dir;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof HiltError) return e.code;
    throw e;
  }
  throw new Error('expected a HiltError, nothing was thrown');
}

describe('openJournalDb', () => {
  it('creates the folder and configures WAL, synchronous=FULL, foreign keys, busy timeout', () => {
    const path = join(dir(), 'nested', 'deeper', 'terminal.db');
    const db = openJournalDb(path, { busyTimeoutMs: 1234 });
    try {
      expect(existsSync(path)).toBe(true);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('synchronous', { simple: true })).toBe(2); // FULL
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(1234);
      expect(db.pragma('application_id', { simple: true })).toBe(JOURNAL_APPLICATION_ID);
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const migrations = db.prepare('SELECT version, description FROM schema_migrations ORDER BY version').all();
      expect(migrations).toEqual(MIGRATIONS.map((m) => ({ version: m.version, description: m.description })));
    } finally {
      db.close();
    }
  });

  it('reopening a current journal runs no migration again', () => {
    const path = join(dir(), 'j.db');
    openJournalDb(path, { clock: () => 111 }).close();
    const db = openJournalDb(path, { clock: () => 222 });
    try {
      expect(db.prepare('SELECT applied_at FROM schema_migrations').pluck().all()).toEqual([111]);
    } finally {
      db.close();
    }
  });

  it('foreign keys are enforced', () => {
    const db = openJournalDb(join(dir(), 'j.db'));
    try {
      expect(() => db.prepare("INSERT INTO card_seen VALUES ('AA', 1, 0, 999)").run()).toThrow(/FOREIGN KEY/);
    } finally {
      db.close();
    }
  });

  it('refuses bytes that are not SQLite with STORE_CORRUPT', () => {
    const path = join(dir(), 'notes.db');
    writeFileSync(path, 'these are my notes, not a database\n'.repeat(200));
    expect(codeOf(() => openJournalDb(path))).toBe('STORE_CORRUPT');
    expect(() => openJournalDb(path)).toThrow(/notes\.db: not an SQLite database/);
    expect(readFileSync(path, 'utf8').startsWith('these are my notes')).toBe(true); // untouched
  });

  it('refuses an SQLite database of another application with BAD_INPUT, untouched', () => {
    const path = join(dir(), 'other.db');
    const other = new Database(path);
    other.exec('CREATE TABLE recipes (name TEXT)');
    other.close();
    expect(codeOf(() => openJournalDb(path))).toBe('BAD_INPUT');
    expect(() => openJournalDb(path)).toThrow(/not a hilt terminal journal/);
    const again = new Database(path);
    expect(again.pragma('user_version', { simple: true })).toBe(0);
    expect(again.pragma('journal_mode', { simple: true })).toBe('delete'); // not even switched to WAL
    expect(again.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()).toEqual(['recipes']);
    again.close();
  });

  it('refuses a journal written by a newer schema with NOT_SUPPORTED', () => {
    const path = join(dir(), 'j.db');
    openJournalDb(path).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(codeOf(() => openJournalDb(path))).toBe('NOT_SUPPORTED');
    expect(() => openJournalDb(path)).toThrow(/newer hilt/);
  });

  it('a damaged page fails the integrity check with STORE_CORRUPT', () => {
    const path = join(dir(), 'j.db');
    const j = openJournal(path);
    for (let i = 0; i < 400; i++) {
      const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: `AB${(i % 250).toString(16).padStart(2, '0')}`, cardCounter: i, amount: 100 });
      j.complete(id, { cardCounter: i + 1, certificate: certFor(readerSeq), balanceAfter: 0 });
    }
    j.close(); // checkpoints the WAL into the main file
    const size = statSync(path).size;
    expect(size).toBeGreaterThan(20 * 4096);
    const fd = openSync(path, 'r+');
    const garbage = Buffer.alloc(4096 * 4, 0x5a);
    writeSync(fd, garbage, 0, garbage.length, 4096 * 8);
    closeSync(fd);
    const err = (() => {
      try {
        openJournalDb(path);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(JournalStoreError);
    expect((err as JournalStoreError).code).toBe('STORE_CORRUPT');
    expect((err as Error).message).toContain('j.db');
  });

  it('refuses a folder, a missing file when it must exist, and non-file names', () => {
    const d = dir();
    mkdirSync(join(d, 'sub'));
    expect(codeOf(() => openJournalDb(join(d, 'sub')))).toBe('BAD_INPUT');
    expect(codeOf(() => openJournalDb(join(d, 'missing.db'), { mustExist: true }))).toBe('BAD_INPUT');
    expect(existsSync(join(d, 'missing.db'))).toBe(false);
    expect(codeOf(() => openJournalDb(join(d, 'missing.db'), { readonly: true }))).toBe('BAD_INPUT');
    expect(codeOf(() => openJournalDb(':memory:'))).toBe('BAD_INPUT');
    expect(codeOf(() => openJournalDb(''))).toBe('BAD_INPUT');
  });

  it('read-only: opens a journal without writing, refuses an empty file', () => {
    const d = dir();
    const path = join(d, 'j.db');
    openJournalDb(path).close();
    const ro = openJournalDb(path, { readonly: true });
    expect(ro.readonly).toBe(true);
    expect(() => ro.exec('DELETE FROM negative_cards')).toThrow(/readonly/i);
    ro.close();
    writeFileSync(join(d, 'empty.db'), '');
    expect(codeOf(() => openJournalDb(join(d, 'empty.db'), { readonly: true }))).toBe('BAD_INPUT');
  });
});

describe('better-sqlite3 load failures become MissingDependencyError', () => {
  it('module not installed', () => {
    const load = () => {
      throw Object.assign(new Error("Cannot find module 'better-sqlite3'"), { code: 'MODULE_NOT_FOUND' });
    };
    expect(() => loadSqlite(load)).toThrow(MissingDependencyError);
    try {
      openJournalDb(join(dir(), 'j.db'), { load });
    } catch (e) {
      expect(e).toBeInstanceOf(MissingDependencyError);
      expect((e as HiltError).code).toBe('MISSING_DEPENDENCY');
      expect((e as Error).message).toMatch(/not installed/);
      expect((e as Error).message).toMatch(/npm install/);
      expect((e as Error).message).toMatch(/g\+\+, make, python3/);
      return;
    }
    throw new Error('expected MissingDependencyError');
  });

  it('native part fails to load on first construction (wrong ABI, missing build)', () => {
    function FakeDatabase(): never {
      throw Object.assign(new Error('The module was compiled against a different Node.js version using NODE_MODULE_VERSION 115\nmore'), {
        code: 'ERR_DLOPEN_FAILED',
      });
    }
    const path = join(dir(), 'j.db');
    expect(() => openJournalDb(path, { load: () => FakeDatabase })).toThrow(MissingDependencyError);
    expect(() => openJournalDb(path, { load: () => FakeDatabase })).toThrow(/different Node\.js version.*C\+\+ toolchain \(g\+\+, make, python3\).*npm install/);
  });

  it('a module without a constructor', () => {
    expect(() => loadSqlite(() => ({ nothing: true }))).toThrow(MissingDependencyError);
  });

  it('the real module loads', () => {
    expect(typeof loadSqlite()).toBe('function');
  });
});

describe('journal-level checks on open', () => {
  it('a reader sequence counter that went back is refused by the schema', () => {
    const path = join(dir(), 'j.db');
    const j = openJournal(path);
    j.beginTransaction({ ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 1 });
    j.close();
    const raw = new Database(path);
    expect(() => raw.prepare('UPDATE identity SET last_reader_seq = 0').run()).toThrow(/never goes back/);
    raw.close();
  });

  it('a row above the sequence counter (file edited or restored) is STORE_CORRUPT', () => {
    const path = join(dir(), 'j.db');
    const j = openJournal(path);
    j.beginTransaction({ ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 1 });
    j.beginTransaction({ ...PURCHASE, cardSerial: 'BB', cardCounter: 0, amount: 1 });
    j.close();
    const raw = new Database(path);
    raw.exec('DROP TRIGGER identity_seq_monotonic');
    raw.prepare('UPDATE identity SET last_reader_seq = 1').run();
    raw.close();
    expect(codeOf(() => Journal.open(path))).toBe('STORE_CORRUPT');
  });
});
