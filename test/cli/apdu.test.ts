/**
 * `hilt apdu` end to end through the CLI entry (src/cli/main.ts), with a capturing Output.
 * Assumes registerApdu is listed in src/cli/commands/index.ts.
 */
import { describe, it, expect } from 'vitest';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import type { ApduReport } from '../../src/cli/commands/apdu.js';

interface Captured {
  code: number;
  out: string;
  err: string[];
}

async function hilt(...args: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const capture: Output = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await run(['node', 'hilt', 'apdu', ...args], capture);
  return { code, out: out.join('\n'), err };
}

async function hiltJson(...args: string[]): Promise<ApduReport> {
  const r = await hilt(...args, '--json');
  expect(r.err).toEqual([]);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as ApduReport;
}

/** One line on stderr (the error handler's), nothing on stdout, a non-zero exit. */
function expectOneErrorLine(r: Captured, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.out).toBe('');
  expect(r.err).toHaveLength(1);
  expect(r.err[0].trimEnd()).not.toContain('\n');
  expect(r.err[0]).toMatch(/^hilt: /);
  expect(r.err[0]).toMatch(pattern);
}

describe('hilt apdu', () => {
  it('explains a SELECT in a table: field, hex, meaning', async () => {
    const r = await hilt('00A4040007A000000003000000');
    expect(r.code).toBe(0);
    expect(r.err).toEqual([]);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('command APDU: case 4S (short length), 13 bytes');
    expect(lines[1]).toMatch(/^field\s+hex\s+meaning$/);
    const row = (field: string) => lines.find((l) => l.startsWith(field + ' '))?.split(/\s{2,}/);
    expect(row('CLA')).toEqual(['CLA', '00', 'interindustry, channel 0, no SM']);
    expect(row('INS')).toEqual(['INS', 'A4', 'SELECT (ISO 7816-4)']);
    expect(row('P1')).toEqual(['P1', '04', 'select by DF name (AID)']);
    expect(row('Lc')).toEqual(['Lc', '07', 'Nc = 7']);
    expect(row('data')).toEqual(['data', 'A0000000030000', 'AID, 7 bytes']);
    expect(row('Le')).toEqual(['Le', '00', 'Ne = 256 (maximum)']);
    // 0000 is not a known status word: no alternative reading.
    expect(r.out).not.toMatch(/alternative/);
  });

  it('--json prints one parseable document with the command reading', async () => {
    const j = await hiltJson('00A4040007A000000003000000');
    expect(j.primary).toBe('command');
    expect(j.mode).toBe('auto');
    expect(j.input).toBe('00A4040007A000000003000000');
    expect(j.response).toBeNull();
    expect(j.command).toMatchObject({ case: '4S', nc: 7, ne: 256, data: 'A0000000030000', ins: { name: 'SELECT' } });
  });

  it('accepts hex split over arguments, with spaces and colons', async () => {
    const j = await hiltJson('00', 'A4:04:00');
    expect(j.command).toMatchObject({ case: '1', hex: '00A40400' });
  });

  it('auto mode also shows the response reading, labelled, when the last two bytes are a known SW', async () => {
    const r = await hilt('80CA9F7F009000');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^command APDU: case 2E/);
    expect(r.out).toMatch(/alternative reading: .*response APDU/);
    expect(r.out).toMatch(/SW1 SW2\s+9000\s+normal: success/);
    expect(r.out.indexOf('command APDU')).toBeLessThan(r.out.indexOf('alternative reading'));
    const j = await hiltJson('80CA9F7F009000');
    expect(j.primary).toBe('command');
    expect(j.command?.ins.name).toBe('GET DATA');
    expect(j.response).toMatchObject({ nr: 5, sw: { hex: '9000', category: 'normal' } });
  });

  it('reads bytes that are no command but end in a known SW as a response', async () => {
    const j = await hiltJson('6C1A');
    expect(j.primary).toBe('response');
    expect(j.command).toBeNull();
    expect(j.response?.sw).toMatchObject({ sw: 0x6c1a, param: 26, category: 'checking-error' });
    const r = await hilt('6F108408A000000003000000A5049F6501FF9000');
    expect(r.out).toMatch(/^response APDU: 18 data bytes, status 9000 \(normal\)/);
    expect(r.out).not.toMatch(/command APDU/);
  });

  it('--response and --command force one reading', async () => {
    const resp = await hiltJson('00A40400', '--response');
    expect(resp).toMatchObject({ mode: 'response', primary: 'response', command: null });
    expect(resp.response?.sw.hex).toBe('0400');
    expect(resp.response?.sw.category).toBe('unknown');
    const cmd = await hiltJson('80CA9F7F009000', '--command');
    expect(cmd).toMatchObject({ mode: 'command', response: null });
    expectOneErrorLine(await hilt('9000', '--command'), /too short/);
  });

  it('malformed hex: one line on stderr, usage exit code', async () => {
    const r = await hilt('00A4ZZ');
    expectOneErrorLine(r, /not hex/);
    expect(r.code).toBe(2);
    expectOneErrorLine(await hilt('00A40'), /odd number of digits/);
  });

  it('bytes that are neither a command nor end in a known SW: one line on stderr, exit 1', async () => {
    const r = await hilt('0060000000000000');
    expectOneErrorLine(r, /not an APDU: as a command, extended Lc of 0000.*as a response, 0000 is not a known status word/);
    expect(r.code).toBe(1);
    expectOneErrorLine(await hilt('00'), /shorter than SW1 SW2/);
    expectOneErrorLine(await hilt(''), /not an APDU/);
    expectOneErrorLine(await hilt('00', '--response'), /response APDU too short/);
  });

  it('--command with --response is refused on one line', async () => {
    const r = await hilt('9000', '--command', '--response');
    expectOneErrorLine(r, /cannot be used together/);
    expect(r.code).toBe(2);
  });

  it('long data is shortened in the table but whole in --json', async () => {
    const data = 'AB'.repeat(100);
    const h = '00D60000' + '64' + data;
    const r = await hilt(h);
    expect(r.out).toMatch(/data\s+(AB){32}…\s+100 bytes/);
    const j = await hiltJson(h);
    expect(j.command?.data).toBe(data);
  });

  it('a command longer than any response, ending in a known SW, is still read as a command', async () => {
    const data = '5A'.repeat(65531) + '9000';
    const j = await hiltJson('00D60000' + '00FFFD' + data);
    expect(j).toMatchObject({ primary: 'command', response: null });
    expect(j.command).toMatchObject({ case: '3E', nc: 65533 });
    expectOneErrorLine(await hilt('00D60000' + '00FFFF' + data), /as a command, extended Lc 65535 does not match.*as a response, response APDU too long/);
  });

  it('warns about an invalid INS', async () => {
    const r = await hilt('00600000');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/warning: INS 60 is invalid/);
  });
});
