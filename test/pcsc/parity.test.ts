/**
 * One script, two transports, the same bytes: a script covering the diagnostic applet's whole range
 * (cases 1-4, 61xx and GET RESPONSE, 6Cxx, extended length both ways, command chaining, chosen
 * status words, the persistent counter across a reset) runs through pcscd ("Virtual PCD 00 01") and
 * through hilt's own vpcd server (`--reader vpcd://...`, no pcscd), each time on a freshly built card
 * with the same serial. Every answer must be identical, byte for byte.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { fromHex } from '../../src/util/bytes.js';
import { ensurePcscd, pcscStackMissing, runHilt, stopPcscd, waitForCardState, type PcscdInstance } from '../helpers/pcscd.js';

const SKIP = pcscStackMissing();
const SERIAL = fromHex('0102030405060708');

const SCRIPT = `# the diagnostic applet's range, scriptor format
00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47 00
00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47
00 C0 00 00 19
80 10 00 00
80 12 00 10 10
80 14 00 00 05 01 02 03 04 05
80 16 00 00 00
80 18 00 00 03 AA BB CC 00
80 12 00 10 08
00 C0 00 00 08
80 12 02 58 00
00 C0 00 00 00
00 C0 00 00 58
80 12 02 58 00 00 00
80 12 10 00 00 00 00
80 1C 00 20 00
80 1C 00 20 20
90 1A 00 00 02 61 62
80 1A 00 00 01 63 00
80 32 62 83 02 AA BB
00 C0 00 00 02
80 32 6A 82
80 40 00 00 00
80 40 01 00 00
reset
00A4040C09F068696C7444494147
80 42 00 00 00
80 40 00 00
00 C0 00 00 04
00 10 00 00
84 10 00 00
80 50 00 00
`;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface ScriptDoc {
  ok: boolean;
  transport: string;
  steps: { kind: string; command?: string; response?: string; atr?: string }[];
}

describe.skipIf(SKIP !== null)(`PC/SC and the vpcd server give the same answers${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: PcscdInstance;
  let dir: string;
  let file: string;
  const quiet = { info: () => undefined, warn: () => undefined };

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    dir = mkdtempSync(join(tmpdir(), 'hilt-parity-'));
    file = join(dir, 'range.txt');
    writeFileSync(file, SCRIPT);
  });

  afterAll(async () => {
    await stopPcscd();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function throughPcsc(argv: string[]): Promise<ScriptDoc> {
    const reader = pcscd.readers[1];
    const client = new VpcdCardClient(makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }] }).os, { port: pcscd.ports[1], logger: quiet });
    client.insertCard();
    try {
      await waitForCardState(reader, true);
      const r = await runHilt([...argv, '--reader', `pcsc:${reader}`, '--json']);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as ScriptDoc;
    } finally {
      await client.close();
      await waitForCardState(reader, false);
    }
  }

  async function throughVpcdServer(argv: string[]): Promise<ScriptDoc> {
    const port = await freePort();
    const client = new VpcdCardClient(makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }] }).os, { port, logger: quiet, initialDelayMs: 10, maxDelayMs: 100 });
    client.insertCard(); // keeps trying until hilt's server listens
    try {
      const r = await runHilt([...argv, '--reader', `vpcd://127.0.0.1:${port}`, '--json']);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as ScriptDoc;
    } finally {
      await client.close();
    }
  }

  it('hilt script: every answer identical through pcscd and through the direct vpcd server', async () => {
    const pcsc = await throughPcsc(['script', file]);
    const vpcd = await throughVpcdServer(['script', file]);
    expect(pcsc.transport).toBe('pcsc');
    expect(vpcd.transport).toBe('vpcd');
    expect(pcsc.ok && vpcd.ok).toBe(true);
    expect(pcsc.steps.filter((s) => s.kind === 'apdu')).toHaveLength(31);
    expect(vpcd.steps).toEqual(pcsc.steps);
    // Sanity: the range really went through (extended 4096-byte answer, chained HASH of "abc").
    const answers = pcsc.steps.map((s) => s.response ?? '');
    expect(answers.some((a) => a.length === 2 * 4098)).toBe(true);
    expect(answers).toContain('00000003BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD9000');
  });

  it('hilt send with automatic GET RESPONSE: identical exchanges through both transports', async () => {
    const apdus = ['00A4040009F068696C7444494147', '8012025800', '801C002000', '80121000000000', '8032628302AABB'];
    const pcsc = (await throughPcsc(['send', ...apdus])) as unknown as { exchanges: unknown[] };
    const vpcd = (await throughVpcdServer(['send', ...apdus])) as unknown as { exchanges: unknown[] };
    expect(pcsc.exchanges).toHaveLength(apdus.length);
    expect(vpcd.exchanges).toEqual(pcsc.exchanges);
  });
});
