/**
 * The reader commands and selection over hilt's own vpcd server, no pcscd: `--reader
 * vpcd://127.0.0.1:PORT` on an ephemeral loopback port, the emulator (diagnostic applet) connecting
 * as the card side. Also the vpcd server's events in the shared event model (connect = inserted,
 * disconnect = removed).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { VpcdServer } from '../../src/reader/vpcd-server.js';
import { openMonitor, openReader, parseReaderSelection, stackChannel } from '../../src/reader/select.js';
import { vpcdServerEvents, type MonitorEvent } from '../../src/reader/events.js';
import { CardRemovedError, TimeoutError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { captureIo, runHilt } from '../helpers/pcscd.js';

const quiet = { info: () => undefined, warn: () => undefined };
const SELECT = fromHex('00A4040C09F068696C7444494147');
/** Bound of waiting for one event in these tests. */
const EVENT_BOUND_MS = 5_000;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function newCard(port: number): { client: VpcdCardClient; atr: Uint8Array } {
  const card = makeCard({ serial: fromHex('0102030405060708'), applets: [{ name: 'diagnostic' }] });
  const client = new VpcdCardClient(card.os, { port, logger: quiet, initialDelayMs: 10, maxDelayMs: 100 });
  return { client, atr: card.os.atr };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function next(it: AsyncIterator<MonitorEvent>): Promise<MonitorEvent> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no event within ${EVENT_BOUND_MS} ms`)), EVENT_BOUND_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  if (r.done) throw new Error('events ended');
  return r.value;
}

describe('openReader / stackChannel over vpcd://', () => {
  it('waits for the card side, then carries the diagnostic range with GET RESPONSE', async () => {
    const port = await freePort();
    const { client, atr } = newCard(port);
    client.insertCard();
    cleanups.push(() => client.close());
    const opened = await openReader(parseReaderSelection(`vpcd://127.0.0.1:${port}`), { vpcdLogger: quiet });
    cleanups.push(() => opened.channel.close());
    expect(opened).toMatchObject({ transport: 'vpcd', name: `vpcd://127.0.0.1:${port}`, protocol: null });
    expect(toHex(opened.atr)).toBe(toHex(atr));
    const ch = stackChannel(opened.channel);
    expect(toHex(await ch.transmit(SELECT))).toBe('9000');
    const r = await ch.transmit(fromHex('8012025800'));
    expect(r.length).toBe(602);
    expect(toHex(r.subarray(598))).toBe('56579000');
  });

  it('times out with a hint when no card side connects', async () => {
    const port = await freePort();
    const err = await openReader(parseReaderSelection(`vpcd://127.0.0.1:${port}`), { waitMs: 50, vpcdLogger: quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toBe(`no card connected to vpcd://127.0.0.1:${port} within 50 ms (start one: hilt emulator --vpcd 127.0.0.1:${port})`);
    // The port was released: a second server can listen there.
    const s = await VpcdServer.listen({ port, logger: quiet });
    await s.close();
  });
});

describe('CLI over vpcd://', () => {
  it('hilt send: automatic GET RESPONSE, 6Cxx, extended; --raw shows 61xx', async () => {
    const port = await freePort();
    const { client } = newCard(port);
    client.insertCard();
    cleanups.push(() => client.close());
    const r = await runHilt(['send', '--reader', `vpcd://127.0.0.1:${port}`, '00A4040009F068696C7444494147', '801C002000', '80121000000000', '--json']);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as { transport: string; protocol: null; exchanges: { sw: string; data: string }[] };
    expect(doc.transport).toBe('vpcd');
    expect(doc.protocol).toBeNull();
    expect(doc.exchanges.map((x) => x.sw)).toEqual(['9000', '9000', '9000']);
    expect(doc.exchanges[1].data).toBe('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F');
    expect(doc.exchanges[2].data.length).toBe(8192);
  });

  it('hilt script prints scriptor-style lines and stops on a broken # --expect', async () => {
    const port = await freePort();
    const { client } = newCard(port);
    client.insertCard();
    cleanups.push(() => client.close());
    const script = ['00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47', '00 C0 00 00 19', '# --expect-next 6A82', '80 32 6A 83', '80 10 00 00'].join('\n');
    const r = await runHilt(['script', '--reader', `vpcd://127.0.0.1:${port}`, '-'], { input: streamOf(script) });
    expect(r.code).toBe(1);
    expect(r.out).toContain('> 00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47\n< 61 19 : 25 more bytes available (0x19), use GET RESPONSE');
    expect(r.out).toContain('< 6F 17 84 09 F0 68 69 6C 74 44 49 41 47 A5 0A 50 \n08 68 69 6C 74 44 49 41 47 90 00 : success');
    expect(r.out).not.toContain('> 80 10 00 00');
    expect(r.err).toContain('hilt: script line 4: status word 6A83 (record not found); expected 6A82');
  });

  it('hilt readers reports the vpcd reader with the card that connected, or empty', async () => {
    const port = await freePort();
    const { client, atr } = newCard(port);
    client.insertCard();
    cleanups.push(() => client.close());
    const r = await runHilt(['readers', '--reader', `vpcd://127.0.0.1:${port}`, '--json']);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as { readers: Record<string, unknown>[] };
    expect(doc.readers).toEqual([
      expect.objectContaining({ index: null, name: `vpcd://127.0.0.1:${port}`, transport: 'vpcd', cardPresent: true, atr: toHex(atr).toUpperCase() }),
    ]);
    const port2 = await freePort();
    const empty = await runHilt(['readers', '--reader', `vpcd://127.0.0.1:${port2}`, '--wait', '30']);
    expect(empty.code, empty.err).toBe(0);
    expect(empty.out).toMatch(new RegExp(`-\\s+vpcd://127\\.0\\.0\\.1:${port2}\\s+empty`));
  });

  it('hilt monitor on vpcd://: connect is card-inserted, disconnect is card-removed', async () => {
    const port = await freePort();
    const lines: string[] = [];
    let wake: (() => void) | null = null;
    const stop = new AbortController();
    const io = captureIo((t) => {
      lines.push(t);
      wake?.();
    });
    const running = runHilt(['monitor', '--reader', `vpcd://127.0.0.1:${port}`, '--json'], { signal: stop.signal }, io);
    const waitLines = async (n: number): Promise<void> => {
      const deadline = Date.now() + EVENT_BOUND_MS;
      while (lines.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${lines.length} events: ${lines.join(' | ')}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, EVENT_BOUND_MS);
          wake = () => (clearTimeout(t), r());
        });
      }
    };
    try {
      await waitLines(1);
      const { client, atr } = newCard(port);
      client.insertCard();
      await waitLines(2);
      await client.removeCard();
      await waitLines(3);
      await client.close();
      const events = lines.map((l) => JSON.parse(l) as MonitorEvent);
      expect(events.map((e) => e.type)).toEqual(['reader-attached', 'card-inserted', 'card-removed']);
      expect(events[1]).toMatchObject({ source: 'vpcd', reader: `vpcd://127.0.0.1:${port}`, atr: toHex(atr).toUpperCase() });
      expect(events[2]).toMatchObject({ reason: 'card disconnected' });
    } finally {
      stop.abort();
    }
    expect((await running).code).toBe(0);
  });

  it('a vpcd card leaving mid-command is CardRemovedError through the whole stack', async () => {
    const port = await freePort();
    const { client } = newCard(port);
    client.insertCard();
    cleanups.push(() => client.close());
    const opened = await openReader(parseReaderSelection(`vpcd://127.0.0.1:${port}`), { vpcdLogger: quiet });
    cleanups.push(() => opened.channel.close());
    const ch = stackChannel(opened.channel, { trace: { sink: () => undefined } });
    await ch.transmit(SELECT);
    const pending = ch.transmit(fromHex('803001F4')).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await client.removeCard();
    expect(await pending).toBeInstanceOf(CardRemovedError);
  });
});

describe('vpcdServerEvents and openMonitor', () => {
  it('reports a card already connected as initial, then live changes; ends on abort', async () => {
    const server = await VpcdServer.listen({ port: 0, logger: quiet });
    cleanups.push(() => server.close());
    const { client, atr } = newCard(server.port);
    client.insertCard();
    await server.waitForCard(EVENT_BOUND_MS);
    const stop = new AbortController();
    const events = vpcdServerEvents(server, { reader: 'vpcd-test', signal: stop.signal, clock: () => Date.UTC(2026, 10, 23) });
    expect(await next(events)).toEqual({ type: 'reader-attached', time: '2026-11-23T00:00:00.000Z', source: 'vpcd', reader: 'vpcd-test', initial: true });
    expect(await next(events)).toMatchObject({ type: 'card-inserted', atr, initial: true });
    await client.close();
    expect(await next(events)).toMatchObject({ type: 'card-removed', reader: 'vpcd-test' });
    stop.abort();
    expect(await events.next()).toEqual({ value: undefined, done: true });
    expect(server.listenerCount('card-inserted')).toBe(0);
  });

  it('openMonitor(vpcd://) owns its server and releases the port on close', async () => {
    const port = await freePort();
    const handle = await openMonitor(parseReaderSelection(`vpcd://127.0.0.1:${port}`), { vpcdLogger: quiet });
    expect(handle.description).toBe(`vpcd server vpcd://127.0.0.1:${port}`);
    expect((await next(handle.events)).type).toBe('reader-attached');
    await handle.close();
    expect(await handle.events.next()).toEqual({ value: undefined, done: true });
    const s = await VpcdServer.listen({ port, logger: quiet });
    await s.close();
  });
});

function streamOf(text: string): Readable {
  return Readable.from([Buffer.from(text)]);
}
