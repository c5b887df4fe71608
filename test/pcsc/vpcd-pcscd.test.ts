/**
 * The emulator's card side through the REAL PC/SC stack: VpcdCardClient -> pcscd's vpcd driver ->
 * pcsc-lite -> scriptor / pcsc_scan. Runs only where pcscd, the vpcd driver config, scriptor and
 * pcsc_scan exist; otherwise the suite is skipped and its title says why.
 *
 * pcscd: if a PC/SC service already answers (`pcsc_scan -r` succeeds) it is used as is and left
 * running; it must have the vpcd driver on the port of /etc/reader.conf.d/vpcd. Otherwise the suite
 * starts `pcscd --foreground --debug` itself (needs root, for /run/pcscd), keeps the tail of its log
 * for failure messages, and stops it (SIGTERM, then SIGKILL after a bound) at the end.
 * Readiness is not guessed with sleeps: the client connects to the driver's port with backoff, and
 * the card counts as seen by pcscd once pcscd has powered it up (it does so on every insertion).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VirtualCard } from '../../emulator/card.js';
import { VpcdCardClient, VPCD_DEFAULT_PORT } from '../../emulator/vpcd/client.js';
import { concatBytes, fromHex, toSpacedHex } from '../../src/util/bytes.js';

const VPCD_CONF = '/etc/reader.conf.d/vpcd';
const ATR = fromHex('3b80800101');
const BINARY = Uint8Array.from({ length: 16 }, (_, i) => 0x30 + i);
/** Bounds of the waits on pcscd (named, per CONTRIBUTING). */
const PCSCD_CONNECT_BOUND_MS = 15_000;
const PCSCD_SEES_CARD_BOUND_MS = 20_000;
const PCSCD_SEES_REMOVAL_BOUND_MS = 10_000;
const PCSCD_STOP_BOUND_MS = 5_000;
const TOOL_TIMEOUT_MS = 15_000;
const POLL_MS = 100;

function which(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a PC/SC service answers here. Asking the service, not looking for a pcscd process: a pcscd
 * in another mount namespace (a private one some test harness runs) is a process we can see but a
 * service our PC/SC clients cannot reach.
 */
function pcscServiceUp(): boolean {
  try {
    execFileSync('pcsc_scan', ['-r'], { stdio: 'ignore', timeout: TOOL_TIMEOUT_MS });
    return true;
  } catch {
    return false;
  }
}

/** The vpcd port from the driver config (CHANNELID, hex or decimal); slot 0 of that reader listens there. */
function vpcdPort(): number {
  const m = /^\s*CHANNELID\s+(0x[0-9a-f]+|\d+)/im.exec(readFileSync(VPCD_CONF, 'utf8'));
  return m ? Number(m[1]) : VPCD_DEFAULT_PORT;
}

function skipReason(): string | null {
  const missing = ['pcscd', 'scriptor', 'pcsc_scan'].filter((t) => !which(t));
  if (missing.length) return `not installed: ${missing.join(', ')}`;
  if (!existsSync(VPCD_CONF)) return `no vpcd driver config at ${VPCD_CONF} (install vsmartcard-vpcd)`;
  if (!pcscServiceUp() && process.getuid?.() !== 0) return 'no PC/SC service is running and starting pcscd needs root';
  return null;
}

const SKIP = skipReason();

class ReadBinaryCard implements VirtualCard {
  readonly atr = ATR;
  powerOns = 0;
  powered = false;
  powerOn(): void {
    this.powered = true;
    this.powerOns++;
  }
  powerOff(): void {
    this.powered = false;
  }
  reset(): void {
    this.powered = true;
  }
  async process(command: Uint8Array): Promise<Uint8Array> {
    if (command[0] === 0x00 && command[1] === 0xb0 && command[2] === 0 && command[3] === 0 && command[4] === 0x10) {
      return concatBytes(BINARY, fromHex('9000'));
    }
    return fromHex('6d00');
  }
}

interface ToolResult {
  code: number;
  out: string;
}

function run(tool: string, args: string[]): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(tool, args, { timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

async function until<T>(what: string, boundMs: number, probe: () => Promise<T | undefined> | T | undefined, diagnostics: () => string): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} within ${boundMs} ms\n${diagnostics()}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Card state of each reader from `pcsc_scan -c -n` (one snapshot). */
async function cardStates(): Promise<Map<string, { state: string; atr?: string }>> {
  const { out } = await run('pcsc_scan', ['-c', '-n']);
  const states = new Map<string, { state: string; atr?: string }>();
  for (const block of out.split(/^ Reader \d+: /m).slice(1)) {
    const name = block.split('\n')[0].trim();
    const state = /Card state: (.*)/.exec(block)?.[1].trim() ?? '';
    const atr = /ATR: ([0-9A-F ]+)/.exec(block)?.[1].trim();
    states.set(name, { state, atr });
  }
  return states;
}

describe.skipIf(SKIP !== null)(`VpcdCardClient through the real pcscd${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: ChildProcess | null = null;
  const pcscdLog: string[] = [];
  const clientLog: string[] = [];
  const card = new ReadBinaryCard();
  let client: VpcdCardClient;
  let reader = '';
  let dir = '';
  const diagnostics = (): string =>
    [
      'client log:',
      ...clientLog.slice(-20),
      pcscd ? 'pcscd log (tail):' : `pcscd was already running: does it load ${VPCD_CONF} (vpcd on port ${vpcdPort()})?`,
      ...pcscdLog.slice(-40),
    ].join('\n');

  async function scriptor(lines: string[]): Promise<ToolResult> {
    const file = join(dir, `script-${Date.now()}.txt`);
    writeFileSync(file, lines.join('\n') + '\n');
    return run('scriptor', ['-r', reader, file]);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hilt-pcscd-'));
    if (!pcscServiceUp()) {
      pcscd = spawn('pcscd', ['--foreground', '--debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const keep = (chunk: Buffer): void => {
        pcscdLog.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        if (pcscdLog.length > 400) pcscdLog.splice(0, pcscdLog.length - 200);
      };
      pcscd.stdout?.on('data', keep);
      pcscd.stderr?.on('data', keep);
    }
    const port = vpcdPort();
    client = new VpcdCardClient(card, {
      port,
      logger: { info: (m) => clientLog.push(`info ${m}`), warn: (m) => clientLog.push(`warn ${m}`) },
    });
    client.insertCard();
    await client.whenConnected(PCSCD_CONNECT_BOUND_MS).catch((e: unknown) => {
      throw new Error(`vpcd driver not reachable on 127.0.0.1:${port}: ${String(e)}\n${diagnostics()}`);
    });
    // pcscd powers a card up as soon as it sees it.
    await until('pcscd did not power the card up', PCSCD_SEES_CARD_BOUND_MS, () => (card.powerOns > 0 ? true : undefined), diagnostics);
    reader = await until(
      'no vpcd reader (slot 0) listed by pcsc_scan -r',
      PCSCD_SEES_CARD_BOUND_MS,
      async () => {
        const { out } = await run('pcsc_scan', ['-r']);
        return /^\d+: (Virtual PCD \d+ 00)\s*$/m.exec(out)?.[1];
      },
      diagnostics,
    );
  }, PCSCD_CONNECT_BOUND_MS + 2 * PCSCD_SEES_CARD_BOUND_MS + 5_000);

  afterAll(async () => {
    await client?.close();
    if (pcscd && pcscd.exitCode === null) {
      const exited = new Promise<void>((resolve) => pcscd?.once('exit', () => resolve()));
      pcscd.kill('SIGTERM');
      const timer = setTimeout(() => pcscd?.kill('SIGKILL'), PCSCD_STOP_BOUND_MS);
      await exited;
      clearTimeout(timer);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, PCSCD_STOP_BOUND_MS + 5_000);

  it('pcsc_scan sees the emulated card with its ATR', async () => {
    const seen = await until(
      'pcsc_scan did not report the card',
      PCSCD_SEES_CARD_BOUND_MS,
      async () => {
        const s = (await cardStates()).get(reader);
        return s && /Card inserted/.test(s.state) ? s : undefined;
      },
      diagnostics,
    );
    expect(seen.atr).toBe(toSpacedHex(ATR));
  });

  it('scriptor gets the 16 known bytes + 90 00 for READ BINARY, many times over', async () => {
    const n = 50;
    const r = await scriptor(Array.from({ length: n }, () => '00 B0 00 00 10'));
    const expected = `< ${toSpacedHex(BINARY)} \n90 00 : Normal processing.`;
    expect(r.out, diagnostics()).toContain(expected);
    expect(r.out.split(expected).length - 1).toBe(n);
    expect(r.code).toBe(0);
    const other = await scriptor(['00 CA 00 00 00']);
    expect(other.out).toMatch(/6D 00/);
  });

  it('removeCard(): pcsc_scan reports the card removed and scriptor finds no card; insertCard() brings it back', async () => {
    await client.removeCard();
    await until(
      'pcsc_scan did not report the removal',
      PCSCD_SEES_REMOVAL_BOUND_MS,
      async () => {
        const s = (await cardStates()).get(reader);
        return s && /Card removed/.test(s.state) ? true : undefined;
      },
      diagnostics,
    );
    const r = await scriptor(['00 B0 00 00 10']);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/No smart ?card inserted|removed/i);
    expect(r.out).not.toContain(toSpacedHex(BINARY));

    const before = card.powerOns;
    client.insertCard();
    await client.whenConnected(PCSCD_CONNECT_BOUND_MS);
    await until('pcscd did not power the re-inserted card up', PCSCD_SEES_CARD_BOUND_MS, () => (card.powerOns > before ? true : undefined), diagnostics);
    const again = await scriptor(['00 B0 00 00 10']);
    expect(again.out, diagnostics()).toContain(`< ${toSpacedHex(BINARY)} \n90 00 : Normal processing.`);
  });
});
