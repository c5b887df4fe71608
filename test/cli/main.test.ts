import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('hilt (program)', () => {
  it.each([
    [['bogus'], "hilt: unknown command 'bogus' (see hilt --help)"],
    [['atr'], "hilt: missing required argument 'hex' (see hilt --help)"],
    [['atr', '--bogus', '3B00'], "hilt: unknown option '--bogus' (see hilt --help)"],
  ])('a usage mistake %j is one line on stderr and exit 2', async (args, line) => {
    const io = capture();
    expect(await run(['node', 'hilt', ...args], io)).toBe(2);
    expect(io.stderr.join('').trim().split('\n')).toEqual([line]);
    expect(io.stdout).toEqual([]);
  });

  it('--help lists every command and exits 0', async () => {
    const io = capture();
    expect(await run(['node', 'hilt', '--help'], io)).toBe(0);
    const help = io.stdout.join('');
    for (const c of ['readers', 'monitor', 'send', 'script', 'auth', 'atr', 'apdu', 'tlv', 'emulator', 'journal', 'demo']) expect(help).toMatch(new RegExp(`\\n  ${c}\\b`));
  });
});
