/**
 * Journal records as advices: every field the issuer checks, the certificate a card would have made
 * verifying against the advice's purse record, and records that cannot be sent.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Journal, TransactionRecord } from '../../../src/terminal/journal/index.js';
import { UplinkError, adviceInputOf, cutUtf8, localDateTime } from '../../../src/hostlink/uplink/index.js';
import { adviceRequest, parseAdviceRequest } from '../../../src/hostlink/messages.js';
import { pack, unpack } from '../../../src/hostlink/iso8583/packager.js';
import { purseCardKey, testPurseMasterKey, verifyPurseCertificate } from '../../../src/crypto/purse-certificate.js';
import { OFFSET_MINUTES, PROVIDER, READER, TERMINAL, cardSerial, fillPurchases, openJournal, tempDir } from './helpers.js';

let work: { dir: string; remove(): void };
let journal: Journal;
beforeEach(() => {
  work = tempDir();
  journal = openJournal(join(work.dir, 'journal.db'));
});
afterEach(() => {
  journal.close();
  work.remove();
});

const ctx = { terminalId: TERMINAL, utcOffsetMinutes: OFFSET_MINUTES };
const header = (stan: number) => ({ terminalId: TERMINAL, readerId: READER, stan, at: new Date(), keyVersion: 1 });
const records = (): TransactionRecord[] => journal.outbox({ limit: 100 }).map((e) => e.record as TransactionRecord);

describe('advice of a journal record', () => {
  it('a completed purchase: the purse record matches the card certificate and survives the wire', () => {
    fillPurchases(journal, 3);
    for (const r of records()) {
      const msg = adviceRequest(header(r.readerSeq), adviceInputOf(r, ctx));
      const back = parseAdviceRequest(unpack(pack(msg)).message);
      expect(back.outcome).toBe('complete');
      expect(back.header.stan).toBe(r.readerSeq);
      expect(back.amount).toEqual({ minor: r.amount, currency: '392' });
      const p = back.purse!;
      expect(p.counter).toBe(r.counterAfter);
      expect(p.balanceAfter).toBe(r.balanceAfter);
      expect(verifyPurseCertificate(purseCardKey(testPurseMasterKey(), p.serial), p, p.certificate)).toBe(true);
    }
  });

  it('the date-time is the row’s createdAt in local time', () => {
    expect(localDateTime(Date.UTC(2025, 2, 14, 16, 30, 15), 540)).toEqual({ year: 2025, month: 3, day: 15, hour: 1, minute: 30, second: 15 });
    expect(localDateTime(Date.UTC(2025, 0, 1, 0, 0, 0), -60)).toEqual({ year: 2024, month: 12, day: 31, hour: 23, minute: 0, second: 0 });
  });

  it('a failed purchase: no purse record, the counter the card showed, the note cut to 99 bytes', () => {
    const { id } = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: cardSerial(1), cardCounter: 6, amount: 50, currency: 'JPY' });
    journal.fail(id, { error: `card said no ${'é'.repeat(80)}`, cardCounter: 6 });
    const input = adviceInputOf(records()[0], ctx);
    expect(input.outcome).toBe('failed');
    expect(input.purse).toBeUndefined();
    expect(input.cardCounter).toBe(6);
    expect(new TextEncoder().encode(input.note).length).toBeLessThanOrEqual(99);
    expect(parseAdviceRequest(adviceRequest(header(1), input)).note).toBe(input.note);
  });

  it('cuts UTF-8 at a character boundary', () => {
    expect(cutUtf8('abc', 5)).toBe('abc');
    expect(cutUtf8('aéé', 4)).toBe('aé');
    expect(cutUtf8('😀😀', 5)).toBe('😀');
  });

  it('refuses another terminal’s record and a currency without a numeric code', () => {
    fillPurchases(journal, 1);
    const r = records()[0];
    expect(() => adviceInputOf(r, { ...ctx, terminalId: 'OTHER' })).toThrow(UplinkError);
    expect(() => adviceInputOf({ ...r, currency: 'XTS' }, ctx)).toThrow(/cannot go to the host/);
    expect(() => adviceInputOf({ ...r, certificate: null }, ctx)).toThrow(/without its certificate/);
  });
});
