/**
 * Sustained advices per second into the e-money issuer host, through the gateway over loopback TCP,
 * each one a certified purse purchase the issuer verifies, checks for coherence and commits durably
 * (SQLite WAL, synchronous=FULL: one fsync per commit) before it answers. The hosts run in a child
 * process of their own (as `hilt hosts` would), the terminals in this one, so the two do not share
 * a CPU thread. Two runs, one after the other, against the same hosts:
 *
 *   1 terminal     one connection, one advice at a time (the uplink's default window of 1)
 *   10 terminals   ten connections at once, each one advice at a time
 *
 * The single-terminal rate is the baseline; the 10-terminal row reports its ratio. What makes the
 * ratio above 1 is the issuer's group commit (issuer.ts): the advices that arrive while a commit is
 * on disk go into the next one, so one fsync serves several terminals ("advices/commit" column).
 * Messages are built before the clock starts; the terminals only MAC, send and check answers.
 * Commits are counted by the issuer (admin API /health: batches).
 *
 * The files go in a temporary folder (HILT_BENCH_DIR to choose where: the disk under it sets the
 * fsync cost). Run: `npm run build && node dist/bench/hosts.js [advices per terminal]`, or
 * runHostsBench().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startHosts } from '../src/hosts/index.js';
import { connectIsoChannel, type IsoChannel } from '../src/hostlink/channel.js';
import { deriveTerminalKey } from '../src/hostlink/iso8583/mac.js';
import type { IsoMessage } from '../src/hostlink/iso8583/message.js';
import { RC, adviceRequest, type RequestHeader } from '../src/hostlink/messages.js';
import { enrolmentRequest, generateReaderKeyPair } from '../src/hostlink/reader-auth.js';
import { testHostMacMaster } from '../src/hostlink/test-keys.js';
import { encodePurseDateTime, purseCardKey, purseCertificate, testPurseMasterKey, type PurseDateTime } from '../src/crypto/purse-certificate.js';

export const DEFAULT_ADVICES_PER_TERMINAL = 400;
export const CONCURRENT_TERMINALS = 10;
const WARMUP = 20;
/** Bound of the host process starting. */
const HOST_START_BOUND_MS = 30_000;

/** Where the child process's hosts listen. */
interface HostAddress {
  host: string;
  gatewayPort: number;
  adminUrl: string;
}
const LOCAL: PurseDateTime = { year: 2025, month: 3, day: 14, hour: 18, minute: 30, second: 15 };

export interface HostsBenchRow {
  terminals: number;
  advices: number;
  seconds: number;
  perSecond: number;
  commits: number;
  advicesPerCommit: number;
  /** perSecond / the single terminal's perSecond. */
  ratio: number;
}

export interface HostsBenchOptions {
  advicesPerTerminal?: number;
  print?: (line: string) => void;
}

interface BenchTerminal {
  id: string;
  ch: IsoChannel;
  advices: IsoMessage[];
}

function header(terminalId: string, stan: number): RequestHeader {
  return { terminalId, readerId: `R${terminalId}`, stan, at: new Date(), keyVersion: 1 };
}

async function admin<T>(hosts: HostAddress, path: string, body?: unknown): Promise<T> {
  const r = await fetch(hosts.adminUrl + path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status >= 300) throw new Error(`bench: ${path} answered ${r.status}`);
  return (await r.json()) as T;
}

async function commits(hosts: HostAddress): Promise<number> {
  return (await admin<{ issuer: { batches: number } }>(hosts, '/health')).issuer.batches;
}

/** Enrols one terminal (code from the admin API) and prepares its advices. */
async function terminal(hosts: HostAddress, index: number, count: number): Promise<BenchTerminal> {
  const id = `B${String(index).padStart(3, '0')}`;
  const key = deriveTerminalKey(testHostMacMaster(), 'mac', id, 1);
  const ch = await connectIsoChannel({ host: hosts.host, port: hosts.gatewayPort, macKey: () => key, requestTimeoutMs: 60_000 });
  const { code } = await admin<{ code: string }>(hosts, '/readers', { terminalId: id, readerId: `R${id}` });
  const enrolled = await ch.request(enrolmentRequest(header(id, 1_000_000), { code, ...generateReaderKeyPair() }));
  if (enrolled.responseCode() !== RC.approved) throw new Error(`bench: enrolment of ${id} answered ${enrolled.responseCode()}`);
  const serial = Uint8Array.of(0xbe, 0x00, index);
  const purseKey = purseCardKey(testPurseMasterKey(), serial);
  const tid = Uint8Array.from(id.padEnd(8, ' '), (c) => c.charCodeAt(0));
  const advices: IsoMessage[] = [];
  let balance = 1_000_000;
  for (let s = 1; s <= count; s++) {
    balance -= 1;
    const fields = { serial, counter: s, type: 'debit' as const, amount: 1, currency: 392, terminalId: tid, terminalSequence: s, dateTime: encodePurseDateTime(LOCAL), balanceAfter: balance };
    advices.push(
      adviceRequest(header(id, s), {
        kind: 'purchase',
        outcome: 'complete',
        serial,
        amount: { minor: 1, currency: '392' },
        dateTime: LOCAL,
        purse: { ...fields, certificate: purseCertificate(purseKey, fields) },
      }),
    );
  }
  return { id, ch, advices };
}

/** Sends advices[from, to) one at a time; every answer must be 00. */
async function drive(t: BenchTerminal, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const answer = await t.ch.request(t.advices[i]);
    if (answer.responseCode() !== RC.approved) throw new Error(`bench: ${t.id} advice ${i + 1} answered ${answer.responseCode()}`);
  }
}

async function measure(hosts: HostAddress, terminals: BenchTerminal[], from: number, to: number): Promise<Omit<HostsBenchRow, 'ratio'>> {
  const before = await commits(hosts);
  const start = process.hrtime.bigint();
  await Promise.all(terminals.map((t) => drive(t, from, to)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const advices = terminals.length * (to - from);
  const n = (await commits(hosts)) - before;
  return { terminals: terminals.length, advices, seconds, perSecond: advices / seconds, commits: n, advicesPerCommit: advices / n };
}

const SELF = fileURLToPath(import.meta.url);
const SERVE_FLAG = '--serve-hosts';

/** This file again, in a child process, serving the hosts on `dir` (vite-node when run from source). */
async function startHostProcess(dir: string): Promise<{ child: ChildProcess; address: HostAddress }> {
  const [cmd, args] = SELF.endsWith('.ts')
    ? [join(dirname(SELF), '..', 'node_modules', '.bin', 'vite-node'), [SELF, SERVE_FLAG, dir]]
    : [process.execPath, [...process.execArgv, SELF, SERVE_FLAG, dir]];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`bench: the host process exited (${String(code)})`)));
      setTimeout(() => reject(new Error(`bench: the host process did not start within ${HOST_START_BOUND_MS} ms`)), HOST_START_BOUND_MS);
    });
    return { child, address: JSON.parse(line) as HostAddress };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** The child: hosts on `dir` until SIGTERM. */
async function serveHosts(dir: string): Promise<void> {
  const hosts = await startHosts({ dir });
  process.stdout.write(JSON.stringify({ host: hosts.host, gatewayPort: hosts.gatewayPort, adminUrl: hosts.adminUrl }) + '\n');
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  await hosts.close();
}

export async function runHostsBench(options: HostsBenchOptions = {}): Promise<HostsBenchRow[]> {
  const n = options.advicesPerTerminal ?? DEFAULT_ADVICES_PER_TERMINAL;
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench: advices per terminal must be a positive integer, got ${String(n)}`);
  const print = options.print ?? ((l: string) => process.stdout.write(`${l}\n`));
  const base = process.env.HILT_BENCH_DIR ?? tmpdir();
  const dir = mkdtempSync(join(base, 'hilt-bench-hosts-'));
  let child: ChildProcess | null = null;
  try {
    const started = await startHostProcess(dir);
    child = started.child;
    const hosts = started.address;
    const single = await terminal(hosts, 0, WARMUP + n);
    const many = await Promise.all(Array.from({ length: CONCURRENT_TERMINALS }, (_, i) => terminal(hosts, i + 1, WARMUP + n)));
    await drive(single, 0, WARMUP);
    await Promise.all(many.map((t) => drive(t, 0, WARMUP)));
    const one = await measure(hosts, [single], WARMUP, WARMUP + n);
    const ten = await measure(hosts, many, WARMUP, WARMUP + n);
    const rows: HostsBenchRow[] = [
      { ...one, ratio: 1 },
      { ...ten, ratio: ten.perSecond / one.perSecond },
    ];
    const anomalies = (await admin<{ anomalies: unknown[] }>(hosts, '/anomalies?limit=10')).anomalies.length;
    print(`issuer host (own process): durable advices (WAL, synchronous=FULL) through the gateway over loopback; files in ${dir}`);
    print(`${'terminals'.padEnd(10)} ${'advices'.padStart(8)} ${'seconds'.padStart(8)} ${'advices/s'.padStart(10)} ${'commits'.padStart(8)} ${'adv/commit'.padStart(11)} ${'x 1 term'.padStart(9)}`);
    for (const r of rows) {
      print(
        `${String(r.terminals).padEnd(10)} ${String(r.advices).padStart(8)} ${r.seconds.toFixed(2).padStart(8)} ${r.perSecond.toFixed(0).padStart(10)} ${String(r.commits).padStart(8)} ${r.advicesPerCommit.toFixed(2).padStart(11)} ${r.ratio.toFixed(2).padStart(9)}`,
      );
    }
    if (anomalies > 0) print(`(unexpected: ${anomalies} anomalies recorded)`);
    await Promise.all([single, ...many].map((t) => t.ch.close()));
    return rows;
  } finally {
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True when run as a script: `node dist/bench/hosts.js [advices per terminal]`. */
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const serveAt = process.argv.indexOf(SERVE_FLAG);
if (serveAt >= 0) {
  serveHosts(process.argv[serveAt + 1] ?? '').catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
} else if (invokedDirectly) {
  const arg = process.argv.slice(2).find((a) => /^\d+$/.test(a));
  runHostsBench({ advicesPerTerminal: arg === undefined ? DEFAULT_ADVICES_PER_TERMINAL : Number(arg) }).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
