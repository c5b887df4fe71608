/**
 * Tear recovery decisions, one by one: a lost DEBIT answer is recovered from the card's log with its
 * certificate (also after the terminal restarts), a DEBIT that never reached the card never
 * happened, a card used elsewhere meanwhile is flagged, a card whose log no longer covers the
 * pending debit is left to the issuer, and a log record that disagrees with the journal decides
 * nothing. Never a second DEBIT for one row.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytesEqual, toHex } from '../../../src/util/bytes.js';
import { PurchaseInterruptedError, PurseRefusedError, openPurseJournal, purchase, readPurseBalance, recoverCard, terminalIdBytes } from '../../../src/terminal/purse/index.js';
import { certificateFields, issueCard, issuerVerifies, openTerminal, Wire, type TestTerminal } from './helpers.js';
import type { BureauCard } from '../../../emulator/bureau.js';

let term: TestTerminal;
beforeEach(async () => {
  term = await openTerminal({ limits: { perTransaction: 20_000, perCardPerDay: 1_000_000, perReaderPerDay: 1_000_000 } });
});
afterEach(() => term.close());

const DEBIT_APDU = 5; // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS, DEBIT

async function tornPurchase(wire: Wire, amount: number, mode: 'request-lost' | 'answer-lost', t: TestTerminal = term): Promise<PurchaseInterruptedError> {
  wire.cut = { at: wire.count + DEBIT_APDU, mode };
  const e = await purchase({ ...t, channel: wire }, amount).catch((err: unknown) => err);
  expect(e).toBeInstanceOf(PurchaseInterruptedError);
  wire.reinsert();
  return e as PurchaseInterruptedError;
}

/** This terminal's debits in the card's log, by reader sequence number, newest first. */
async function debitsOf(card: BureauCard): Promise<number[]> {
  const { log } = await readPurseBalance(new Wire(card));
  const tid = terminalIdBytes(term.config.terminalId);
  return log.filter((e) => e.type === 'debit' && bytesEqual(e.terminalId, tid)).map((e) => e.terminalSequence);
}

describe('tear recovery', () => {
  it('answer lost: the row stays pending; the next presentation recovers it from the log, certificate included', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    const torn = await tornPurchase(wire, 3000, 'answer-lost');
    expect(torn).toMatchObject({ code: 'CARD_REMOVED', journalId: 1, readerSeq: 1 });
    expect(term.journal.pending().map((r) => r.id)).toEqual([1]);
    expect(term.events.at(-1)).toMatchObject({ kind: 'interrupted', journalId: 1 });

    const { receipt, recovered } = await purchase({ ...term, channel: wire }, 500);
    expect(recovered).toMatchObject([{ journalId: 1, readerSeq: 1, resolution: 'recovered', counter: 2, balanceAfter: 47_000 }]);
    expect(receipt).toMatchObject({ readerSeq: 2, counter: 3, balanceAfter: 46_500 });
    const row = term.journal.get(1)!;
    expect(row).toMatchObject({ status: 'recovered', counterAfter: 2, balanceAfter: 47_000 });
    expect(issuerVerifies(certificateFields(row, term.config), row.certificate!)).toBe(true);
    expect(toHex(recovered[0].certificate!)).toBe(toHex(row.certificate!));
    expect(term.journal.outbox().map((x) => x.record.kind === 'transaction' && x.record.status)).toEqual(['recovered', 'complete']);
    expect(await debitsOf(card)).toEqual([2, 1]); // one DEBIT per row, never a second one for row 1
  });

  it('request lost: the DEBIT never reached the card; never-happened, the next purchase takes a new sequence number', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    await tornPurchase(wire, 3000, 'request-lost');
    const before = wire.log.length;
    const { receipt, recovered } = await purchase({ ...term, channel: wire }, 500);
    // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS, READ LOG, DEBIT
    expect(wire.log.slice(before).map((x) => x.command.slice(2, 4))).toEqual(['A4', '50', '82', 'B4', 'B2', '54']);
    expect(recovered).toMatchObject([{ journalId: 1, resolution: 'never-happened', counter: 1, certificate: null }]);
    expect(term.journal.get(1)).toMatchObject({ status: 'never-happened', counterAfter: 1 });
    expect(receipt).toMatchObject({ readerSeq: 2, counter: 2, balanceAfter: 49_500 });
    expect(await debitsOf(card)).toEqual([2]);
    expect(term.events.map((e) => e.kind)).toEqual(['interrupted', 'never-happened', 'complete']);
  });

  it('the terminal restarts between the lost answer and the next presentation: the journal on disk is enough', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    await tornPurchase(wire, 3000, 'answer-lost');
    term.journal.close();
    const reopened = openPurseJournal(term.journalPath, term.config);
    try {
      const r = await recoverCard(wire, term.domain, reopened, term.config);
      expect(r.outcomes).toMatchObject([{ resolution: 'recovered', counter: 2 }]);
      expect(reopened.pending()).toEqual([]);
      // recovering again finds nothing to do and sends nothing past READ STATUS
      const before = wire.log.length;
      expect((await recoverCard(wire, term.domain, reopened, term.config)).outcomes).toEqual([]);
      expect(wire.log.slice(before).map((x) => x.command.slice(2, 4))).toEqual(['A4', '50', '82', 'B4']);
    } finally {
      reopened.close();
    }
  });

  it('the card was used elsewhere while this terminal held a pending row: resolved, and the gap flagged', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    await tornPurchase(wire, 3000, 'request-lost');
    const other = await openTerminal({ terminalId: 'TERM0002', readerId: 'R-02' });
    try {
      await purchase({ ...other, channel: new Wire(card) }, 100);
      await purchase({ ...other, channel: new Wire(card) }, 100);
    } finally {
      other.close();
    }
    const r = await recoverCard(wire, term.domain, term.journal, term.config);
    expect(r.outcomes).toMatchObject([{ resolution: 'never-happened', counter: 3 }]);
    expect(term.journal.anomalies()).toMatchObject([{ kind: 'gap', counter: 3, lastCounter: 1 }]);
  });

  it('the card made more than 10 transactions since: the pending row cannot be decided here; left pending, flagged, refused', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    await tornPurchase(wire, 3000, 'answer-lost');
    const other = await openTerminal({ terminalId: 'TERM0002', readerId: 'R-02' });
    try {
      for (let i = 0; i < 10; i++) await purchase({ ...other, channel: new Wire(card) }, 10);
    } finally {
      other.close();
    }
    const before = wire.log.length;
    const e = await purchase({ ...term, channel: wire }, 500).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(PurseRefusedError);
    expect(e).toMatchObject({ code: 'POLICY', reason: 'pending-undecidable' });
    expect(term.journal.pending()).toHaveLength(1);
    expect(term.journal.anomalies()[0]).toMatchObject({ kind: 'other', transactionId: 1 });
    // the full log (500 bytes, encrypted: 61xx and GET RESPONSE), and no DEBIT
    expect(wire.log.slice(before).map((x) => x.command.slice(2, 4))).toEqual(['A4', '50', '82', 'B4', 'B2', 'C0', 'C0']);
  });

  it('a pending row whose sequence number the log holds with another amount: nothing decided, anomaly', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    await tornPurchase(wire, 3000, 'answer-lost');
    // A second journal of the same terminal (a restored backup) holds another request under seq 1.
    const twin = await openTerminal({ journalFile: 'twin.db', dir: term.dir });
    try {
      twin.journal.beginTransaction({ provider: 'emoney', type: 'purchase', cardSerial: card.serial, cardCounter: 1, amount: 2999, currency: 'JPY' });
      await expect(recoverCard(wire, twin.domain, twin.journal, twin.config)).rejects.toMatchObject({ code: 'PROTOCOL' });
      expect(twin.journal.pending()).toHaveLength(1);
      expect(twin.journal.anomalies()[0]).toMatchObject({ kind: 'other', details: { loggedAmount: 3000 } });
    } finally {
      twin.close();
    }
  });
});
