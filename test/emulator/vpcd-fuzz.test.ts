/**
 * Bad input over the real socket: the test plays the reader side of vpcd (a plain TCP server) and
 * throws 100,000+ malformed frames at the emulator's vpcd client driving a card with a file-backed
 * (tear-safe) image. Every APDU frame must be answered with a well-formed R-APDU, crafted faults with
 * their exact status word; broken framing must end in a clean disconnect and a reconnect; the card's
 * stored state must come out intact.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { openFileStore } from '../../emulator/store/file-store.js';
import { FrameDecoder, encodeFrame } from '../../src/apdu/vpcd-frame.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const SERIAL = fromHex('0102030405060708');
const SELECT_DIAG = fromHex('00A4040C09F068696C7444494147');
const COUNTER_READ = fromHex('8042000004');
const COUNTER_INCREMENT = fromHex('8040000004');
const FUZZ_FRAMES = 100_000;
const WINDOW = 16; // below the client's MAX_QUEUED_FRAMES (32)

/** A seeded xorshift32 so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

/** The reader side: accepts the card's connection and exchanges frames with it. */
class RawReader {
  private server: Server;
  private socket: Socket | null = null;
  private decoder = new FrameDecoder();
  private inbox: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private connWaiters: ((s: Socket) => void)[] = [];
  connections = 0;
  closes = 0;

  constructor() {
    this.server = createServer((s) => {
      s.setNoDelay(true);
      this.connections++;
      this.socket = s;
      this.decoder = new FrameDecoder();
      this.inbox = [];
      s.on('data', (chunk) => {
        this.inbox.push(...this.decoder.push(new Uint8Array(chunk)));
        this.wake?.();
      });
      s.on('close', () => {
        this.closes++;
        if (this.socket === s) this.socket = null;
        this.wake?.();
      });
      s.on('error', () => undefined);
      for (const w of this.connWaiters.splice(0)) w(s);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  connection(): Promise<Socket> {
    return this.socket ? Promise.resolve(this.socket) : new Promise((r) => this.connWaiters.push(r));
  }

  async write(bytes: Uint8Array): Promise<void> {
    const s = await this.connection();
    s.write(bytes);
  }

  /** The next n frames from the card, in order (bounded wait). */
  async read(n: number, timeoutMs = 10_000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length < n) {
      if (Date.now() > deadline) throw new Error(`waited for ${n} frames, got ${this.inbox.length}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
    }
    return this.inbox.splice(0, n);
  }

  async exchange(apdu: Uint8Array): Promise<Uint8Array> {
    await this.write(encodeFrame(apdu));
    return (await this.read(1))[0];
  }

  /** Waits until the current connection has closed (the card side dropped it). */
  async closed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.socket) {
      if (Date.now() > deadline) throw new Error('the card side did not close the connection');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

type Expect = { sw?: string } | null; // null: no answer expected (a control code)

/** One fuzz frame and what must come back. */
function fuzzFrame(next: () => number): { payload: Uint8Array; expect: Expect } {
  const byte = () => Math.floor(next() * 256);
  const bytes = (n: number) => Uint8Array.from({ length: n }, byte);
  const kind = Math.floor(next() * 10);
  switch (kind) {
    case 0: // 2-3 byte "APDUs"
      return { payload: bytes(2 + Math.floor(next() * 2)), expect: { sw: '6700' } };
    case 1: {
      // a short Lc that promises more than is there
      const lc = 5 + Math.floor(next() * 200);
      return { payload: concatBytes(Uint8Array.of(0x80, 0x18, 0, 0, lc), bytes(1 + Math.floor(next() * (lc - 2)))), expect: { sw: '6700' } };
    }
    case 2: // invalid class FF or RFU 20..3F
      return { payload: concatBytes(Uint8Array.of(next() < 0.5 ? 0xff : 0x20 + Math.floor(next() * 32)), bytes(3)), expect: { sw: '6E00' } };
    case 3: // invalid INS 6x / 9x, with no applet bound to these classes either
      return { payload: Uint8Array.of(0x00, (next() < 0.5 ? 0x60 : 0x90) | Math.floor(next() * 16), byte(), byte()), expect: { sw: '6D00' } };
    case 4: {
      // an unknown control code: ignored, no answer (0..2 and 4 are real ones)
      const code = 5 + Math.floor(next() * 251);
      return { payload: Uint8Array.of(code), expect: null };
    }
    case 5: {
      // an extended-length frame whose Lc disagrees with its size
      const n = 300 + Math.floor(next() * 2000);
      return { payload: concatBytes(Uint8Array.of(0x80, 0x18, 0, 0, 0, (n + 7) >> 8, (n + 7) & 0xff), bytes(n)), expect: { sw: '6700' } };
    }
    default: {
      // random garbage, INS 40 (COUNTER INCREMENT) excluded so the stored counter must not move
      const p = bytes(2 + Math.floor(next() * 300));
      if (p.length > 1 && p[1] === 0x40) p[1] = 0x41;
      return { payload: p, expect: {} };
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), 'hilt-vpcd-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('emulator over vpcd: malformed frames', () => {
  it(`answers ${FUZZ_FRAMES.toLocaleString('en')} malformed frames correctly, survives broken framing, keeps its stored state`, async () => {
    const image = join(dir, 'card.img');
    const reader = new RawReader();
    const port = await reader.listen();
    const card = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], image });
    const warnings: string[] = [];
    const client = new VpcdCardClient(card.os, { port, initialDelayMs: 5, maxDelayMs: 20, logger: { info: () => undefined, warn: (m) => warnings.push(m) } });
    client.insertCard();
    try {
      await reader.connection();
      await reader.write(encodeFrame(Uint8Array.of(0x01))); // power on
      expect(toHex(await reader.exchange(SELECT_DIAG))).toBe('9000');
      for (let i = 1; i <= 3; i++) expect(toHex(await reader.exchange(COUNTER_INCREMENT))).toBe(`0000000${i}9000`);

      const next = rng(0x5eed);
      let sent = 0;
      let checked = 0;
      const bad: string[] = [];
      while (sent < FUZZ_FRAMES) {
        const batch = Array.from({ length: WINDOW }, () => fuzzFrame(next));
        sent += batch.length;
        await reader.write(concatBytes(...batch.map((f) => encodeFrame(f.payload))));
        const expecting = batch.filter((f) => f.expect !== null);
        const answers = await reader.read(expecting.length);
        expecting.forEach((f, i) => {
          const r = answers[i];
          const sw1 = r[r.length - 2];
          const swHex = toHex(r.subarray(r.length - 2)).toUpperCase();
          checked++;
          if (r.length < 2 || !((sw1 >= 0x61 && sw1 <= 0x6f) || (sw1 >= 0x90 && sw1 <= 0x9f))) bad.push(`${toHex(f.payload)} -> ${toHex(r)}`);
          else if (f.expect?.sw && swHex !== f.expect.sw) bad.push(`${toHex(f.payload).slice(0, 40)} -> ${swHex}, expected ${f.expect.sw}`);
        });
        if (bad.length > 5) break;
      }
      expect(bad).toEqual([]);
      expect(sent).toBeGreaterThanOrEqual(FUZZ_FRAMES);
      expect(checked).toBeGreaterThan(FUZZ_FRAMES * 0.85);

      // Broken framing: each must end in a clean disconnect, then the card comes back by itself.
      const breakers: [string, Uint8Array][] = [
        ['zero-length frame', Uint8Array.of(0, 0)],
        ['truncated frame, then the reader hangs up', Uint8Array.of(0, 100, 1, 2, 3)],
      ];
      for (const [what, bytes] of breakers) {
        const before = reader.connections;
        await reader.write(bytes);
        if (what.startsWith('truncated')) (await reader.connection()).end();
        await reader.closed();
        await reader.connection();
        expect(reader.connections, what).toBe(before + 1);
        await reader.write(encodeFrame(Uint8Array.of(0x01)));
        expect(toHex(await reader.exchange(SELECT_DIAG)), what).toBe('9000');
      }

      // Stored state intact: the counter is still 3 through the socket...
      await reader.write(encodeFrame(Uint8Array.of(0x02))); // reset
      expect(toHex(await reader.exchange(SELECT_DIAG))).toBe('9000');
      expect(toHex(await reader.exchange(COUNTER_READ))).toBe('000000039000');
    } finally {
      await client.close();
      await reader.close();
    }
    // ...and in the image file, reopened from scratch.
    const reopened = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], image });
    expect(toHex(await reopened.os.process(SELECT_DIAG))).toBe('9000');
    expect(toHex(await reopened.os.process(COUNTER_READ))).toBe('000000039000');
    expect(() => openFileStore(image)).not.toThrow();
    expect(warnings.some((w) => /zero|empty|length/i.test(w))).toBe(true);
  }, 120_000);
});
