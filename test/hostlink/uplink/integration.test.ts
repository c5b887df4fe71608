/**
 * The uplink against the real mock hosts (startHosts: gateway, reader registry, e-money issuer, admin
 * API) on ephemeral loopback ports and a temp folder: enrolment with an operator-issued code, store
 * and forward checked through the admin API, the negative card file, the load flow end to end with
 * the issuer's cryptogram, and a reader blocked by the operator. Then every message the terminal
 * sends, driven through the Uplink API: 0800 sign-on / echo / key change, 0200, 0220 and 0221,
 * 0400 and 0401, 0300, 0500, 0620 and 0621 (an anomaly the purse terminal detected); lost answers are made by a proxy between the terminal and the gateway
 * (proxy.ts), so the hosts did the work and the terminal never heard of it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { LoadInDoubtError, ReaderRefusedError, Uplink, type UplinkConfigInput } from '../../../src/hostlink/uplink/index.js';
import { testTerminalKek, testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { toHex } from '../../../src/util/bytes.js';
import { AnswerDroppingProxy } from './proxy.js';
import { purseCardKey, testPurseMasterKey, verifyLoadCryptogram } from '../../../src/crypto/purse-certificate.js';
import { fromHex } from '../../../src/util/bytes.js';
import { PROVIDER, READER, TERMINAL, cardSerial, certificateFor, fillPurchases, openJournal, openUplink, tempDir, testConfig } from './helpers.js';
import { adminGet, adminPost, countOnHost, issueCode, startHosts, type RunningHosts } from './real-hosts.js';
import { CardRollbackError, checkCard, purseTerminalConfig, type CardStatus } from '../../../src/terminal/purse/index.js';
import type { AnomalyView } from '../../../src/hosts/issuer.js';

let work: { dir: string; remove(): void };
let hosts: RunningHosts;
let journal: Journal;
let uplinks: Uplink[] = [];
let proxy: AnswerDroppingProxy | null = null;

beforeEach(async () => {
  work = tempDir('hilt-uplink-int-');
  hosts = await startHosts({ dir: join(work.dir, 'hosts') });
  journal = openJournal(join(work.dir, 'terminal', 'journal.db'));
});

afterEach(async () => {
  for (const u of uplinks) await u.close().catch(() => undefined);
  uplinks = [];
  await proxy?.close();
  proxy = null;
  journal.close();
  await hosts.close();
  work.remove();
});

async function uplink(withCode = true, config: Partial<UplinkConfigInput> = {}, port = hosts.gatewayPort): Promise<Uplink> {
  const u = openUplink(journal, port, { enrolmentCode: withCode ? await issueCode(hosts, TERMINAL, READER) : undefined, config });
  uplinks.push(u);
  return u;
}

/** An uplink through a proxy that can lose the gateway's answers; short request timeout. */
async function uplinkViaProxy(config: Partial<UplinkConfigInput> = {}): Promise<Uplink> {
  proxy = await AnswerDroppingProxy.start(hosts.gatewayPort);
  return uplink(true, { requestTimeoutMs: 400, ...config }, proxy.port);
}

interface Tally {
  count: number;
  amount: number;
}
interface HostTotals {
  loads: Tally;
  loadReversals: Tally;
  purchases: Tally;
  purchaseReversals: Tally;
  authorizations: number;
}

async function hostTotals(): Promise<HostTotals | undefined> {
  const { totals } = await adminGet<{ totals: { terminalId: string; currency: string; totals: HostTotals }[] }>(hosts, `/totals?terminalId=${TERMINAL}`);
  return totals.find((t) => t.currency === '392')?.totals;
}

/** A pending load row of `amount` on card i. */
function pendingLoad(i: number, amount: number): { id: number; readerSeq: number } {
  return journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(i), cardCounter: 0, amount, currency: 'JPY' });
}

describe('uplink against the mock hosts', () => {
  it('enrols, forwards every journal row once, and the issuer’s books match the journal', async () => {
    fillPurchases(journal, 120, { failEvery: 9 });
    const u = await uplink();
    const stats = await u.forward({ untilEmpty: true });
    expect(stats).toMatchObject({ delivered: 120, duplicates: 0, refused: 0 });
    const count = await countOnHost(hosts, journal);
    expect(count).toEqual({ expected: 120, advices: 120, lost: 0, appliedTwice: 0, anomalies: {} });
    const reader = await adminGet<{ enrolledAt: number | null; publicKey?: string }>(hosts, `/readers/${READER}`);
    expect(reader.enrolledAt).not.toBeNull();
  });

  it('a second process signs on with the stored key, no code needed', async () => {
    const first = await uplink();
    await first.connect();
    await first.close();
    uplinks = [];
    fillPurchases(journal, 5);
    const second = await uplink(false);
    await second.forward({ untilEmpty: true });
    expect((await countOnHost(hosts, journal)).lost).toBe(0);
  });

  it('an unknown reader is refused without a code', async () => {
    const u = await uplink(false);
    const e = await u.connect().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ReaderRefusedError);
    expect((e as ReaderRefusedError).reason).toBe('unknown');
  });

  it('a reader the operator blocks is refused at the next message and at sign-on', async () => {
    fillPurchases(journal, 10);
    const u = await uplink();
    await u.connect();
    await adminPost(hosts, `/readers/${READER}/block`, { reason: 'stolen' });
    const e = await u.forward({ untilEmpty: true }).catch((x: unknown) => x);
    expect((e as ReaderRefusedError).reason).toBe('blocked');
    expect(journal.outboundCount()).toBe(10);
    await u.link.drop();
    expect(((await u.connect().catch((x: unknown) => x)) as ReaderRefusedError).reason).toBe('blocked');
    await adminPost(hosts, `/readers/${READER}/unblock`, {});
    await u.forward({ untilEmpty: true });
    expect((await countOnHost(hosts, journal)).lost).toBe(0);
  });

  it('brings the negative card file to the issuer’s version, by snapshot then by delta', async () => {
    await adminPost(hosts, '/negative-cards', { add: Array.from({ length: 40 }, (_, i) => ({ serial: cardSerial(i), reason: `stolen ${i}` })) });
    const u = await uplink();
    const first = await u.syncNegativeList();
    expect(first).toMatchObject({ fromVersion: 0, snapshots: 1, added: 40 });
    await adminPost(hosts, '/negative-cards', { remove: [cardSerial(1), cardSerial(2)], add: [{ serial: cardSerial(100), reason: 'lost' }] });
    await adminPost(hosts, '/negative-cards', { add: [{ serial: cardSerial(101), reason: 'stolen' }], remove: [cardSerial(100)] });
    const second = await u.syncNegativeList();
    expect(second.deltas).toBe(1);
    const host = await adminGet<{ version: number; cards: { serial: string; reason: string }[] }>(hosts, '/negative-cards');
    expect(journal.negativeListVersion()).toBe(host.version);
    expect(journal.negativeList().map((e) => [e.cardSerial, e.reason])).toEqual(host.cards.map((c) => [c.serial, c.reason]).sort(([a], [b]) => (a < b ? -1 : 1)));
    expect(journal.isBlocked(cardSerial(1))).toBe(false);
    expect(journal.isBlocked(cardSerial(100))).toBe(false);
    expect(journal.negativeEntry(cardSerial(101))?.reason).toBe('stolen');
  });

  it('load: the issuer authorizes, the card’s key verifies the cryptogram, the advice completes the authorization', async () => {
    const card = cardSerial(7);
    // The card has certified a purchase here before (the issuer knows its balance: 100 000 - 50).
    fillPurchases(journal, 0);
    const p = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: card, cardCounter: 0, amount: 50, currency: 'JPY' });
    const prow = journal.get(p.id)!;
    journal.complete(p.id, { cardCounter: 1, balanceAfter: 99_950, certificate: certificateFor({ serial: card, counter: 1, type: 'debit', amount: 50, terminalId: TERMINAL, readerSeq: p.readerSeq, createdAt: prow.createdAt, balanceAfter: 99_950 }) });
    const u = await uplink();
    await u.forward({ untilEmpty: true });

    const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: card, cardCounter: 1, amount: 40, currency: 'JPY' });
    const auth = await u.authorizeLoad(id);
    if (!auth.approved) throw new Error(`declined: ${auth.responseCode}`);
    const serial = fromHex(card);
    const fields = { serial, counter: 1, amount: 40, currency: 392, terminalId: auth.terminalId, terminalSequence: readerSeq, dateTime: auth.dateTime, issuerReference: Uint8Array.from(auth.issuerReference, (c) => c.charCodeAt(0)) };
    expect(verifyLoadCryptogram(purseCardKey(testPurseMasterKey(), serial), fields, auth.loadCryptogram)).toBe(true);
    // The card credits and certifies; the advice goes through the outbox.
    const row = journal.get(id)!;
    journal.complete(id, { cardCounter: 2, balanceAfter: 99_990, certificate: certificateFor({ serial: card, counter: 2, type: 'load', amount: 40, terminalId: TERMINAL, readerSeq, createdAt: row.createdAt, balanceAfter: 99_990 }) });
    await u.forward({ untilEmpty: true });
    const cardView = await adminGet<{ balance: number; lastCounter: number; records: number }>(hosts, `/cards/${card}`);
    expect(cardView).toMatchObject({ balance: 99_990, lastCounter: 2, records: 2 });
    const count = await countOnHost(hosts, journal);
    expect(count).toMatchObject({ lost: 0, appliedTwice: 0, anomalies: {} }); // no unauthorized-load
  });

  it('a load above the issuer’s limit is declined as data', async () => {
    const { id } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(8), cardCounter: 0, amount: 60_000, currency: 'JPY' });
    const u = await uplink();
    expect(await u.authorizeLoad(id)).toMatchObject({ approved: false, responseCode: '61' });
  });
});

describe('every message the terminal sends, against the mock hosts', () => {
  it('0800 sign-on and echo', async () => {
    const u = await uplink();
    await u.connect();
    await u.echo();
    const session = await u.link.session();
    expect(session.signOnCount).toBe(1);
    expect(hosts.gateway.stats.refused).toEqual({});
  });

  it('0800 key change: the new key is stored before use, advices go through under it, a restart keeps it', async () => {
    fillPurchases(journal, 4);
    const u = await uplink(true, { kek: testTerminalKek(TERMINAL) });
    await u.forward({ untilEmpty: true });
    const change = await u.changeKey();
    expect(change).toMatchObject({ fromVersion: 1, toVersion: 2, confirmed: true });
    expect(change.kcv).toMatch(/^[0-9A-F]{6}$/);
    // Stored, and it is the key the host derives for version 2; the echo made it the host's current one.
    expect(toHex(u.store.macKey()!.key)).toBe(toHex(testTerminalMacKey(TERMINAL, 2)));
    expect(u.keys.version).toBe(2);
    expect(hosts.registry.keyVersions(TERMINAL)).toEqual({ current: 2, pending: null });
    fillPurchases(journal, 3, { seed: 11 });
    expect(await u.forward({ untilEmpty: true })).toMatchObject({ delivered: 3 });
    await u.close();
    uplinks = [];

    // A new process, configured with the version-1 key as before: the stored key wins.
    fillPurchases(journal, 2, { seed: 12 });
    const again = await uplink(false);
    expect(again.keys.toJSON()).toEqual({ terminalId: TERMINAL, version: 2, source: 'stored' });
    expect(await again.forward({ untilEmpty: true })).toMatchObject({ delivered: 2 });
    expect(await countOnHost(hosts, journal)).toMatchObject({ expected: 9, lost: 0, appliedTwice: 0 });
    // The host no longer takes version 1 at all: a terminal without the stored key is cut off.
    const stale = Uplink.open({ config: testConfig(hosts.gatewayPort, { requestTimeoutMs: 500 }), journal, storePath: join(work.dir, 'stale', 'uplink.db') });
    uplinks.push(stale);
    expect(stale.keys.version).toBe(1);
    await expect(stale.connect()).rejects.toMatchObject({ code: expect.stringMatching(/CHANNEL_CLOSED|TIMEOUT/) });
  });

  it('0800 key change with a wrong KEK is refused cleanly: nothing stored, the old key goes on', async () => {
    fillPurchases(journal, 2);
    const u = await uplink(true, { kek: testTerminalKek('OTHER') });
    const e = await u.changeKey().catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'KeyUnwrapError', code: 'AUTH_FAILED' });
    const real = toHex(testTerminalMacKey(TERMINAL, 2)).toUpperCase();
    expect((e as Error).message.toUpperCase()).not.toContain(real);
    expect(u.store.macKey()).toBeNull();
    expect(u.keys.version).toBe(1);
    expect(hosts.registry.keyVersions(TERMINAL)).toEqual({ current: 1, pending: 2 });
    expect(await u.forward({ untilEmpty: true })).toMatchObject({ delivered: 2 });
    // Without a KEK there is nothing to ask for.
    const bare = await uplink(false);
    await expect(bare.changeKey()).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/key-encryption key/) });
  });

  it('0220 then 0221: a lost 0230 makes a repeat the host answers 94, applied once', async () => {
    fillPurchases(journal, 6);
    const u = await uplinkViaProxy();
    proxy!.drop('0230');
    const stats = await u.forward({ untilEmpty: true });
    expect(proxy!.dropped.get('0230')).toBe(1);
    expect(stats).toMatchObject({ delivered: 5, duplicates: 1 });
    expect(stats.repeats).toBeGreaterThanOrEqual(1);
    expect(await countOnHost(hosts, journal)).toEqual({ expected: 6, advices: 6, lost: 0, appliedTwice: 0, anomalies: {} });
  });

  it('0620 then 0621: a rollback the purse terminal detected reaches the issuer once, though its 0630 was lost', async () => {
    fillPurchases(journal, 6, { cards: 1 });
    const serial = cardSerial(0);
    const last = journal.cardHistory(serial)!.lastCounter;
    // The card comes back showing a counter below the last one this terminal saw (a restored image).
    const status: CardStatus = { lifeCycle: 0x07, active: true, counter: last - 3, balance: 9_000, currency: 392, maxBalance: 100_000, maxPerTransaction: 50_000, logCapacity: 8, logCount: 3, serial: fromHex(serial) };
    const config = purseTerminalConfig({ terminalId: TERMINAL, readerId: READER, currency: 'JPY' });
    const e = (() => {
      try {
        checkCard(journal, config, serial, status);
        return null;
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(CardRollbackError);
    const [mine] = journal.anomalies({ cardSerial: serial });
    expect(mine.kind).toBe((e as CardRollbackError).kind);

    const u = await uplinkViaProxy();
    proxy!.drop('0630');
    const stats = await u.forward({ untilEmpty: true });
    expect(proxy!.dropped.get('0630')).toBe(1);
    expect(stats).toMatchObject({ delivered: 6, duplicates: 1, anomalies: 1, refused: 0 });
    expect(journal.outbox({ limit: 100 }).find((x) => x.record.kind === 'anomaly')?.hostReference).toBe('0630 94');

    const { anomalies } = await adminGet<{ anomalies: AnomalyView[] }>(hosts, `/anomalies?serial=${serial}`);
    const reported = anomalies.filter((a) => a.source === 'terminal');
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatchObject({
      kind: mine.kind,
      serial,
      terminalId: TERMINAL,
      readerId: READER,
      counter: last - 3,
      details: { anomalySequence: mine.id, lastCounter: last, reported: { balance: 9_000 } },
    });
    // The issuer's own anomalies are untouched by the report: none for this card.
    expect(anomalies.filter((a) => a.source === 'issuer')).toEqual([]);
    expect((await adminGet<{ anomalies: AnomalyView[] }>(hosts, '/anomalies?source=terminal&kind=' + mine.kind)).anomalies).toHaveLength(1);
  });

  it('0200 without an answer: LoadInDoubtError, the 0400 reverses the authorization on the issuer', async () => {
    const u = await uplinkViaProxy();
    const { id, readerSeq } = pendingLoad(20, 500);
    proxy!.drop('0210');
    const e = await u.authorizeLoad(id).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LoadInDoubtError);
    expect((e as LoadInDoubtError).reversal).toMatchObject({ readerSeq, status: 'reversed', responseCode: '00', sends: 1, reason: 'no-answer' });
    journal.fail(id, { error: 'authorization in doubt: reversed' });
    await u.forward({ untilEmpty: true });
    expect(await hostTotals()).toMatchObject({ authorizations: 1, loadReversals: { count: 1, amount: 500 }, loads: { count: 0, amount: 0 } });
  });

  it('0400 without an answer is repeated as 0401 until answered; the issuer reverses once', async () => {
    const u = await uplinkViaProxy();
    const { id, readerSeq } = pendingLoad(21, 700);
    proxy!.drop('0210');
    proxy!.drop('0410');
    const e = (await u.authorizeLoad(id).catch((x: unknown) => x)) as LoadInDoubtError;
    expect(e.reversal).toMatchObject({ status: 'pending', sends: 1, attempts: 1 });
    expect(u.reversals({ pendingOnly: true }).map((r) => r.readerSeq)).toEqual([readerSeq]);
    const stats = await u.sendReversals();
    expect(stats).toMatchObject({ reversed: 1, repeats: 1 });
    expect(u.reversalOf(id)).toMatchObject({ status: 'reversed', sends: 2, responseCode: '00' });
    expect(await hostTotals()).toMatchObject({ authorizations: 1, loadReversals: { count: 1, amount: 700 } });
  });

  it('an approved load the terminal decides not to send is reversed; one that reached the card cannot be', async () => {
    const u = await uplink();
    const { id } = pendingLoad(22, 300);
    const auth = await u.authorizeLoad(id);
    expect(auth.approved).toBe(true);
    expect(await u.reverseLoad(id)).toMatchObject({ status: 'reversed', reason: 'not-loaded', responseCode: '00' });
    expect(await u.reverseLoad(id)).toMatchObject({ status: 'reversed', sends: 1 }); // once per row
    journal.fail(id, { error: 'not loaded: reversed' });
    const declined = pendingLoad(23, 60_000);
    expect(await u.authorizeLoad(declined.id)).toMatchObject({ approved: false, responseCode: '61' });
    await expect(u.reverseLoad(declined.id)).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/declined/) });
    expect(await hostTotals()).toMatchObject({ authorizations: 2, loadReversals: { count: 1, amount: 300 } });
  });

  it('0300: a card whose reason changed on the host gets the new reason on the terminal', async () => {
    await adminPost(hosts, '/negative-cards', { add: [{ serial: cardSerial(1), reason: 'lost' }, { serial: cardSerial(2), reason: 'lost' }] });
    const u = await uplink();
    await u.syncNegativeList();
    await adminPost(hosts, '/negative-cards', { remove: [cardSerial(1)] });
    await adminPost(hosts, '/negative-cards', { add: [{ serial: cardSerial(1), reason: 'stolen' }] });
    await adminPost(hosts, '/negative-cards', { add: [{ serial: cardSerial(2), reason: 'counterfeit' }] });
    expect(await u.syncNegativeList()).toMatchObject({ deltas: 1, added: 2 });
    expect(journal.negativeEntry(cardSerial(1))?.reason).toBe('stolen');
    expect(journal.negativeEntry(cardSerial(2))?.reason).toBe('counterfeit');
  });

  it('0500: in balance after purchases, a load and a reversal; out of balance with the differences when the host refused an advice', async () => {
    fillPurchases(journal, 12, { failEvery: 5 });
    const u = await uplink();
    // A load that completes, and one reversed.
    const card = cardSerial(30);
    const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: card, cardCounter: 0, amount: 400, currency: 'JPY' });
    const auth = await u.authorizeLoad(id);
    expect(auth.approved).toBe(true);
    const row = journal.get(id)!;
    journal.complete(id, { cardCounter: 1, balanceAfter: 100_400, certificate: certificateFor({ serial: card, counter: 1, type: 'load', amount: 400, terminalId: TERMINAL, readerSeq, createdAt: row.createdAt, balanceAfter: 100_400 }) });
    const other = pendingLoad(31, 250);
    await u.authorizeLoad(other.id);
    await u.reverseLoad(other.id);
    journal.fail(other.id, { error: 'not loaded' });

    const ok = await u.reconcile(); // drains the outbox first
    expect(journal.outboundCount()).toBe(0);
    expect(ok).toMatchObject({ status: 'in-balance', inBalance: true, firstSequence: 1, lastSequence: journal.lastReaderSequence(), unsent: 0, pendingReversals: 0 });
    expect(ok.currencies).toHaveLength(1);
    const jpy = ok.currencies[0];
    const moved = journal.query({ status: ['complete'], type: 'purchase', limit: 1000 });
    expect(jpy).toMatchObject({ currency: '392', currencyName: 'JPY', responseCode: '00', inBalance: true });
    expect(jpy.terminal).toEqual({
      loads: { count: 1, amount: 400 },
      loadReversals: { count: 1, amount: 250 },
      purchases: { count: moved.length, amount: moved.reduce((a, r) => a + r.amount, 0) },
      purchaseReversals: { count: 0, amount: 0 },
      authorizations: 2,
    });
    expect(jpy.host).toEqual(jpy.terminal);

    // A purchase the card "certified" with a certificate the issuer rejects (12): the terminal counts it, the host does not.
    const bad = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: cardSerial(40), cardCounter: 0, amount: 77, currency: 'JPY' });
    journal.complete(bad.id, { cardCounter: 1, balanceAfter: 99_923, certificate: new Uint8Array(16).fill(0x42) });
    const off = await u.reconcile();
    expect(off.status).toBe('out-of-balance');
    expect(off.currencies[0]).toMatchObject({ responseCode: '95', inBalance: false });
    expect(off.currencies[0].differences).toEqual({ loads: { count: 0, amount: 0 }, loadReversals: { count: 0, amount: 0 }, purchases: { count: -1, amount: -77 }, purchaseReversals: { count: 0, amount: 0 }, authorizations: 0 });
    // A range before the bad advice is still in balance.
    expect((await u.reconcile({ lastSequence: bad.readerSeq - 1, currency: 'JPY' })).status).toBe('in-balance');
  });

  it('0500 is not sent while records stay unsent after the drain', async () => {
    fillPurchases(journal, 3);
    const u = await uplinkViaProxy({ requestTimeoutMs: 200 });
    proxy!.drop('0230', 1_000);
    const r = await u.reconcile({ drainTimeoutMs: 600 });
    expect(r).toMatchObject({ status: 'unsent', inBalance: false, currencies: [] });
    expect(r.unsent).toBeGreaterThan(0);
  });

  it('a 0200 left without an answer by a crashed process is reversed by the next one; reconciliation names it', async () => {
    const { id, readerSeq } = pendingLoad(50, 900);
    const first = await uplink();
    await first.connect();
    // The process noted the 0200 as sent, and died before anything came back.
    first.store.noteAuthorizationSending({ readerSeq, serial: cardSerial(50), amount: 900, currency: '392', transmitted: '0101000000' });
    await first.close();
    uplinks = [];
    const later = Date.now() + 60_000;
    const next = Uplink.open({ config: testConfig(hosts.gatewayPort), journal, clock: () => later });
    uplinks.push(next);
    expect(next.reversalOf(id)).toMatchObject({ status: 'pending', reason: 'no-answer' });
    journal.fail(id, { error: 'crashed while authorizing' });
    const stats = await next.forward({ untilEmpty: true });
    expect(stats.reversals).toMatchObject({ reversed: 1 });
    // The issuer never had the 0200: nothing reversed there, and the reconciliation says why it differs.
    const r = await next.reconcile();
    expect(r.unansweredAuthorizations).toEqual([readerSeq]);
    expect(r.status).toBe('out-of-balance');
    expect(r.currencies[0].differences).toMatchObject({ authorizations: -1, loadReversals: { count: -1, amount: -900 } });
  });
});
