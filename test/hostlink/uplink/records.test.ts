/**
 * Journal records as advices: every field the issuer checks, the certificate a card would have made
 * verifying against the advice's purse record, and records that cannot be sent. Anomaly records as
 * anomaly reports (0620), their details cut to fit.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { AnomalyRecord, Journal, TransactionRecord } from '../../../src/terminal/journal/index.js';
import { UplinkError, adviceInputOf, anomalyReportInputOf, cutUtf8, fitAnomalyDetails, localDateTime } from '../../../src/hostlink/uplink/index.js';
import { ANOMALY_DETAILS_MAX, adviceRequest, anomalyReportRequest, parseAdviceRequest, parseAnomalyReportRequest } from '../../../src/hostlink/messages.js';
import { fromHex } from '../../../src/util/bytes.js';
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

describe('anomaly report of a journal anomaly record', () => {
  const anomalyRecord = (): AnomalyRecord => journal.outbox({ limit: 100 }).map((e) => e.record).find((r): r is AnomalyRecord => r.kind === 'anomaly')!;

  it('carries kind, serial, counters, the transaction’s reader sequence and the details, and survives the wire', () => {
    const [seq] = fillPurchases(journal, 1, { cards: 1 });
    const row = journal.query({ limit: 1 })[0];
    const a = journal.recordAnomaly({ kind: 'repeat', cardSerial: cardSerial(0), counter: 1, lastCounter: 3, transactionId: row.id, details: { balance: 900, replayed: true } });
    const input = anomalyReportInputOf(anomalyRecord(), ctx);
    expect(input).toEqual({ kind: 'repeat', serial: fromHex(cardSerial(0)), dateTime: localDateTime(a.createdAt, OFFSET_MINUTES), cardCounter: 1, lastCounter: 3, readerSequence: seq, details: { balance: 900, replayed: true } });
    const back = parseAnomalyReportRequest(unpack(pack(anomalyReportRequest(header(a.id), input))).message);
    expect(back).toMatchObject({ ...input, header: { stan: a.id } });
    expect(() => anomalyReportInputOf({ ...anomalyRecord(), terminalId: 'OTHER' }, ctx)).toThrow(UplinkError);
  });

  it('details longer than 48 DF63 holds are cut in order, with the count left out', () => {
    const long = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'x'.repeat(30)]));
    const fitted = fitAnomalyDetails(long);
    expect(new TextEncoder().encode(JSON.stringify(fitted)).length).toBeLessThanOrEqual(ANOMALY_DETAILS_MAX);
    const kept = Object.keys(fitted).filter((k) => k !== 'cut');
    expect(kept).toEqual(Object.keys(long).slice(0, kept.length));
    expect(fitted.cut).toBe(40 - kept.length);
    expect(kept.length).toBeGreaterThan(20);
    expect(fitAnomalyDetails({ a: 1 })).toEqual({ a: 1 });
    journal.recordAnomaly({ kind: 'other', cardSerial: cardSerial(1), details: long });
    expect(() => anomalyReportRequest(header(1), anomalyReportInputOf(anomalyRecord(), ctx))).not.toThrow();
  });
});
