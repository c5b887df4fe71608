/**
 * Every message type over loopback, terminal side on IsoChannel as the uplink uses it, host side the
 * real hosts (gateway, registry, issuer) on SQLite in a temporary folder: 0800 (enrolment, sign-on
 * challenge and proof, echo, key change, sign-off), 0200/0210, 0220/0221/0230, 0400/0401/0410,
 * 0300/0310, 0500/0510, 0620/0621/0630. What the hosts stored is checked through the admin API.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  RC,
  anomalyReportRequest,
  echoRequest,
  keyChangeRequest,
  loadAuthorizationRequest,
  negativeListRequest,
  parseAdviceResponse,
  parseAnomalyReportResponse,
  parseLoadAuthorizationResponse,
  parseNegativeListResponse,
  parseNetworkResponse,
  parseReconciliationResponse,
  parseReversalResponse,
  reconciliationRequest,
  reversalRequest,
  signOffRequest,
  transmissionDateTime,
  type AnomalyReportInput,
  type NegativeListChange,
  type ReconciliationTotals,
} from '../../src/hostlink/messages.js';
import { unwrapKey } from '../../src/hostlink/iso8583/mac.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { testTerminalKek } from '../../src/hostlink/test-keys.js';
import { encodePurseDateTime, purseCardKey, testPurseMasterKey, verifyLoadCryptogram } from '../../src/crypto/purse-certificate.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { AT, JPY, LOCAL, SERIAL, adminGet, adminPost, completedAdvice, enrolledTerminal, field41, startTestHosts, terminalKey, TestTerminal, type TestHosts } from './helpers.js';

let h: TestHosts;
beforeEach(async () => {
  h = await startTestHosts();
});
afterEach(async () => {
  await h.cleanup();
});

const T = 'TERM0001';
const R = 'READER01';

describe('0800 network management', () => {
  it('enrolment with an operator code: 00, the reader is enrolled with its key and signed on', async () => {
    const t = await enrolledTerminal(h, T, R);
    const r = await adminGet<{ status: string; publicKey: string; signedOnUntil: number | null }>(h, `/readers/${R}`);
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('enrolled');
    expect(r.body.publicKey).toBe(toHex(t.publicKey as Uint8Array));
    expect(r.body.signedOnUntil).toBeGreaterThan(Date.now());
    await t.close();
  });

  it('sign-on: challenge (16 bytes) then proof: 00; echo: 00; sign-off: 00, then echo: 76', async () => {
    const t = await enrolledTerminal(h, T, R);
    expect(await t.signOn()).toBe(RC.approved);
    const echo = parseNetworkResponse(await t.request(echoRequest(t.header(t.nextStan()))));
    expect(echo.responseCode).toBe(RC.approved);
    expect(echo.code).toBe('echo');
    const off = parseNetworkResponse(await t.request(signOffRequest(t.header(t.nextStan()))));
    expect(off.responseCode).toBe(RC.approved);
    const after = parseNetworkResponse(await t.request(echoRequest(t.header(t.nextStan()))));
    expect(after.responseCode).toBe(RC.readerNotSignedOn);
    expect(await t.signOn()).toBe(RC.approved);
    expect(parseNetworkResponse(await t.request(echoRequest(t.header(t.nextStan())))).responseCode).toBe(RC.approved);
    await t.close();
  });

  it('key change: the new key comes wrapped under the KEK; the terminal moves to it and the old version stops working', async () => {
    const t = await enrolledTerminal(h, T, R);
    const res = parseNetworkResponse(await t.request(keyChangeRequest(t.header(t.nextStan()))));
    expect(res.responseCode).toBe(RC.approved);
    expect(res.header.keyVersion).toBe(1); // the 0810 is MACed with the old key
    const kc = res.keyChange;
    expect(kc?.newKeyVersion).toBe(2);
    const key = unwrapKey(testTerminalKek(T), kc!.key.wrapped, kc!.key.kcv);
    expect(key).toEqual(terminalKey(T, 2));
    expect(h.registry.keyVersions(T)).toEqual({ current: 1, pending: 2 });
    // Still version 1 until the terminal uses 2.
    expect(parseNetworkResponse(await t.request(echoRequest(t.header(t.nextStan())))).responseCode).toBe(RC.approved);
    t.keys.set(2, key);
    t.keyVersion = 2;
    const echo = parseNetworkResponse(await t.request(echoRequest(t.header(t.nextStan()))));
    expect(echo.responseCode).toBe(RC.approved);
    expect(echo.header.keyVersion).toBe(2);
    expect(h.registry.keyVersions(T)).toEqual({ current: 2, pending: null });
    // Version 1 has no key any more: the host cannot answer it and closes the connection.
    t.keyVersion = 1;
    await expect(t.request(echoRequest(t.header(t.nextStan())))).rejects.toThrow();
    await t.close();
  });
});

describe('0200 / 0210 load authorization', () => {
  it('approves with an issuer reference and a load cryptogram the card verifies; a repeat gets the same answer', async () => {
    const t = await enrolledTerminal(h, T, R);
    const req = loadAuthorizationRequest(t.header(7), { serial: SERIAL, amount: { minor: 5000, currency: JPY }, cardCounter: 3, dateTime: LOCAL });
    const res = parseLoadAuthorizationResponse(await t.request(req));
    expect(res.responseCode).toBe(RC.approved);
    expect(res.issuerReference).toMatch(/^[0-9]{12}$/);
    expect(res.authorizationId).toMatch(/^[0-9]{6}$/);
    const key = purseCardKey(testPurseMasterKey(), SERIAL);
    const fields = {
      serial: SERIAL,
      counter: 3,
      amount: 5000,
      currency: 392,
      terminalId: field41(T),
      terminalSequence: 7,
      dateTime: encodePurseDateTime(LOCAL),
      issuerReference: Uint8Array.from(res.issuerReference!, (c) => c.charCodeAt(0)),
    };
    expect(verifyLoadCryptogram(key, fields, res.loadCryptogram!)).toBe(true);
    expect(verifyLoadCryptogram(key, { ...fields, counter: 4 }, res.loadCryptogram!)).toBe(false);
    const again = parseLoadAuthorizationResponse(await t.request(req));
    expect(again.responseCode).toBe(RC.approved);
    expect(again.issuerReference).toBe(res.issuerReference);
    expect(again.loadCryptogram).toEqual(res.loadCryptogram);
    const totals = await adminGet<{ totals: { totals: ReconciliationTotals }[] }>(h, `/totals?terminalId=${T}`);
    expect(totals.body.totals[0].totals.authorizations).toBe(1);
    await t.close();
  });

  it('declines: blocked card 14, amount 0 13, above the per-load maximum 61', async () => {
    const t = await enrolledTerminal(h, T, R);
    const blocked = fromHex('48494C54000000FF');
    expect((await adminPost(h, '/negative-cards', { add: [{ serial: toHex(blocked), reason: 'stolen' }] })).status).toBe(200);
    const ask = (stan: number, serial: Uint8Array, minor: number) =>
      t.request(loadAuthorizationRequest(t.header(stan), { serial, amount: { minor, currency: JPY }, cardCounter: 0, dateTime: LOCAL })).then((m) => parseLoadAuthorizationResponse(m));
    expect((await ask(1, blocked, 100)).responseCode).toBe(RC.invalidCard);
    expect((await ask(2, SERIAL, 0)).responseCode).toBe(RC.invalidAmount);
    expect((await ask(3, SERIAL, h.issuer.limits.maxLoad + 1)).responseCode).toBe(RC.exceedsLimit);
    const declined = await ask(3, SERIAL, h.issuer.limits.maxLoad + 1);
    expect(declined.loadCryptogram).toBeUndefined();
    await t.close();
  });
});

describe('0220 / 0230 advice', () => {
  it('applies a certified purchase once: 00, then the repeat (0221) gets 94 and changes nothing', async () => {
    const t = await enrolledTerminal(h, T, R);
    const first = parseAdviceResponse(await t.request(completedAdvice(t, { stan: 1, counter: 5, amount: 1250, balanceAfter: 8750 })));
    expect(first.responseCode).toBe(RC.approved);
    const card = await adminGet<{ balance: number; lastCounter: number; records: number }>(h, `/cards/${toHex(SERIAL)}`);
    expect(card.body).toMatchObject({ balance: 8750, lastCounter: 5, records: 1 });
    const repeat = parseAdviceResponse(await t.request(completedAdvice(t, { stan: 1, counter: 5, amount: 1250, balanceAfter: 8750, repeat: true })));
    expect(repeat.responseCode).toBe(RC.duplicate);
    const again = parseAdviceResponse(await t.request(completedAdvice(t, { stan: 1, counter: 5, amount: 1250, balanceAfter: 8750 })));
    expect(again.responseCode).toBe(RC.duplicate);
    expect((await adminGet<{ records: number }>(h, `/cards/${toHex(SERIAL)}`)).body.records).toBe(1);
    const totals = await adminGet<{ totals: { totals: ReconciliationTotals }[] }>(h, `/totals?terminalId=${T}`);
    expect(totals.body.totals[0].totals.purchases).toEqual({ count: 1, amount: 1250 });
    expect((await adminGet<{ anomalies: unknown[] }>(h, '/anomalies')).body.anomalies).toEqual([]);
    await t.close();
  });

  it('a load: authorization, then its advice with the issuer reference, no anomaly; the shadow balance follows', async () => {
    const t = await enrolledTerminal(h, T, R);
    const auth = parseLoadAuthorizationResponse(
      await t.request(loadAuthorizationRequest(t.header(1), { serial: SERIAL, amount: { minor: 3000, currency: JPY }, cardCounter: 0, dateTime: LOCAL })),
    );
    expect(auth.responseCode).toBe(RC.approved);
    const adv = parseAdviceResponse(await t.request(completedAdvice(t, { stan: 1, kind: 'load', counter: 1, amount: 3000, balanceAfter: 3000, retrievalReference: auth.issuerReference })));
    expect(adv.responseCode).toBe(RC.approved);
    expect((await adminGet<{ anomalies: unknown[] }>(h, '/anomalies')).body.anomalies).toEqual([]);
    expect((await adminGet<{ balance: number }>(h, `/cards/${toHex(SERIAL)}`)).body.balance).toBe(3000);
    await t.close();
  });
});

describe('0620 / 0630 administrative advice (a terminal\'s anomaly report)', () => {
  const report: AnomalyReportInput = { kind: 'rollback', serial: SERIAL, dateTime: LOCAL, cardCounter: 3, lastCounter: 6, readerSequence: 12, details: { balance: 700 } };
  const anomalies = async (query = '') => (await adminGet<{ anomalies: Record<string, unknown>[] }>(h, `/anomalies${query}`)).body.anomalies;

  it('stores the report once as a terminal anomaly: 00, then 94 for its repeat (0621) and for a resend', async () => {
    const t = await enrolledTerminal(h, T, R);
    const send = async (m: IsoMessage) => parseAnomalyReportResponse(await t.request(m));
    const first = await send(anomalyReportRequest(t.header(1), report));
    expect(first).toMatchObject({ responseCode: RC.approved, header: { mti: '0630', stan: 1 } });
    expect((await send(anomalyReportRequest(t.header(1), { ...report, repeat: true }))).responseCode).toBe(RC.duplicate);
    expect((await send(anomalyReportRequest(t.header(1), report))).responseCode).toBe(RC.duplicate);
    const stored = await anomalies();
    expect(stored).toEqual([
      {
        id: expect.any(Number),
        at: expect.any(Number),
        source: 'terminal',
        kind: 'rollback',
        serial: toHex(SERIAL).toUpperCase(),
        terminalId: T,
        readerId: R,
        readerSequence: 12,
        counter: 3,
        details: { anomalySequence: 1, recordedAt: '2025-03-14T18:30:15', lastCounter: 6, reported: { balance: 700 } },
      },
    ]);
    expect(await anomalies('?source=terminal&kind=rollback')).toHaveLength(1);
    expect(await anomalies('?source=issuer')).toEqual([]);
    expect((await adminGet(h, '/anomalies?source=bank')).status).toBe(400);
    // The card is known to the issuer's views by its anomaly, its books untouched.
    expect((await adminGet(h, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ anomalies: 1, records: 0, balance: null });
    await t.close();
  });

  it('the same anomaly sequence with other content: 12 and an issuer reader-repeat; the stored report stays', async () => {
    const t = await enrolledTerminal(h, T, R);
    expect(parseAnomalyReportResponse(await t.request(anomalyReportRequest(t.header(4), report))).responseCode).toBe(RC.approved);
    const other = anomalyReportRequest(t.header(4), { ...report, kind: 'clone', details: {} });
    expect(parseAnomalyReportResponse(await t.request(other)).responseCode).toBe(RC.invalidTransaction);
    expect((await anomalies()).map((a) => [a.source, a.kind])).toEqual([
      ['terminal', 'rollback'],
      ['issuer', 'reader-repeat'],
    ]);
    // Another sequence of the same terminal, and the same sequence of another terminal, are new reports.
    expect(parseAnomalyReportResponse(await t.request(anomalyReportRequest(t.header(5), report))).responseCode).toBe(RC.approved);
    const u = await enrolledTerminal(h, 'TERM0002', 'READER02');
    expect(parseAnomalyReportResponse(await u.request(anomalyReportRequest(u.header(4), report))).responseCode).toBe(RC.approved);
    expect(await anomalies('?source=terminal')).toHaveLength(3);
    await Promise.all([t.close(), u.close()]);
  });
});

describe('0400 / 0410 reversal', () => {
  it('reverses an unused load authorization (00, 90 echoed), a repeat answers the same; a used one is refused (12)', async () => {
    const t = await enrolledTerminal(h, T, R);
    const ask = (stan: number, counter: number) =>
      t.request(loadAuthorizationRequest(t.header(stan), { serial: SERIAL, amount: { minor: 2000, currency: JPY }, cardCounter: counter, dateTime: LOCAL })).then(parseLoadAuthorizationResponse);
    expect((await ask(1, 0)).responseCode).toBe(RC.approved);
    const original = { mti: '0200', stan: 1, transmitted: transmissionDateTime(AT), acquirer: '' };
    const rev = (stan: number, repeat = false) => reversalRequest(t.header(stan), { kind: 'load', serial: SERIAL, amount: { minor: 2000, currency: JPY }, original: { ...original, stan }, repeat });
    const res = parseReversalResponse(await t.request(rev(1)));
    expect(res.responseCode).toBe(RC.approved);
    expect(res.original?.stan).toBe(1);
    expect(parseReversalResponse(await t.request(rev(1, true))).responseCode).toBe(RC.approved);
    // A second authorization whose load completed cannot be reversed.
    expect((await ask(2, 0)).responseCode).toBe(RC.approved);
    expect(parseAdviceResponse(await t.request(completedAdvice(t, { stan: 2, kind: 'load', counter: 1, amount: 2000, balanceAfter: 2000 }))).responseCode).toBe(RC.approved);
    expect(parseReversalResponse(await t.request(rev(2))).responseCode).toBe(RC.invalidTransaction);
    const totals = (await adminGet<{ totals: { totals: ReconciliationTotals }[] }>(h, `/totals?terminalId=${T}`)).body.totals[0].totals;
    expect(totals.loadReversals).toEqual({ count: 1, amount: 2000 });
    expect(totals.loads).toEqual({ count: 1, amount: 2000 });
    expect(totals.authorizations).toBe(2);
    await t.close();
  });
});

describe('0300 / 0310 negative card file', () => {
  it('snapshot from 0, delta from an older version, up to date, unknown version 25', async () => {
    const t = await enrolledTerminal(h, T, R);
    const ask = async (version: number, chunk = 0) => parseNegativeListResponse(await t.request(negativeListRequest(t.header(t.nextStan()), { version, chunk })));
    expect((await ask(0)).update).toMatchObject({ kind: 'delta', fromVersion: 0, toVersion: 0, changes: [] });
    await adminPost(h, '/negative-cards', { add: [{ serial: 'AA01', reason: 'lost' }, { serial: 'AA02', reason: 'stolen' }] });
    await adminPost(h, '/negative-cards', { remove: ['AA01'], add: [{ serial: 'AA03', reason: 'lost' }] });
    const snap = await ask(0);
    expect(snap.update).toMatchObject({ kind: 'snapshot', fromVersion: 0, toVersion: 2, chunk: 0, chunkCount: 1 });
    expect(snap.update!.changes.map((c) => [c.action, toHex(c.serial)])).toEqual([
      ['add', 'aa02'],
      ['add', 'aa03'],
    ]);
    const delta = await ask(1);
    expect(delta.update).toMatchObject({ kind: 'delta', fromVersion: 1, toVersion: 2 });
    expect(delta.update!.changes).toEqual<NegativeListChange[]>([
      { action: 'remove', serial: fromHex('AA01') },
      { action: 'add', serial: fromHex('AA03'), reason: 'lost' },
    ]);
    expect((await ask(2)).update).toMatchObject({ kind: 'delta', fromVersion: 2, toVersion: 2, changes: [] });
    expect((await ask(3)).responseCode).toBe(RC.recordNotFound);
    await t.close();
  });

  it('a file larger than field 63 comes in chunks, all of them at the same version', async () => {
    const t = await enrolledTerminal(h, T, R);
    const add = Array.from({ length: 120 }, (_, i) => ({ serial: `48494C54${i.toString(16).padStart(8, '0')}`, reason: `lost card number ${i}` }));
    expect((await adminPost(h, '/negative-cards', { add })).body).toMatchObject({ version: 1, added: 120 });
    const first = parseNegativeListResponse(await t.request(negativeListRequest(t.header(t.nextStan()), { version: 0, chunk: 0 })));
    const count = first.update!.chunkCount;
    expect(count).toBeGreaterThan(1);
    const serials: string[] = [];
    for (let c = 0; c < count; c++) {
      const r = parseNegativeListResponse(await t.request(negativeListRequest(t.header(t.nextStan()), { version: 0, chunk: c })));
      expect(r.update).toMatchObject({ kind: 'snapshot', toVersion: 1, chunk: c, chunkCount: count });
      serials.push(...r.update!.changes.map((x) => toHex(x.serial).toUpperCase()));
    }
    expect(serials).toEqual(add.map((a) => a.serial.toUpperCase()));
    const past = parseNegativeListResponse(await t.request(negativeListRequest(t.header(t.nextStan()), { version: 0, chunk: count })));
    expect(past.responseCode).toBe(RC.invalidTransaction);
    await t.close();
  });
});

describe('0500 / 0510 reconciliation', () => {
  it('00 with the host totals when they agree, 95 when they differ', async () => {
    const t = await enrolledTerminal(h, T, R);
    for (let s = 1; s <= 3; s++) {
      expect(parseAdviceResponse(await t.request(completedAdvice(t, { stan: s, counter: s, amount: 100 * s, balanceAfter: 10_000 - 100 * ((s * (s + 1)) / 2) }))).responseCode).toBe(RC.approved);
    }
    const zero = { count: 0, amount: 0 };
    const mine: ReconciliationTotals = { loads: zero, loadReversals: zero, purchases: { count: 3, amount: 600 }, purchaseReversals: zero, authorizations: 0 };
    const ok = parseReconciliationResponse(await t.request(reconciliationRequest(t.header(t.nextStan()), { currency: 'JPY', firstSequence: 1, lastSequence: 3, totals: mine })));
    expect(ok.responseCode).toBe(RC.approved);
    expect(ok.totals).toEqual(mine);
    const part = parseReconciliationResponse(await t.request(reconciliationRequest(t.header(t.nextStan()), { currency: 'JPY', firstSequence: 2, lastSequence: 3, totals: mine })));
    expect(part.responseCode).toBe(RC.reconcileError);
    expect(part.totals?.purchases).toEqual({ count: 2, amount: 500 });
    await t.close();
  });
});

describe('routing', () => {
  it('routes by the data-driven table; a message no route takes is answered 40', async () => {
    await h.cleanup();
    h = await startTestHosts({ routes: [{ provider: 'emoney', mtis: ['0220', '0221'], processingCodes: ['000000'] }] });
    const t = await enrolledTerminal(h, T, R);
    expect(parseAdviceResponse(await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 10, balanceAfter: 90 }))).responseCode).toBe(RC.approved);
    const res = await t.request(negativeListRequest(t.header(t.nextStan()), { version: 0, chunk: 0 }));
    expect(res.responseCode()).toBe(RC.notSupported);
    await t.close();
  });

  it('a second connection of another terminal is served alongside', async () => {
    const a = await enrolledTerminal(h, 'TA', 'RA');
    const b = await enrolledTerminal(h, 'TB', 'RB');
    const [x, y] = await Promise.all([
      a.request(completedAdvice(a, { stan: 1, counter: 1, amount: 10, balanceAfter: 90, serial: fromHex('01') })),
      b.request(completedAdvice(b, { stan: 1, counter: 1, amount: 20, balanceAfter: 80, serial: fromHex('02') })),
    ]);
    expect([x.responseCode(), y.responseCode()]).toEqual([RC.approved, RC.approved]);
    await Promise.all([a.close(), b.close()]);
  });
});

// A terminal that never enrolled cannot use an enrolment code issued for another reader.
describe('enrolment codes', () => {
  it('are bound to their reader and terminal and used once', async () => {
    const code = (await adminPost<{ code: string }>(h, '/readers', { terminalId: T, readerId: R })).body.code;
    const other = await TestTerminal.connect(h, T, 'READER99');
    expect(await other.enrol(code)).toBe(RC.badEnrolmentCode);
    const t = await TestTerminal.connect(h, T, R);
    expect(await t.enrol(code)).toBe(RC.approved);
    expect(await t.enrol(code)).toBe(RC.badEnrolmentCode);
    await Promise.all([other.close(), t.close()]);
  });
});
