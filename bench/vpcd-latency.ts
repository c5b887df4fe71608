/**
 * Round-trip latency of a short APDU (READ BINARY, 16 bytes + 9000) on the vpcd paths, as ratios to
 * the in-process baseline measured in the same run:
 *
 *   in-process            card.process() called directly
 *   loopback, quickack    VpcdServer <-> VpcdCardClient, TCP_QUICKACK on both ends
 *   loopback, no quickack same, quickack off (hilt's own server writes each frame in one piece, so
 *                         delayed ACKs do not bite here: the ratio to the row above stays near 1)
 *   two-write reader, ... a minimal reader that writes the length and the payload with two writes,
 *                         Nagle on, as pcscd's vpcd driver does; against VpcdCardClient with and
 *                         without quickack. This is the ~40 ms stall quickack removes.
 *
 * Run: `npm run build && node dist/bench/vpcd-latency.js [iterations]`, or call runVpcdLatencyBench()
 * from the bench runner. The pcscd path needs a running pcscd and a PC/SC client; see the report.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import type { VirtualCard } from '../emulator/card.js';
import { VpcdCardClient } from '../emulator/vpcd/client.js';
import { VpcdServer } from '../src/reader/vpcd-server.js';
import { FrameDecoder, VpcdControl, encodeControl } from '../src/apdu/vpcd-frame.js';
import { concatBytes, fromHex } from '../src/util/bytes.js';

/** Round trips per row (after WARMUP_ITERATIONS not counted). */
export const DEFAULT_ITERATIONS = 2_000;
/** Slow rows (tens of ms per round trip) are capped at this many, so the bench ends in seconds. */
export const SLOW_ROW_ITERATIONS = 40;
export const WARMUP_ITERATIONS = 200;
/** A round trip slower than this in warm-up marks the row as slow. */
const SLOW_THRESHOLD_MS = 5;

const READ_BINARY = fromHex('00b0000010');
const ATR = fromHex('3b80800101');

class BenchCard implements VirtualCard {
  readonly atr = ATR;
  private readonly answer = concatBytes(Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i), fromHex('9000'));
  powerOn(): void {}
  powerOff(): void {}
  reset(): void {}
  async process(_command: Uint8Array): Promise<Uint8Array> {
    return this.answer;
  }
}

export interface LatencyRow {
  path: string;
  iterations: number;
  meanMs: number;
  /** meanMs / in-process meanMs. */
  ratio: number;
}

const silent = { info: () => undefined, warn: (m: string) => process.stderr.write(`${m}\n`) };

async function measure(path: string, iterations: number, roundTrip: () => Promise<unknown>): Promise<Omit<LatencyRow, 'ratio'>> {
  let warmStart = process.hrtime.bigint();
  for (let i = 0; i < WARMUP_ITERATIONS; i++) {
    if (i === WARMUP_ITERATIONS / 2) warmStart = process.hrtime.bigint();
    await roundTrip();
  }
  const warmMean = Number(process.hrtime.bigint() - warmStart) / 1e6 / (WARMUP_ITERATIONS / 2);
  const n = warmMean > SLOW_THRESHOLD_MS ? Math.min(iterations, SLOW_ROW_ITERATIONS) : iterations;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await roundTrip();
  const meanMs = Number(process.hrtime.bigint() - start) / 1e6 / n;
  return { path, iterations: n, meanMs };
}

async function loopbackRow(path: string, quickAck: boolean, iterations: number): Promise<Omit<LatencyRow, 'ratio'>> {
  const server = await VpcdServer.listen({ port: 0, quickAck, logger: silent });
  const client = new VpcdCardClient(new BenchCard(), { port: server.port, quickAck, logger: silent });
  client.insertCard();
  try {
    await server.waitForCard(5_000);
    return await measure(path, iterations, () => server.transmit(READ_BINARY));
  } finally {
    await client.close();
    await server.close();
  }
}

/** A bare reader writing each frame as two writes (length, then payload) with Nagle on, like vpcd. */
async function twoWriteRow(path: string, quickAck: boolean, iterations: number): Promise<Omit<LatencyRow, 'ratio'>> {
  const closers: Array<() => Promise<void>> = [];
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer({ noDelay: false }, (socket) => {
      server.close();
      resolve(socket);
    });
    server.listen(0, '127.0.0.1');
    void once(server, 'listening').then(() => {
      const client = new VpcdCardClient(new BenchCard(), { port: (server.address() as AddressInfo).port, quickAck, logger: silent });
      client.insertCard();
      closers.push(() => client.close());
    });
  });
  const socket = await accepted;
  const decoder = new FrameDecoder();
  let waiting: ((frame: Uint8Array) => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) {
      const w = waiting;
      waiting = null;
      w?.(f);
    }
  });
  const request = (payload: Uint8Array): Promise<Uint8Array> =>
    new Promise((resolve) => {
      waiting = resolve;
      socket.write(Uint8Array.of(payload.length >> 8, payload.length & 0xff));
      socket.write(payload);
    });
  try {
    socket.write(encodeControl(VpcdControl.PowerOn));
    await request(Uint8Array.of(VpcdControl.GetAtr));
    return await measure(path, iterations, () => request(READ_BINARY));
  } finally {
    socket.destroy();
    for (const c of closers) await c();
  }
}

export async function runVpcdLatencyBench(iterations = DEFAULT_ITERATIONS, print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<LatencyRow[]> {
  const card = new BenchCard();
  const rows = [
    await measure('in-process (card.process)', iterations * 10, () => card.process(READ_BINARY)),
    await loopbackRow('loopback VpcdServer<->client, quickack', true, iterations),
    await loopbackRow('loopback VpcdServer<->client, no quickack', false, iterations),
    await twoWriteRow('two-write reader (vpcd-like), quickack', true, iterations),
    await twoWriteRow('two-write reader (vpcd-like), no quickack', false, iterations),
  ];
  const base = rows[0].meanMs;
  const out = rows.map((r) => ({ ...r, ratio: r.meanMs / base }));
  print('vpcd round trip of a short APDU (00 B0 00 00 10 -> 16 bytes + 9000)');
  print(`${'path'.padEnd(44)} ${'n'.padStart(6)} ${'mean ms'.padStart(10)} ${'x in-proc'.padStart(10)}`);
  for (const r of out) {
    print(`${r.path.padEnd(44)} ${String(r.iterations).padStart(6)} ${r.meanMs.toFixed(4).padStart(10)} ${r.ratio.toFixed(0).padStart(10)}`);
  }
  const q = out[3].meanMs;
  const nq = out[4].meanMs;
  print(`two-write reader: no quickack / quickack = ${(nq / q).toFixed(1)}x`);
  return out;
}

/** True when run as a script: `node dist/bench/vpcd-latency.js [iterations]`. */
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const arg = process.argv.find((a) => /^\d+$/.test(a));
  const n = arg ? Number(arg) : DEFAULT_ITERATIONS;
  runVpcdLatencyBench(Number.isInteger(n) && n > 0 ? n : DEFAULT_ITERATIONS).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
