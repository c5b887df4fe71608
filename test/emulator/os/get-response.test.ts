import { describe, it, expect } from 'vitest';
import { fromHex } from '../../../src/util/bytes.js';
import { makeCard, tx, testApplet, type CallLog } from './helpers.js';

const APPLET = 'F0 00 00 00 05 01';

function card() {
  const log: CallLog = { calls: [] };
  return makeCard([{ aid: fromHex(APPLET), name: 'big', applet: testApplet('big', log), default: true }]).card;
}

const A5 = (n: number): string => 'A5'.repeat(n);

describe('61xx and GET RESPONSE', () => {
  it('returns 600 bytes to a short command as 256 + 6100, 256 + 6158, 88 + 9000', async () => {
    const c = card();
    expect(await tx(c, '80 02 02 58 00')).toBe(A5(256) + '6100');
    expect(await tx(c, '00 C0 00 00 00')).toBe(A5(256) + '6158');
    expect(await tx(c, '00 C0 00 00 58')).toBe(A5(88) + '9000');
    expect(await tx(c, '00 C0 00 00 00'), 'nothing left').toBe('6985');
  });

  it('returns the whole response at once to an extended Le', async () => {
    const c = card();
    expect(await tx(c, '80 02 02 58 00 00 00')).toBe(A5(600) + '9000');
    expect(await tx(c, '80 02 02 58 00 02 58')).toBe(A5(600) + '9000');
    expect(await tx(c, '80 02 02 58 00 01 00')).toBe(A5(256) + '6100');
    expect(await tx(c, '00 C0 00 00 00 FF FF'), 'an extended GET RESPONSE takes the rest').toBe(A5(344) + '9000');
  });

  it('answers 61xx with no data when the command had no Le', async () => {
    const c = card();
    expect(await tx(c, '80 02 00 20')).toBe('6120');
    expect(await tx(c, '00 C0 00 00 20')).toBe(A5(32) + '9000');
    expect(await tx(c, '80 02 01 00')).toBe('6100');
    expect(await tx(c, '00 C0 00 00 00')).toBe(A5(256) + '9000');
  });

  it('serves exactly 256 bytes to Le 00 with 9000, 257 with 6101', async () => {
    const c = card();
    expect(await tx(c, '80 02 01 00 00')).toBe(A5(256) + '9000');
    expect(await tx(c, '80 02 01 01 00')).toBe(A5(256) + '6101');
    expect(await tx(c, '00 C0 00 00 01')).toBe('A59000');
  });

  it('serves less than asked in pieces when Le is smaller', async () => {
    const c = card();
    expect(await tx(c, '80 02 00 30 10')).toBe(A5(16) + '6120');
    expect(await tx(c, '00 C0 00 00 10')).toBe(A5(16) + '6110');
    expect(await tx(c, '00 C0 00 00 10')).toBe(A5(16) + '9000');
  });

  it('answers 6Cxx to a GET RESPONSE asking more than is left, or with no Le, and keeps the data', async () => {
    const c = card();
    expect(await tx(c, '80 02 00 58')).toBe('6158');
    expect(await tx(c, '00 C0 00 00 60')).toBe('6C58');
    expect(await tx(c, '00 C0 00 00')).toBe('6C58');
    expect(await tx(c, '00 C0 00 00 58')).toBe(A5(88) + '9000');
  });

  it('checks P1P2 and the data field of GET RESPONSE', async () => {
    const c = card();
    await tx(c, '80 02 00 08');
    expect(await tx(c, '00 C0 01 00 08')).toBe('6A86');
    expect(await tx(c, '00 C0 00 00 01 00 08')).toBe('6700');
    expect(await tx(c, '00 C0 00 00 08'), 'still pending after refused GET RESPONSEs').toBe(A5(8) + '9000');
  });

  it('drops the pending response when any other command comes on the channel', async () => {
    const c = card();
    expect(await tx(c, '80 02 00 08')).toBe('6108');
    expect(await tx(c, '80 01 00 00 00')).toBe('6269679000');
    expect(await tx(c, '00 C0 00 00 08')).toBe('6985');
    expect(await tx(c, '80 02 00 08')).toBe('6108');
    expect(await tx(c, '80 C0 00 00 08'), 'a proprietary-class C0 goes to the applet').toBe('6D00');
    expect(await tx(c, '00 C0 00 00 08')).toBe('6985');
  });

  it('keeps one pending response per logical channel', async () => {
    const c = card();
    expect(await tx(c, '00 70 00 00 01')).toBe('019000');
    expect(await tx(c, '81 02 00 04')).toBe('6104');
    expect(await tx(c, '80 02 00 06')).toBe('6106');
    expect(await tx(c, '01 C0 00 00 04')).toBe(A5(4) + '9000');
    expect(await tx(c, '00 C0 00 00 06')).toBe(A5(6) + '9000');
  });

  it('delivers the applet status word with the last part of a response', async () => {
    const c = card();
    expect(await tx(c, '80 04 00 00 00')).toBe('AABBCC6283');
    expect(await tx(c, '80 04 00 00')).toBe('6103');
    expect(await tx(c, '00 C0 00 00 02')).toBe('AABB6101');
    expect(await tx(c, '00 C0 00 00 01')).toBe('CC6283');
  });
});
