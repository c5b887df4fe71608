/**
 * Property test: random sequences of journal operations (begin, the four resolutions, transitions out
 * of final states, bare sequence numbers, uplink acknowledgements and deferrals, negative-list deltas
 * good and bad, close and reopen) keep the invariants, checked after every step against a model:
 * - reader sequences are unique, rise with row ids, never exceed the stored counter, and the counter
 *   only grows (by one per allocation);
 * - each row's status is the model's; a row in a final state is never changed again;
 * - the outbox holds exactly one record per final row and none for pending rows, in id order;
 * - at most one pending row per card; the negative list version is the model's.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import {
  Journal,
  TransitionError,
  PendingTransactionError,
  NegativeListVersionError,
  type FinalStatus,
  type JournalRow,
  type TransactionStatus,
} from '../../../src/terminal/journal/index.js';
import { ProtocolError } from '../../../src/util/errors.js';
import { tempDir, openJournal, certFor, manualClock } from './helpers.js';

const CARDS = ['A0', 'A1', 'A2', 'A3'];
const FINALS: FinalStatus[] = ['complete', 'failed', 'never-happened', 'recovered'];

type Op =
  | { op: 'begin'; card: number; amount: number }
  | { op: 'resolve'; pick: number; to: FinalStatus }
  | { op: 'refinal'; pick: number; to: FinalStatus }
  | { op: 'seq' }
  | { op: 'send'; count: number; twice: boolean }
  | { op: 'defer'; ms: number }
  | { op: 'tick'; ms: number }
  | { op: 'delta'; skew: number; add: number[]; remove: number[] }
  | { op: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('begin' as const), card: fc.nat(CARDS.length - 1), amount: fc.integer({ min: 1, max: 5000 }) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('resolve' as const), pick: fc.nat(), to: fc.constantFrom(...FINALS) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('refinal' as const), pick: fc.nat(), to: fc.constantFrom(...FINALS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('seq' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('send' as const), count: fc.integer({ min: 1, max: 4 }), twice: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('defer' as const), ms: fc.integer({ min: 1, max: 10_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 10_000 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('delta' as const),
      skew: fc.constantFrom(0, 0, 0, -1, 1),
      add: fc.uniqueArray(fc.nat(7), { maxLength: 3 }),
      remove: fc.uniqueArray(fc.nat(7), { maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
);

interface Model {
  status: Map<number, TransactionStatus>;
  finalRows: Map<number, JournalRow>;
  lastSeq: number;
  negativeVersion: number;
}

function resolveRow(j: Journal, row: JournalRow, to: FinalStatus): JournalRow {
  switch (to) {
    case 'complete':
      return j.complete(row.id, { cardCounter: row.counterBefore + 1, certificate: certFor(row.readerSeq), balanceAfter: 100 });
    case 'recovered':
      return j.recover(row.id, { cardCounter: row.counterBefore + 1, certificate: certFor(row.readerSeq), balanceAfter: 100 });
    case 'failed':
      return j.fail(row.id, { error: 'refused by the card' });
    case 'never-happened':
      return j.neverHappened(row.id, { cardCounter: row.counterBefore });
  }
}

function checkInvariants(j: Journal, m: Model): void {
  const rows = j.query({ order: 'asc', limit: 100_000 });
  expect(rows.map((r) => r.id)).toEqual([...m.status.keys()].sort((a, b) => a - b));
  for (let i = 1; i < rows.length; i++) expect(rows[i].readerSeq).toBeGreaterThan(rows[i - 1].readerSeq);
  expect(j.lastReaderSequence()).toBe(m.lastSeq);
  if (rows.length) expect(rows[rows.length - 1].readerSeq).toBeLessThanOrEqual(m.lastSeq);
  const pendingPerCard = new Map<string, number>();
  for (const r of rows) {
    expect(r.status).toBe(m.status.get(r.id));
    if (r.status === 'pending') pendingPerCard.set(r.cardSerial, (pendingPerCard.get(r.cardSerial) ?? 0) + 1);
    else expect(r).toEqual(m.finalRows.get(r.id));
  }
  for (const n of pendingPerCard.values()) expect(n).toBe(1);
  const outbox = j.outbox({ limit: 100_000 });
  for (let i = 1; i < outbox.length; i++) expect(outbox[i].id).toBeGreaterThan(outbox[i - 1].id);
  const perRow = new Map<number, number>();
  for (const e of outbox) perRow.set(e.transactionId!, (perRow.get(e.transactionId!) ?? 0) + 1);
  for (const r of rows) expect(perRow.get(r.id) ?? 0).toBe(r.status === 'pending' ? 0 : 1);
  expect(outbox).toHaveLength(m.finalRows.size);
  expect(j.negativeListVersion()).toBe(m.negativeVersion);
  // What nextOutbound offers is a prefix of the waiting queue.
  const waiting = outbox.filter((e) => e.sentAt === null).map((e) => e.id);
  const offered = j.nextOutbound(1000).map((e) => e.id);
  expect(offered).toEqual(waiting.slice(0, offered.length));
}

function runOps(ops: Op[]): void {
  const t = tempDir('hilt-journal-prop-');
  const path = join(t.dir, 'j.db');
  const clock = manualClock();
  let j = openJournal(path, { clock: clock.now });
  const m: Model = { status: new Map(), finalRows: new Map(), lastSeq: 0, negativeVersion: 0 };
  try {
    for (const op of ops) {
      const rows = j.query({ order: 'asc', limit: 100_000 });
      const pending = rows.filter((r) => r.status === 'pending');
      const finals = rows.filter((r) => r.status !== 'pending');
      switch (op.op) {
        case 'begin': {
          const card = CARDS[op.card];
          const counter = j.cardHistory(card)?.lastCounter ?? 0;
          const hasPending = pending.some((r) => r.cardSerial === card);
          const input = { provider: 'emoney', type: 'purchase' as const, cardSerial: card, cardCounter: counter, amount: op.amount, currency: 'JPY' };
          if (hasPending) {
            expect(() => j.beginTransaction(input)).toThrow(PendingTransactionError);
          } else {
            const { id, readerSeq } = j.beginTransaction(input);
            expect(readerSeq).toBe(m.lastSeq + 1);
            m.lastSeq = readerSeq;
            m.status.set(id, 'pending');
          }
          break;
        }
        case 'resolve': {
          if (pending.length === 0) break;
          const row = pending[op.pick % pending.length];
          const after = resolveRow(j, row, op.to);
          m.status.set(row.id, op.to);
          m.finalRows.set(row.id, after);
          break;
        }
        case 'refinal': {
          if (finals.length === 0) break;
          const row = finals[op.pick % finals.length];
          expect(() => resolveRow(j, row, op.to)).toThrow(TransitionError);
          break;
        }
        case 'seq':
          expect(j.nextReaderSequence()).toBe(m.lastSeq + 1);
          m.lastSeq++;
          break;
        case 'send':
          for (const e of j.nextOutbound(op.count)) {
            expect(j.markSent(e.id, `H${e.id}`)).toBe('sent');
            if (op.twice) {
              expect(j.markSent(e.id, `H${e.id}`)).toBe('already-sent');
              expect(() => j.markSent(e.id, `X${e.id}`)).toThrow(ProtocolError);
            }
          }
          break;
        case 'defer': {
          const [head] = j.nextOutbound(1);
          if (head) {
            expect(j.deferOutbound(head.id, clock.now() + op.ms, 'host unreachable')).toBe(true);
            expect(j.nextOutbound(10)).toEqual([]);
            expect(j.outboundEntry(head.id)!.attempts).toBe(head.attempts + 1);
          }
          break;
        }
        case 'tick':
          clock.advance(op.ms);
          break;
        case 'delta': {
          const from = m.negativeVersion + op.skew;
          const add = op.add.filter((n) => !op.remove.includes(n)).map((n) => ({ cardSerial: `B${n}`, reason: 'lost' }));
          const delta = { fromVersion: Math.max(0, from), toVersion: Math.max(0, from) + 1, add, remove: op.remove.map((n) => `B${n}`) };
          if (delta.fromVersion === m.negativeVersion) {
            expect(j.applyNegativeDelta(delta).version).toBe(delta.toVersion);
            m.negativeVersion = delta.toVersion;
            for (const a of add) expect(j.isBlocked(a.cardSerial)).toBe(true);
            for (const r of delta.remove) expect(j.isBlocked(r)).toBe(false);
          } else {
            const before = j.negativeList();
            expect(() => j.applyNegativeDelta(delta)).toThrow(NegativeListVersionError);
            expect(j.negativeList()).toEqual(before);
          }
          break;
        }
        case 'reopen':
          j.close();
          j = openJournal(path, { clock: clock.now });
          break;
      }
      checkInvariants(j, m);
    }
  } finally {
    j.close();
    t.remove();
  }
}

describe('journal invariants under random operation sequences', () => {
  it('hold after every step', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        runOps(ops);
      }),
      { numRuns: 150 },
    );
  });
});
