import { describe, it, expect } from 'vitest';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('hilt demo', () => {
  it('runs every step against the emulated card over a real loopback vpcd link and exits 0', async () => {
    const io = capture();
    const code = await run(['node', 'hilt', 'demo', '--json', '--trace'], io);
    expect(io.stderr).toEqual([]);
    expect(code).toBe(0);
    const report = JSON.parse(io.stdout.join('\n')) as {
      failures: number;
      steps: { name: string; ok: boolean; wireExchanges: number; note: string }[];
      trace: { dir: string; hex: string }[];
    };
    expect(report.failures).toBe(0);
    expect(report.steps.length).toBeGreaterThanOrEqual(14);
    const byName = new Map(report.steps.map((s) => [s.name, s]));
    // The wrapper stack really worked on the wire: 61xx took 3 exchanges, 6Cxx 2, chaining 4.
    expect(byName.get('600 bytes to a short Le')?.wireExchanges).toBe(3);
    expect(byName.get('wrong Le (EXACT LE 32)')?.wireExchanges).toBe(2);
    expect(byName.get('chained HASH of 1000 bytes')?.wireExchanges).toBe(4);
    // The counter went up twice (plain, then under SCP03) and survived the card being pulled.
    expect(byName.get('card pulled, re-inserted, reset')?.note).toMatch(/CARD_REMOVED.*00000002/);
    expect(byName.get('mutual authentication, level 33')?.ok).toBe(true);
    expect(byName.get('600 bytes through SCP03')?.ok).toBe(true);
    expect(byName.get('plain command during the session')?.note).toMatch(/refused/);
    // Under SCP03 level 33 the wire carries MACed, encrypted commands (CLA 84), never the plain ECHO data.
    const wire = report.trace.filter((r) => r.dir === '>').map((r) => r.hex);
    expect(wire.some((h) => h.startsWith('8418'))).toBe(true);
    expect(wire.filter((h) => h.startsWith('8418')).every((h) => !h.includes('AABBCC'))).toBe(true);
    expect(report.trace.filter((r) => r.dir === '>').some((r) => r.hex.startsWith('00C00000'))).toBe(true);
  });

  it('prints a readable table by default', async () => {
    const io = capture();
    expect(await run(['node', 'hilt', 'demo'], io)).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/steps ok, \d+ APDUs on the wire/);
    expect(text).not.toMatch(/FAIL/);
  });
});
