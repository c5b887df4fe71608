/**
 * Purchases and balance inquiries on bureau-issued cards, in process: the receipt, the APDU sequence
 * of one purchase, the journal rows and uplink records, certificates the issuer verifies, the card's
 * balance and log as `hilt balance` reads them (a long log through GET RESPONSE), several cards on
 * one journal, amounts written with the currency's minor units.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readPurseBalance, purchase, formatAmount, currencyByAlpha } from '../../../src/terminal/purse/index.js';
import { toHex } from '../../../src/util/bytes.js';
import { certificateFields, issueCard, issuerVerifies, openTerminal, SERIAL, Wire, type TestTerminal } from './helpers.js';

let term: TestTerminal;
beforeEach(async () => {
  term = await openTerminal();
});
afterEach(() => term.close());

describe('purse purchase, in process', () => {
  it('one purchase: the APDU sequence, the receipt, the journal row and its uplink record', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    const { receipt, recovered } = await purchase({ ...term, channel: wire }, 1250);
    expect(recovered).toEqual([]);
    // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS and DEBIT wrapped (84)
    expect(wire.log.map((x) => x.command.slice(0, 4))).toEqual(['00A4', '8050', '8482', '84B4', '8454']);
    expect(wire.log.every((x) => x.response.endsWith('9000'))).toBe(true);
    expect(receipt).toMatchObject({
      terminalId: 'TERM0001',
      readerId: 'R-01',
      readerSeq: 1,
      cardSerial: toHex(SERIAL).toUpperCase(),
      counter: 2, // the bureau's initial load was transaction 1
      amount: 1250,
      currency: 'JPY',
      balanceAfter: 48_750,
      amountText: 'JPY 1,250',
      balanceText: 'JPY 48,750',
      localTime: '2025-03-14 09:30:15 +09:00',
    });
    expect(toHex(receipt.dateTime)).toBe('20250314093015');
    const row = term.journal.get(receipt.journalId)!;
    expect(row).toMatchObject({ status: 'complete', counterBefore: 1, counterAfter: 2, amount: 1250, balanceAfter: 48_750 });
    expect(toHex(row.certificate!)).toBe(toHex(receipt.certificate));
    const queued = term.journal.outbox().filter((e) => e.record.kind === 'transaction');
    expect(queued).toHaveLength(1);
    expect(queued[0].record).toMatchObject({ status: 'complete', readerSeq: 1, certificate: toHex(receipt.certificate).toUpperCase() });
    expect(issuerVerifies(certificateFields(row, term.config), receipt.certificate)).toBe(true);
    expect(term.events.map((e) => e.kind)).toEqual(['complete']);
  });

  it('purchases move the balance, the counter and the log; balance inquiry reads them without keys', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    const amounts = [1250, 300, 7000, 1];
    for (const a of amounts) {
      term.clock.advance(60_000);
      await purchase({ ...term, channel: wire }, a);
    }
    const before = wire.count;
    const { status, log } = await readPurseBalance(wire);
    expect(wire.count - before).toBe(3); // SELECT, READ STATUS, READ LOG
    expect(status).toMatchObject({ active: true, counter: 5, balance: 50_000 - 8551, currency: 392, logCount: 5 });
    expect(toHex(status.serial)).toBe(toHex(SERIAL));
    expect(log.map((e) => [e.counter, e.type, e.amount, e.terminalSequence])).toEqual([
      [5, 'debit', 1, 4],
      [4, 'debit', 7000, 3],
      [3, 'debit', 300, 2],
      [2, 'debit', 1250, 1],
      [1, 'load', 50_000, 1],
    ]);
    // every journaled certificate is the card's and verifies for the issuer
    const rows = term.journal.query({ status: 'complete', order: 'asc' });
    expect(rows.map((r) => r.amount)).toEqual(amounts);
    for (const r of rows) {
      const logged = log.find((e) => e.terminalSequence === r.readerSeq && e.type === 'debit')!;
      expect(toHex(r.certificate!)).toBe(toHex(logged.certificate));
      expect(issuerVerifies(certificateFields(r, term.config), r.certificate!)).toBe(true);
    }
    expect(term.journal.summary()).toMatchObject({ byStatus: { complete: 4, pending: 0 }, lastReaderSeq: 4 });
  });

  it('a long log (more than 256 bytes) comes through GET RESPONSE in the clear and inside the session', async () => {
    const card = await issueCard({ maxPerTransaction: 100 });
    const wire = new Wire(card);
    for (let i = 0; i < 12; i++) await purchase({ ...term, channel: wire }, 10 + i);
    const { status, log } = await readPurseBalance(wire);
    expect(status.counter).toBe(13);
    expect(log).toHaveLength(10);
    expect(log[0]).toMatchObject({ counter: 13, amount: 21 });
    expect(wire.instructions).toContain('C0');
  });

  it('several cards, one journal: each card its own counter, keys and certificates', async () => {
    const a = await issueCard();
    const b = await issueCard({ serial: Uint8Array.of(0x48, 0x49, 0x4c, 0x54, 0, 0, 0, 2), initialLoad: 3000 });
    const ra = await purchase({ ...term, channel: new Wire(a) }, 500);
    const rb = await purchase({ ...term, channel: new Wire(b) }, 700);
    expect([ra.receipt.readerSeq, rb.receipt.readerSeq]).toEqual([1, 2]);
    expect(rb.receipt).toMatchObject({ cardSerial: '48494C5400000002', counter: 2, balanceAfter: 2300 });
    const rowB = term.journal.get(rb.receipt.journalId)!;
    expect(issuerVerifies(certificateFields(rowB, term.config, b.serial), rb.receipt.certificate)).toBe(true);
    // card A's serial does not make card B's certificate
    expect(issuerVerifies(certificateFields(rowB, term.config, a.serial), rb.receipt.certificate)).toBe(false);
  });

  it('formats amounts with the currency minor units', () => {
    expect(formatAmount(123456, currencyByAlpha('EUR'))).toBe('EUR 1,234.56');
    expect(formatAmount(5, currencyByAlpha('eur'))).toBe('EUR 0.05');
    expect(formatAmount(1_000_000, currencyByAlpha('JPY'))).toBe('JPY 1,000,000');
    expect(formatAmount(1250, currencyByAlpha('KWD'))).toBe('KWD 1.250');
  });
});
