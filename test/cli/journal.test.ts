/**
 * `hilt journal` end to end through the CLI entry (src/cli/main.ts), with a capturing Output, on a
 * journal built in a temp folder. Assumes registerJournal is listed in src/cli/commands/index.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { defaultJournalPath, parseDateOption, type JournalReport } from '../../src/cli/commands/journal.js';
import { Journal } from '../../src/terminal/journal/index.js';
import { tempDir, certFor } from '../terminal/journal/helpers.js';

interface Captured {
  code: number;
  out: string;
  err: string[];
}

async function hilt(...args: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const capture: Output = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await run(['node', 'hilt', 'journal', ...args], capture);
  return { code, out: out.join('\n'), err };
}

function expectOneErrorLine(r: Captured, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.out).toBe('');
  expect(r.err).toHaveLength(1);
  expect(r.err[0].trimEnd()).not.toContain('\n');
  expect(r.err[0]).toMatch(/^hilt: /);
  expect(r.err[0]).toMatch(pattern);
}

let work: { dir: string; remove(): void };
let db: string;
let pendingId: number;

beforeAll(() => {
  work = tempDir('hilt-cli-journal-');
  db = join(work.dir, 'terminal.db');
  let t = Date.parse('2024-05-01T09:00:00Z');
  const j = Journal.open(db, { identity: { terminalId: 'T-0001', readerId: 'R-01' }, clock: () => t });
  const step = (card: string, counter: number, amount: number, end: 'complete' | 'failed' | 'pending') => {
    t += 3_600_000;
    const { id, readerSeq } = j.beginTransaction({ provider: 'emoney', type: 'purchase', cardSerial: card, cardCounter: counter, amount, currency: 'JPY' });
    if (end === 'complete') j.complete(id, { cardCounter: counter + 1, certificate: certFor(readerSeq), balanceAfter: 5000 - amount });
    if (end === 'failed') j.fail(id, { error: 'card answered 6A84' });
    return id;
  };
  step('0102030405060708', 10, 300, 'complete'); // 10:00
  step('AABBCCDD', 3, 120, 'failed'); // 11:00
  step('0102030405060708', 11, 450, 'complete'); // 12:00
  pendingId = step('AABBCCDD', 3, 999, 'pending'); // 13:00
  j.applyNegativeDelta({ fromVersion: 0, toVersion: 7, add: [{ cardSerial: 'DEAD', reason: 'stolen' }], remove: [] });
  j.markSent(j.nextOutbound(1)[0].id, 'HOST-1');
  j.close();
});
afterAll(() => work.remove());

describe('hilt journal', () => {
  it('prints a table, newest first, pending rows marked with ! and PENDING, and a footer', async () => {
    const r = await hilt('--db', db);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('\x1b'); // not a terminal: no colour codes
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^!\s+id\s+seq\s+time \(UTC\)\s+status\s+type\s+provider\s+card\s+counter\s+amount\s+cur\s+balance\s+note$/);
    const rows = lines.slice(2, 6);
    expect(rows[0]).toMatch(new RegExp(`^!\\s+${pendingId}\\s+4\\s+2024-05-01 13:00:00Z\\s+PENDING\\s+purchase\\s+emoney\\s+AABBCCDD\\s+3→\\?\\s+999\\s+JPY`));
    expect(rows[1]).toMatch(/^\s+3\s+3\s+2024-05-01 12:00:00Z\s+complete\s+purchase\s+emoney\s+0102030405060708\s+11→12\s+450\s+JPY\s+4550\s+cert 8 bytes$/);
    expect(rows[2]).toMatch(/^\s+2\s+2\s+.*failed.*card answered 6A84$/);
    expect(rows[3]).toMatch(/^\s+1\s+1\s+.*complete/);
    expect(rows.filter((l) => l.includes('PENDING'))).toHaveLength(1);
    expect(rows.filter((l) => l.startsWith('!'))).toHaveLength(1);
    expect(lines[6]).toBe('rows: 4 shown of 4 in the journal | pending: 1 (present those cards again for tear recovery) | outbox waiting: 2 | negative list: version 7');
    expect(lines).toHaveLength(7);
  });

  it('filters by status, card, time, and limits', async () => {
    const pending = await hilt('--db', db, '--status', 'pending');
    expect(pending.out.split('\n').filter((l) => /^!?\s+\d/.test(l))).toHaveLength(1);
    const both = await hilt('--db', db, '--status', 'failed,complete', '--json');
    expect((JSON.parse(both.out) as JournalReport).rows.map((x) => x.status)).toEqual(['complete', 'failed', 'complete']);
    const card = JSON.parse((await hilt('--db', db, '--card', '01 02 03 04 05 06 07 08', '--json')).out) as JournalReport;
    expect(card.rows.map((x) => x.id)).toEqual([3, 1]);
    const since = JSON.parse((await hilt('--db', db, '--since', '2024-05-01T11:30', '--json')).out) as JournalReport;
    expect(since.rows.map((x) => x.id)).toEqual([4, 3]);
    const japan = JSON.parse((await hilt('--db', db, '--since', '2024-05-01T19:30:00+09:00', '--until', '2024-05-01T12:00:00Z', '--json')).out) as JournalReport;
    expect(japan.rows.map((x) => x.id)).toEqual([2]);
    const limited = JSON.parse((await hilt('--db', db, '--limit', '1', '--json')).out) as JournalReport;
    expect(limited.rows.map((x) => x.id)).toEqual([4]);
    const none = await hilt('--db', db, '--card', 'FFFF');
    expect(none.code).toBe(0);
    expect(none.out.split('\n')[0]).toBe('no journal rows match');
    expect(none.out).toContain('pending: 1');
  });

  it('--json prints one document with rows, filter and summary', async () => {
    const r = await hilt('--db', db, '--json', '--status', 'complete', '--limit', '1');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as JournalReport;
    expect(report.db).toBe(db);
    expect(report.filter).toEqual({ status: ['complete'], card: null, type: null, since: null, until: null, limit: 1 });
    expect(report.rows).toHaveLength(1);
    expect(report.rows[0]).toMatchObject({ id: 3, readerSeq: 3, status: 'complete', cardSerial: '0102030405060708', certificate: '000000000003A55A' });
    expect(report.summary).toEqual({
      transactions: 4,
      byStatus: { pending: 1, complete: 2, failed: 1, 'never-happened': 0, recovered: 0 },
      outboxWaiting: 2,
      negativeListVersion: 7,
      lastReaderSeq: 4,
      rowsShown: 1,
    });
  });

  it('finds the journal through HILT_TERMINAL_DB, else .hilt/terminal.db', async () => {
    expect(defaultJournalPath({})).toBe('.hilt/terminal.db');
    expect(defaultJournalPath({ HILT_TERMINAL_DB: '/var/lib/hilt/t.db' })).toBe('/var/lib/hilt/t.db');
    const saved = process.env.HILT_TERMINAL_DB;
    process.env.HILT_TERMINAL_DB = db;
    try {
      const r = await hilt('--json');
      expect(r.code).toBe(0);
      expect((JSON.parse(r.out) as JournalReport).db).toBe(db);
    } finally {
      if (saved === undefined) delete process.env.HILT_TERMINAL_DB;
      else process.env.HILT_TERMINAL_DB = saved;
    }
  });

  it('refuses a missing journal, without creating it', async () => {
    const missing = join(work.dir, 'nope', 'terminal.db');
    expectOneErrorLine(await hilt('--db', missing), /no terminal journal at .*nope.*HILT_TERMINAL_DB/);
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(join(work.dir, 'nope'))).toBe(false);
  });

  it('refuses a file that is not a journal, and bad options, with one line', async () => {
    const notes = join(work.dir, 'notes.txt');
    writeFileSync(notes, 'not a database\n'.repeat(100));
    const r = await hilt('--db', notes);
    expectOneErrorLine(r, /notes\.txt: not an SQLite database/);
    expect(r.code).toBe(1);
    const bad = await hilt('--db', db, '--status', 'lost');
    expectOneErrorLine(bad, /--status: expected one or more of pending, complete, failed, never-happened, recovered/);
    expect(bad.code).toBe(2);
    expectOneErrorLine(await hilt('--db', db, '--since', 'yesterday'), /--since: expected an ISO date/);
    expectOneErrorLine(await hilt('--db', db, '--since', '2024-02-30'), /--since/);
    expectOneErrorLine(await hilt('--db', db, '--card', 'XYZ'), /--card/);
    expectOneErrorLine(await hilt('--db', db, '--limit', '0'), /--limit/);
  });

  it('date options: UTC unless an offset is given', () => {
    const p = parseDateOption('--since');
    expect(p('2024-05-01')).toBe(Date.parse('2024-05-01T00:00:00Z'));
    expect(p('2024-05-01T09:30')).toBe(Date.parse('2024-05-01T09:30:00Z'));
    expect(p('2024-05-01 09:30:15.250')).toBe(Date.parse('2024-05-01T09:30:15.250Z'));
    expect(p('2024-05-01T09:30:00+09:00')).toBe(Date.parse('2024-05-01T00:30:00Z'));
  });
});
