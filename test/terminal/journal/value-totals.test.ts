/**
 * Journal.valueTotals: what moved value (complete, recovered) per currency and type over a range of
 * reader sequences, the terminal's side of a reconciliation (src/hostlink/uplink/reconcile.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { certFor, openJournal, tempDir } from './helpers.js';

let work: { dir: string; remove(): void };
let j: Journal;

beforeEach(() => {
  work = tempDir('hilt-journal-totals-');
  j = openJournal(join(work.dir, 'j.db'));
});
afterEach(() => {
  j.close();
  work.remove();
});

type End = 'complete' | 'recovered' | 'failed' | 'never-happened' | 'pending';

function row(type: 'purchase' | 'load' | 'refund', amount: number, currency: string, end: End, card = 'C0DE0001'): number {
  const counter = j.cardHistory(card)?.lastCounter ?? 0;
  const { id, readerSeq } = j.beginTransaction({ provider: 'emoney', type, cardSerial: card, cardCounter: counter, amount, currency });
  if (end === 'complete') j.complete(id, { cardCounter: counter + 1, certificate: certFor(readerSeq), balanceAfter: 1000 });
  if (end === 'recovered') j.recover(id, { cardCounter: counter + 1, certificate: certFor(readerSeq), balanceAfter: 1000 });
  if (end === 'failed') j.fail(id, { error: 'refused by the card' });
  if (end === 'never-happened') j.neverHappened(id, { cardCounter: counter });
  return readerSeq;
}

describe('valueTotals', () => {
  it('counts and sums only rows that moved value, per currency and type, within the range', () => {
    row('purchase', 100, 'JPY', 'complete'); // 1
    row('purchase', 200, 'JPY', 'recovered'); // 2
    row('purchase', 400, 'JPY', 'failed'); // 3
    row('load', 1000, 'JPY', 'complete'); // 4
    row('refund', 50, 'JPY', 'complete'); // 5
    row('purchase', 7, 'EUR', 'complete', 'C0DE0002'); // 6
    row('purchase', 800, 'JPY', 'never-happened'); // 7
    row('purchase', 1600, 'JPY', 'complete'); // 8
    row('purchase', 3200, 'JPY', 'pending'); // 9
    expect(j.valueTotals(1, 9)).toEqual([
      { currency: 'EUR', type: 'purchase', count: 1, amount: 7 },
      { currency: 'JPY', type: 'load', count: 1, amount: 1000 },
      { currency: 'JPY', type: 'purchase', count: 3, amount: 1900 },
      { currency: 'JPY', type: 'refund', count: 1, amount: 50 },
    ]);
    expect(j.valueTotals(2, 7)).toEqual([
      { currency: 'EUR', type: 'purchase', count: 1, amount: 7 },
      { currency: 'JPY', type: 'load', count: 1, amount: 1000 },
      { currency: 'JPY', type: 'purchase', count: 1, amount: 200 },
      { currency: 'JPY', type: 'refund', count: 1, amount: 50 },
    ]);
    expect(j.valueTotals(10, 20)).toEqual([]);
  });

  it('refuses a range that ends before it starts', () => {
    expect(() => j.valueTotals(5, 4)).toThrow(/last reader sequence/);
  });
});
