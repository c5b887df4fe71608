/**
 * The load flow (src/terminal/purse/load.ts) against an in-process card and the real mock hosts on
 * loopback: an approved load credits the card and, after store-and-forward, the issuer's shadow
 * balance; a decline (issuer limits, a card on the issuer's negative file, the card's maximum
 * balance) credits nothing; a tampered cryptogram is refused by the card (69 88); a host that does
 * not answer gets no LOAD; a lost LOAD answer leaves the row pending until tear recovery.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CardRefusedError,
  IssuerUnavailableError,
  LoadDeclinedError,
  LoadInterruptedError,
  PurseRefusedError,
  loadPurse,
  purchase,
  recoverCard,
  type LoadReversalRequest,
} from '../../../src/terminal/purse/index.js';
import { RC } from '../../../src/hostlink/messages.js';
import { purseCardKey, testPurseMasterKey, verifyPurseCertificate } from '../../../src/crypto/purse-certificate.js';
import { toHex } from '../../../src/util/bytes.js';
import { adminGet, adminPost } from '../../hostlink/uplink/real-hosts.js';
import { purseDateTime } from '../../../src/terminal/purse/index.js';
import { issueCard, Wire } from './helpers.js';
import { cardBalance, forwardAndCount, issuerCard, loadSerial, openLoadBench, tamperedUplink, type LoadBench } from './load-helpers.js';

let bench: LoadBench | undefined;
afterEach(async () => {
  await bench?.close();
  bench = undefined;
});

/** The bureau loads 50,000 on issuance; the card holds at most 100,000. */
const START = 50_000;

/** The issuer's tally of reversed load authorizations of the terminal (admin /totals). */
async function loadReversals(b: LoadBench): Promise<{ count: number; amount: number }> {
  const { totals } = await adminGet<{ totals: { totals: { loadReversals: { count: number; amount: number } } }[] }>(b.hosts, '/totals?terminalId=TERM0001');
  return totals.reduce((t, x) => ({ count: t.count + x.totals.loadReversals.count, amount: t.amount + x.totals.loadReversals.amount }), { count: 0, amount: 0 });
}

describe('loadPurse', () => {
  it('approved: 5 APDUs, the card credits, the journal completes, the issuer applies it once and shadows the balance', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const serial = loadSerial(1);
    const card = await issueCard({ serial, initialLoad: START });
    const wire = new Wire(card);
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 7_000);

    expect(wire.count).toBe(5);
    expect(wire.instructions).toEqual(['A4', '50', '82', 'B4', '52']);
    expect(r.recovered).toEqual([]);
    expect(r.receipt).toMatchObject({
      terminalId: 'TERM0001',
      readerSeq: 1,
      cardSerial: toHex(serial).toUpperCase(),
      counter: 2,
      amount: 7_000,
      currency: 'JPY',
      balanceBefore: START,
      balanceAfter: START + 7_000,
      amountText: 'JPY 7,000',
      balanceText: 'JPY 57,000',
      localTime: '2025-03-14 09:30:15 +09:00',
    });
    expect(r.receipt.issuerReference).toMatch(/^\d{12}$/);
    expect(r.receipt.authorizationId).toMatch(/^\d{6}$/);
    expect(await cardBalance(card)).toBe(START + 7_000);

    // The card's certificate is the issuer's to verify: a LOAD record, this terminal, this sequence.
    const ok = verifyPurseCertificate(
      purseCardKey(testPurseMasterKey(), serial),
      {
        serial,
        counter: 2,
        type: 'load',
        amount: 7_000,
        currency: 392,
        terminalId: Uint8Array.from('TERM0001', (c) => c.charCodeAt(0)),
        terminalSequence: 1,
        dateTime: purseDateTime(r.receipt.time, term.config.utcOffsetMinutes),
        balanceAfter: START + 7_000,
      },
      r.receipt.certificate,
    );
    expect(ok).toBe(true);
    const row = term.journal.get(r.receipt.journalId)!;
    expect(row).toMatchObject({ type: 'load', status: 'complete', counterBefore: 1, counterAfter: 2, balanceAfter: START + 7_000 });
    expect(term.journal.outboundCount()).toBe(1);

    const count = await forwardAndCount(bench);
    expect(count).toMatchObject({ expected: 1, advices: 1, lost: 0, appliedTwice: 0 });
    expect(count.anomalies).toEqual({});
    expect(await issuerCard(bench.hosts, serial)).toMatchObject({ balance: START + 7_000, lastCounter: 2, records: 1 });

    // A purchase after it: the issuer chains the balances (no balance-mismatch anomaly).
    await purchase({ ...term, channel: wire }, 2_000);
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 2, lost: 0, appliedTwice: 0, anomalies: {} });
    expect(await issuerCard(bench.hosts, serial)).toMatchObject({ balance: START + 5_000, lastCounter: 3, records: 2 });
  });

  it("declined by the issuer's limits: the row fails with 61, nothing is credited, no LOAD is sent", async () => {
    bench = await openLoadBench({ issuerLimits: { maxLoad: 10_000 } });
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(2), initialLoad: START });
    const wire = new Wire(card);
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 20_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoadDeclinedError);
    expect(err).toMatchObject({ code: 'POLICY', responseCode: RC.exceedsLimit, journalId: 1, readerSeq: 1 });
    expect((err as Error).message).toMatch(/^declined by the issuer: 61 /);
    expect(wire.instructions).not.toContain('52');
    expect(await cardBalance(card)).toBe(START);
    expect(term.journal.get(1)).toMatchObject({ type: 'load', status: 'failed', error: expect.stringMatching(/^declined by the issuer: 61/) });
    expect(term.events.some((e) => e.kind === 'declined' && e.code === '61')).toBe(true);
    // The failed row goes to the issuer too; nothing moved there either.
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 1, lost: 0, appliedTwice: 0 });
    expect((await issuerCard(bench.hosts, loadSerial(2)))?.records ?? 0).toBe(0);
  });

  it("declined: a card on the issuer's negative file (14); the terminal's own file refuses before the host", async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const serial = loadSerial(3);
    const card = await issueCard({ serial, initialLoad: START });
    await adminPost(bench.hosts, '/negative-cards', { add: [{ serial: toHex(serial).toUpperCase(), reason: 'stolen' }] });
    const wire = new Wire(card);
    await expect(loadPurse({ ...term, channel: wire }, bench.uplink, 1_000)).rejects.toMatchObject({ code: 'POLICY', responseCode: RC.invalidCard });
    expect(await cardBalance(card)).toBe(START);

    // Once the terminal has the list, it refuses on its own: no row, no 0200.
    await bench.uplink.syncNegativeList();
    const before = term.journal.lastReaderSequence();
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 1_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PurseRefusedError);
    expect(err).toMatchObject({ reason: 'negative-file' });
    expect(term.journal.lastReaderSequence()).toBe(before);
    expect(await cardBalance(card)).toBe(START);
  });

  it("the terminal's policy: the card's maximum balance and the load limits are declined rows, the host is not asked", async () => {
    bench = await openLoadBench({ terminal: { limits: { perTransaction: 20_000, perCardPerDay: 40_000, perReaderPerDay: 1_000_000 } } });
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(4), initialLoad: START });
    const wire = new Wire(card);
    // 100,000 maximum balance on the card: 50,001 does not fit.
    await expect(loadPurse({ ...term, channel: wire }, bench.uplink, 50_001)).rejects.toMatchObject({ reason: 'max-balance' });
    expect(term.journal.get(1)).toMatchObject({ type: 'load', status: 'failed', error: expect.stringMatching(/max-balance/) });
    // Load limits are the config's loadLimits (default 50,000 per transaction), not the purchase limits.
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 30_000);
    expect(r.receipt.balanceAfter).toBe(80_000);
    expect(r.policy.cardSpentToday).toBe(0);
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 2, lost: 0, appliedTwice: 0 });
    expect(await cardBalance(card)).toBe(80_000);
  });

  it('load limits per card per day count completed loads only, in their own sum (purchases do not count)', async () => {
    bench = await openLoadBench({ terminal: { loadLimits: { perTransaction: 8_000, perCardPerDay: 10_000 } } });
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(11), initialLoad: START });
    const wire = new Wire(card);
    await expect(loadPurse({ ...term, channel: wire }, bench.uplink, 9_000)).rejects.toMatchObject({ reason: 'limit-per-transaction', message: expect.stringMatching(/above the load maximum per transaction JPY 8,000/) });
    await loadPurse({ ...term, channel: wire }, bench.uplink, 6_000);
    await purchase({ ...term, channel: wire }, 5_000);
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 5_000).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'limit-per-card-day', message: expect.stringMatching(/JPY 5,000 on top of JPY 6,000 today passes the card's daily load maximum JPY 10,000/) });
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 4_000);
    expect(r.policy).toMatchObject({ cardSpentToday: 6_000, readerSpentToday: 6_000 });
    expect(term.journal.query({ type: 'load', order: 'asc' }).map((x) => [x.status, x.amount])).toEqual([
      ['failed', 9_000],
      ['complete', 6_000],
      ['failed', 5_000],
      ['complete', 4_000],
    ]);
    expect(await cardBalance(card)).toBe(START + 6_000 - 5_000 + 4_000);
  });

  it('a tampered cryptogram: the card answers 6988, the row fails, the unused authorization is reversed at the issuer (0400)', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(5), initialLoad: START });
    const wire = new Wire(card);
    const err = await loadPurse({ ...term, channel: wire }, tamperedUplink(bench.uplink), 3_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CardRefusedError);
    expect(err).toMatchObject({ code: 'SW', sw: 0x6988, command: 'LOAD', journalId: 1 });
    expect((err as Error).message).toMatch(/LOAD answered 6988 load cryptogram does not verify/);
    expect(wire.instructions).toContain('52');
    expect(await cardBalance(card)).toBe(START);
    expect(term.journal.get(1)).toMatchObject({ status: 'failed', error: expect.stringMatching(/6988/) });
    expect(bench.uplink.reversals()).toMatchObject([{ readerSeq: 1, reason: 'not-loaded', status: 'reversed', responseCode: '00' }]);
    expect(term.events.filter((e) => e.kind === 'reversal').map((e) => [e.code, e.level])).toEqual([['card-refused', 'info']]);
    expect(await loadReversals(bench)).toEqual({ count: 1, amount: 3_000 });

    // The next load is a new reader sequence with a new cryptogram, and goes through.
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 3_000);
    expect(r.receipt).toMatchObject({ readerSeq: 2, counter: 2, balanceAfter: START + 3_000 });
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 2, lost: 0, appliedTwice: 0, anomalies: {} });
  });

  it('a 0210 that does not fit the row (another date-time): no LOAD, the row fails, the authorization is reversed', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(12), initialLoad: START });
    const wire = new Wire(card);
    const uplink = bench.uplink;
    const skewed = {
      authorizeLoad: async (id: number) => {
        const auth = await uplink.authorizeLoad(id);
        return auth.approved ? { ...auth, dateTime: purseDateTime(START + 60_000, term.config.utcOffsetMinutes) } : auth;
      },
      reverseLoad: (id: number) => uplink.reverseLoad(id),
    };
    const err = await loadPurse({ ...term, channel: wire }, skewed, 1_200).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PROTOCOL', message: expect.stringMatching(/does not fit the row: date-time/) });
    expect(wire.instructions).toEqual(['A4', '50', '82', 'B4']);
    expect(term.journal.get(1)).toMatchObject({ status: 'failed' });
    expect(uplink.reversals()).toMatchObject([{ readerSeq: 1, status: 'reversed' }]);
    expect(await loadReversals(bench)).toEqual({ count: 1, amount: 1_200 });
  });

  it('the reversal can be replaced (LoadOptions.reverse) and its failure does not hide the card refusal', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(9), initialLoad: START });
    const seen: LoadReversalRequest[] = [];
    const reverse = async (r: LoadReversalRequest) => {
      seen.push(r);
      throw new Error('reversal store is full');
    };
    await expect(loadPurse({ ...term, channel: new Wire(card) }, tamperedUplink(bench.uplink), 1_000, { reverse })).rejects.toMatchObject({ sw: 0x6988 });
    expect(seen).toEqual([{ reason: 'card-refused', journalId: 1, readerSeq: 1, cardSerial: toHex(loadSerial(9)).toUpperCase(), amount: 1_000, currency: 'JPY' }]);
    expect(term.events.filter((e) => e.kind === 'reversal').map((e) => [e.level, e.message])).toEqual([['warn', expect.stringMatching(/failed: reversal store is full/)]]);
    expect(bench.uplink.reversals()).toEqual([]);
  });

  it('no gateway: nothing went out, the row fails, no LOAD, nothing to reverse', async () => {
    bench = await openLoadBench({ requestTimeoutMs: 300 });
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(6), initialLoad: START });
    const wire = new Wire(card);
    await bench.hosts.close();
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 2_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IssuerUnavailableError);
    expect(err).toMatchObject({ journalId: 1, readerSeq: 1, reversal: null });
    expect((err as Error).message).toMatch(/^no load authorization from the issuer/);
    expect(wire.instructions).toEqual(['A4', '50', '82', 'B4']);
    expect(await cardBalance(card)).toBe(START);
    expect(term.journal.get(1)).toMatchObject({ type: 'load', status: 'failed' });
    expect(term.journal.pending()).toEqual([]);
    expect(bench.uplink.reversals()).toEqual([]);
  });

  it('the 0210 lost on its way back: in doubt, no LOAD, the row fails and the issuer reverses its approval', async () => {
    bench = await openLoadBench({ requestTimeoutMs: 400, relay: true });
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(10), initialLoad: START });
    const wire = new Wire(card);
    await bench.uplink.connect();
    bench.relay!.dropNextAnswer();
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 2_500).catch((e: unknown) => e);
    expect(bench.relay!.dropped).toBe(1);
    expect(err).toBeInstanceOf(IssuerUnavailableError);
    expect(err).toMatchObject({ code: 'TIMEOUT', journalId: 1, reversal: { readerSeq: 1, reason: 'no-answer' } });
    expect(wire.instructions).toEqual(['A4', '50', '82', 'B4']);
    expect(await cardBalance(card)).toBe(START);
    expect(term.journal.get(1)).toMatchObject({ status: 'failed' });
    // Sent once at once on a fresh session; forward() would retry it otherwise.
    await bench.uplink.forward({ untilEmpty: true });
    expect(bench.uplink.reversals()).toMatchObject([{ readerSeq: 1, status: 'reversed' }]);
    expect(await loadReversals(bench)).toEqual({ count: 1, amount: 2_500 });
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 1, lost: 0, appliedTwice: 0 });

    // The card loads fine on the next try.
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 2_500);
    expect(r.receipt).toMatchObject({ readerSeq: 2, balanceAfter: START + 2_500 });
  });

  it('the LOAD answer is lost: the row stays pending, recovery finds the LOAD in the card log, the issuer applies it once', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const serial = loadSerial(7);
    const card = await issueCard({ serial, initialLoad: START });
    const wire = new Wire(card);
    wire.cut = { at: 5, mode: 'answer-lost' };
    const err = await loadPurse({ ...term, channel: wire }, bench.uplink, 4_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoadInterruptedError);
    expect(err).toMatchObject({ code: 'CARD_REMOVED', journalId: 1, readerSeq: 1 });
    expect(term.journal.get(1)?.status).toBe('pending');
    // A pending row is not uplinked yet: nothing to forward.
    expect(term.journal.outboundCount()).toBe(0);
    wire.reinsert();
    const { outcomes } = await recoverCard(wire, term.domain, term.journal, term.config);
    expect(outcomes).toMatchObject([{ journalId: 1, type: 'load', resolution: 'recovered', counter: 2, balanceAfter: START + 4_000 }]);
    expect(await cardBalance(card)).toBe(START + 4_000);
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 1, lost: 0, appliedTwice: 0, anomalies: {} });
    expect(await issuerCard(bench.hosts, serial)).toMatchObject({ balance: START + 4_000, lastCounter: 2 });
  });

  it('the LOAD lost on its way: never happened; the next load recovers it first and then credits', async () => {
    bench = await openLoadBench();
    const { term } = bench;
    const card = await issueCard({ serial: loadSerial(8), initialLoad: START });
    const wire = new Wire(card);
    wire.cut = { at: 5, mode: 'request-lost' };
    await expect(loadPurse({ ...term, channel: wire }, bench.uplink, 4_000)).rejects.toBeInstanceOf(LoadInterruptedError);
    wire.reinsert();
    const r = await loadPurse({ ...term, channel: wire }, bench.uplink, 1_500);
    expect(r.recovered).toMatchObject([{ journalId: 1, type: 'load', resolution: 'never-happened', counter: 1 }]);
    expect(r.receipt).toMatchObject({ readerSeq: 2, counter: 2, balanceAfter: START + 1_500 });
    expect(await cardBalance(card)).toBe(START + 1_500);
    expect(await forwardAndCount(bench)).toMatchObject({ expected: 2, lost: 0, appliedTwice: 0 });
  });
});
