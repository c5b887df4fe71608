/**
 * Bad input to the hosts: each gets an error response or a clean disconnect, the hosts keep serving
 * other connections, and nothing is stored (every row of both databases is compared before and after).
 *
 * Garbage bytes, truncated and oversized frames, every malformed message of the shared table
 * (test/hostlink/bad-inputs.ts), an unknown MTI: the connection is closed. A wrong MAC: 63 (MACed
 * with the right key) and the connection stays usable. Valid MAC but malformed content: 30. A blocked
 * reader: 80 at every message and every sign-on step. An unknown reader: 79. Not signed on: 76. A
 * replayed sign-on proof (its challenge already used): 81. A bad sign-on signature: 78.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { twoByteLengthFraming } from '../../src/hostlink/framing.js';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { signMessage, verifyMessage } from '../../src/hostlink/iso8583/mac.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { RC, TAG, anomalyReportRequest, echoRequest, negativeListRequest, parseNetworkResponse } from '../../src/hostlink/messages.js';
import { Tlv, encodeTlv } from '../../src/apdu/tlv.js';
import { encodePurseDateTime } from '../../src/crypto/purse-certificate.js';
import { challengeOf, signOnChallengeRequest, signOnProofRequest } from '../../src/hostlink/reader-auth.js';
import { concatBytes, fromHex } from '../../src/util/bytes.js';
import { BAD_MESSAGES } from '../hostlink/bad-inputs.js';
import { LOCAL, SERIAL, adminGet, adminPost, closedWithin, completedAdvice, dumpDatabases, enrolledTerminal, rawSocket, startTestHosts, terminalKey, TestTerminal, type TestHosts } from './helpers.js';

const framing = twoByteLengthFraming();
const CLOSE_BOUND_MS = 3_000;

/** A raw connection that writes bytes and reads frames. */
class Raw {
  private readonly decoder = framing.decoder();
  private readonly frames: Uint8Array[] = [];
  private waiter: (() => void) | null = null;
  constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.frames.push(...this.decoder.push(new Uint8Array(c)));
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }
  static async open(h: TestHosts): Promise<Raw> {
    return new Raw(await rawSocket(h));
  }
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }
  send(m: IsoMessage, key: Uint8Array): void {
    this.write(framing.encode(pack(signMessage(m, key))));
  }
  async next(ms = 3_000): Promise<IsoMessage> {
    const end = Date.now() + ms;
    while (this.frames.length === 0) {
      if (Date.now() > end) throw new Error('no frame');
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 20);
      });
    }
    return unpack(this.frames.shift() as Uint8Array).message;
  }
  closed(): Promise<boolean> {
    return closedWithin(this.socket, CLOSE_BOUND_MS);
  }
}

let h: TestHosts;
let witness: TestTerminal; // an honest terminal on its own connection through every case
let blocked: TestTerminal;
let signedOff: TestTerminal;
let c: TestTerminal;
let usedProof: IsoMessage;
let before: string;

beforeAll(async () => {
  h = await startTestHosts();
  witness = await enrolledTerminal(h, 'TW', 'RW');
  blocked = await enrolledTerminal(h, 'TB', 'RB');
  expect((await adminPost(h, '/readers/RB/block', { reason: 'stolen' })).status).toBe(200);
  signedOff = await enrolledTerminal(h, 'TS', 'RS');
  expect(parseNetworkResponse(await signedOff.request(echoRequest(signedOff.header(signedOff.nextStan())))).responseCode).toBe(RC.approved);
  await signedOff.request(echoRequest(signedOff.header(signedOff.nextStan())));
  const off = await signedOff.request((await import('../../src/hostlink/messages.js')).signOffRequest(signedOff.header(signedOff.nextStan())));
  expect(off.responseCode()).toBe(RC.approved);
  c = await enrolledTerminal(h, 'TC', 'RC');
  const ch = challengeOf(parseNetworkResponse(await c.request(signOnChallengeRequest(c.header(c.nextStan())))));
  usedProof = signOnProofRequest(c.header(c.nextStan()), ch as Uint8Array, c.privateKey as Uint8Array);
  expect((await c.request(usedProof)).responseCode()).toBe(RC.approved);
  before = dumpDatabases(h.dir);
});

afterAll(async () => {
  await Promise.all([witness, blocked, signedOff, c].map((t) => t.close()));
  await h.cleanup();
});

/** The witness still gets answers, a new connection still gets answers, and nothing was stored. */
async function hostUnharmed(): Promise<void> {
  const echo = await witness.request(echoRequest(witness.header(witness.nextStan())));
  expect(echo.responseCode()).toBe(RC.approved);
  const fresh = await TestTerminal.connect(h, 'TW', 'RW');
  expect((await fresh.request(echoRequest(fresh.header(fresh.nextStan())))).responseCode()).toBe(RC.approved);
  await fresh.close();
  expect(dumpDatabases(h.dir)).toBe(before);
}

describe('bytes that are not messages: clean disconnect', () => {
  it('garbage bytes', async () => {
    const r = await Raw.open(h);
    r.write(fromHex('00 0c 47 41 52 42 41 47 45 21 21 21 21 21'));
    expect(await r.closed()).toBe(true);
    await hostUnharmed();
  });

  it('random bytes of random lengths (50 connections)', async () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 50; i++) {
      const r = await Raw.open(h);
      const bytes = Uint8Array.from({ length: 1 + Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256));
      r.write(concatBytes(Uint8Array.of(0, bytes.length), bytes));
      expect(await r.closed()).toBe(true);
    }
    await hostUnharmed();
  });

  it('a frame holding a truncated message', async () => {
    const packed = pack(signMessage(completedAdvice(witness, { stan: 900, counter: 900, amount: 1, balanceAfter: 1 }), terminalKey('TW', 1)));
    const r = await Raw.open(h);
    r.write(framing.encode(packed.subarray(0, packed.length - 20)));
    expect(await r.closed()).toBe(true);
    await hostUnharmed();
  });

  it('a truncated frame (the peer stops half way and closes)', async () => {
    const packed = pack(signMessage(completedAdvice(witness, { stan: 901, counter: 901, amount: 1, balanceAfter: 1 }), terminalKey('TW', 1)));
    const r = await Raw.open(h);
    r.write(framing.encode(packed).subarray(0, 40));
    r.socket.end();
    expect(await r.closed()).toBe(true);
    await hostUnharmed();
  });

  it('an oversized frame (length above the maximum) and an empty one', async () => {
    for (const header of ['ffff', '2001', '0000']) {
      const r = await Raw.open(h);
      r.write(fromHex(header + '00'.repeat(16)));
      expect(await r.closed()).toBe(true);
    }
    await hostUnharmed();
  });

  it('an unknown MTI', async () => {
    const packed = pack(signMessage(echoRequest(witness.header(902)), terminalKey('TW', 1)));
    const bad = packed.slice();
    bad.set([0x06, 0x00], 0); // MTI 0600
    const r = await Raw.open(h);
    r.write(framing.encode(bad));
    expect(await r.closed()).toBe(true);
    await hostUnharmed();
  });

  it(`every malformed message of the shared table (${BAD_MESSAGES.length})`, async () => {
    for (const bad of BAD_MESSAGES) {
      const r = await Raw.open(h);
      r.write(concatBytes(Uint8Array.of(bad.bytes.length >> 8, bad.bytes.length & 0xff), bad.bytes)); // by hand: some are empty
      expect(await r.closed(), bad.name).toBe(true);
    }
    await hostUnharmed();
  });
});

describe('messages the hosts refuse with an answer', () => {
  it('a wrong MAC: 63, MACed with the terminal key; the connection stays open', async () => {
    const r = await Raw.open(h);
    r.send(completedAdvice(witness, { stan: 903, counter: 903, amount: 5, balanceAfter: 5 }), terminalKey('SOMEONE', 1));
    const answer = await r.next();
    expect(answer.mti).toBe('0230');
    expect(answer.responseCode()).toBe(RC.securityViolation);
    expect(verifyMessage(answer, terminalKey('TW', 1))).toBe(true);
    r.send(echoRequest(witness.header(904)), terminalKey('TW', 1));
    expect((await r.next()).responseCode()).toBe(RC.approved);
    r.socket.destroy();
    await hostUnharmed();
  });

  it('a MAC under a key version the terminal does not have: disconnect', async () => {
    const r = await Raw.open(h);
    r.send(echoRequest({ ...witness.header(905), keyVersion: 7 }), terminalKey('TW', 7));
    expect(await r.closed()).toBe(true);
    await hostUnharmed();
  });

  it('a valid MAC on content the parsers refuse: 30', async () => {
    const report = (stan: number) => anomalyReportRequest(witness.header(stan), { kind: 'rollback', serial: SERIAL, dateTime: LOCAL, cardCounter: 2, lastCounter: 4, details: { balance: 1 } });
    const with48 = (stan: number, tlvs: Tlv[]) => report(stan).with(48, encodeTlv(tlvs));
    const kind = Tlv.primitive(TAG.anomalyKind, Uint8Array.of(1));
    const when = Tlv.primitive(TAG.dateTime, encodePurseDateTime(LOCAL));
    const json = (text: string) => Tlv.primitive(TAG.anomalyDetails, new TextEncoder().encode(text));
    const cases: [string, IsoMessage][] = [
      ['an advice without field 48 (mandatory)', completedAdvice(witness, { stan: 906, counter: 906, amount: 5, balanceAfter: 5 }).without(48)],
      ['an 0620 without field 48', report(907).without(48)],
      ['an 0620 of an unknown anomaly kind', with48(908, [Tlv.primitive(TAG.anomalyKind, Uint8Array.of(0x7f)), when, json('{}')])],
      ['an 0620 whose details are not JSON', with48(909, [kind, when, json('{"balance":')])],
      ['an 0620 whose details are not compact', with48(910, [kind, when, json('{ "balance": 1 }')])],
      ['an 0620 whose details nest', with48(911, [kind, when, json('{"a":{"b":1}}')])],
      ['an 0620 without details', with48(912, [kind, when])],
      ['an 0620 with a tag of another message', with48(913, [kind, when, json('{}'), Tlv.primitive(TAG.outcome, Uint8Array.of(1))])],
      ['an 0620 whose field 12 differs from DF04', report(914).with(12, '000000')],
      ['an 0620 with a purse certificate in 55', report(915).with(55, encodeTlv([Tlv.primitive(TAG.certificate, new Uint8Array(16))]))],
      ['a repeat (0621) carrying a processing code', report(916).withMti('0621').with(3, '000000')],
    ];
    for (const [name, m] of cases) {
      const r = await Raw.open(h);
      r.send(m, terminalKey('TW', 1));
      const answer = await r.next();
      expect(answer.responseCode(), name).toBe(RC.formatError);
      expect(answer.mti, name).toBe(m.mti === '0220' ? '0230' : '0630');
      r.socket.destroy();
    }
    await hostUnharmed();
  });

  it('a blocked reader: 80 for an advice, an echo, a negative-list request and both sign-on steps', async () => {
    const rc = async (m: IsoMessage) => (await blocked.request(m)).responseCode();
    expect(await rc(completedAdvice(blocked, { stan: 1, counter: 1, amount: 5, balanceAfter: 5 }))).toBe(RC.blockedReader);
    expect(await rc(echoRequest(blocked.header(blocked.nextStan())))).toBe(RC.blockedReader);
    expect(await rc(negativeListRequest(blocked.header(blocked.nextStan()), { version: 0, chunk: 0 }))).toBe(RC.blockedReader);
    expect(await rc(signOnChallengeRequest(blocked.header(blocked.nextStan())))).toBe(RC.blockedReader);
    expect(await rc(signOnProofRequest(blocked.header(blocked.nextStan()), new Uint8Array(16), blocked.privateKey as Uint8Array))).toBe(RC.blockedReader);
    await hostUnharmed();
  });

  it('an unknown reader: 79; a known reader on another terminal: 79', async () => {
    const stranger = await TestTerminal.connect(h, 'TX', 'RX');
    expect((await stranger.request(completedAdvice(stranger, { stan: 1, counter: 1, amount: 5, balanceAfter: 5 }))).responseCode()).toBe(RC.unknownReader);
    expect((await stranger.request(signOnChallengeRequest(stranger.header(1)))).responseCode()).toBe(RC.unknownReader);
    const moved = await TestTerminal.connect(h, 'TX', 'RW');
    expect((await moved.request(echoRequest(moved.header(1)))).responseCode()).toBe(RC.unknownReader);
    await Promise.all([stranger.close(), moved.close()]);
    await hostUnharmed();
  });

  it('a reader that is not signed on: 76', async () => {
    expect((await signedOff.request(completedAdvice(signedOff, { stan: 1, counter: 1, amount: 5, balanceAfter: 5 }))).responseCode()).toBe(RC.readerNotSignedOn);
    await hostUnharmed();
  });

  it('a replayed sign-on proof (its challenge already used): 81', async () => {
    const replay = usedProof.withStan(c.nextStan());
    expect((await c.request(replay)).responseCode()).toBe(RC.badChallenge);
    await hostUnharmed();
  });

  it('an enrolment with a code never issued: 77', async () => {
    const t = await TestTerminal.connect(h, 'TW', 'RW');
    expect(await t.enrol('ABCDEFGHJKMNPQRS')).toBe(RC.badEnrolmentCode);
    await t.close();
    await hostUnharmed();
  });
});

describe('sign-on proofs that fail (these burn the challenge, by design)', () => {
  it('a signature by another key: 78, and the challenge is gone (then 81)', async () => {
    const t = await enrolledTerminal(h, 'TK', 'RK');
    const challenge = challengeOf(parseNetworkResponse(await t.request(signOnChallengeRequest(t.header(t.nextStan())))));
    const { generateReaderKeyPair } = await import('../../src/hostlink/reader-auth.js');
    const wrong = generateReaderKeyPair().privateKey;
    expect((await t.request(signOnProofRequest(t.header(t.nextStan()), challenge as Uint8Array, wrong))).responseCode()).toBe(RC.badReaderSignature);
    expect((await t.request(signOnProofRequest(t.header(t.nextStan()), challenge as Uint8Array, t.privateKey as Uint8Array))).responseCode()).toBe(RC.badChallenge);
    expect(await t.signOn()).toBe(RC.approved);
    const readers = await adminGet<{ readers: { readerId: string; status: string }[] }>(h, '/readers');
    expect(readers.body.readers.find((r) => r.readerId === 'RK')?.status).toBe('enrolled');
    await t.close();
  });
});
