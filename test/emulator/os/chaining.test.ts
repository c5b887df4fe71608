import { describe, it, expect } from 'vitest';
import { fromHex } from '../../../src/util/bytes.js';
import type { Applet } from '../../../emulator/os/applet.js';
import { makeCard, tx, testApplet, type CallLog } from './helpers.js';

const APPLET = 'F0 00 00 00 06 01';

function card(chaining: Applet['chaining']) {
  const log: CallLog = { calls: [] };
  const { card: c } = makeCard([{ aid: fromHex(APPLET), name: 'chain', applet: testApplet('chain', log, { chaining }), default: true }]);
  return { c, log };
}

const processed = (log: CallLog): string[] => log.calls.filter((x) => x.startsWith('process:')).map((x) => x.split(':')[3]);

describe('command chaining (CLA b5)', () => {
  it("accumulates the parts for an applet in 'accumulate' mode and calls process once", async () => {
    const { c, log } = card('accumulate');
    expect(await tx(c, '90 06 00 00 02 AA BB')).toBe('9000');
    expect(await tx(c, '90 06 00 00 01 CC')).toBe('9000');
    expect(await tx(c, '80 06 00 00 01 DD 00')).toBe('AABBCCDD9000');
    expect(processed(log)).toEqual(['8006000004aabbccdd00']);
  });

  it('builds an extended command when the whole exceeds 255 bytes, keeping the channel in the CLA', async () => {
    const { c, log } = card('accumulate');
    expect(await tx(c, '00 70 00 01')).toBe('9000');
    const part = 'EE'.repeat(200);
    expect(await tx(c, `91 06 00 00 C8 ${part}`)).toBe('9000');
    expect(await tx(c, `91 06 00 00 C8 ${part}`)).toBe('9000');
    expect(await tx(c, `81 06 00 00 C8 ${part} 00`)).toBe('EE'.repeat(256) + '6100');
    const [only] = processed(log);
    expect(only.slice(0, 14)).toBe('81060000000258'); // CLA 81, Lc 00 02 58 = 600
    expect(only.length).toBe((7 + 600 + 2) * 2);
  });

  it('answers 6883 to a command that breaks a chain, and drops the chain', async () => {
    const { c, log } = card('accumulate');
    expect(await tx(c, '90 06 00 00 01 AA')).toBe('9000');
    expect(await tx(c, '80 06 00 01 01 BB 00'), 'other P2').toBe('6883');
    expect(await tx(c, '80 06 00 00 01 CC 00')).toBe('CC9000');
    expect(await tx(c, '90 06 00 00 01 AA')).toBe('9000');
    expect(await tx(c, `00 A4 04 0C 06 ${APPLET}`), 'SELECT inside a chain').toBe('6883');
    expect(await tx(c, '80 06 00 00 01 CC 00')).toBe('CC9000');
    expect(processed(log)).toEqual(['8006000001cc00', '8006000001cc00']);
  });

  it('lets GET RESPONSE through a chain without breaking it (it fetches the answer to a part)', async () => {
    const { c, log } = card('accumulate');
    expect(await tx(c, '90 06 00 00 01 AA')).toBe('9000');
    expect(await tx(c, '00 C0 00 00 00'), 'nothing pending for this part').toBe('6985');
    expect(await tx(c, '80 06 00 00 01 BB 00')).toBe('AABB9000');
    expect(processed(log)).toEqual(['8006000002aabb00']);
  });

  it('keeps chains per channel', async () => {
    const { c } = card('accumulate');
    await tx(c, '00 70 00 01');
    expect(await tx(c, '91 06 00 00 01 11')).toBe('9000');
    expect(await tx(c, '80 06 00 00 01 22 00')).toBe('229000');
    expect(await tx(c, '81 06 00 00 01 33 00')).toBe('11339000');
  });

  it('refuses a chain longer than 65535 bytes with 6700', async () => {
    const { c } = card('accumulate');
    const big = 'AB'.repeat(0xffff);
    expect(await tx(c, `90 06 00 00 00 FF FF ${big}`)).toBe('9000');
    expect(await tx(c, '90 06 00 00 01 01')).toBe('6700');
    expect(await tx(c, '80 06 00 00 01 02 00'), 'chain dropped').toBe('029000');
  });

  it("passes every part to an applet in 'pass-through' mode", async () => {
    const { c, log } = card('pass-through');
    expect(await tx(c, '90 06 00 00 01 AA 00')).toBe('AA9000');
    expect(await tx(c, '80 06 00 00 01 BB 00')).toBe('BB9000');
    expect(processed(log)).toEqual(['9006000001aa00', '8006000001bb00']);
  });

  it('answers 6884 to chained parts for an applet without a chaining mode', async () => {
    const { c, log } = card(undefined);
    expect(await tx(c, '90 06 00 00 01 AA')).toBe('6884');
    expect(processed(log)).toEqual([]);
  });

  it('answers 6884 to chained OS commands', async () => {
    const { c } = card('accumulate');
    expect(await tx(c, `10 A4 04 00 06 ${APPLET}`)).toBe('6884');
    expect(await tx(c, '10 C0 00 00 00')).toBe('6884');
  });

  it('forgets a chain at reset', async () => {
    const { c } = card('accumulate');
    expect(await tx(c, '90 06 00 00 01 AA')).toBe('9000');
    c.reset();
    expect(await tx(c, '80 06 00 00 01 BB 00'), 'without the reset this would be AABB').toBe('BB9000');
  });
});
