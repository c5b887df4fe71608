/**
 * The reader commands of the CLI against the real PC/SC stack: pcscd with the vpcd driver, the
 * emulator (diagnostic applet) as the card in "Virtual PCD 00 01", hilt readers / send / script
 * driven in-process. The diagnostic applet's whole range goes through: extended length, command
 * chaining, 61xx + GET RESPONSE, 6Cxx, and every example exchange of applets-spec/diagnostic.md,
 * replayed as scriptor-format scripts (and cross-checked against pcsc-tools' own scriptor).
 *
 * pcscd comes from test/helpers/pcscd.ts (an isolated instance of its own where possible); the suite
 * is skipped, with the reason in its title, where the stack is not installed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { PcscChannel } from '../../src/reader/pcsc.js';
import { parseTraceLine } from '../../src/reader/trace.js';
import { createHash } from 'node:crypto';
import { fromHex, toHex, toSpacedHex } from '../../src/util/bytes.js';
import { fileURLToPath } from 'node:url';
import { specBlocksWithTitles } from '../helpers/spec-blocks.js';
import { ensurePcscd, pcscStackMissing, runHilt, stopPcscd, waitForCardState, type PcscdInstance } from '../helpers/pcscd.js';

const SKIP = pcscStackMissing();
const SERIAL = fromHex('0102030405060708');
const SPEC_PATH = fileURLToPath(new URL('../../applets-spec/diagnostic.md', import.meta.url));
const SELECT_NO_LE = '00A4040009F068696C7444494147';
const SELECT_P2_0C = '00A4040C09F068696C7444494147';
const FCI = '6F178409F068696C7444494147A50A500868696C7444494147';
/** An ATR smartcard_list.txt knows ("ISO 14443 Type B without historical bytes"). */
const LISTED_ATR = fromHex('3B80800101');
const TOOL_TIMEOUT_MS = 20_000;

interface SpecBlock {
  title: string;
  /** hilt script: the example with # --expect lines for every answer. */
  script: string;
  /** The same APDUs for scriptor (no inline comments). */
  plain: string;
  apdus: number;
}

/** The ```apdu example blocks of diagnostic.md as hilt scripts whose every answer is checked. */
function specBlocks(): SpecBlock[] {
  return specBlocksWithTitles(SPEC_PATH).map(({ title, steps }) => {
    const script: string[] = [];
    const plain: string[] = [];
    for (const step of steps) {
      if (step.kind === 'reset') {
        script.push('reset');
        plain.push('reset');
        continue;
      }
      const want = step.expect!;
      // "(256 bytes: 00 01 … FF) 61 00": the data is elided, check the status word.
      script.push(want.exact !== undefined ? `# --expect-response ${want.exact}` : `# --expect-next ${want.tail}`);
      script.push(step.command!);
      plain.push(step.command!);
    }
    return { title, script: script.join('\n') + '\n', plain: plain.join('\n') + '\n', apdus: plain.filter((l) => l !== 'reset').length };
  });
}

function sh(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(tool, args, { env, timeout: TOOL_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

/** The hex of every "<" answer in scriptor-style output (hilt's or scriptor's), one string per answer. */
function answers(output: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (const line of output.split('\n')) {
    if (line.startsWith('< ') && !line.startsWith('< OK')) cur = '';
    if (cur === null) continue;
    const body = line.startsWith('< ') ? line.slice(2) : line;
    const end = body.indexOf(' : ');
    cur += body.slice(0, end >= 0 ? end : body.length).replace(/\s+/g, '');
    if (end >= 0) {
      out.push(cur);
      cur = null;
    }
  }
  return out;
}

describe.skipIf(SKIP !== null)(`reader commands through pcscd + vpcd${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: PcscdInstance;
  let reader: string;
  let dir: string;
  let client: VpcdCardClient | null = null;
  const log: string[] = [];
  /** The ATR of the emulated card (the emulator's default). */
  const ATR = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }] }).os.atr;
  const ATR_HEX = toHex(ATR).toUpperCase();

  /** A freshly built card (diagnostic applet) in reader 1, seen by pcscd. */
  async function freshCard(atr?: Uint8Array): Promise<void> {
    await ejectCard();
    const card = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], atr });
    client = new VpcdCardClient(card.os, { port: pcscd.ports[1], logger: { info: () => undefined, warn: (m) => log.push(m) } });
    client.insertCard();
    await waitForCardState(reader, true);
  }

  async function ejectCard(): Promise<void> {
    if (!client) return;
    await client.close();
    client = null;
    await waitForCardState(reader, false);
  }

  function file(name: string, text: string): string {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  }

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    reader = pcscd.readers[1];
    dir = mkdtempSync(join(tmpdir(), 'hilt-cli-pcsc-'));
    await freshCard();
  });

  afterAll(async () => {
    await ejectCard();
    await stopPcscd();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });


  describe('hilt readers', () => {
    it('lists both vpcd readers, the card, its protocol, ATR and one-line decoding', async () => {
      const r = await runHilt(['readers']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/0\s+Virtual PCD 00 00\s+empty/);
      expect(r.out).toMatch(new RegExp(`1\\s+Virtual PCD 00 01\\s+card\\s+T=1\\s+${toSpacedHex(ATR)}`));
      expect(r.out).toContain('ATR: T=0, T=1; Fi=372 Di=1 (default); 10 historical bytes (compact-tlv) "hilt"; TCK ok');
      expect(r.out).toContain('card: not in smartcard_list.txt');
    });

    it('--json gives the same facts as data, and --reader narrows the list', async () => {
      const r = await runHilt(['readers', '--reader', 'PCD 00 01', '--json']);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as { readers: Record<string, unknown>[] };
      expect(doc.readers).toHaveLength(1);
      expect(doc.readers[0]).toMatchObject({
        index: 1,
        name: reader,
        transport: 'pcsc',
        cardPresent: true,
        atr: ATR_HEX,
        cardNames: [],
        protocol: 'T=1',
      });
      expect(doc.readers[0].flags).toContain('present');
    });

    it('names a card that smartcard_list.txt knows', async () => {
      await freshCard(LISTED_ATR);
      try {
        const r = await runHilt(['readers', '--reader', '1']);
        expect(r.code, r.err).toBe(0);
        expect(r.out).toContain('card: ISO 14443 Type B without historical bytes');
      } finally {
        await freshCard();
      }
    });

    it('refuses a selection that matches no reader, naming the readers there are', async () => {
      const r = await runHilt(['readers', '--reader', 'no such reader']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/no PC\/SC reader name contains "no such reader" \(0: Virtual PCD 00 00; 1: Virtual PCD 00 01\)/);
    });
  });

  describe('hilt send', () => {
    it('fetches 61xx answers with GET RESPONSE: SELECT without Le, 600 bytes to a short Le', async () => {
      const r = await runHilt(['send', '--reader', '1', SELECT_NO_LE, '8012025800', '--json']);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as { exchanges: { response: string; data: string; sw: string }[]; transport: string };
      expect(doc.transport).toBe('pcsc');
      expect(doc.exchanges[0].response).toBe(`${FCI}9000`);
      expect(doc.exchanges[1].sw).toBe('9000');
      expect(doc.exchanges[1].data).toBe(toHex(Uint8Array.from({ length: 600 }, (_, i) => i & 0xff)).toUpperCase());
    });

    it('carries extended length both ways: 4096 bytes out, 600 bytes in', async () => {
      const put = `80140000000258${'A5'.repeat(600)}`;
      const r = await runHilt(['send', '--reader', 'pcsc:Virtual PCD 00 01', SELECT_P2_0C, '80121000000000', put, '8016000000', '--json']);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as { exchanges: { data: string; sw: string }[] };
      expect(doc.exchanges[1].data.length).toBe(4096 * 2);
      expect(doc.exchanges[2].sw).toBe('9000');
      expect(doc.exchanges[3].data.slice(0, 8)).toBe('00000258');
    });

    it('re-issues a wrong Le (6Cxx) and explains status words; --raw shows the card as it is', async () => {
      const r = await runHilt(['send', '--reader', '1', SELECT_P2_0C, '801C002000', '80326A82']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`> 80 1C 00 20 00\n< ${toSpacedHex(Uint8Array.from({ length: 32 }, (_, i) => i))}\n  90 00\nSW 9000: success`);
      expect(r.out).toContain('SW 6A82: file or application not found');
      const raw = await runHilt(['send', '--reader', '1', '--raw', SELECT_NO_LE, '801C002000']);
      expect(raw.code, raw.err).toBe(0);
      expect(raw.out).toContain('< 61 19\nSW 6119: 25 more bytes available (0x19), use GET RESPONSE');
      expect(raw.out).toContain('< 6C 20\nSW 6C20: wrong Le: exact length is 32 (0x20), re-issue with Le 20');
    });

    it('chains long commands with --chain, and --trace-wire shows each link', async () => {
      const data = Uint8Array.from({ length: 600 }, (_, i) => (i * 7) & 0xff);
      const put = `80140000000258${toHex(data)}`;
      const trace = join(dir, 'chain.trace');
      const r = await runHilt(['send', '--reader', '1', '--chain', '255', '--trace-file', trace, '--trace-wire', SELECT_P2_0C, put, '8016000000', '--json']);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as { exchanges: { data: string; sw: string }[] };
      expect(doc.exchanges[1].sw).toBe('9000');
      // LAST PUT: the card got all 600 bytes, as one command, through the chain.
      expect(doc.exchanges[2].data).toBe(`00000258${createHash('sha256').update(data).digest('hex').toUpperCase()}`);
      const records = readFileSync(trace, 'utf8').trim().split('\n').map(parseTraceLine);
      const commands = records.filter((x) => x.dir === '>').map((x) => (x.dir === '>' ? x.hex : ''));
      expect(commands.map((c) => c.slice(0, 10))).toEqual([SELECT_P2_0C.slice(0, 10), '90140000FF', '90140000FF', '801400005A', '8016000000']);
    });

    it('--trace writes the trace format to stderr, one > and one < per command', async () => {
      const r = await runHilt(['send', '--reader', '1', '--trace', SELECT_P2_0C, '80100000']);
      expect(r.code, r.err).toBe(0);
      const records = r.err.split('\n').filter(Boolean).map(parseTraceLine);
      expect(records.map((x) => x.dir)).toEqual(['>', '<', '>', '<']);
      expect(records[3]).toMatchObject({ dir: '<', hex: '9000', sw: '9000', meaning: 'success' });
    });

    it('--expect stops at the first other status word with exit code 1', async () => {
      const r = await runHilt(['send', '--reader', '1', '--expect', '9000', SELECT_P2_0C, '80326A82', '80100000']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^hilt: APDU 2: status word 6A82: file or application not found \(checking-error\); expected 9000$/m);
      expect(r.out).not.toContain('> 80 10 00 00');
    });

    it('--reset / --cold reset the card first and print the ATR', async () => {
      const r = await runHilt(['send', '--reader', '1', '--cold', SELECT_P2_0C]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`cold reset, ATR ${toSpacedHex(ATR)}`);
    });

    it('connects with the protocol asked for; one the reader cannot use is NOT_SUPPORTED', async () => {
      const t1 = await runHilt(['send', '--reader', '1', '--protocol', 'T=1', SELECT_P2_0C, '--json']);
      expect(t1.code, t1.err).toBe(0);
      expect((JSON.parse(t1.out) as { protocol: string }).protocol).toBe('T=1');
      // The vpcd driver speaks T=1 only, although the ATR also offers T=0.
      const t0 = await runHilt(['send', '--reader', '1', '--protocol', 'T0', SELECT_P2_0C]);
      expect(t0.code).toBe(1);
      expect(t0.err).toMatch(/^hilt: Virtual PCD 00 01: the card does not offer the requested protocol \(SCARD_E_PROTO_MISMATCH\)$/m);
    });

    it('an exclusive connection keeps others out; shared ones coexist', async () => {
      const holder = await PcscChannel.open(reader, { share: 'exclusive' });
      try {
        const r = await runHilt(['send', '--reader', '1', SELECT_P2_0C]);
        expect(r.code).toBe(1);
        expect(r.err).toMatch(/^hilt: Virtual PCD 00 01: the card is in exclusive use by another application \(SCARD_E_SHARING_VIOLATION\)$/m);
      } finally {
        await holder.close();
      }
      const shared = await PcscChannel.open(reader, { share: 'shared' });
      try {
        const r = await runHilt(['send', '--reader', '1', '--share', 'shared', SELECT_P2_0C]);
        expect(r.code, r.err).toBe(0);
      } finally {
        await shared.close();
      }
    });

    it('an empty reader is NO_CARD, a bad APDU is refused before anything is sent', async () => {
      const empty = await runHilt(['send', '--reader', '0', '80100000']);
      expect(empty.code).toBe(1);
      expect(empty.err).toMatch(/^hilt: Virtual PCD 00 00: no card in the reader \(SCARD_E_NO_SMARTCARD\)$/m);
      const bad = await runHilt(['send', '--reader', '1', '80 10']);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('an APDU has at least 4 (CLA INS P1 P2)');
    });
  });

  describe('hilt script', () => {
    const blocks = specBlocks();

    it('finds every example block of the diagnostic spec', () => {
      expect(blocks.length).toBeGreaterThanOrEqual(9);
      expect(blocks.reduce((n, b) => n + b.apdus, 0)).toBeGreaterThanOrEqual(50);
    });

    for (const block of blocks) {
      it(`replays "${block.title}" on a fresh card, every answer as the spec says`, async () => {
        await freshCard();
        const r = await runHilt(['script', '--reader', '1', file('block.txt', block.script), '--json']);
        expect(r.code, `${r.err}\n${block.script}`).toBe(0);
        const doc = JSON.parse(r.out) as { ok: boolean; steps: { kind: string; ok?: boolean }[] };
        expect(doc.ok).toBe(true);
        expect(doc.steps.filter((s) => s.kind === 'apdu')).toHaveLength(block.apdus);
      });
    }

    it('prints what scriptor prints: the same answers, byte for byte, for the same script', async () => {
      const chosen = blocks.filter((b) => /Cases 1 to 4|600 bytes|Command chaining/.test(b.title));
      expect(chosen).toHaveLength(3);
      for (const block of chosen) {
        await freshCard();
        const ours = await runHilt(['script', '--reader', '1', file('ours.txt', block.plain)]);
        expect(ours.code, ours.err).toBe(0);
        await freshCard();
        const theirs = await sh('scriptor', ['-r', reader, file('theirs.txt', block.plain)], pcscd.env);
        expect(theirs.code, theirs.out).toBe(0);
        expect(answers(ours.out)).toEqual(answers(theirs.out));
        expect(answers(ours.out)).toHaveLength(block.apdus);
      }
    });

    it('exits 1 at the first unexpected status word, after printing that answer', async () => {
      await freshCard();
      const script = ['# --expect 9000', SELECT_P2_0C, '80 10 00 00', '80 50 00 00', '80 10 00 00'].join('\n');
      const r = await runHilt(['script', '--reader', '1', file('fail.txt', script)]);
      expect(r.code).toBe(1);
      expect(r.out).toContain('> 80 50 00 00\n< 6D 00 : instruction code not supported or invalid');
      expect(r.out.match(/^> /gm)).toHaveLength(3);
      expect(r.err).toMatch(/^hilt: script line 4: status word 6D00 \(instruction code not supported or invalid\); expected 9000$/m);
    });

    it('--get-response and --expect on the command line; reset and exit lines', async () => {
      await freshCard();
      const script = [SELECT_NO_LE, 'reset', SELECT_P2_0C, '80 12 00 10', 'exit', '80 50 00 00'].join('\n');
      const r = await runHilt(['script', '--reader', '1', '--get-response', '--expect', '9000', file('gr.txt', script), '--json']);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as { steps: { kind: string; response?: string; atr?: string }[] };
      expect(doc.steps.map((s) => s.kind)).toEqual(['apdu', 'reset', 'apdu', 'apdu', 'exit']);
      expect(doc.steps[0].response).toBe(`${FCI}9000`);
      expect(doc.steps[1].atr).toBe(ATR_HEX);
      expect(doc.steps[3].response).toBe('000102030405060708090A0B0C0D0E0F9000');
    });

    it('a syntax error names its line and sends nothing', async () => {
      const r = await runHilt(['script', '--reader', '1', file('bad.txt', '80 10 00 00\n80 1G 00 00\n')]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^hilt: script line 2: not hex/m);
      expect(r.out).toBe('');
    });
  });
});
