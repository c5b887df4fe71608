/**
 * The load flow's host part: 0200 for a pending load row, a load cryptogram the card would accept
 * (checked with the card's purse key), the issuer reference kept for the load's advice (field 37),
 * and a declined or unanswered authorization.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { LoadInDoubtError, type Uplink } from '../../../src/hostlink/uplink/index.js';
import { RC } from '../../../src/hostlink/messages.js';
import { purseCardKey, testPurseMasterKey, verifyLoadCryptogram } from '../../../src/crypto/purse-certificate.js';
import { fromHex } from '../../../src/util/bytes.js';
import type { FakeHost } from './fake-host.js';
import { useFakeHostWorld } from './fake-host-world.js';
import { PROVIDER, READER, TERMINAL, cardSerial, certificateFor } from './helpers.js';

const world = useFakeHostWorld();
let host: FakeHost;
let journal: Journal;
let u: Uplink;

beforeEach(() => {
  ({ host, journal } = world);
  u = world.uplink({ config: { requestTimeoutMs: 400 } });
});

describe('load authorization', () => {
  it('gets a cryptogram the card verifies; the advice of the completed load carries the issuer reference', async () => {
    const card = cardSerial(1);
    const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: card, cardCounter: 4, amount: 3000, currency: 'JPY' });
    const auth = await u.authorizeLoad(id);
    if (!auth.approved) throw new Error(`declined ${auth.responseCode}`);
    expect(auth.terminalSequence).toBe(readerSeq);
    // What the card checks before crediting.
    const serial = fromHex(card);
    const ok = verifyLoadCryptogram(
      purseCardKey(testPurseMasterKey(), serial),
      {
        serial,
        counter: 4,
        amount: 3000,
        currency: 392,
        terminalId: auth.terminalId,
        terminalSequence: readerSeq,
        dateTime: auth.dateTime,
        issuerReference: Uint8Array.from(auth.issuerReference, (c) => c.charCodeAt(0)),
      },
      auth.loadCryptogram,
    );
    expect(ok).toBe(true);
    expect(u.store.loadAuthorization(readerSeq)?.issuerReference).toBe(auth.issuerReference);

    // The card credited: its certificate goes back through the outbox.
    const row = journal.get(id)!;
    const certificate = certificateFor({ serial: card, counter: 5, type: 'load', amount: 3000, terminalId: TERMINAL, readerSeq, createdAt: row.createdAt, balanceAfter: 13_000 });
    journal.complete(id, { cardCounter: 5, certificate, balanceAfter: 13_000 });
    await u.forward({ untilEmpty: true });
    const advice = host.received.find((r) => r.key === `${TERMINAL}/${readerSeq}`)?.advice;
    expect(advice?.kind).toBe('load');
    expect(advice?.retrievalReference).toBe(auth.issuerReference);
    expect(advice?.purse?.type).toBe('load');
    expect(host.badCertificates).toBe(0);
    expect(journal.outboundCount()).toBe(0);
  });

  it('refuses a row that is not a pending load', async () => {
    const { id } = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: cardSerial(2), cardCounter: 1, amount: 10, currency: 'JPY' });
    await expect(u.authorizeLoad(id)).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('no answer: LoadInDoubtError (TIMEOUT), no authorization kept, its reversal recorded; the row is never authorized again', async () => {
    const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(3), cardCounter: 0, amount: 100, currency: 'JPY' });
    host.hooks.load = () => 'no-answer';
    const e = await u.authorizeLoad(id, { reverseNow: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LoadInDoubtError);
    expect(e).toMatchObject({ code: 'TIMEOUT', transactionId: id, reversal: { readerSeq, status: 'pending', reason: 'no-answer', amount: 100, currency: '392' } });
    expect(u.store.loadAuthorization(readerSeq)).toBeNull();
    expect(u.store.authorizationSend(readerSeq)).toMatchObject({ sends: 1, responseCode: null });
    expect(u.reversalOf(id)).toMatchObject({ status: 'pending', sends: 0 });
    host.hooks.load = () => undefined;
    await expect(u.authorizeLoad(id)).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/reversed/) });
    // The caller fails the row (no LOAD); a new load row is authorized on a new session.
    journal.fail(id, { error: 'authorization in doubt: reversed' });
    const next = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(3), cardCounter: 0, amount: 100, currency: 'JPY' });
    expect((await u.authorizeLoad(next.id)).approved).toBe(true);
    expect(host.connections).toBe(2);
  });

  it('a declined authorization is data, not an exception', async () => {
    const { id } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(4), cardCounter: 0, amount: 100, currency: 'JPY' });
    host.hooks.load = () => RC.exceedsLimit;
    expect(await u.authorizeLoad(id)).toEqual({ approved: false, responseCode: RC.exceedsLimit, meaning: 'Exceeds amount limit' });
    // A blocked reader is refused before the issuer sees it: that one is an error.
    host.block(TERMINAL, READER);
    await expect(u.authorizeLoad(id)).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'blocked' });
  });
});
