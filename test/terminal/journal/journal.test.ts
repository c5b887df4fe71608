/**
 * The Journal API: identity, reader sequence, the transaction state machine with its outbox records,
 * tear-recovery lookups, card coherence, anomalies, limits sums, the negative card file, the outbox,
 * queries, read-only access.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  Journal,
  TransitionError,
  PendingTransactionError,
  NegativeListVersionError,
  TRANSACTION_STATUSES,
  MAX_GAP_LISTED,
  dayRange,
  monthRange,
  type FinalStatus,
  type JournalRow,
  type TransactionRecord,
} from '../../../src/terminal/journal/index.js';
import { HiltError, ProtocolError } from '../../../src/util/errors.js';
import { tempDir, openJournal, manualClock, certFor, PURCHASE, IDENTITY } from './helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});
function dbPath(): string {
  const t = tempDir();
  cleanups.push(t.remove);
  return join(t.dir, 'terminal.db');
}
function fresh(options: Parameters<typeof openJournal>[1] = {}): { j: Journal; path: string } {
  const path = dbPath();
  const j = openJournal(path, options);
  cleanups.push(() => j.close());
  return { j, path };
}
function errorOf(fn: () => unknown): HiltError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HiltError) return e;
    throw e;
  }
  throw new Error('expected a HiltError, nothing was thrown');
}
const CARD = '0102030405060708';

describe('identity', () => {
  it('is stored on first open, kept on reopen, and another identity is refused', () => {
    const path = dbPath();
    openJournal(path).close();
    const again = Journal.open(path);
    expect(again.identity).toEqual(IDENTITY);
    again.close();
    const e = errorOf(() => Journal.open(path, { identity: { terminalId: 'T-0002', readerId: 'R-01' } }));
    expect(e.code).toBe('BAD_INPUT');
    expect(e.message).toMatch(/belongs to terminal T-0001/);
  });

  it('a journal without identity refuses to write', () => {
    const path = dbPath();
    const j = Journal.open(path);
    cleanups.push(() => j.close());
    expect(j.identity).toBeNull();
    expect(j.lastReaderSequence()).toBeNull();
    expect(errorOf(() => j.nextReaderSequence()).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 0, amount: 1 })).message).toMatch(/no identity/);
  });

  it('refuses malformed ids', () => {
    expect(errorOf(() => Journal.open(dbPath(), { identity: { terminalId: 'bad id', readerId: 'R' } })).code).toBe('BAD_INPUT');
    expect(errorOf(() => Journal.open(dbPath(), { identity: { terminalId: 'T', readerId: '' } })).code).toBe('BAD_INPUT');
  });
});

describe('reader sequence', () => {
  it('is monotonic and never reused across close and reopen', () => {
    const path = dbPath();
    let j = openJournal(path);
    const seqs: number[] = [];
    seqs.push(j.beginTransaction({ ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 5 }).readerSeq);
    seqs.push(j.nextReaderSequence());
    j.close();
    j = openJournal(path);
    seqs.push(j.beginTransaction({ ...PURCHASE, cardSerial: 'BB', cardCounter: 0, amount: 5 }).readerSeq);
    j.close();
    j = Journal.open(path);
    seqs.push(j.nextReaderSequence());
    expect(j.lastReaderSequence()).toBe(4);
    j.close();
    expect(seqs).toEqual([1, 2, 3, 4]);
  });

  it('two connections on one file never hand out the same number', () => {
    const path = dbPath();
    const a = openJournal(path);
    const b = openJournal(path);
    const got: number[] = [];
    for (let i = 0; i < 50; i++) got.push((i % 2 ? a : b).nextReaderSequence());
    a.close();
    b.close();
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('a refused begin consumes no number', () => {
    const { j } = fresh();
    j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 0, amount: 5 });
    const bad = [
      { ...PURCHASE, cardSerial: 'XYZ', cardCounter: 0, amount: 5 },
      { ...PURCHASE, cardSerial: '', cardCounter: 0, amount: 5 },
      { ...PURCHASE, cardSerial: 'AA'.repeat(33), cardCounter: 0, amount: 5 },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: -1, amount: 5 },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 0 },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 1.5 },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 5, currency: 'jpy' },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 5, currency: '392' },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 5, type: 'steal' as 'purchase' },
      { ...PURCHASE, cardSerial: 'AA', cardCounter: 0, amount: 5, provider: 'bad provider' },
      { ...PURCHASE, cardSerial: CARD, cardCounter: 1, amount: 5 }, // card has a pending row
    ];
    for (const input of bad) expect(errorOf(() => j.beginTransaction(input)).code).toBe('BAD_INPUT');
    expect(j.lastReaderSequence()).toBe(1);
    expect(j.query()).toHaveLength(1);
  });
});

describe('transactions and their state machine', () => {
  it('begin writes a pending row carrying serial, counter, reader id and sequence', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: '01:02:03:04:05:06:07:08', cardCounter: 41, amount: 250 });
    expect(j.get(id)).toEqual({
      id,
      readerId: 'R-01',
      readerSeq,
      terminalId: 'T-0001',
      provider: 'emoney',
      type: 'purchase',
      cardSerial: CARD,
      counterBefore: 41,
      counterAfter: null,
      amount: 250,
      currency: 'JPY',
      status: 'pending',
      createdAt: clock.now(),
      updatedAt: clock.now(),
      certificate: null,
      balanceAfter: null,
      error: null,
    } satisfies JournalRow);
    expect(j.outboundCount()).toBe(0); // nothing goes up before the outcome is known
  });

  it('complete records the certificate and queues the uplink record in the same commit', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 41, amount: 250 });
    clock.advance(900);
    const row = j.complete(id, { cardCounter: 42, certificate: certFor(readerSeq), balanceAfter: 750 });
    expect(row.status).toBe('complete');
    expect(row.counterAfter).toBe(42);
    expect(row.certificate).toEqual(certFor(readerSeq));
    expect(row.certificate).not.toBeInstanceOf(Buffer);
    expect(row.balanceAfter).toBe(750);
    expect(row.updatedAt).toBe(row.createdAt + 900);
    const [entry] = j.nextOutbound(10);
    expect(entry.key).toBe(`txn/T-0001/${readerSeq}`);
    expect(entry.transactionId).toBe(id);
    expect(entry.record).toEqual({
      kind: 'transaction',
      terminalId: 'T-0001',
      readerId: 'R-01',
      readerSeq,
      provider: 'emoney',
      type: 'purchase',
      cardSerial: CARD,
      counterBefore: 41,
      counterAfter: 42,
      amount: 250,
      currency: 'JPY',
      status: 'complete',
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      certificate: '00000000' + '0001A55A',
      balanceAfter: 750,
      error: null,
    } satisfies TransactionRecord);
  });

  it('fail, neverHappened and recover are final too, each with one outbox record', () => {
    const { j } = fresh();
    const a = j.beginTransaction({ ...PURCHASE, cardSerial: 'A1', cardCounter: 3, amount: 10 });
    const b = j.beginTransaction({ ...PURCHASE, cardSerial: 'B1', cardCounter: 7, amount: 10 });
    const c = j.beginTransaction({ ...PURCHASE, cardSerial: 'C1', cardCounter: 9, amount: 10 });
    expect(j.fail(a.id, { error: 'card answered 6A84' })).toMatchObject({ status: 'failed', error: 'card answered 6A84', certificate: null });
    expect(j.neverHappened(b.id, { cardCounter: 7, note: 'not in the card log' })).toMatchObject({ status: 'never-happened', counterAfter: 7 });
    expect(j.recover(c.id, { cardCounter: 10, certificate: certFor(c.readerSeq), balanceAfter: 5 })).toMatchObject({ status: 'recovered', counterAfter: 10 });
    const records = j.outbox().map((e) => e.record as TransactionRecord);
    expect(records.map((r) => [r.readerSeq, r.status])).toEqual([
      [a.readerSeq, 'failed'],
      [b.readerSeq, 'never-happened'],
      [c.readerSeq, 'recovered'],
    ]);
  });

  it('nothing leaves a final state, and a refused transition changes nothing', () => {
    const { j } = fresh();
    const targets: FinalStatus[] = ['complete', 'failed', 'never-happened', 'recovered'];
    const move = (id: number, to: FinalStatus, seq: number) => {
      if (to === 'complete') return j.complete(id, { cardCounter: 2, certificate: certFor(seq), balanceAfter: 0 });
      if (to === 'recovered') return j.recover(id, { cardCounter: 2, certificate: certFor(seq), balanceAfter: 0 });
      if (to === 'failed') return j.fail(id, { error: 'x' });
      return j.neverHappened(id, { cardCounter: 1 });
    };
    targets.forEach((first, i) => {
      const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: `E${i}`, cardCounter: 1, amount: 10 });
      const done = move(id, first, readerSeq);
      const outboxBefore = j.outbox().length;
      for (const next of targets) {
        const e = errorOf(() => move(id, next, readerSeq));
        expect(e).toBeInstanceOf(TransitionError);
        expect(e).toMatchObject({ id, from: first, to: next, code: 'BAD_INPUT' });
      }
      expect(j.get(id)).toEqual(done);
      expect(j.outbox()).toHaveLength(outboxBefore);
    });
  });

  it('refuses an unknown row, a counter below the start, a missing certificate; the row stays pending', () => {
    const { j } = fresh();
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    expect(errorOf(() => j.complete(999, { cardCounter: 6, certificate: certFor(1), balanceAfter: 0 })).message).toMatch(/999 does not exist/);
    expect(errorOf(() => j.complete(id, { cardCounter: 4, certificate: certFor(readerSeq), balanceAfter: 0 })).message).toMatch(/below the counter before/);
    expect(errorOf(() => j.complete(id, { cardCounter: 6, certificate: new Uint8Array(0), balanceAfter: 0 })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.complete(id, { cardCounter: 6, certificate: 'AB' as unknown as Uint8Array, balanceAfter: 0 })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.complete(id, { cardCounter: 6, certificate: certFor(readerSeq), balanceAfter: -1 })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.fail(id, { error: '' })).code).toBe('BAD_INPUT');
    expect(j.get(id)!.status).toBe('pending');
    expect(j.outboundCount()).toBe(0);
  });

  it('the schema itself refuses to edit a final row or delete any row', () => {
    const { j, path } = fresh();
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    j.complete(id, { cardCounter: 6, certificate: certFor(readerSeq), balanceAfter: 0 });
    const p = j.beginTransaction({ ...PURCHASE, cardSerial: 'FF', cardCounter: 5, amount: 10 });
    const raw = new Database(path);
    try {
      expect(() => raw.prepare("UPDATE transactions SET status = 'pending' WHERE id = ?").run(id)).toThrow(/final state never changes/);
      expect(() => raw.prepare('UPDATE transactions SET amount = 1 WHERE id = ?').run(p.id)).toThrow(/never changes/);
      expect(() => raw.prepare('DELETE FROM transactions WHERE id = ?').run(p.id)).toThrow(/never deleted/);
      expect(() => raw.prepare("UPDATE transactions SET status = 'complete' WHERE id = ?").run(p.id)).toThrow(/CHECK constraint/);
      expect(() => raw.prepare('UPDATE outbox SET payload = ? WHERE id = 1').run('{}')).toThrow(/never changes once queued/);
    } finally {
      raw.close();
    }
  });

  it('a card with a pending row cannot start another transaction until it is resolved', () => {
    const { j } = fresh();
    const first = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    const e = errorOf(() => j.beginTransaction({ ...PURCHASE, cardSerial: CARD.toLowerCase(), cardCounter: 5, amount: 10 }));
    expect(e).toBeInstanceOf(PendingTransactionError);
    expect((e as PendingTransactionError).pendingIds).toEqual([first.id]);
    expect(j.pendingFor(CARD.toLowerCase()).map((r) => r.id)).toEqual([first.id]);
    expect(j.pendingFor(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])).map((r) => r.id)).toEqual([first.id]);
    expect(j.pendingFor('AABB')).toEqual([]);
    j.neverHappened(first.id, { cardCounter: 5 });
    expect(j.pendingFor(CARD)).toEqual([]);
    const second = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    expect(second.readerSeq).toBe(first.readerSeq + 1);
    expect(j.pending().map((r) => r.id)).toEqual([second.id]);
  });
});

describe('card coherence', () => {
  it('first-seen, ok, gap, repeat, rollback', () => {
    const { j } = fresh();
    expect(j.checkCounter(CARD, 5)).toBe('first-seen');
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    j.complete(id, { cardCounter: 6, certificate: certFor(readerSeq), balanceAfter: 0 });
    expect(j.cardHistory(CARD)).toMatchObject({ cardSerial: CARD, lastCounter: 6, lastTransactionId: id });
    expect(j.checkCounter(CARD, 6)).toBe('ok');
    expect(j.checkCounter(CARD, 9)).toEqual({ kind: 'gap', last: 6, missing: [7, 8, 9], missingCount: 3 });
    expect(j.checkCounter(CARD, 5)).toEqual({ kind: 'repeat', last: 6, transactionId: id, readerSeq });
    expect(j.checkCounter(CARD, 2)).toEqual({ kind: 'rollback', last: 6 });
    expect(j.checkCounter('0A0B', 0)).toBe('first-seen');
  });

  it('a long gap lists a bounded number of values', () => {
    const { j } = fresh();
    j.recordCardSeen(CARD, 10);
    const r = j.checkCounter(CARD, 10_010);
    expect(r).toMatchObject({ kind: 'gap', last: 10, missingCount: 10_000 });
    expect((r as { missing: number[] }).missing).toHaveLength(MAX_GAP_LISTED);
    expect((r as { missing: number[] }).missing[0]).toBe(11);
  });

  it('the last counter only rises: a rolled-back card stays a rollback', () => {
    const { j } = fresh();
    j.recordCardSeen(CARD, 20);
    j.recordCardSeen(CARD, 3);
    expect(j.cardHistory(CARD)!.lastCounter).toBe(20);
    expect(j.checkCounter(CARD, 3)).toEqual({ kind: 'rollback', last: 20 });
  });

  it('a failed or never-happened transaction does not count as a repeat', () => {
    const { j } = fresh();
    const a = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    j.neverHappened(a.id, { cardCounter: 5 });
    expect(j.checkCounter(CARD, 5)).toBe('ok');
    j.recordCardSeen(CARD, 8);
    expect(j.checkCounter(CARD, 5)).toEqual({ kind: 'rollback', last: 8 });
  });

  it('anomalies are recorded, listed, and queued for the host unless told not to', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 5, amount: 10 });
    const a = j.recordAnomaly({ kind: 'rollback', cardSerial: CARD, counter: 2, lastCounter: 6, transactionId: id, details: { action: 'refused', amount: 10 } });
    const b = j.recordAnomaly({ kind: 'gap', cardSerial: 'ABCD', counter: 9, lastCounter: 6, uplink: false });
    expect(j.anomalies()).toEqual([b, a]);
    expect(j.anomalies({ cardSerial: CARD })).toEqual([a]);
    const queued = j.outbox();
    expect(queued).toHaveLength(1);
    expect(queued[0].key).toBe(`anomaly/T-0001/${a.id}`);
    expect(queued[0].record).toEqual({
      kind: 'anomaly',
      terminalId: 'T-0001',
      readerId: 'R-01',
      anomalyId: a.id,
      anomaly: 'rollback',
      cardSerial: CARD,
      counter: 2,
      lastCounter: 6,
      readerSeq,
      createdAt: clock.now(),
      details: { action: 'refused', amount: 10 },
    });
    expect(errorOf(() => j.recordAnomaly({ kind: 'weird' as 'gap', cardSerial: CARD })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.recordAnomaly({ kind: 'gap', cardSerial: CARD, details: { x: [1] as unknown as string } })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.recordAnomaly({ kind: 'gap', cardSerial: CARD, transactionId: 999 })).code).toBe('BAD_INPUT');
    expect(j.anomalies()).toHaveLength(2);
  });
});

describe('limits', () => {
  function buy(j: Journal, clock: ReturnType<typeof manualClock>, at: string, amount: number, opts: { card?: string; currency?: string; type?: 'purchase' | 'load'; end?: 'complete' | 'recovered' | 'failed' | 'never-happened' | 'pending' } = {}) {
    clock.set(Date.parse(at));
    const card = opts.card ?? CARD;
    const counter = j.cardHistory(card)?.lastCounter ?? 0;
    const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: card, cardCounter: counter, amount, currency: opts.currency ?? 'JPY', type: opts.type ?? 'purchase' });
    const end = opts.end ?? 'complete';
    if (end === 'complete') j.complete(id, { cardCounter: counter + 1, certificate: certFor(readerSeq), balanceAfter: 0 });
    if (end === 'recovered') j.recover(id, { cardCounter: counter + 1, certificate: certFor(readerSeq), balanceAfter: 0 });
    if (end === 'failed') j.fail(id, { error: 'refused' });
    if (end === 'never-happened') j.neverHappened(id, { cardCounter: counter });
  }

  it('sums purchases that moved value, per card, currency, UTC day and month', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    buy(j, clock, '2024-05-01T00:00:00Z', 100);
    buy(j, clock, '2024-05-01T23:59:59.999Z', 200, { end: 'recovered' });
    buy(j, clock, '2024-05-01T12:00:00Z', 1000, { end: 'failed' });
    buy(j, clock, '2024-05-01T12:00:00Z', 2000, { end: 'never-happened' });
    buy(j, clock, '2024-05-01T12:00:00Z', 4000, { currency: 'EUR' });
    buy(j, clock, '2024-05-01T12:00:00Z', 8000, { type: 'load' });
    buy(j, clock, '2024-05-01T12:00:00Z', 16000, { card: 'FFFF' });
    buy(j, clock, '2024-05-02T00:00:00Z', 400);
    buy(j, clock, '2024-04-30T23:59:59.999Z', 800);
    buy(j, clock, '2024-05-31T10:00:00Z', 30, { end: 'pending' });
    expect(j.spentToday(CARD, 'JPY', '2024-05-01')).toBe(300);
    expect(j.spentToday(CARD, 'JPY', Date.parse('2024-05-01T08:00:00Z'))).toBe(300);
    expect(j.spentToday(CARD, 'EUR', '2024-05-01')).toBe(4000);
    expect(j.spentToday(CARD, 'JPY', '2024-05-02')).toBe(400);
    expect(j.spentThisMonth(CARD, 'JPY', '2024-05')).toBe(700);
    expect(j.spentThisMonth(CARD, 'JPY', '2024-04')).toBe(800);
    clock.set(Date.parse('2024-05-02T15:00:00Z'));
    expect(j.spentToday(CARD, 'JPY')).toBe(400);
    expect(j.spentThisMonth(CARD, 'JPY')).toBe(700);
    expect(j.spent({ currency: 'JPY', ...dayRange('2024-05-01') })).toBe(16300); // every card of this reader
  });

  it('with a day offset, days start at local midnight (Japan: UTC+9)', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now, dayOffsetMinutes: 540 });
    buy(j, clock, '2024-05-01T14:59:59Z', 100); // 23:59:59 on 1 May in Japan
    buy(j, clock, '2024-05-01T15:00:00Z', 200); // 00:00 on 2 May in Japan
    buy(j, clock, '2024-05-31T16:00:00Z', 400); // 1 June in Japan
    expect(j.spentToday(CARD, 'JPY', '2024-05-01')).toBe(100);
    expect(j.spentToday(CARD, 'JPY', '2024-05-02')).toBe(200);
    expect(j.spentThisMonth(CARD, 'JPY', '2024-05')).toBe(300);
    expect(j.spentThisMonth(CARD, 'JPY', '2024-06')).toBe(400);
    expect(j.spentThisMonth(CARD, 'JPY', Date.parse('2024-05-31T16:00:00Z'))).toBe(400);
  });

  it('day and month ranges, and refusals', () => {
    expect(dayRange('2024-05-01')).toEqual({ fromMs: Date.parse('2024-05-01T00:00:00Z'), toMs: Date.parse('2024-05-02T00:00:00Z') });
    expect(dayRange('2024-05-01', 540)).toEqual({ fromMs: Date.parse('2024-04-30T15:00:00Z'), toMs: Date.parse('2024-05-01T15:00:00Z') });
    expect(dayRange(Date.parse('2024-05-01T15:30:00Z'), 540).fromMs).toBe(Date.parse('2024-05-01T15:00:00Z'));
    expect(dayRange(Date.parse('2024-05-01T15:30:00Z'), -300).fromMs).toBe(Date.parse('2024-05-01T05:00:00Z'));
    expect(monthRange('2024-12')).toEqual({ fromMs: Date.parse('2024-12-01T00:00:00Z'), toMs: Date.parse('2025-01-01T00:00:00Z') });
    for (const bad of ['2024-02-30', '2024-5-1', 'yesterday', '']) expect(errorOf(() => dayRange(bad)).code).toBe('BAD_INPUT');
    for (const bad of ['2024-13', '2024-00', '2024']) expect(errorOf(() => monthRange(bad)).code).toBe('BAD_INPUT');
    expect(errorOf(() => Journal.open(dbPath(), { dayOffsetMinutes: 900 })).code).toBe('BAD_INPUT');
  });
});

describe('negative card file', () => {
  it('applies deltas that start at the current version, atomically', () => {
    const { j } = fresh();
    expect(j.negativeListVersion()).toBe(0);
    expect(j.applyNegativeDelta({ fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'aabb', reason: 'lost' }, { cardSerial: 'CCDD', reason: 'stolen' }], remove: [] })).toEqual({
      version: 1,
      added: 2,
      removed: 0,
    });
    expect(j.isBlocked('AABB')).toBe(true);
    expect(j.isBlocked(Uint8Array.from([0xcc, 0xdd]))).toBe(true);
    expect(j.isBlocked('EEFF')).toBe(false);
    expect(j.negativeEntry('ccdd')).toEqual({ cardSerial: 'CCDD', reason: 'stolen', addedInVersion: 1 });

    expect(j.applyNegativeDelta({ fromVersion: 1, toVersion: 3, add: [{ cardSerial: 'EEFF', reason: 'fraud' }], remove: ['AABB', '0000'] })).toEqual({
      version: 3,
      added: 1,
      removed: 1,
    });
    expect(j.negativeList()).toEqual([
      { cardSerial: 'CCDD', reason: 'stolen', addedInVersion: 1 },
      { cardSerial: 'EEFF', reason: 'fraud', addedInVersion: 3 },
    ]);
  });

  it('refuses a delta from another version with a typed error and changes nothing', () => {
    const { j } = fresh();
    j.applyNegativeDelta({ fromVersion: 0, toVersion: 5, add: [{ cardSerial: 'AABB', reason: 'lost' }], remove: [] });
    for (const fromVersion of [0, 4, 6]) {
      const e = errorOf(() => j.applyNegativeDelta({ fromVersion, toVersion: 9, add: [{ cardSerial: '1111', reason: 'x' }], remove: ['AABB'] }));
      expect(e).toBeInstanceOf(NegativeListVersionError);
      expect(e).toMatchObject({ code: 'PROTOCOL', currentVersion: 5, fromVersion, toVersion: 9 });
    }
    expect(j.negativeListVersion()).toBe(5);
    expect(j.negativeList()).toEqual([{ cardSerial: 'AABB', reason: 'lost', addedInVersion: 5 }]);
  });

  it('refuses malformed deltas', () => {
    const { j } = fresh();
    const bad = [
      { fromVersion: 0, toVersion: 0, add: [], remove: [] },
      { fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'AA', reason: 'x' }], remove: ['aa'] },
      { fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'AA', reason: 'x' }, { cardSerial: 'AA', reason: 'y' }], remove: [] },
      { fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'ZZ', reason: 'x' }], remove: [] },
      { fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'AA', reason: '' }], remove: [] },
      { fromVersion: -1, toVersion: 1, add: [], remove: [] },
    ];
    for (const d of bad) expect(errorOf(() => j.applyNegativeDelta(d)).code).toBe('BAD_INPUT');
    expect(j.negativeListVersion()).toBe(0);
  });

  it('a full list replaces everything', () => {
    const { j } = fresh();
    j.applyNegativeDelta({ fromVersion: 0, toVersion: 1, add: [{ cardSerial: 'AABB', reason: 'lost' }], remove: [] });
    expect(j.replaceNegativeList(40, [{ cardSerial: '1234', reason: 'stolen' }])).toEqual({ version: 40, added: 1, removed: 1 });
    expect(j.negativeList()).toEqual([{ cardSerial: '1234', reason: 'stolen', addedInVersion: 40 }]);
    expect(j.negativeListVersion()).toBe(40);
  });
});

describe('outbox', () => {
  function completed(j: Journal, n: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: `D${i % 10}`, cardCounter: 0, amount: 10 + i });
      j.complete(id, { cardCounter: 1, certificate: certFor(readerSeq), balanceAfter: 0 });
      ids.push(id);
    }
    return ids;
  }

  it('is offered in queue order, in batches', () => {
    const { j } = fresh();
    const ids = completed(j, 5);
    const batch = j.nextOutbound(3);
    expect(batch.map((e) => e.transactionId)).toEqual(ids.slice(0, 3));
    expect(j.outboundCount()).toBe(5);
    expect(errorOf(() => j.nextOutbound(0)).code).toBe('BAD_INPUT');
  });

  it('markSent is idempotent; another reference for a sent entry is a protocol error', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    completed(j, 3);
    const [first] = j.nextOutbound(1);
    expect(j.markSent(first.id, 'HOST-1')).toBe('sent');
    expect(j.markSent(first.id, 'HOST-1')).toBe('already-sent');
    expect(j.outboundEntry(first.id)).toMatchObject({ sentAt: clock.now(), hostReference: 'HOST-1' });
    expect(errorOf(() => j.markSent(first.id, 'HOST-2'))).toBeInstanceOf(ProtocolError);
    expect(j.outboundEntry(first.id)!.hostReference).toBe('HOST-1');
    expect(j.outboundCount()).toBe(2);
    expect(j.nextOutbound(10).map((e) => e.id)).toEqual([first.id + 1, first.id + 2]);
    expect(errorOf(() => j.markSent(999, 'H')).code).toBe('BAD_INPUT');
  });

  it('a deferred head holds the queue until its time, counting attempts', () => {
    const clock = manualClock();
    const { j } = fresh({ clock: clock.now });
    completed(j, 3);
    const [head] = j.nextOutbound(1);
    expect(j.deferOutbound(head.id, clock.now() + 1000, 'connection refused')).toBe(true);
    expect(j.nextOutbound(10)).toEqual([]);
    expect(j.nextOutbound(10, clock.now() + 999)).toEqual([]);
    clock.advance(1000);
    const due = j.nextOutbound(10);
    expect(due.map((e) => e.id)).toEqual([head.id, head.id + 1, head.id + 2]);
    expect(due[0]).toMatchObject({ attempts: 1, lastError: 'connection refused', nextAttemptAt: clock.now() });
    j.deferOutbound(head.id, clock.now() + 5000, 'timeout');
    expect(j.outboundEntry(head.id)).toMatchObject({ attempts: 2, lastError: 'timeout' });
    // A later entry deferred alone stops the batch there, never skipped over.
    j.markSent(head.id, 'H1');
    j.deferOutbound(head.id + 2, clock.now() + 5000, 'x');
    expect(j.nextOutbound(10).map((e) => e.id)).toEqual([head.id + 1]);
    expect(j.deferOutbound(head.id, clock.now() + 1, 'late report')).toBe(false);
    expect(j.outboundEntry(head.id)).toMatchObject({ attempts: 2, sentAt: expect.any(Number) });
  });

  it('survives close and reopen', () => {
    const { j, path } = fresh();
    completed(j, 4);
    const [a] = j.nextOutbound(1);
    j.markSent(a.id, 'H-A');
    j.close();
    const again = openJournal(path);
    expect(again.outboundCount()).toBe(3);
    expect(again.nextOutbound(10).map((e) => e.id)).toEqual([a.id + 1, a.id + 2, a.id + 3]);
    expect(again.markSent(a.id, 'H-A')).toBe('already-sent');
    again.close();
  });
});

describe('query and summary', () => {
  it('filters by status, card, type, time; limits and orders', () => {
    const clock = manualClock(Date.parse('2024-05-01T00:00:00Z'));
    const { j } = fresh({ clock: clock.now });
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      clock.advance(3_600_000);
      const card = i % 2 ? 'AAAA' : 'BBBB';
      const { id, readerSeq } = j.beginTransaction({ ...PURCHASE, cardSerial: card, cardCounter: i, amount: 10, type: i === 5 ? 'load' : 'purchase' });
      if (i < 4) j.complete(id, { cardCounter: i + 1, certificate: certFor(readerSeq), balanceAfter: 0 });
      ids.push(id);
    }
    expect(j.query().map((r) => r.id)).toEqual([...ids].reverse());
    expect(j.query({ order: 'asc', limit: 2 }).map((r) => r.id)).toEqual(ids.slice(0, 2));
    expect(j.query({ status: 'pending' }).map((r) => r.id)).toEqual([ids[5], ids[4]]);
    expect(j.query({ status: ['pending', 'complete'], cardSerial: 'aaaa' }).map((r) => r.id)).toEqual([ids[5], ids[3], ids[1]]);
    expect(j.query({ type: 'load' }).map((r) => r.id)).toEqual([ids[5]]);
    expect(j.query({ from: Date.parse('2024-05-01T03:00:00Z'), to: new Date('2024-05-01T05:00:00Z') }).map((r) => r.id)).toEqual([ids[3], ids[2]]);
    expect(errorOf(() => j.query({ status: 'lost' as 'pending' })).code).toBe('BAD_INPUT');
    expect(errorOf(() => j.query({ limit: 0 })).code).toBe('BAD_INPUT');
    expect(j.summary()).toEqual({
      transactions: 6,
      byStatus: { pending: 2, complete: 4, failed: 0, 'never-happened': 0, recovered: 0 },
      outboxWaiting: 4,
      negativeListVersion: 0,
      lastReaderSeq: 6,
    });
    expect(Object.keys(j.summary().byStatus)).toEqual([...TRANSACTION_STATUSES]);
  });
});

describe('access', () => {
  it('a read-only journal sees the writer’s commits and refuses to write', () => {
    const { j, path } = fresh();
    const reader = Journal.open(path, { readonly: true });
    try {
      const { id } = j.beginTransaction({ ...PURCHASE, cardSerial: CARD, cardCounter: 1, amount: 10 });
      expect(reader.pendingFor(CARD).map((r) => r.id)).toEqual([id]);
      expect(reader.identity).toEqual(IDENTITY);
      expect(errorOf(() => reader.beginTransaction({ ...PURCHASE, cardSerial: 'AA', cardCounter: 1, amount: 1 })).message).toMatch(/read-only/);
      expect(errorOf(() => reader.applyNegativeDelta({ fromVersion: 0, toVersion: 1, add: [], remove: [] })).message).toMatch(/read-only/);
      expect(errorOf(() => reader.markSent(1, 'x')).message).toMatch(/read-only/);
      expect(reader.quickCheck()).toEqual(['ok']);
    } finally {
      reader.close();
    }
  });

  it('a closed journal refuses every call with CHANNEL_CLOSED', () => {
    const path = dbPath();
    const j = openJournal(path);
    j.close();
    j.close(); // twice is fine
    expect(j.isOpen).toBe(false);
    expect(errorOf(() => j.query()).code).toBe('CHANNEL_CLOSED');
    expect(errorOf(() => j.nextReaderSequence()).code).toBe('CHANNEL_CLOSED');
  });
});
