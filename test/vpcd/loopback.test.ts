/**
 * VpcdServer (reader side) and VpcdCardClient (card side) over real loopback sockets on ephemeral
 * ports, plus raw sockets that break the protocol on either side.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import type { VirtualCard } from '../../emulator/card.js';
import {
  VpcdCardClient,
  RECONNECT_INITIAL_DELAY_MS,
  RECONNECT_MAX_DELAY_MS,
  type VpcdLogger,
} from '../../emulator/vpcd/client.js';
import { VpcdServer, NoCardError } from '../../src/reader/vpcd-server.js';
import { FrameDecoder, VpcdControl, encodeControl, encodeFrame } from '../../src/apdu/vpcd-frame.js';
import { CardRemovedError, ChannelClosedError, TimeoutError, BadInputError, ProtocolError } from '../../src/util/errors.js';
import { QuickAck, QUICKACK_MISSING_WARNING, IPPROTO_TCP, TCP_QUICKACK } from '../../src/util/quickack.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { createRequire } from 'node:module';

// ---------------------------------------------------------------------------------------------
// A small VirtualCard that records what the reader did to it.

const ATR_A = fromHex('3b80800101');
const ATR_B = fromHex('3b8180018080');
const BINARY = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const INS_ECHO = 0x01;
const INS_HOLD = 0xee;

class FakeCard implements VirtualCard {
  powered = false;
  readonly log: string[] = [];
  private held: Array<() => void> = [];
  constructor(readonly atr: Uint8Array = ATR_A) {}
  powerOn(): void {
    this.powered = true;
    this.log.push('on');
  }
  powerOff(): void {
    this.powered = false;
    this.log.push('off');
  }
  reset(): void {
    this.powered = true;
    this.log.push('reset');
  }
  /** Lets held commands (INS EE) answer 90 00. */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const r of held) r();
  }
  get holding(): number {
    return this.held.length;
  }
  async process(command: Uint8Array): Promise<Uint8Array> {
    const ins = command[1];
    this.log.push(`apdu ${ins.toString(16).padStart(2, '0')}`);
    if (!this.powered) return fromHex('6985');
    if (ins === 0xb0) return concatBytes(BINARY, fromHex('9000'));
    if (ins === INS_ECHO) return concatBytes(command.subarray(command.length > 7 && command[4] === 0 ? 7 : 5), fromHex('9000'));
    if (ins === INS_HOLD) {
      await new Promise<void>((resolve) => this.held.push(resolve));
      this.log.push('held done');
      return fromHex('9000');
    }
    return fromHex('6d00');
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers: everything started in a test is closed after it.

interface Closable {
  close(): Promise<void> | void;
}
let cleanup: Closable[] = [];
afterEach(async () => {
  const items = cleanup.reverse();
  cleanup = [];
  for (const c of items) await c.close();
});

function capture(): VpcdLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

async function startServer(options: ConstructorParameters<typeof VpcdServer>[0] = {}): Promise<VpcdServer & { logger: ReturnType<typeof capture> }> {
  const logger = capture();
  const server = await VpcdServer.listen({ port: 0, logger, ...options });
  cleanup.push(server);
  return Object.assign(server, { logger });
}

function startClient(card: VirtualCard, port: number, options: ConstructorParameters<typeof VpcdCardClient>[1] = {}): VpcdCardClient & { logger: ReturnType<typeof capture> } {
  const logger = capture();
  const client = new VpcdCardClient(card, { port, logger, initialDelayMs: 10, maxDelayMs: 100, ...options });
  cleanup.push(client);
  client.insertCard();
  return Object.assign(client, { logger });
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves when the condition holds; fails after `ms` (bounded wait). */
async function until(condition: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A raw TCP server playing a (misbehaving) vpcd reader. */
async function rawReader(): Promise<{ server: Server; port: number; sockets: Socket[]; nextSocket(): Promise<Socket> }> {
  const sockets: Socket[] = [];
  const waiting: Array<(s: Socket) => void> = [];
  const server = createServer({ noDelay: true }, (s) => {
    s.on('error', () => undefined);
    sockets.push(s);
    waiting.shift()?.(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push({
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
  let taken = 0;
  return {
    server,
    port: (server.address() as AddressInfo).port,
    sockets,
    nextSocket: () =>
      new Promise<Socket>((resolve) => {
        if (sockets.length > taken) resolve(sockets[taken++]);
        else
          waiting.push((s) => {
            taken++;
            resolve(s);
          });
      }),
  };
}

/** Reads the next vpcd frame from a raw socket. */
function readFrame(socket: Socket, decoder = new FrameDecoder()): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      const frames = decoder.push(chunk);
      if (frames.length > 0) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(frames[0]);
      }
    };
    const onClose = (): void => reject(new Error('socket closed'));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

const READ_BINARY = fromHex('00b0000010');

// ---------------------------------------------------------------------------------------------

describe('VpcdServer <-> VpcdCardClient', () => {
  it('powers the card up, reads its ATR and transmits APDUs', async () => {
    const server = await startServer();
    const card = new FakeCard();
    const inserted = server.waitForCard();
    const client = startClient(card, server.port);
    expect(toHex(await inserted)).toBe(toHex(ATR_A));
    expect(server.cardPresent).toBe(true);
    expect(toHex(server.atr!)).toBe(toHex(ATR_A));
    expect(card.log).toEqual(['on']);
    expect(client.state).toBe('connected');

    const r = await server.transmit(READ_BINARY);
    expect(toHex(r)).toBe(toHex(BINARY) + '9000');
    expect(toHex(await server.transmit(fromHex('00ca000000')))).toBe('6d00');
  });

  it('serialises concurrent transmits and keeps answers in order, large APDUs included', async () => {
    const server = await startServer();
    startClient(new FakeCard(), server.port);
    await server.waitForCard();
    const big = Uint8Array.from({ length: 60_000 }, (_, i) => (i * 7) & 0xff);
    const extended = concatBytes(fromHex('80010000'), Uint8Array.of(0, big.length >> 8, big.length & 0xff), big);
    const results = await Promise.all([
      server.transmit(fromHex('8001000003aabbcc')),
      server.transmit(extended),
      server.transmit(READ_BINARY),
      server.transmit(fromHex('8001000001dd')),
    ]);
    expect(results.map((r) => toHex(r.subarray(0, 8)))).toEqual(['aabbcc9000', toHex(big.subarray(0, 8)), toHex(BINARY.subarray(0, 8)), 'dd9000']);
    expect(toHex(results[1])).toBe(toHex(big) + '9000');
  });

  it('warm reset sends RESET, cold reset POWER OFF + POWER ON, both then GET ATR', async () => {
    const server = await startServer();
    const card = new FakeCard();
    startClient(card, server.port);
    await server.waitForCard();
    expect(toHex(await server.reset())).toBe(toHex(ATR_A));
    expect(card.log).toEqual(['on', 'reset']);
    expect(toHex(await server.reset(true))).toBe(toHex(ATR_A));
    expect(card.log).toEqual(['on', 'reset', 'off', 'on']);
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
  });

  it('rejects with NoCardError (NO_CARD) when no card ever came, and refuses unframeable commands', async () => {
    const server = await startServer();
    await expect(server.transmit(READ_BINARY)).rejects.toBeInstanceOf(NoCardError);
    await expect(server.transmit(READ_BINARY)).rejects.toMatchObject({ code: 'NO_CARD' });
    await expect(server.reset()).rejects.toMatchObject({ code: 'NO_CARD' });
    await expect(server.transmit(Uint8Array.of(0))).rejects.toBeInstanceOf(BadInputError);
    await expect(server.transmit(new Uint8Array(0))).rejects.toBeInstanceOf(BadInputError);
  });

  it('card removed mid-command: CardRemovedError, card-removed event, card powered off after its APDU', async () => {
    const server = await startServer();
    const card = new FakeCard();
    const client = startClient(card, server.port);
    await server.waitForCard();
    const removed = server.waitForRemoval();
    const pending = server.transmit(fromHex('00ee0000'));
    await until(() => card.holding === 1);
    const removing = client.removeCard();
    await expect(pending).rejects.toBeInstanceOf(CardRemovedError);
    expect(await removed).toBe('card disconnected');
    expect(server.cardPresent).toBe(false);
    expect(client.state).toBe('removed');
    card.release();
    await removing;
    expect(card.log).toEqual(['on', 'apdu ee', 'held done', 'off']);
    // The session's card is gone: CardRemovedError, not NoCardError, until reset() binds a new card.
    await expect(server.transmit(READ_BINARY)).rejects.toBeInstanceOf(CardRemovedError);
    await expect(server.reset()).rejects.toBeInstanceOf(NoCardError);
    // Removed stays removed: no reconnect attempts.
    await new Promise((r) => setTimeout(r, 150));
    expect(server.cardPresent).toBe(false);
    await expect(client.whenConnected()).rejects.toBeInstanceOf(CardRemovedError);
  });

  it('re-insertion: card-inserted again; the old session must reset() before using the new card', async () => {
    const server = await startServer();
    const card = new FakeCard();
    const client = startClient(card, server.port);
    await server.waitForCard();
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
    await client.removeCard();
    await server.waitForRemoval();
    const events: string[] = [];
    server.on('card-inserted', (atr) => events.push(toHex(atr)));
    client.insertCard();
    await client.whenConnected();
    await until(() => server.cardPresent);
    expect(events).toEqual([toHex(ATR_A)]);
    await expect(server.transmit(READ_BINARY)).rejects.toBeInstanceOf(CardRemovedError);
    expect(toHex(await server.reset())).toBe(toHex(ATR_A));
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
    expect(card.log).toEqual(['on', 'apdu b0', 'off', 'on', 'reset', 'apdu b0']);
  });

  it('a mute card times out (TimeoutError) and is dropped as removed', async () => {
    const server = await startServer({ transmitTimeoutMs: 150 });
    const card = new FakeCard();
    const client = startClient(card, server.port);
    await server.waitForCard();
    const removed = server.waitForRemoval();
    await expect(server.transmit(fromHex('00ee0000'))).rejects.toBeInstanceOf(TimeoutError);
    expect(await removed).toMatch(/mute/);
    card.release();
    // The client sees the reader drop it and comes back on its own, as a re-inserted card.
    await server.waitForCard();
    expect(client.state).toBe('connected');
  });

  it('close(): pending and later calls reject with ChannelClosedError; idempotent', async () => {
    const server = await startServer();
    const card = new FakeCard();
    startClient(card, server.port);
    await server.waitForCard();
    const pending = server.transmit(fromHex('00ee0000'));
    await until(() => card.holding === 1);
    const removed = server.waitForRemoval();
    await Promise.all([server.close(), server.close()]);
    await expect(pending).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(server.transmit(READ_BINARY)).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(server.reset()).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(server.waitForCard()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(await removed).toBe('vpcd server closed');
    card.release();
  });

  it('a client started before its server connects with backoff once the server is up', async () => {
    const port = await freePort();
    const card = new FakeCard();
    const client = startClient(card, port, { initialDelayMs: 10, maxDelayMs: 40 });
    expect(client.state).toBe('connecting');
    await new Promise((r) => setTimeout(r, 200));
    expect(client.state).toBe('connecting');
    // One "waiting" line per outage, not one per attempt.
    expect(client.logger.lines.filter((l) => l.includes('waiting for vpcd server'))).toHaveLength(1);
    const server = await startServer({ port });
    expect(toHex(await server.waitForCard())).toBe(toHex(ATR_A));
    await client.whenConnected();
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
  });

  it('backoff doubles from the initial delay and is capped', () => {
    const client = new VpcdCardClient(new FakeCard(), { port: 1 });
    const delays = [0, 1, 2, 3, 4, 5, 6, 10, 100, 5000].map((n) => client.backoffDelay(n));
    expect(delays.slice(0, 4)).toEqual([1, 2, 4, 8].map((k) => k * RECONNECT_INITIAL_DELAY_MS));
    expect(Math.max(...delays)).toBe(RECONNECT_MAX_DELAY_MS);
    expect(delays.at(-1)).toBe(RECONNECT_MAX_DELAY_MS);
  });

  it('survives a server restart on the same port', async () => {
    const first = await startServer();
    const port = first.port;
    const card = new FakeCard();
    const client = startClient(card, port);
    await first.waitForCard();
    const disconnected = once(client, 'disconnected');
    await first.close();
    await disconnected;
    expect(['connecting', 'connected']).toContain(client.state);
    expect(card.powered).toBe(false);
    const second = await startServer({ port });
    expect(toHex(await second.waitForCard())).toBe(toHex(ATR_A));
    expect(toHex(await second.transmit(READ_BINARY))).toMatch(/9000$/);
    expect(card.log).toEqual(['on', 'off', 'on', 'apdu b0']);
  });

  it('refuses a second card while one is in the reader; the second gets in once the first leaves', async () => {
    const server = await startServer();
    const a = new FakeCard(ATR_A);
    const b = new FakeCard(ATR_B);
    const clientA = startClient(a, server.port);
    await server.waitForCard();
    startClient(b, server.port);
    await until(() => server.logger.lines.some((l) => l.includes('refusing card connection')));
    expect(toHex(server.atr!)).toBe(toHex(ATR_A));
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
    const next = new Promise<Uint8Array>((resolve) => server.once('card-inserted', resolve));
    await clientA.removeCard();
    expect(toHex(await next)).toBe(toHex(ATR_B));
    expect(toHex(await server.reset())).toBe(toHex(ATR_B));
    expect(b.log).toContain('reset');
  });
});

describe('VpcdServer against misbehaving card sides', () => {
  it('drops a peer sending a zero-length frame and goes on serving real cards', async () => {
    const server = await startServer({ atrTimeoutMs: 1_000 });
    const raw = connect(server.port, '127.0.0.1');
    raw.on('error', () => undefined);
    const first = await readFrame(raw);
    expect(toHex(first)).toBe('01');
    raw.write(Uint8Array.of(0, 0));
    await once(raw, 'close');
    expect(server.logger.lines.some((l) => l.startsWith('warn') && l.includes('length 0'))).toBe(true);
    startClient(new FakeCard(), server.port);
    await server.waitForCard();
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
  });

  it('drops a peer that never answers GET ATR, or sends random bytes', async () => {
    const server = await startServer({ atrTimeoutMs: 150 });
    const silent = connect(server.port, '127.0.0.1');
    silent.on('error', () => undefined);
    silent.resume(); // read (and ignore) POWER ON + GET ATR, so the close is seen
    await once(silent, 'close');
    const noisy = connect(server.port, '127.0.0.1');
    noisy.on('error', () => undefined);
    noisy.resume();
    noisy.write(Uint8Array.from({ length: 40 }, (_, i) => (i * 97 + 13) & 0xff));
    await once(noisy, 'close');
    expect(server.cardPresent).toBe(false);
    startClient(new FakeCard(), server.port);
    await server.waitForCard();
    expect(toHex(await server.transmit(READ_BINARY))).toMatch(/9000$/);
  });

  it('refuses a 1-byte ATR and an R-APDU without SW; drops a card sending unsolicited frames', async () => {
    const server = await startServer({ atrTimeoutMs: 1_000 });
    const shortAtr = connect(server.port, '127.0.0.1');
    shortAtr.on('error', () => undefined);
    const dec = new FrameDecoder();
    expect(toHex(await readFrame(shortAtr, dec))).toBe('01');
    shortAtr.write(encodeFrame(Uint8Array.of(0x3b)));
    await once(shortAtr, 'close');

    const card = connect(server.port, '127.0.0.1');
    card.on('error', () => undefined);
    const d2 = new FrameDecoder();
    // POWER ON and GET ATR come in one write; the decoder may see them in one chunk.
    const frames: string[] = [];
    await new Promise<void>((resolve) => {
      card.on('data', (c: Buffer) => {
        frames.push(...d2.push(c).map(toHex));
        if (frames.length >= 2) resolve();
      });
    });
    expect(frames).toEqual(['01', '04']);
    card.write(encodeFrame(ATR_A));
    await server.waitForCard();
    card.removeAllListeners('data');
    card.once('data', () => card.write(encodeFrame(Uint8Array.of(0x90))));
    await expect(server.transmit(READ_BINARY)).rejects.toBeInstanceOf(ProtocolError);
    expect(server.cardPresent).toBe(true);
    const removed = server.waitForRemoval();
    card.write(encodeFrame(fromHex('9000')));
    expect(await removed).toMatch(/unsolicited/);
  });
});

describe('VpcdCardClient against misbehaving readers', () => {
  it('logs and reconnects on zero-length and oversized frames, ignores unknown control codes, never crashes', async () => {
    const reader = await rawReader();
    const card = new FakeCard();
    const client = startClient(card, reader.port, { maxFrameLength: 1024 });

    const s1 = await reader.nextSocket();
    s1.write(Uint8Array.of(0, 0));
    await once(s1, 'close');
    expect(client.logger.lines.some((l) => l.startsWith('warn malformed frame') && l.includes('length 0'))).toBe(true);

    const s2 = await reader.nextSocket();
    s2.write(encodeControl(VpcdControl.PowerOn));
    await until(() => card.powered);
    s2.write(Uint8Array.of(0x10, 0x00));
    await once(s2, 'close');
    expect(client.logger.lines.some((l) => l.includes('exceeds the maximum of 1024'))).toBe(true);
    await until(() => card.log.at(-1) === 'off');

    const s3 = await reader.nextSocket();
    const dec = new FrameDecoder();
    s3.write(concatBytes(encodeFrame(Uint8Array.of(0x07)), encodeControl(VpcdControl.PowerOn), encodeControl(VpcdControl.GetAtr)));
    expect(toHex(await readFrame(s3, dec))).toBe(toHex(ATR_A));
    s3.write(encodeFrame(READ_BINARY));
    expect(toHex(await readFrame(s3, dec))).toBe(toHex(BINARY) + '9000');
    expect(client.logger.lines.some((l) => l.includes('unknown vpcd control code unknown 0x07'))).toBe(true);
    expect(client.state).toBe('connected');
    expect(card.log).toEqual(['on', 'off', 'on', 'apdu b0']);
  });

  it('drops a reader that floods frames without reading answers', async () => {
    const reader = await rawReader();
    const card = new FakeCard();
    const client = startClient(card, reader.port);
    const s1 = await reader.nextSocket();
    const flood = concatBytes(encodeControl(VpcdControl.PowerOn), ...Array.from({ length: 200 }, () => encodeFrame(fromHex('00ee0000'))));
    s1.write(flood);
    await once(s1, 'close');
    expect(client.logger.lines.some((l) => l.includes('without waiting for answers'))).toBe(true);
    card.release();
    const s2 = await reader.nextSocket();
    s2.write(encodeControl(VpcdControl.GetAtr));
    expect(toHex(await readFrame(s2))).toBe(toHex(ATR_A));
    // Only the first held command ran; the rest were dropped with the link.
    expect(card.log.filter((l) => l === 'apdu ee').length).toBeLessThanOrEqual(1);
  });

  it('answers 6F00 when the card itself fails, and keeps serving', async () => {
    const reader = await rawReader();
    const broken: VirtualCard = {
      atr: ATR_A,
      powerOn: () => undefined,
      powerOff: () => undefined,
      reset: () => undefined,
      process: async (c) => {
        if (c[1] === 0x99) throw new Error('store failure');
        if (c[1] === 0x98) return Uint8Array.of(0x90);
        return fromHex('9000');
      },
    };
    const client = startClient(broken, reader.port);
    const s = await reader.nextSocket();
    const dec = new FrameDecoder();
    s.write(encodeFrame(fromHex('00990000')));
    expect(toHex(await readFrame(s, dec))).toBe('6f00');
    s.write(encodeFrame(fromHex('00980000')));
    expect(toHex(await readFrame(s, dec))).toBe('6f00');
    s.write(encodeFrame(fromHex('00a40000')));
    expect(toHex(await readFrame(s, dec))).toBe('9000');
    expect(client.logger.lines.filter((l) => l.startsWith('warn card'))).toHaveLength(2);
  });

  it('close() is final and idempotent; insertCard after close throws', async () => {
    const server = await startServer();
    const client = startClient(new FakeCard(), server.port);
    await client.whenConnected();
    await Promise.all([client.close(), client.close()]);
    expect(client.state).toBe('closed');
    expect(() => client.insertCard()).toThrow(ChannelClosedError);
    await expect(client.whenConnected()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('whenConnected times out with TimeoutError while no server is up', async () => {
    const port = await freePort();
    const client = startClient(new FakeCard(), port);
    await expect(client.whenConnected(100)).rejects.toBeInstanceOf(TimeoutError);
  });
});

describe('QuickAck', () => {
  it('without the native module: works, warns once with the install hint', () => {
    const warnings: string[] = [];
    const q = new QuickAck({ platform: 'linux', load: () => { throw new Error('Cannot find module'); }, warn: (m) => warnings.push(m) });
    expect(q.status).toBe('missing-module');
    const s = connect({ port: 1, host: '127.0.0.1' });
    s.on('error', () => undefined);
    q.arm(s);
    q.arm(s);
    s.destroy();
    expect(warnings).toEqual([QUICKACK_MISSING_WARNING]);
    expect(QUICKACK_MISSING_WARNING).toMatch(/npm install/);
    expect(QUICKACK_MISSING_WARNING).toMatch(/g\+\+, make, python3/);
  });

  it('is silent when disabled or on platforms without TCP_QUICKACK', () => {
    const warnings: string[] = [];
    const off = new QuickAck({ enabled: false, warn: (m) => warnings.push(m) });
    const mac = new QuickAck({ platform: 'darwin', warn: (m) => warnings.push(m) });
    expect([off.status, mac.status]).toEqual(['disabled', 'unsupported-platform']);
    const s = connect({ port: 1, host: '127.0.0.1' });
    s.on('error', () => undefined);
    off.arm(s);
    mac.arm(s);
    s.destroy();
    expect(warnings).toEqual([]);
  });

  it.runIf(process.platform === 'linux')('sets TCP_QUICKACK on a live socket when sockopt is installed', async (ctx) => {
    let sockopt: { getsockopt(s: Socket, l: number, o: number): number };
    try {
      sockopt = createRequire(import.meta.url)('sockopt');
    } catch {
      ctx.skip();
      return;
    }
    const q = new QuickAck();
    expect(q.status).toBe('active');
    const server = createServer((c) => c.on('error', () => undefined));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const s = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(s, 'connect');
    q.arm(s);
    expect(sockopt.getsockopt(s, IPPROTO_TCP, TCP_QUICKACK)).toBe(1);
    s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
});
