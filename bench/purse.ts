/**
 * One e-money purchase end to end (src/terminal/purse/purchase.ts: SELECT, SCP03 level 33 through
 * the key store, READ STATUS, policy, journal pending → DEBIT → journal complete on SQLite), its APDU
 * count and mean time, over three paths in one run, with the in-process card as the baseline the
 * ratios are taken against:
 *
 *   in-process     InProcessChannel on the emulated card: card work, crypto and the journal only
 *   vpcd server    hilt's own vpcd reader over loopback (VpcdServer <-> VpcdCardClient), no pcscd
 *   pcscd          PcscChannel -> pcscd -> vpcd driver -> VpcdCardClient: the real PC/SC stack
 *
 * The card is a bureau-issued purse (TEST keys), loaded for every purchase of the run; the terminal
 * limits are set out of the way; each path has its own journal in a temporary folder. The pcscd row
 * needs the PC/SC stack: a running pcscd with the vpcd driver (reader and port from
 * HILT_BENCH_READER / HILT_BENCH_PORT, default "Virtual PCD 00 01" on 35964); as root the bench
 * starts `pcscd -f` for the run when none answers. Otherwise the row says why it was skipped.
 *
 * Run: `npm run build && node dist/bench/purse.js [purchases]`, or runPurseBench().
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { issuePurseCard } from '../emulator/bureau.js';
import { InProcessChannel } from '../emulator/in-process.js';
import { VpcdCardClient } from '../emulator/vpcd/client.js';
import type { CardChannel } from '../src/reader/channel.js';
import { withGetResponse } from '../src/reader/get-response.js';
import { openScp03 } from '../src/reader/scp03.js';
import { VpcdServer } from '../src/reader/vpcd-server.js';
import { CARD_SEEN_BOUND_MS, withPcscCard, withPcscd } from './pcsc-stack.js';
import { SILENT_LOGGER as quiet } from '../src/util/logger.js';
import { testStaticKeys } from '../src/crypto/diversify.js';
import { testPurseMasterKey } from '../src/crypto/purse-certificate.js';
import { zeroize } from '../src/util/bytes.js';
import { KeyStore } from '../src/terminal/keystore.js';
import { openPurseJournal, purchase, purseTerminalConfig } from '../src/terminal/purse/index.js';

export const DEFAULT_PURCHASES = 200;
export const WARMUP_PURCHASES = 10;
const AMOUNT = 1;

export interface PurseBenchRow {
  path: string;
  purchases: number;
  /** APDUs on the wire per purchase (GET RESPONSE included); null when skipped. */
  apdus: number | null;
  /** Mean time of one purchase, ms; null when skipped. */
  meanMs: number | null;
  /** meanMs / the in-process mean. */
  ratio: number | null;
  note?: string;
}

export interface PurseBenchOptions {
  purchases?: number;
  reader?: string;
  port?: number;
  print?: (line: string) => void;
}

/** A channel that counts what crosses it. */
function counting(inner: CardChannel): CardChannel & { count: number } {
  const c = {
    count: 0,
    transmit: (cmd: Uint8Array) => {
      c.count++;
      return inner.transmit(cmd);
    },
    reset: (cold?: boolean) => inner.reset(cold),
    close: () => inner.close(),
  };
  return c;
}

/** A fresh purse card with enough value for the run. */
async function benchCard(purchases: number) {
  const masterKeys = testStaticKeys('emoney');
  const issuerMaster = testPurseMasterKey();
  try {
    return await issuePurseCard(
      {
        serial: Uint8Array.of(0x48, 0x49, 0x4c, 0x54, 0xbe, 0x0c, 0x00, 0x01),
        provider: 'emoney',
        masterKeys,
        issuerMaster,
        currency: 392,
        maxBalance: 0xffff_ffff,
        maxPerTransaction: 1000,
        initialLoad: (purchases + WARMUP_PURCHASES) * AMOUNT,
      },
      openScp03,
    );
  } finally {
    zeroize(masterKeys.enc, masterKeys.mac, masterKeys.dek, issuerMaster);
  }
}

/** Runs `purchases` purchases (after a warm-up) on `channel`; APDUs and mean ms per purchase. */
async function measure(channel: CardChannel, purchases: number): Promise<{ apdus: number; meanMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'hilt-bench-purse-'));
  const keys = await KeyStore.open({ sources: [{ kind: 'test', providers: ['emoney'] }], warn: () => undefined });
  const config = purseTerminalConfig({
    terminalId: 'BENCH001',
    readerId: 'R-bench',
    currency: 'JPY',
    limits: { perTransaction: 1000, perCardPerDay: Number.MAX_SAFE_INTEGER, perReaderPerDay: Number.MAX_SAFE_INTEGER },
  });
  const journal = openPurseJournal(join(dir, 'terminal.db'), config);
  try {
    const wire = counting(channel);
    const terminal = { channel: wire, domain: keys.domain('emoney'), journal, config };
    for (let i = 0; i < WARMUP_PURCHASES; i++) await purchase(terminal, AMOUNT);
    wire.count = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < purchases; i++) await purchase(terminal, AMOUNT);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    return { apdus: wire.count / purchases, meanMs: ms / purchases };
  } finally {
    journal.close();
    keys.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function inProcessRow(purchases: number): Promise<{ apdus: number; meanMs: number }> {
  const card = await benchCard(purchases);
  return measure(new InProcessChannel(card.os), purchases);
}

async function vpcdRow(purchases: number): Promise<{ apdus: number; meanMs: number }> {
  const card = await benchCard(purchases);
  const server = await VpcdServer.listen({ port: 0, logger: quiet });
  const client = new VpcdCardClient(card.os, { port: server.port, logger: quiet });
  client.insertCard();
  try {
    await server.waitForCard(CARD_SEEN_BOUND_MS);
    return await measure(withGetResponse({ reissueOn6C: false })(server), purchases);
  } finally {
    await client.close();
    await server.close();
  }
}

async function pcscdRow(reader: string, port: number, purchases: number): Promise<{ apdus: number; meanMs: number } | string> {
  const card = await benchCard(purchases);
  return withPcscCard(card.os, reader, port, (ch) => measure(withGetResponse({ reissueOn6C: false })(ch), purchases));
}

export async function runPurseBench(options: PurseBenchOptions = {}): Promise<PurseBenchRow[]> {
  const purchases = options.purchases ?? DEFAULT_PURCHASES;
  const reader = options.reader ?? process.env.HILT_BENCH_READER ?? 'Virtual PCD 00 01';
  const port = options.port ?? Number(process.env.HILT_BENCH_PORT ?? 35964);
  const print = options.print ?? ((l: string) => process.stdout.write(`${l}\n`));

  const base = await inProcessRow(purchases);
  const vpcd = await vpcdRow(purchases);
  let pcsc: { apdus: number; meanMs: number } | string;
  try {
    pcsc = await withPcscd(() => pcscdRow(reader, port, purchases));
  } catch (e) {
    pcsc = (e as Error).message;
  }
  const row = (path: string, r: { apdus: number; meanMs: number } | string): PurseBenchRow =>
    typeof r === 'string'
      ? { path, purchases: 0, apdus: null, meanMs: null, ratio: null, note: r }
      : { path, purchases, apdus: r.apdus, meanMs: r.meanMs, ratio: r.meanMs / base.meanMs };
  const rows = [row('in-process', base), row('vpcd server (loopback)', vpcd), row(`pcscd (${reader})`, pcsc)];

  print('e-money purchase: SELECT, SCP03 level 33, READ STATUS, policy, journal, DEBIT (emulated purse, SQLite journal)');
  print(`${'path'.padEnd(34)} ${'n'.padStart(5)} ${'APDUs'.padStart(6)} ${'mean ms'.padStart(9)} ${'x in-proc'.padStart(10)}`);
  for (const r of rows) {
    const apdus = r.apdus === null ? ''.padStart(6) : r.apdus.toFixed(1).padStart(6);
    const ms = r.meanMs === null ? 'skipped'.padStart(9) : r.meanMs.toFixed(3).padStart(9);
    const ratio = r.ratio === null ? '' : r.ratio.toFixed(2).padStart(10);
    print(`${r.path.padEnd(34)} ${String(r.purchases).padStart(5)} ${apdus} ${ms} ${ratio}${r.note ? `  (${r.note})` : ''}`);
  }
  return rows;
}

/** True when run as a script: `node dist/bench/purse.js [purchases]`. */
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const arg = process.argv.slice(2).find((a) => /^\d+$/.test(a));
  const n = arg ? Number(arg) : DEFAULT_PURCHASES;
  runPurseBench({ purchases: Number.isInteger(n) && n > 0 ? n : DEFAULT_PURCHASES }).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
