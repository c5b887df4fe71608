/**
 * The emulator's card side through the REAL PC/SC stack: VpcdCardClient -> pcscd's vpcd driver ->
 * pcsc-lite -> scriptor / pcsc_scan. Runs only where pcscd, the vpcd driver config, scriptor and
 * pcsc_scan exist; otherwise the suite is skipped and its title says why.
 *
 * pcscd comes from the shared harness (test/helpers/pcscd.ts): a private instance where possible.
 * Readiness is not guessed with sleeps: the client connects to the driver's port with backoff, and
 * the card counts as seen by pcscd once pcscd has powered it up (it does so on every insertion).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VirtualCard } from '../../emulator/card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { ensurePcscd, pcscStackMissing, stopPcscd, type PcscdInstance } from '../helpers/pcscd.js';
import { concatBytes, fromHex, toSpacedHex } from '../../src/util/bytes.js';

const ATR = fromHex('3b80800101');
const BINARY = Uint8Array.from({ length: 16 }, (_, i) => 0x30 + i);
/** Bounds of the waits on pcscd (named, per CONTRIBUTING). */
const PCSCD_CONNECT_BOUND_MS = 15_000;
const PCSCD_SEES_CARD_BOUND_MS = 20_000;
const PCSCD_SEES_REMOVAL_BOUND_MS = 10_000;
const TOOL_TIMEOUT_MS = 15_000;
const POLL_MS = 100;

function skipReason(): string | null {
  const missing = pcscStackMissing();
  if (missing) return missing;
  return existsSync('/usr/bin/pcsc_scan') ? null : 'not installed: pcsc_scan (apt-get install pcsc-tools)';
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

function run(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(tool, args, { env, timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
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
async function cardStates(env: NodeJS.ProcessEnv): Promise<Map<string, { state: string; atr?: string }>> {
  const { out } = await run('pcsc_scan', ['-c', '-n'], env);
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
  let pcscd: PcscdInstance;
  const clientLog: string[] = [];
  const card = new ReadBinaryCard();
  let client: VpcdCardClient;
  let reader = '';
  let dir = '';
  const diagnostics = (): string => ['client log:', ...clientLog.slice(-20), 'pcscd log (tail):', pcscd?.log() ?? ''].join('\n');

  async function scriptor(lines: string[]): Promise<ToolResult> {
    const file = join(dir, `script-${Date.now()}.txt`);
    writeFileSync(file, lines.join('\n') + '\n');
    return run('scriptor', ['-r', reader, file], pcscd.env);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hilt-pcscd-'));
    pcscd = await ensurePcscd();
    const port = pcscd.ports[0];
    reader = pcscd.readers[0];
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
  }, PCSCD_CONNECT_BOUND_MS + PCSCD_SEES_CARD_BOUND_MS + 20_000);

  afterAll(async () => {
    await client?.close();
    await stopPcscd();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pcsc_scan sees the emulated card with its ATR', async () => {
    const seen = await until(
      'pcsc_scan did not report the card',
      PCSCD_SEES_CARD_BOUND_MS,
      async () => {
        const s = (await cardStates(pcscd.env)).get(reader);
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
        const s = (await cardStates(pcscd.env)).get(reader);
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
