/**
 * The uplink against the real mock hosts (startHosts: gateway, reader registry, e-money issuer, admin
 * API) on ephemeral loopback ports and a temp folder: enrolment with an operator-issued code, store
 * and forward checked through the admin API, the negative card file, the load flow end to end with
 * the issuer's cryptogram, and a reader blocked by the operator.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { ReaderRefusedError, type Uplink } from '../../../src/hostlink/uplink/index.js';
import { purseCardKey, testPurseMasterKey, verifyLoadCryptogram } from '../../../src/crypto/purse-certificate.js';
import { fromHex } from '../../../src/util/bytes.js';
import { PROVIDER, READER, TERMINAL, cardSerial, certificateFor, fillPurchases, openJournal, openUplink, tempDir } from './helpers.js';
import { adminGet, adminPost, countOnHost, issueCode, startHosts, type RunningHosts } from './real-hosts.js';

let work: { dir: string; remove(): void };
let hosts: RunningHosts;
let journal: Journal;
let uplinks: Uplink[] = [];

beforeEach(async () => {
  work = tempDir('hilt-uplink-int-');
  hosts = await startHosts({ dir: join(work.dir, 'hosts') });
  journal = openJournal(join(work.dir, 'terminal', 'journal.db'));
});

afterEach(async () => {
  for (const u of uplinks) await u.close().catch(() => undefined);
  uplinks = [];
  journal.close();
  await hosts.close();
  work.remove();
});

async function uplink(withCode = true): Promise<Uplink> {
  const u = openUplink(journal, hosts.gatewayPort, { enrolmentCode: withCode ? await issueCode(hosts, TERMINAL, READER) : undefined });
  uplinks.push(u);
  return u;
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
