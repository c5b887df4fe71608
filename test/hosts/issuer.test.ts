/**
 * The e-money issuer's judgement, over loopback: serial-number coherence per card (counter) and per
 * reader (sequence) with the anomalies of issuer.ts, certificate checks, limits, exactly-once under
 * concurrency, and group commit (many terminals, few commits).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RC, adviceRequest, loadAuthorizationRequest, parseLoadAuthorizationResponse } from '../../src/hostlink/messages.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { JPY, LOCAL, SERIAL, adminGet, adminPost, certifiedRecord, completedAdvice, enrolledTerminal, startTestHosts, type TestHosts, type TestTerminal } from './helpers.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';

let h: TestHosts | null = null;
afterEach(async () => {
  await h?.cleanup();
  h = null;
});

interface Anomaly {
  kind: string;
  serial: string | null;
  readerSequence: number | null;
  counter: number | null;
  details: Record<string, unknown>;
}

async function anomalies(hosts: TestHosts, query = ''): Promise<Anomaly[]> {
  return (await adminGet<{ anomalies: Anomaly[] }>(hosts, `/anomalies${query}`)).body.anomalies;
}

async function setup(limits?: Record<string, number>): Promise<{ hosts: TestHosts; a: TestTerminal; b: TestTerminal }> {
  const hosts = await startTestHosts(limits === undefined ? {} : { limits });
  h = hosts;
  return { hosts, a: await enrolledTerminal(hosts, 'TA', 'RA'), b: await enrolledTerminal(hosts, 'TB', 'RB') };
}

const rc = async (t: TestTerminal, m: IsoMessage) => (await t.request(m)).responseCode();

describe('card counters', () => {
  it('a gap is reported, a late advice fills it (no new anomaly), the shadow balance follows the highest counter', async () => {
    const { hosts, a, b } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    expect(await rc(a, completedAdvice(a, { stan: 2, counter: 3, amount: 100, balanceAfter: 700 }))).toBe(RC.approved);
    expect(await anomalies(hosts)).toMatchObject([{ kind: 'card-gap', counter: 3, details: { from: 2, to: 2 } }]);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 700, lastCounter: 3, missingCounters: [{ from: 2, to: 2 }] });
    // Counter 2 was spent at terminal B, which forwards later.
    expect(await rc(b, completedAdvice(b, { stan: 1, counter: 2, amount: 100, balanceAfter: 800 }))).toBe(RC.approved);
    expect((await anomalies(hosts)).map((x) => x.kind)).toEqual(['card-gap']);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 700, lastCounter: 3, missingCounters: [], records: 3 });
  });

  it('the same counter certified twice (a clone) is a repeat and does not move the shadow balance', async () => {
    const { hosts, a, b } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    expect(await rc(b, completedAdvice(b, { stan: 1, counter: 1, amount: 300, balanceAfter: 700 }))).toBe(RC.approved);
    expect((await anomalies(hosts)).map((x) => [x.kind, x.counter])).toEqual([['card-repeat', 1]]);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 900, lastCounter: 1, records: 2 });
  });

  it('a card showing a counter below its highest certified one: a load is declined 05 (rollback); a failed advice reports it', async () => {
    const { hosts, a } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 5, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    const res = parseLoadAuthorizationResponse(await a.request(loadAuthorizationRequest(a.header(2), { serial: SERIAL, amount: { minor: 100, currency: JPY }, cardCounter: 3, dateTime: LOCAL })));
    expect(res.responseCode).toBe(RC.doNotHonour);
    const failed = adviceRequest(a.header(3), { kind: 'purchase', outcome: 'failed', serial: SERIAL, amount: { minor: 10, currency: JPY }, dateTime: LOCAL, cardCounter: 2, note: 'card pulled' });
    expect(await rc(a, failed)).toBe(RC.approved);
    // (STAN 2's advice has not come: a reader gap too.)
    expect((await anomalies(hosts, '?kind=card-rollback')).map((x) => [x.kind, x.counter])).toEqual([
      ['card-rollback', 3],
      ['card-rollback', 2],
    ]);
  });

  it('certified balances that do not chain are a mismatch', async () => {
    const { hosts, a } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    expect(await rc(a, completedAdvice(a, { stan: 2, counter: 2, amount: 100, balanceAfter: 850 }))).toBe(RC.approved);
    expect(await anomalies(hosts)).toMatchObject([{ kind: 'balance-mismatch', counter: 2, details: { neighbour: 1, neighbourBalance: 900, balanceAfter: 850 } }]);
  });
});

describe('certificates, blocked cards, unauthorized loads', () => {
  it('a certificate that does not verify: 12, recorded, never applied; its repeat gets 12 again', async () => {
    const { hosts, a } = await setup();
    const purse = certifiedRecord({ counter: 1, type: 'debit', amount: 100, terminalId: 'TA', terminalSequence: 1, balanceAfter: 900 });
    purse.certificate[0] ^= 1;
    const forged = adviceRequest(a.header(1), { kind: 'purchase', outcome: 'complete', serial: SERIAL, amount: { minor: 100, currency: JPY }, dateTime: LOCAL, purse });
    expect(await rc(a, forged)).toBe(RC.invalidTransaction);
    expect(await rc(a, forged.withMti('0221'))).toBe(RC.invalidTransaction);
    expect((await anomalies(hosts)).map((x) => x.kind)).toEqual(['bad-certificate']);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: null, records: 0 });
    const totals = (await adminGet<{ totals: { totals: { purchases: unknown } }[] }>(hosts, '/totals')).body.totals;
    expect(totals[0].totals.purchases).toEqual({ count: 0, amount: 0 });
  });

  it('value moved on a card of the negative file: accepted (it happened) and reported', async () => {
    const { hosts, a } = await setup();
    await adminPost(hosts, '/negative-cards', { add: [{ serial: toHex(SERIAL), reason: 'stolen' }] });
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    expect((await anomalies(hosts)).map((x) => x.kind)).toEqual(['blocked-card']);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ blocked: { reason: 'stolen', version: 1 }, balance: 900 });
  });

  it('a certified load without an approved authorization is reported', async () => {
    const { hosts, a } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, kind: 'load', counter: 1, amount: 500, balanceAfter: 500 }))).toBe(RC.approved);
    expect(await anomalies(hosts)).toMatchObject([{ kind: 'unauthorized-load', details: { authorization: null } }]);
  });
});

describe('reader sequences', () => {
  it('missing numbers are a gap; a late one fills it', async () => {
    const { hosts, a } = await setup();
    for (const [stan, counter] of [
      [1, 1],
      [2, 2],
      [5, 3],
    ]) {
      expect(await rc(a, completedAdvice(a, { stan, counter, amount: 1, balanceAfter: 1000 - counter }))).toBe(RC.approved);
    }
    expect(await anomalies(hosts, '?kind=reader-gap')).toMatchObject([{ readerSequence: 5, details: { from: 3, to: 4 } }]);
    const seq = async () => (await adminGet<{ sequences: { terminalId: string; missing: unknown }[] }>(hosts, '/sequences')).body.sequences.find((s) => s.terminalId === 'TA');
    expect((await seq())?.missing).toEqual([{ from: 3, to: 4 }]);
    const failed = adviceRequest(a.header(3), { kind: 'purchase', outcome: 'never-happened', serial: SERIAL, amount: { minor: 1, currency: JPY }, dateTime: LOCAL });
    expect(await rc(a, failed)).toBe(RC.approved);
    expect((await seq())?.missing).toEqual([{ from: 4, to: 4 }]);
    const reader = (await adminGet<{ sequence: unknown }>(hosts, '/readers/RA')).body.sequence;
    expect(reader).toMatchObject({ lastSequence: 5, advices: 4, missing: [{ from: 4, to: 4 }] });
  });

  it('a sequence number used again for another transaction: 12 and a repeat anomaly, nothing applied', async () => {
    const { hosts, a } = await setup();
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 }))).toBe(RC.approved);
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 2, amount: 100, balanceAfter: 800 }))).toBe(RC.invalidTransaction);
    expect((await anomalies(hosts)).map((x) => x.kind)).toEqual(['reader-repeat']);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 900, records: 1 });
  });
});

describe('load limits', () => {
  it('shadow balance + amount above the maximum balance, and the daily load limit: 61', async () => {
    const { a } = await setup({ maxLoad: 1_000, maxBalance: 2_000, dailyLoadLimit: 1_500 });
    const ask = async (stan: number, serial: Uint8Array, minor: number, counter: number) =>
      parseLoadAuthorizationResponse(await a.request(loadAuthorizationRequest(a.header(stan), { serial, amount: { minor, currency: JPY }, cardCounter: counter, dateTime: LOCAL }))).responseCode;
    expect(await rc(a, completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 1_500 }))).toBe(RC.approved);
    expect(await ask(2, SERIAL, 600, 1)).toBe(RC.exceedsLimit); // 1500 + 600 > 2000
    expect(await ask(3, SERIAL, 500, 1)).toBe(RC.approved);
    const other = fromHex('0102');
    expect(await ask(4, other, 1_000, 0)).toBe(RC.approved);
    expect(await ask(5, other, 600, 0)).toBe(RC.exceedsLimit); // 1000 + 600 > 1500 today
    expect(await ask(6, other, 1_001, 0)).toBe(RC.exceedsLimit); // above maxLoad
  });
});

describe('concurrency', () => {
  it('the same advice on two connections at once is applied once: one 00, one 94', async () => {
    const { hosts, a } = await setup();
    const { TestTerminal } = await import('./helpers.js');
    const a2 = await TestTerminal.connect(hosts, 'TA', 'RA');
    const m = completedAdvice(a, { stan: 1, counter: 1, amount: 100, balanceAfter: 900 });
    const codes = await Promise.all([rc(a, m), rc(a2, m.withMti('0221'))]);
    expect(codes.sort()).toEqual([RC.approved, RC.duplicate]);
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ records: 1 });
    await a2.close();
  });

  it('10 terminals at once: every advice applied, in fewer commits than advices (group commit)', async () => {
    const hosts = await startTestHosts();
    h = hosts;
    const terminals = await Promise.all(Array.from({ length: 10 }, (_, i) => enrolledTerminal(hosts, `T${i}`, `R${i}`)));
    const before = hosts.issuer.stats.batches;
    const PER = 20;
    await Promise.all(
      terminals.map(async (t, i) => {
        const serial = Uint8Array.of(0x10, i);
        for (let s = 1; s <= PER; s++) expect(await rc(t, completedAdvice(t, { stan: s, counter: s, amount: 1, balanceAfter: 1000 - s, serial }))).toBe(RC.approved);
      }),
    );
    const commits = hosts.issuer.stats.batches - before;
    expect(commits).toBeLessThan(10 * PER);
    expect(hosts.issuer.stats.largestBatch).toBeGreaterThan(1);
    for (let i = 0; i < 10; i++) expect((await adminGet(hosts, `/cards/${toHex(Uint8Array.of(0x10, i))}`)).body).toMatchObject({ records: PER, balance: 1000 - PER });
    expect(await anomalies(hosts)).toEqual([]);
    await Promise.all(terminals.map((t) => t.close()));
  });
});
