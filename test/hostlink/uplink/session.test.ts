/**
 * Reader authentication from the terminal side, over a real socket against the fake gateway (which
 * runs the real host-side checks of reader-auth.ts): enrolment once with a one-time code, challenge
 * sign-on after, the key kept in a 0600 file, re-sign-on when the session expires, and the refusals
 * (unknown reader, spent code, blocked reader) as typed errors.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { ReaderRefusedError, UplinkSession, UplinkStore, readerKeyPair, rekeyReader, uplinkConfig, type Uplink } from '../../../src/hostlink/uplink/index.js';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { isReaderPublicKey, signOnResponse, signOnStep, verifySignOnProof } from '../../../src/hostlink/reader-auth.js';
import { echoRequest, parseNetworkRequest, parseNetworkResponse, RC } from '../../../src/hostlink/messages.js';
import { IsoChannel } from '../../../src/hostlink/channel.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { FakeHost } from './fake-host.js';
import { READER, TERMINAL, fillPurchases, openJournal, openUplink, tempDir, testConfig } from './helpers.js';

let work: { dir: string; remove(): void };
let host: FakeHost;
let journal: Journal;
let uplinks: Uplink[] = [];

beforeEach(async () => {
  work = tempDir();
  host = await FakeHost.start();
  journal = openJournal(join(work.dir, 'journal.db'));
});

afterEach(async () => {
  for (const u of uplinks) await u.close().catch(() => undefined);
  uplinks = [];
  journal.close();
  await host.stop();
  work.remove();
});

function uplink(enrolmentCode?: string): Uplink {
  const u = openUplink(journal, host.port, { enrolmentCode });
  uplinks.push(u);
  return u;
}

async function refusal(p: Promise<unknown>): Promise<ReaderRefusedError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ReaderRefusedError);
  return e as ReaderRefusedError;
}

describe('uplink session: reader authentication', () => {
  it('enrols once with the code, then signs on with challenge and proof; the key stays in a 0600 file', async () => {
    const first = uplink(host.issueCode(TERMINAL, READER));
    await first.connect();
    const key = host.readers.get(`${TERMINAL}/${READER}`)?.publicKey;
    expect(key && isReaderPublicKey(key)).toBe(true);
    expect(host.codes.size).toBe(0); // the code is spent
    expect(statSync(first.store.path).mode & 0o777).toBe(0o600);
    const stored = first.store.readerKey();
    expect(stored?.enrolledAt).not.toBeNull();
    expect(stored?.publicKey).toEqual(key);
    await first.close();
    uplinks = [];

    // A new process: no code any more, the stored key signs on.
    const second = uplink();
    await second.connect();
    const session = await second.link.session();
    await session.echo();
    expect(host.signOns).toBe(2);
    expect(host.readers.get(`${TERMINAL}/${READER}`)?.publicKey).toEqual(key);
  });

  it('an unknown reader without a code is refused (79) with a typed error', async () => {
    const e = await refusal(uplink().connect());
    expect(e.reason).toBe('unknown');
    expect(e.responseCode).toBe(RC.unknownReader);
    expect(e.code).toBe('AUTH_FAILED');
  });

  it('a code that is not this reader’s is refused (77)', async () => {
    const e = await refusal(uplink(host.issueCode(TERMINAL, 'OTHER-READER')).connect());
    expect(e.reason).toBe('bad-code');
  });

  it('enrolment whose answer was lost: the spent code (77) falls back to a sign-on with the stored key', async () => {
    const code = host.issueCode(TERMINAL, READER);
    // The host enrols the key, but the reader never hears it: simulate by enrolling through one
    // session and forgetting the note of it in the store.
    const u = uplink(code);
    await u.connect();
    await u.close();
    uplinks = [];
    const store = UplinkStore.open(join(work.dir, 'uplink.db'), { terminalId: TERMINAL, readerId: READER });
    const key = readerKeyPair(store);
    // Rewrite the same key as not yet enrolled.
    store.saveReaderKey(key.privateKey, key.publicKey);
    expect(store.readerKey()?.enrolledAt).toBeNull();
    store.close();
    const again = uplink(code);
    await again.connect();
    expect(again.store.readerKey()?.enrolledAt).not.toBeNull();
  });

  it('a blocked reader is refused at sign-on (80)', async () => {
    await uplink(host.issueCode(TERMINAL, READER)).connect();
    host.block(TERMINAL, READER);
    const e = await refusal(uplink().connect());
    expect(e.reason).toBe('blocked');
    expect(e.responseCode).toBe(RC.blockedReader);
  });

  it('a blocked reader is refused at every message of an open session', async () => {
    const u = uplink(host.issueCode(TERMINAL, READER));
    const session = await u.link.session();
    host.block(TERMINAL, READER);
    expect((await refusal(session.echo())).reason).toBe('blocked');
    fillPurchases(journal, 3);
    expect((await refusal(u.forward({ untilEmpty: true }))).reason).toBe('blocked');
    expect(host.applied.size).toBe(0);
  });

  it('signs on again when the host says the session expired (76), and sends the message again', async () => {
    const u = uplink(host.issueCode(TERMINAL, READER));
    const session = await u.link.session();
    expect(session.signOnCount).toBe(1);
    host.expireSessions();
    await session.echo();
    expect(session.signOnCount).toBe(2);
    const seqs = fillPurchases(journal, 5);
    host.hooks.advice = (_a, key) => {
      if (key === `${TERMINAL}/${seqs[2]}`) host.expireSessions();
      return undefined;
    };
    await u.forward({ untilEmpty: true });
    expect(host.applied.size).toBe(5);
    expect(session.signOnCount).toBe(3);
    // The advice after the expiry met 76, then went through after a new sign-on on the same connection.
    expect(host.connections).toBe(1);
  });

  it('requests that meet 76 together share one sign-on (window of 4)', async () => {
    const u = uplink(host.issueCode(TERMINAL, READER));
    const session = await u.link.session();
    const seqs = fillPurchases(journal, 40);
    host.hooks.advice = (_a, key) => {
      if (key === `${TERMINAL}/${seqs[9]}`) host.expireSessions();
      return undefined;
    };
    await u.forward({ untilEmpty: true, window: 4 });
    expect(host.applied.size).toBe(40);
    expect(session.signOnCount).toBe(2);
  });

  it('a re-keyed reader must enrol again: the old enrolment does not sign the new key on (78)', async () => {
    const first = uplink(host.issueCode(TERMINAL, READER));
    await first.connect();
    const oldKey = first.store.readerKey()!.publicKey;
    rekeyReader(first.store);
    await first.link.drop();
    const e = await refusal(first.connect());
    expect(e.reason).toBe('bad-signature');
    await first.close();
    uplinks = [];
    const again = uplink(host.issueCode(TERMINAL, READER));
    await again.connect();
    const newKey = host.readers.get(`${TERMINAL}/${READER}`)!.publicKey!;
    expect(newKey).toEqual(again.store.readerKey()!.publicKey);
    expect(newKey).not.toEqual(oldKey);
  });

  it('answers the host’s own echo on the open session', async () => {
    const u = uplink(host.issueCode(TERMINAL, READER));
    await u.connect();
    // Here the test plays the host by hand: it signs the reader on, then sends an echo of its own.
    const server = createServer();
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const store = u.store;
    const opening = UplinkSession.open({ config: uplinkConfig(testConfig(port)), store });
    const hostSide = new IsoChannel(await accepted, { macKey: (m) => testTerminalMacKey(m.terminalId() ?? '') });
    const challengeReq = await hostSide.receive(2000);
    expect(signOnStep(parseNetworkRequest(challengeReq)).step).toBe('challenge');
    const challenge = new Uint8Array(16).fill(7);
    await hostSide.send(signOnResponse(challengeReq, { responseCode: RC.approved, at: new Date(), challenge }));
    const proofReq = await hostSide.receive(2000);
    const proof = signOnStep(parseNetworkRequest(proofReq));
    expect(proof.step === 'proof' && verifySignOnProof(proof, store.readerKey()!.publicKey)).toBe(true);
    await hostSide.send(signOnResponse(proofReq, { responseCode: RC.approved, at: new Date() }));
    const session = await opening;
    const answer = parseNetworkResponse(await hostSide.request(echoRequest({ terminalId: TERMINAL, readerId: READER, stan: 77, at: new Date(), keyVersion: 1 }), 2000));
    expect(answer.responseCode).toBe(RC.approved);
    await session.close();
    await hostSide.close();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
