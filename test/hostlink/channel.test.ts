/**
 * IsoChannel over real loopback sockets on ephemeral ports: request/response matching, timeouts,
 * bounds, MAC failures, and garbage from the peer (the shared bad-input table among it), after which
 * the channel closes cleanly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { IsoChannel, IsoChannelError, connectIsoChannel, type IsoChannelOptions } from '../../src/hostlink/channel.js';
import { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { IsoMacError, signMessage } from '../../src/hostlink/iso8583/mac.js';
import { Iso8583Error } from '../../src/hostlink/iso8583/errors.js';
import { RC, echoRequest, networkResponse, refusal, signOnRequest } from '../../src/hostlink/messages.js';
import { asciiLengthFraming, twoByteLengthFraming } from '../../src/hostlink/framing.js';
import { LengthPrefixError } from '../../src/util/length-prefixed.js';
import { ChannelClosedError, HiltError, TimeoutError } from '../../src/util/errors.js';
import { concatBytes, fromHex } from '../../src/util/bytes.js';
import { BAD_MESSAGES } from './bad-inputs.js';
import { AT, TERMINAL, header, macKeyOf } from './helpers.js';

const KEYS = new Map<string, Uint8Array>(['TERM0001', 'TERM0002'].flatMap((t) => [1, 2].map((v) => [`${t}/${v}`, macKeyOf(t, v)] as [string, Uint8Array])));
/** The host's and the terminal's key lookup: by field 41 and field 53. */
const lookup = (m: IsoMessage) => KEYS.get(`${m.terminalId()}/${m.keyVersion()}`);
const LATER = new Date(AT.getTime() + 1000);

let cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function listen(): Promise<{ server: Server; port: number; accepted: Promise<Socket> }> {
  const server = createServer();
  let resolveAccepted!: (s: Socket) => void;
  const accepted = new Promise<Socket>((r) => (resolveAccepted = r));
  server.on('connection', (s) => resolveAccepted(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => new Promise((r) => server.close(() => r(undefined))));
  return { server, port: (server.address() as AddressInfo).port, accepted };
}

/** A terminal channel and the host channel of the same connection. */
async function pair(terminal: Partial<IsoChannelOptions> = {}, host: Partial<IsoChannelOptions> = {}): Promise<[IsoChannel, IsoChannel]> {
  const { port, accepted } = await listen();
  const t = await connectIsoChannel({ host: '127.0.0.1', port, macKey: lookup, requestTimeoutMs: 2000, ...terminal });
  const h = new IsoChannel(await accepted, { macKey: lookup, ...host });
  cleanup.push(() => t.close(), () => h.close());
  return [t, h];
}

/** A raw socket (the misbehaving peer) and the host channel on its connection. */
async function rawPair(host: Partial<IsoChannelOptions> = {}): Promise<[Socket, IsoChannel]> {
  const { port, accepted } = await listen();
  const raw = connect({ port, host: '127.0.0.1' });
  await once(raw, 'connect');
  raw.on('error', () => undefined);
  const h = new IsoChannel(await accepted, { macKey: lookup, closeGraceMs: 200, ...host });
  cleanup.push(() => raw.destroy(), () => h.close());
  return [raw, h];
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** Serves `n` requests: answers each echo / sign-on with 00, in the order given by `order`. */
async function serve(h: IsoChannel, n: number, order: (reqs: IsoMessage[]) => IsoMessage[] = (r) => r): Promise<void> {
  const reqs: IsoMessage[] = [];
  for (let i = 0; i < n; i++) reqs.push(await h.receive(2000));
  for (const r of order(reqs)) await h.send(networkResponse(r, { responseCode: RC.approved, at: LATER }));
}

describe('IsoChannel', () => {
  it('sends signed requests and matches the answers by STAN and terminal id, in any order', async () => {
    const [t, h] = await pair();
    const served = serve(h, 5, (r) => [...r].reverse());
    const answers = await Promise.all([1, 2, 3, 4, 5].map((stan) => t.request(echoRequest(header({ stan })))));
    await served;
    expect(answers.map((a) => a.stan())).toEqual([1, 2, 3, 4, 5]);
    expect(answers.every((a) => a.mti === '0810' && a.has(128))).toBe(true);
    expect(t.inFlight).toBe(0);
    expect(t.unmatchedResponses).toBe(0);
  });

  it('tells apart the same STAN from two terminals (a gateway carries many)', async () => {
    const [t, h] = await pair();
    const served = serve(h, 2, (r) => [...r].reverse());
    const [a, b] = await Promise.all([t.request(echoRequest(header({ stan: 1 }))), t.request(echoRequest(header({ stan: 1, terminalId: 'TERM0002' })))]);
    await served;
    expect([a.terminalId(), b.terminalId()]).toEqual(['TERM0001', 'TERM0002']);
  });

  it('resolves send with the message as signed, and the peer receives exactly it', async () => {
    const [t, h] = await pair();
    const sent = await t.send(signOnRequest(header()));
    const got = await h.receive(2000);
    expect(got.equals(sent)).toBe(true);
    expect(got.bytes(128)).toEqual(signMessage(signOnRequest(header()), macKeyOf(TERMINAL)).bytes(128));
  });

  it('times out a request, and drops its late answer', async () => {
    const [t, h] = await pair();
    const req = echoRequest(header({ stan: 7 }));
    const e = await rejection(t.request(req, 100));
    expect(e).toBeInstanceOf(TimeoutError);
    expect(t.inFlight).toBe(0);
    await h.send(networkResponse(await h.receive(1000), { responseCode: RC.approved, at: LATER }));
    // The channel still works, and the late answer was counted, not delivered.
    const served = serve(h, 1);
    expect((await t.request(echoRequest(header({ stan: 8 })))).stan()).toBe(8);
    await served;
    expect(t.unmatchedResponses).toBe(1);
    expect((await rejection(h.receive(50))).constructor).toBe(TimeoutError);
  });

  it('bounds the requests in flight and refuses a duplicate STAN', async () => {
    const [t, h] = await pair({ maxInFlight: 2 });
    const a = t.request(echoRequest(header({ stan: 1 })));
    const b = t.request(echoRequest(header({ stan: 2 })));
    const busy = await rejection(t.request(echoRequest(header({ stan: 3 }))));
    expect(busy).toBeInstanceOf(IsoChannelError);
    expect((busy as IsoChannelError).reason).toBe('busy');
    await serve(h, 2);
    await Promise.all([a, b]);
    const c = t.request(echoRequest(header({ stan: 4 })));
    const dup = await rejection(t.request(echoRequest(header({ stan: 4 }))));
    expect((dup as IsoChannelError).reason).toBe('duplicate');
    await serve(h, 1);
    await c;
    const notReq = await rejection(t.request(networkResponse(echoRequest(header()), { responseCode: RC.approved, at: LATER })));
    expect((notReq as IsoChannelError).reason).toBe('not-a-request');
  });

  it('rejects a request whose answer has a bad MAC, and stays open', async () => {
    const [t, h] = await pair({}, { macKey: (m) => (m.isRequest ? lookup(m) : macKeyOf('OTHER')) });
    const served = serve(h, 1);
    const e = await rejection(t.request(echoRequest(header({ stan: 5 }))));
    await served;
    expect(e).toBeInstanceOf(IsoMacError);
    expect((e as IsoMacError).reason).toBe('bad-mac');
    expect((e as IsoMacError).isoMessage?.stan()).toBe(5);
    expect(t.closed).toBe(false);
  });

  it('delivers a request with a bad MAC as IsoMacError, so the host can answer 63', async () => {
    const [t, h] = await pair({ macKey: () => macKeyOf('OTHER') });
    const answer = t.request(echoRequest(header({ stan: 6 })));
    const e = await rejection(h.receive(2000));
    expect(e).toBeInstanceOf(IsoMacError);
    expect((e as HiltError).code).toBe('AUTH_FAILED');
    const forged = (e as IsoMacError).isoMessage!;
    await h.send(refusal(forged, { responseCode: RC.securityViolation, at: LATER }));
    // The terminal (with the wrong key) cannot verify the host's answer either: its request fails.
    expect(await rejection(answer)).toBeInstanceOf(IsoMacError);
    expect(h.closed).toBe(false);
  });

  it('refuses a message from a terminal it has no key for, and a send it cannot sign', async () => {
    const [t, h] = await pair({}, { macKey: () => undefined });
    void t.send(echoRequest(header()));
    const e = await rejection(h.receive(2000));
    expect((e as IsoMacError).reason).toBe('no-key');
    expect((await rejection(h.send(echoRequest(header())))).message).toMatch(/no MAC key/);
  });

  it('rejects waiting calls when the peer closes', async () => {
    const [t, h] = await pair();
    const waiting = rejection(t.request(echoRequest(header({ stan: 1 }))));
    await h.receive(2000);
    await h.close();
    expect(await waiting).toBeInstanceOf(ChannelClosedError);
    await t.whenClosed();
    expect(t.closed).toBe(true);
    expect(await rejection(t.send(echoRequest(header())))).toBeInstanceOf(ChannelClosedError);
    expect(await rejection(t.receive())).toBeInstanceOf(ChannelClosedError);
    expect(t.closeReason).toBeNull();
  });

  it('is closed at once over a socket already destroyed, and a refused connect is a typed error', async () => {
    const { port, accepted } = await listen();
    const s = connect({ port, host: '127.0.0.1' });
    await once(s, 'connect');
    (await accepted).destroy();
    s.destroy();
    await once(s, 'close');
    const ch = new IsoChannel(s, { macKey: lookup });
    expect(ch.closed).toBe(true);
    expect(await ch.whenClosed()).toBeNull();
    expect(await rejection(ch.receive())).toBeInstanceOf(ChannelClosedError);
    const closedServer = await listen();
    const freePort = closedServer.port;
    await new Promise((r) => closedServer.server.close(r));
    expect(await rejection(connectIsoChannel({ host: '127.0.0.1', port: freePort, macKey: lookup }))).toBeInstanceOf(ChannelClosedError);
  });

  it('works the same over another framing', async () => {
    const [t, h] = await pair({ framing: asciiLengthFraming() }, { framing: asciiLengthFraming() });
    const served = serve(h, 1);
    expect((await t.request(echoRequest(header({ stan: 3 })))).mti).toBe('0810');
    await served;
  });

  it('closes itself when the peer floods it with requests nobody receives', async () => {
    const [raw, h] = await rawPair({ maxQueued: 3 });
    const f = twoByteLengthFraming();
    const frames = [1, 2, 3, 4].map((stan) => f.encode(pack(signMessage(echoRequest(header({ stan })), macKeyOf(TERMINAL)))));
    raw.write(concatBytes(...frames));
    expect(await h.whenClosed()).toBeInstanceOf(IsoChannelError);
    // The three queued before the overflow are still delivered, then the reason.
    for (let i = 1; i <= 3; i++) expect((await h.receive()).stan()).toBe(i);
    expect((await rejection(h.receive())) as IsoChannelError).toMatchObject({ reason: 'overflow', code: 'PROTOCOL' });
  });
});

describe('IsoChannel and garbage', () => {
  async function expectClosedWith(raw: Socket, h: IsoChannel, bytes: Uint8Array): Promise<HiltError> {
    const receiving = rejection(h.receive(3000));
    const ended = once(raw, 'end');
    raw.write(bytes);
    const e = (await receiving) as HiltError;
    await ended; // the host ended its side: a clean disconnect
    await h.whenClosed();
    expect(h.closed).toBe(true);
    expect(h.closeReason).toBe(e);
    expect(await rejection(h.receive())).toBe(e);
    return e;
  }

  it('closes on garbage bytes with a framing error', async () => {
    const [raw, h] = await rawPair();
    const e = await expectClosedWith(raw, h, fromHex('ffff0102030405'));
    expect(e).toBeInstanceOf(LengthPrefixError);
    expect((e as LengthPrefixError).reason).toBe('too-long');
  });

  it('closes on an empty frame and on a frame above the maximum', async () => {
    const [raw, h] = await rawPair();
    expect(((await expectClosedWith(raw, h, fromHex('0000'))) as LengthPrefixError).reason).toBe('empty');
    const [raw2, h2] = await rawPair({ framing: twoByteLengthFraming({ maxFrameLength: 64 }) });
    expect(((await expectClosedWith(raw2, h2, concatBytes(fromHex('0041'), new Uint8Array(65)))) as LengthPrefixError).reason).toBe('too-long');
  });

  it('closes on a frame whose message has an unknown MTI', async () => {
    const [raw, h] = await rawPair();
    const e = await expectClosedWith(raw, h, twoByteLengthFraming().encode(fromHex('0100' + '0000000000000000')));
    expect(e).toBeInstanceOf(Iso8583Error);
    expect((e as Iso8583Error).reason).toBe('unknown-mti');
  });

  it('does not act on a valid frame sent after garbage', async () => {
    const [raw, h] = await rawPair();
    const f = twoByteLengthFraming();
    const good = f.encode(pack(signMessage(echoRequest(header()), macKeyOf(TERMINAL))));
    const e = await expectClosedWith(raw, h, concatBytes(f.encode(fromHex('08')), good));
    expect((e as Iso8583Error).reason).toBe('truncated');
  });

  for (const bad of BAD_MESSAGES.filter((b) => b.bytes.length > 0)) {
    it(`closes on a frame holding ${bad.name}`, async () => {
      const [raw, h] = await rawPair();
      const e = await expectClosedWith(raw, h, twoByteLengthFraming().encode(bad.bytes));
      expect(e).toBeInstanceOf(Iso8583Error);
      expect((e as Iso8583Error).reason).toBe(bad.reason);
    });
  }

  it('keeps serving other connections while one peer sends garbage', async () => {
    const { port, server } = await listen();
    const hosts: IsoChannel[] = [];
    server.on('connection', (s) => {
      const ch = new IsoChannel(s, { macKey: lookup, closeGraceMs: 100 });
      hosts.push(ch);
      void (async () => {
        for (;;) {
          try {
            const req = await ch.receive();
            await ch.send(networkResponse(req, { responseCode: RC.approved, at: LATER }));
          } catch (e) {
            if (e instanceof IsoMacError && e.isoMessage) continue;
            return;
          }
        }
      })();
    });
    cleanup.push(() => Promise.all(hosts.map((c) => c.close())));
    const raw = connect({ port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    await once(raw, 'connect');
    raw.write(fromHex('00030102'));
    raw.write(fromHex('03'));
    await once(raw, 'end');
    raw.destroy();
    const t = await connectIsoChannel({ host: '127.0.0.1', port, macKey: lookup });
    cleanup.push(() => t.close());
    expect((await t.request(echoRequest(header({ stan: 99 })))).responseCode()).toBe('00');
    expect(unpack(pack(await t.request(echoRequest(header({ stan: 100 }))))).message.stan()).toBe(100);
  });
});
