/**
 * `hilt atr` and `hilt tlv`, run in-process through run() with a capturing Output.
 *
 * The commands are registered in src/cli/commands/index.ts by the lead; until then this file adds
 * them to the list itself (only if missing), so the tests exercise the real run() path either way.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import { commands } from '../../src/cli/commands/index.js';
import { registerAtr } from '../../src/cli/commands/atr.js';
import { registerTlv } from '../../src/cli/commands/tlv.js';
import type { Output } from '../../src/cli/output.js';

if (!commands.includes(registerAtr)) commands.push(registerAtr);
if (!commands.includes(registerTlv)) commands.push(registerTlv);

async function hilt(...args: string[]): Promise<{ code: number; out: string; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Output = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await run(['node', 'hilt', ...args], io);
  return { code, out: out.join('\n'), err: err.join('').split('\n').filter((l) => l !== '') };
}

const MIFARE = '3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A';
const JCOP = '3B F5 13 00 00 81 31 FE 45 73 74 64 31 30 8F';
const PPSE = '6F 23 84 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 A5 11 BF 0C 0E 61 0C 4F 07 A0 00 00 00 03 10 10 87 01 01';

let dir: string;
let list: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hilt-cli-atr-'));
  list = join(dir, 'smartcard_list.txt');
  await writeFile(list, `# test list\n\n3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 ..\n\tMIFARE Classic 1K (test list)\n\n3B F5 13 00 00 81 31 FE 45 .. .. .. .. .. ..\n\tsome JCOP\n`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('hilt atr', () => {
  it('prints a byte table, parameters, historical bytes, TCK status and the card name', async () => {
    const r = await hilt('atr', JCOP, '--list', list);
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    expect(r.out).toMatch(/^ATR: 3B F5 13 00 00 81 31 FE 45 73 74 64 31 30 8F$/m);
    expect(r.out).toMatch(/^TS\s+3B\s+direct convention$/m);
    expect(r.out).toMatch(/^TA1\s+13\s+Fi=372, Di=4, 93 cycles\/ETU, 43010 bits\/s at 4 MHz/m);
    expect(r.out).toMatch(/^TA3\s+FE\s+IFSC: 254$/m);
    expect(r.out).toMatch(/^TB3\s+45\s+block waiting integer: 4 - character waiting integer: 5$/m);
    expect(r.out).toMatch(/^TCK\s+8F\s+correct checksum$/m);
    expect(r.out).toMatch(/^protocols: T=1$/m);
    expect(r.out).toMatch(/^T=1: IFSC 254, BWI 4, CWI 5, LRC$/m);
    expect(r.out).toMatch(/possibly identified card \(using .*smartcard_list.txt\):\n  3B F5 13 00 00 81 31 FE 45 (\.\. ){5}\.\.\n    some JCOP/);
  });

  it('takes the clock from --clock and accepts colons and split arguments', async () => {
    const r = await hilt('atr', '3B:F5:13:00:00:81:31', 'FE 45 73 74 64 31 30 8F', '--clock', '3.5712', '--list', list);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/38400 bits\/s at 3\.571 MHz/);
    expect(r.out).toMatch(/rate: Fi=372, Di=4, 93 cycles\/ETU, 38400 bit\/s at 3\.571 MHz, 53763 bit\/s at fmax 5 MHz/);
  });

  it('shows a wrong TCK without failing', async () => {
    const r = await hilt('atr', MIFARE.replace(/6A$/, '6B'), '--list', list);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^TCK\s+6B\s+WRONG CHECKSUM, expected 6A$/m);
    expect(r.out).toMatch(/PC\/SC part 3 contactless card: RID A0 00 00 03 06, standard 03, card name 0001/);
  });

  it('--json is one parseable document with the decoded fields', async () => {
    const r = await hilt('atr', MIFARE, '--json', '--list', list);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.atr.convention).toBe('direct');
    expect(doc.atr.protocols).toEqual([0, 1]);
    expect(doc.atr.tck).toEqual({ present: true, required: true, value: 0x6a, valid: true, expected: 0x6a });
    expect(doc.atr.historical.pcsc.rid).toBe('A000000306');
    expect(doc.meanings.map((m: { byte: string }) => m.byte)).toEqual(['TD1', 'TD2']);
    expect(doc.clockHz).toBe(4e6);
    expect(Math.floor(doc.bitRate.atClock)).toBe(10752);
    expect(doc.identification.matches[0].names).toEqual(['MIFARE Classic 1K (test list)']);
  });

  it('says so when no list exists', async () => {
    const r = await hilt('atr', '3B 02 14 50', '--list', join(dir, 'absent.txt'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/possibly identified card: no smartcard_list.txt found/);
  });

  it('one error line and a non-zero exit for malformed input', async () => {
    for (const args of [['3B 8'], ['3B ZZ'], ['3C 00'], ['3B 80'], ['3B 81 01 80'], [JCOP, '--clock', 'fast'], [JCOP, '--clock', '0']]) {
      const r = await hilt('atr', ...args, '--list', list);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.out).toBe('');
      expect(r.err, args.join(' ')).toHaveLength(1);
      expect(r.err[0]).toMatch(/^hilt: /);
      expect(r.err[0]).not.toMatch(/internal error/);
    }
    expect((await hilt('atr', '3B 80', '--list', list)).err[0]).toMatch(/TD1 missing/);
  });
});

describe('hilt tlv', () => {
  it('prints an indented tree with names, lengths, values and ASCII', async () => {
    const r = await hilt('tlv', PPSE);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toEqual([
      '6F File control information (FCI) template, 35 bytes',
      '  84 DF name, 14 bytes: 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31  "2PAY.SYS.DDF01"',
      '  A5 FCI proprietary template, 17 bytes',
      '    BF0C FCI issuer discretionary data, 14 bytes',
      '      61 Application template, 12 bytes',
      '        4F Application identifier (AID), 7 bytes: A0 00 00 00 03 10 10',
      '        87 Application priority indicator, 1 byte: 01',
    ]);
  });

  it('names tags by their template and flags non-minimal lengths', async () => {
    const r = await hilt('tlv', '62 0B 80 02 00 10 82 01 01 DF 7F 81 00');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')).toEqual([
      '62 File control parameters (FCP) template, 11 bytes',
      '  80 Number of data bytes in the file, 2 bytes: 00 10',
      '  82 File descriptor, 1 byte: 01',
      '  DF7F, 0 bytes (non-minimal length field 81 00)',
    ]);
  });

  it('--json is one parseable tree', async () => {
    const r = await hilt('tlv', PPSE, '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc[0]).toMatchObject({ tag: '6F', constructed: true, length: 35, lengthField: '23', minimalLength: true });
    expect(doc[0].children[0]).toMatchObject({ tag: '84', value: '325041592E5359532E4444463031', ascii: '2PAY.SYS.DDF01' });
    expect(doc[0].children[1].children[0].children[0].children[1]).toMatchObject({ tag: '87', name: 'Application priority indicator', value: '01' });
  });

  it('refuses padding unless --lenient-padding', async () => {
    const padded = '00 5A 01 12 00 00';
    const strict = await hilt('tlv', padded);
    expect(strict.code).not.toBe(0);
    expect(strict.err).toHaveLength(1);
    expect(strict.err[0]).toMatch(/^hilt: .*padding/);
    const lenient = await hilt('tlv', padded, '--lenient-padding');
    expect(lenient.code).toBe(0);
    expect(lenient.out).toBe('5A Application primary account number (PAN), 1 byte: 12');
  });

  it('one error line and a non-zero exit for malformed TLV', async () => {
    for (const hex of ['6F 80 00 00', '5A 05 01', '9F', 'XYZ', '6F 03 84 05 00']) {
      const r = await hilt('tlv', hex);
      expect(r.code, hex).not.toBe(0);
      expect(r.out).toBe('');
      expect(r.err, hex).toHaveLength(1);
      expect(r.err[0]).not.toMatch(/internal error/);
    }
  });
});
