/**
 * Issue-level check of the emulator as a real PC/SC card: pcscd with the vsmartcard vpcd driver, the
 * `hilt emulator` command as the card, and third-party PC/SC clients — pcsc-tools' `scriptor` and
 * OpenSC's `opensc-tool --send-apdu` — must get exactly the answers applets-spec/diagnostic.md
 * promises. Every example block of the spec runs through scriptor on a fresh card; opensc-tool (which
 * does GET RESPONSE on 61xx itself) gets the logical answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePcscd, pcscStackMissing, runHilt, stopPcscd, waitForCardState, captureIo, type PcscdInstance } from '../helpers/pcscd.js';
import { specBlocksWithTitles, type SpecStep } from '../helpers/spec-blocks.js';

const SPEC = join(import.meta.dirname, '../../applets-spec/diagnostic.md');
const TOOL_TIMEOUT_MS = 30_000;
const OPENSC = ['/usr/bin/opensc-tool', '/usr/local/bin/opensc-tool'].find((p) => existsSync(p));
const SKIP = pcscStackMissing() ?? (OPENSC ? null : 'opensc-tool is not installed (apt-get install opensc)');

function tool(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

/** scriptor prints "< XX XX ... : text", wrapping long answers over several lines: the R-APDUs, in order. */
function scriptorAnswers(out: string): string[] {
  const answers: string[] = [];
  let current: string | null = null;
  for (const line of out.split('\n')) {
    if (line.startsWith('< ')) current = '';
    if (current === null) continue;
    const body = line.startsWith('< ') ? line.slice(2) : line;
    const [hex, rest] = body.split(' : ');
    current += hex.replace(/\s+/g, '');
    if (rest !== undefined) {
      answers.push(current.toUpperCase());
      current = null;
    }
  }
  return answers;
}

/** opensc-tool prints "Received (SW1=0x90, SW2=0x00):" then a hex dump with ASCII: data + SW per APDU. */
function openscAnswers(out: string): string[] {
  const answers: string[] = [];
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^Received \(SW1=0x([0-9A-F]{2}), SW2=0x([0-9A-F]{2})\)/i.exec(lines[i]);
    if (!m) continue;
    let data = '';
    // Each dump line is n hex bytes ("XX " each), then the same n bytes as ASCII: 4n characters.
    for (let j = i + 1; j < lines.length && /^[0-9A-F]{2} /i.test(lines[j]); j++) {
      const n = Math.floor(lines[j].length / 4);
      data += lines[j].slice(0, 3 * n).replace(/\s+/g, '');
    }
    answers.push((data + m[1] + m[2]).toUpperCase());
  }
  return answers;
}

function check(got: string | undefined, step: SpecStep): void {
  const want = step.expect!;
  expect(got, step.line).toBeDefined();
  if (want.exact !== undefined) expect(got, step.line).toBe(want.exact);
  else {
    expect(got!.endsWith(want.tail!), `${step.line}: got …${got!.slice(-8)}`).toBe(true);
    expect((got!.length - want.tail!.length) / 2, step.line).toBe(want.length);
  }
}

describe.skipIf(SKIP !== null)(`third-party PC/SC clients against \`hilt emulator\`${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: PcscdInstance;
  const dir = mkdtempSync(join(tmpdir(), 'hilt-3p-'));

  beforeAll(async () => {
    pcscd = await ensurePcscd();
  });
  afterAll(async () => {
    await stopPcscd();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `hilt emulator` with a fresh card image in the harness's first vpcd reader; stops when done. */
  async function withEmulator<T>(name: string, body: (reader: string) => Promise<T>): Promise<T> {
    const stop = new AbortController();
    const io = captureIo();
    // The spec's blocks start from a card holding only the diagnostic applet: no security domain.
    const running = runHilt(
      ['emulator', '--vpcd', `127.0.0.1:${pcscd.ports[0]}`, '--image', join(dir, `${name}.img`), '--no-test-keys'],
      { signal: stop.signal, input: new PassThrough() },
      io,
    );
    try {
      await waitForCardState(pcscd.readers[0], true);
      return await body(pcscd.readers[0]);
    } finally {
      stop.abort();
      const r = await running;
      expect(r.code, r.err).toBe(0);
      await waitForCardState(pcscd.readers[0], false);
    }
  }

  const blocks = specBlocksWithTitles(SPEC);

  it('the spec has example blocks to replay', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  it.each(blocks.map((b, i) => [i, b.title] as const))('scriptor, block %i: %s', async (i) => {
    const steps = blocks[i].steps;
    const script = steps.map((s) => (s.kind === 'reset' ? 'reset' : s.command)).join('\n') + '\n';
    const file = join(dir, `block-${i}.txt`);
    writeFileSync(file, script);
    await withEmulator(`scriptor-${i}`, async (reader) => {
      const r = await tool('scriptor', ['-r', reader, file], pcscd.env);
      expect(r.code, r.out).toBe(0);
      const answers = scriptorAnswers(r.out);
      const sends = steps.filter((s) => s.kind === 'send');
      expect(answers.length, r.out).toBe(sends.length);
      sends.forEach((s, k) => check(answers[k], s));
    });
  });

  it('opensc-tool --send-apdu gets the spec answers (with its own GET RESPONSE on 61xx)', async () => {
    await withEmulator('opensc', async (reader) => {
      const apdus = [
        '00:A4:04:00:09:F0:68:69:6C:74:44:49:41:47:00', // SELECT with FCI
        '80:10:00:00', // case 1
        '80:12:00:10:10', // case 2
        '80:18:00:00:03:AA:BB:CC:00', // case 4
        '80:1A:00:00:03:61:62:63:00', // HASH "abc"
        '80:12:02:58:00', // 600 bytes: card says 61xx, opensc-tool collects
        '80:32:6A:82', // chosen SW
      ];
      const r = await tool(OPENSC!, ['--reader', reader, ...apdus.flatMap((a) => ['--send-apdu', a])], pcscd.env);
      expect(r.code, r.out).toBe(0);
      const got = openscAnswers(r.out);
      const pattern = (n: number) => Array.from({ length: n }, (_, i) => (i & 0xff).toString(16).padStart(2, '0')).join('').toUpperCase();
      expect(got).toEqual([
        '6F178409F068696C7444494147A50A500868696C74444941479000',
        '9000',
        pattern(16) + '9000',
        'AABBCC9000',
        '00000003BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD9000',
        pattern(600) + '9000',
        '6A82',
      ]);
    });
  });
});
