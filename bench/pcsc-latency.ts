/**
 * Average APDU round trip through pcscd and through hilt's direct vpcd server, in one run, with the
 * in-process card as the baseline the ratios are taken against:
 *
 *   in-process     card.process() on the emulated card, no transport
 *   vpcd server    PcscChannel's peer on the direct path: VpcdServer <-> VpcdCardClient over loopback
 *   pcscd          PcscChannel (pcsc-lite, libuv worker) -> pcscd -> vpcd driver -> VpcdCardClient
 *
 * The card is the real emulator with the diagnostic applet; the APDU is PING (80 10 00 00 -> 90 00)
 * after a SELECT, so what is measured is transport, not card work. A second row per transport sends
 * a 255-byte ECHO (case 4) to show the cost of size.
 *
 * The pcscd row needs the PC/SC stack: a running pcscd with the vpcd driver (reader and port from
 * HILT_BENCH_READER / HILT_BENCH_PORT, default "Virtual PCD 00 01" on 35964). If no pcscd answers and
 * the process is root, the bench starts `pcscd -f` for the run and stops it after; otherwise the row
 * is reported as skipped, with the reason.
 *
 * Run: `npm run build && node dist/bench/pcsc-latency.js [iterations]`, or runPcscLatencyBench().
 */
import { pathToFileURL } from 'node:url';
import { makeCard } from '../emulator/make-card.js';
import { VpcdCardClient } from '../emulator/vpcd/client.js';
import { VpcdServer } from '../src/reader/vpcd-server.js';
import { CARD_SEEN_BOUND_MS, withPcscCard, withPcscd } from './pcsc-stack.js';
import type { CardChannel } from '../src/reader/channel.js';
import { concatBytes, fromHex, toHex } from '../src/util/bytes.js';

export const DEFAULT_ITERATIONS = 5_000;
export const WARMUP_ITERATIONS = 300;
/** Bounds of getting the pcscd row ready. */

const SELECT = fromHex('00A4040C09F068696C7444494147');
const PING = fromHex('80100000');
const ECHO_255 = concatBytes(fromHex('80180000FF'), Uint8Array.from({ length: 255 }, (_, i) => i), fromHex('00'));
const quiet = { info: () => undefined, warn: (m: string) => process.stderr.write(`${m}\n`) };

export interface PcscLatencyRow {
  path: string;
  iterations: number;
  /** Mean round trip, ms; null when the path was skipped. */
  meanMs: number | null;
  /** meanMs / the in-process mean of the same APDU. */
  ratio: number | null;
  note?: string;
}

export interface PcscLatencyOptions {
  iterations?: number;
  reader?: string;
  port?: number;
  print?: (line: string) => void;
}

async function mean(iterations: number, roundTrip: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP_ITERATIONS; i++) await roundTrip();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await roundTrip();
  return Number(process.hrtime.bigint() - start) / 1e6 / iterations;
}

function newCard() {
  return makeCard({ serial: fromHex('0102030405060708'), applets: [{ name: 'diagnostic' }] });
}

async function expectOk(ch: CardChannel, apdu: Uint8Array): Promise<void> {
  const r = await ch.transmit(apdu);
  if (toHex(r.subarray(r.length - 2)) !== '9000') throw new Error(`${toHex(apdu)} answered ${toHex(r)}`);
}

async function pcscRows(reader: string, port: number, iterations: number): Promise<{ ping: number; echo: number } | string> {
  return withPcscCard(newCard().os, reader, port, async (channel) => {
    await expectOk(channel, SELECT);
    await expectOk(channel, ECHO_255);
    return { ping: await mean(iterations, () => channel.transmit(PING)), echo: await mean(Math.ceil(iterations / 5), () => channel.transmit(ECHO_255)) };
  });
}

async function vpcdRows(iterations: number): Promise<{ ping: number; echo: number }> {
  const server = await VpcdServer.listen({ port: 0, logger: quiet });
  const client = new VpcdCardClient(newCard().os, { port: server.port, logger: quiet });
  client.insertCard();
  try {
    await server.waitForCard(CARD_SEEN_BOUND_MS);
    await expectOk(server, SELECT);
    return { ping: await mean(iterations, () => server.transmit(PING)), echo: await mean(Math.ceil(iterations / 5), () => server.transmit(ECHO_255)) };
  } finally {
    await client.close();
    await server.close();
  }
}

export async function runPcscLatencyBench(options: PcscLatencyOptions = {}): Promise<PcscLatencyRow[]> {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  const reader = options.reader ?? process.env.HILT_BENCH_READER ?? 'Virtual PCD 00 01';
  const port = options.port ?? Number(process.env.HILT_BENCH_PORT ?? 35964);
  const print = options.print ?? ((l: string) => process.stdout.write(`${l}\n`));

  const base = newCard();
  base.os.powerOn();
  await base.os.process(SELECT);
  const inPing = await mean(iterations * 5, () => base.os.process(PING));
  const inEcho = await mean(iterations, () => base.os.process(ECHO_255));
  const vpcd = await vpcdRows(iterations);
  let pcsc: { ping: number; echo: number } | string;
  try {
    pcsc = await withPcscd(() => pcscRows(reader, port, iterations));
  } catch (e) {
    pcsc = (e as Error).message;
  }

  const row = (path: string, n: number, ms: number | null, baseMs: number, note?: string): PcscLatencyRow => ({
    path,
    iterations: ms === null ? 0 : n,
    meanMs: ms,
    ratio: ms === null ? null : ms / baseMs,
    ...(note ? { note } : {}),
  });
  const skipped = typeof pcsc === 'string' ? pcsc : undefined;
  const rows = [
    row('in-process, PING (80 10 00 00)', iterations * 5, inPing, inPing),
    row('vpcd server, PING', iterations, vpcd.ping, inPing),
    row(`pcscd (${reader}), PING`, iterations, typeof pcsc === 'string' ? null : pcsc.ping, inPing, skipped),
    row('in-process, ECHO 255 bytes', iterations, inEcho, inEcho),
    row('vpcd server, ECHO 255 bytes', Math.ceil(iterations / 5), vpcd.echo, inEcho),
    row(`pcscd (${reader}), ECHO 255 bytes`, Math.ceil(iterations / 5), typeof pcsc === 'string' ? null : pcsc.echo, inEcho, skipped),
  ];
  print('APDU round trip: hilt vpcd server vs pcscd (emulated card, diagnostic applet)');
  print(`${'path'.padEnd(44)} ${'n'.padStart(6)} ${'mean ms'.padStart(9)} ${'x in-proc'.padStart(10)}`);
  for (const r of rows) {
    const ms = r.meanMs === null ? 'skipped'.padStart(9) : r.meanMs.toFixed(4).padStart(9);
    const ratio = r.ratio === null ? '' : r.ratio.toFixed(1).padStart(10);
    print(`${r.path.padEnd(44)} ${String(r.iterations).padStart(6)} ${ms} ${ratio}${r.note ? `  (${r.note})` : ''}`);
  }
  if (typeof pcsc !== 'string') print(`pcscd / vpcd server, PING: ${(pcsc.ping / vpcd.ping).toFixed(2)}x`);
  return rows;
}

/** True when run as a script: `node dist/bench/pcsc-latency.js [iterations]`. */
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const arg = process.argv.slice(2).find((a) => /^\d+$/.test(a));
  const n = arg ? Number(arg) : DEFAULT_ITERATIONS;
  runPcscLatencyBench({ iterations: Number.isInteger(n) && n > 0 ? n : DEFAULT_ITERATIONS }).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
