/**
 * A pcscd for tests that need the real PC/SC stack (test/pcsc/*): pcscd with the vsmartcard vpcd
 * driver, whose readers "Virtual PCD 00 00" and "Virtual PCD 00 01" take emulated cards on two TCP
 * ports.
 *
 * Two modes:
 *
 * - isolated (the default when running as root with `unshare`): the harness starts its own
 *   `pcscd -f` in a private mount namespace where /run/pcscd is bound to a temporary directory, with
 *   its own reader.conf.d giving the vpcd driver free ports. The test process reaches it through
 *   PCSCLITE_CSOCK_NAME (set here, so it must be called before anything in the process talks PC/SC,
 *   and inherited by child tools such as scriptor). It never touches the system's pcscd, so
 *   restarting it or plugging cards into it cannot disturb another suite, and the harness owns it:
 *   restartPcscd() and stopPcscd() always work.
 * - system (HILT_PCSCD=system, or when isolation is impossible): the machine's pcscd. If one is
 *   running it is used as it is and never stopped or restarted (owned: false); otherwise the harness
 *   starts `pcscd -f` itself (root needed) and owns it. Ports come from /etc/reader.conf.d/vpcd.
 *
 * Readiness is checked through the PC/SC API (both readers listed), polled every POLL_MS within a
 * named bound.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPcscBinding, type PcscBinding } from '../../src/reader/pcsc-binding.js';
import { run } from '../../src/cli/main.js';
import type { CliContext } from '../../src/cli/context.js';
import type { Output } from '../../src/cli/output.js';

export const VPCD_READERS = ['Virtual PCD 00 00', 'Virtual PCD 00 01'] as const;
export const VPCD_CONF = '/etc/reader.conf.d/vpcd';
/** First port tried for an isolated instance (two consecutive ports: slot 0 and slot 1). */
export const ISOLATED_BASE_PORT = 35984;
const PORT_ATTEMPTS = 32;
/** Bounds of the waits on pcscd (named, per CONTRIBUTING). */
export const PCSCD_READY_BOUND_MS = 15_000;
export const PCSCD_STOP_BOUND_MS = 5_000;
const POLL_MS = 100;
const LOG_LINES = 300;

export interface PcscdInstance {
  mode: 'isolated' | 'system';
  /** Started by this harness: restart and stop are allowed. */
  owned: boolean;
  pid: number | null;
  readers: readonly [string, string];
  /** vpcd ports of slot 0 and slot 1 (VpcdCardClient port option). */
  ports: readonly [number, number];
  /** The client socket (isolated mode), as PCSCLITE_CSOCK_NAME. */
  socket?: string;
  /** Environment for child PC/SC tools (scriptor, pcsc_scan, opensc-tool). */
  env: NodeJS.ProcessEnv;
  /** The tail of pcscd's output (owned instances), for failure messages. */
  log(): string;
}

function which(tool: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, tool);
    if (existsSync(p)) return p;
  }
  return null;
}

function pcscdRunning(): number | null {
  try {
    const out = execFileSync('pgrep', ['-x', 'pcscd'], { encoding: 'utf8' });
    const pid = Number(out.trim().split('\n')[0]);
    return Number.isInteger(pid) ? pid : null;
  } catch {
    return null;
  }
}

function vpcdDriverPath(): string | null {
  if (existsSync(VPCD_CONF)) {
    const m = /^\s*LIBPATH\s+(\S+)/im.exec(readFileSync(VPCD_CONF, 'utf8'));
    if (m && existsSync(m[1])) return m[1];
  }
  for (const p of ['/usr/lib/pcsc/drivers/serial/libifdvpcd.so', '/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so']) if (existsSync(p)) return p;
  return null;
}

function systemPorts(): [number, number] {
  const m = existsSync(VPCD_CONF) ? /^\s*CHANNELID\s+(0x[0-9a-f]+|\d+)/im.exec(readFileSync(VPCD_CONF, 'utf8')) : null;
  const p = m ? Number(m[1]) : 35963;
  return [p, p + 1];
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Why the real PC/SC stack cannot be used here, or null when it can. */
export function pcscStackMissing(): string | null {
  const tools = ['pcscd', 'scriptor'].filter((t) => !which(t));
  if (tools.length > 0) return `not installed: ${tools.join(', ')} (apt-get install pcscd pcsc-tools)`;
  if (!vpcdDriverPath()) return 'the vsmartcard vpcd driver is not installed (apt-get install vsmartcard-vpcd)';
  try {
    loadPcscBinding();
  } catch (e) {
    return (e as Error).message;
  }
  if (!isRoot() && pcscdRunning() === null) return 'pcscd is not running and starting it needs root';
  return null;
}

export function havePcscStack(): boolean {
  return pcscStackMissing() === null;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

async function freePortPair(): Promise<number> {
  for (let i = 0; i < PORT_ATTEMPTS; i++) {
    const p = ISOLATED_BASE_PORT + 2 * i;
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error(`no two free consecutive ports from ${ISOLATED_BASE_PORT} in ${PORT_ATTEMPTS} attempts`);
}

class StuckOnOtherDaemon extends Error {
  constructor() {
    super('this process already used PC/SC before ensurePcscd() (PCSCLITE_CSOCK_NAME is read once)');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One pcscd managed for the tests of one process (one vitest file). */
export class PcscdHarness {
  #instance: PcscdInstance | null = null;
  #child: ChildProcess | null = null;
  #dir: string | null = null;
  #log: string[] = [];
  #binding: PcscBinding | null = null;
  #start: (() => ChildProcess) | null = null;
  /** PCSCLITE_CSOCK_NAME before an isolated instance set it; restored by stop() for later suites' tools. */
  #savedSocketEnv: string | undefined;
  readonly #killOnExit = (): void => {
    this.#child?.kill('SIGKILL');
  };

  get instance(): PcscdInstance | null {
    return this.#instance;
  }

  #keep(chunk: Buffer): void {
    this.#log.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (this.#log.length > LOG_LINES) this.#log.splice(0, this.#log.length - LOG_LINES);
  }

  #spawn(): ChildProcess {
    if (!this.#start) throw new Error('pcscd harness: nothing to start');
    const child = this.#start();
    child.stdout?.on('data', (c: Buffer) => this.#keep(c));
    child.stderr?.on('data', (c: Buffer) => this.#keep(c));
    child.on('error', (e) => this.#log.push(`spawn error: ${e.message}`));
    this.#child = child;
    return child;
  }

  /** Waits until both vpcd readers are listed; throws with pcscd's log tail otherwise. */
  async #ready(child: ChildProcess | null): Promise<void> {
    const binding = (this.#binding ??= loadPcscBinding());
    const deadline = Date.now() + PCSCD_READY_BOUND_MS;
    let last = '';
    for (;;) {
      if (child && child.exitCode !== null) throw new Error(`pcscd exited with code ${child.exitCode}\n${this.#log.slice(-40).join('\n')}`);
      try {
        const ctx = new binding.Context();
        try {
          const names = ctx.listReaders().map((r) => r.name);
          if (VPCD_READERS.every((n) => names.includes(n))) return;
          last = `readers: ${names.join(', ') || 'none'}`;
        } finally {
          ctx.close();
        }
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`pcscd not ready within ${PCSCD_READY_BOUND_MS} ms (${last})\n${this.#log.slice(-40).join('\n')}`);
      await sleep(POLL_MS);
    }
  }

  async #startIsolated(): Promise<PcscdInstance> {
    const driver = vpcdDriverPath();
    if (!driver) throw new Error('no vpcd driver');
    // One directory per process, the same for every instance the process starts: libpcsclite keeps
    // the socket path it read first, and vitest may run several test files in one worker process.
    const dir = join(tmpdir(), `hilt-pcscd-${process.pid}`);
    rmSync(dir, { recursive: true, force: true });
    this.#dir = dir;
    const conf = join(dir, 'reader.conf.d');
    const run = join(dir, 'run');
    mkdirSync(conf, { recursive: true });
    mkdirSync(run, { recursive: true });
    const port = await freePortPair();
    writeFileSync(
      join(conf, 'vpcd'),
      `FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x${port.toString(16).toUpperCase()}\nLIBPATH      ${driver}\nCHANNELID    0x${port.toString(16).toUpperCase()}\n`,
    );
    const socket = join(run, 'pcscd.comm');
    this.#savedSocketEnv = process.env.PCSCLITE_CSOCK_NAME;
    process.env.PCSCLITE_CSOCK_NAME = socket;
    // libpcsclite reads PCSCLITE_CSOCK_NAME once, at the first context of the process. With nothing
    // listening on our socket yet, a context must fail now; if one opens, the process already talks
    // to another daemon and cannot be switched.
    const binding = (this.#binding ??= loadPcscBinding());
    try {
      new binding.Context().close();
      throw new StuckOnOtherDaemon();
    } catch (e) {
      if (e instanceof StuckOnOtherDaemon) throw e;
    }
    this.#start = () => {
      for (const f of readdirSync(run)) rmSync(join(run, f), { force: true }); // stale files of a killed instance
      return spawn(
        'unshare',
        ['--mount', '--propagation', 'private', 'sh', '-c', 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec pcscd -f -c "$2"', 'sh', run, conf],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
    };
    const child = this.#spawn();
    process.once('exit', this.#killOnExit);
    await this.#ready(child);
    return {
      mode: 'isolated',
      owned: true,
      pid: child.pid ?? null,
      readers: VPCD_READERS,
      ports: [port, port + 1],
      socket,
      env: { ...process.env, PCSCLITE_CSOCK_NAME: socket },
      log: () => this.#log.join('\n'),
    };
  }

  async #startSystem(): Promise<PcscdInstance> {
    const running = pcscdRunning();
    let child: ChildProcess | null = null;
    if (running === null) {
      if (!isRoot()) throw new Error('pcscd is not running and starting it needs root');
      this.#start = () => spawn('pcscd', ['-f'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = this.#spawn();
      process.once('exit', this.#killOnExit);
    }
    await this.#ready(child);
    return {
      mode: 'system',
      owned: child !== null,
      pid: child?.pid ?? running,
      readers: VPCD_READERS,
      ports: systemPorts(),
      env: { ...process.env },
      log: () => (child ? this.#log.join('\n') : 'pcscd was already running (not started by the harness)'),
    };
  }

  /** Starts (or finds) pcscd and waits for its two vpcd readers. Idempotent. */
  async ensure(): Promise<PcscdInstance> {
    if (this.#instance) return this.#instance;
    const missing = pcscStackMissing();
    if (missing) throw new Error(`PC/SC stack unavailable: ${missing}`);
    const wantSystem = process.env.HILT_PCSCD === 'system' || !isRoot() || !which('unshare');
    if (!wantSystem) {
      try {
        this.#instance = await this.#startIsolated();
        return this.#instance;
      } catch (e) {
        await this.#kill();
        this.#cleanDir();
        // Only a process still bound to the system daemon can fall back to it.
        this.#restoreSocketEnv();
        if (!(e instanceof StuckOnOtherDaemon)) throw e;
        this.#log.push(`isolated pcscd not possible, using the system one: ${e.message}`);
      }
    }
    this.#instance = await this.#startSystem();
    return this.#instance;
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), PCSCD_STOP_BOUND_MS);
    await exited;
    clearTimeout(timer);
  }

  #cleanDir(): void {
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = null;
  }

  /** Stops and starts the harness's pcscd, then waits for the readers. Refuses a pcscd it did not start. */
  async restart(): Promise<PcscdInstance> {
    const inst = this.#instance;
    if (!inst) throw new Error('restartPcscd(): ensurePcscd() first');
    if (!inst.owned) throw new Error('restartPcscd(): pcscd was already running when the tests started; the harness restarts only a pcscd it started');
    await this.#kill();
    const child = this.#spawn();
    await this.#ready(child);
    inst.pid = child.pid ?? null;
    return inst;
  }

  /** Stops pcscd if the harness started it (a pcscd found running is left alone). */
  async stop(): Promise<void> {
    const inst = this.#instance;
    this.#instance = null;
    if (inst?.owned) await this.#kill();
    process.off('exit', this.#killOnExit);
    this.#cleanDir();
    if (inst?.mode === 'isolated') this.#restoreSocketEnv();
  }

  #restoreSocketEnv(): void {
    if (this.#savedSocketEnv === undefined) delete process.env.PCSCLITE_CSOCK_NAME;
    else process.env.PCSCLITE_CSOCK_NAME = this.#savedSocketEnv;
  }
}

const harness = new PcscdHarness();

/** The harness of this test process (each vitest file runs in its own process). */
export function ensurePcscd(): Promise<PcscdInstance> {
  return harness.ensure();
}

export function restartPcscd(): Promise<PcscdInstance> {
  return harness.restart();
}

export function stopPcscd(): Promise<void> {
  return harness.stop();
}

/* ------------------------------------------------------------------------------------------------
 * Running the CLI in-process for these tests, through the same run() as bin/hilt.js.
 */

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** A capturing Output; `onOut` sees every stdout write as it happens (for long-running commands). */
export function captureIo(onOut?: (text: string) => void): Output & { outText(): string; errText(): string } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out: (t) => {
      out.push(t);
      onOut?.(t);
    },
    err: (t) => {
      err.push(t);
    },
    outText: () => out.join('\n'),
    errText: () => err.join('\n'),
  };
}

/** hilt <argv...> in this process; resolves with the exit code and what was printed. */
export async function runHilt(argv: string[], extra: Omit<CliContext, 'io'> = {}, io = captureIo()): Promise<CliResult> {
  const code = await run(['node', 'hilt', ...argv], io, extra);
  return { code, out: io.outText(), err: io.errText() };
}

/** Bound of waiting for pcscd to see a card arrive or leave (vpcd presence is polled by pcscd). */
export const CARD_STATE_BOUND_MS = 10_000;

/**
 * Resolves once pcscd reports a card in `reader` (present = true) or none (false). Blocks in
 * SCardGetStatusChange (no polling); throws after `boundMs`.
 */
export async function waitForCardState(reader: string, present: boolean, boundMs = CARD_STATE_BOUND_MS): Promise<Uint8Array | null> {
  const b = loadPcscBinding();
  const ctx = new b.Context();
  const deadline = Date.now() + boundMs;
  try {
    let state = b.SCARD_STATE_UNAWARE;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`pcscd did not report ${reader} ${present ? 'with' : 'without'} a card within ${boundMs} ms`);
      const r = await ctx.waitForChange([{ name: reader, state }], left);
      const s = r?.[0];
      if (s) {
        const isPresent = (s.state & b.SCARD_STATE_PRESENT) !== 0 && (s.state & b.SCARD_STATE_MUTE) === 0 && (s.atr?.length ?? 0) > 0;
        if (isPresent === present) return s.atr ? Uint8Array.from(s.atr) : null;
        state = s.state & ~b.SCARD_STATE_CHANGED;
      }
    }
  } finally {
    ctx.close();
  }
}
