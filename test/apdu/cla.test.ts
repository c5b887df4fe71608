import { describe, it, expect } from 'vitest';
import { decodeCla, claChannel, claForChannel, claWithChaining, type ClaInfo } from '../../src/apdu/cla.js';
import { BadInputError } from '../../src/util/errors.js';

const ALL = Array.from({ length: 256 }, (_, i) => i);

describe('decodeCla: interindustry classes', () => {
  it.each([
    [0x00, { kind: 'interindustry', proprietary: false, chaining: false, secureMessaging: 'none', channel: 0 }],
    [0x03, { kind: 'interindustry', chaining: false, secureMessaging: 'none', channel: 3 }],
    [0x10, { kind: 'interindustry', chaining: true, secureMessaging: 'none', channel: 0 }],
    [0x04, { kind: 'interindustry', secureMessaging: 'proprietary', channel: 0 }],
    [0x08, { kind: 'interindustry', secureMessaging: 'iso-header-not-processed', channel: 0 }],
    [0x0c, { kind: 'interindustry', secureMessaging: 'iso-header-authenticated', channel: 0 }],
    [0x1f, { kind: 'interindustry', chaining: true, secureMessaging: 'iso-header-authenticated', channel: 3 }],
    [0x40, { kind: 'further-interindustry', chaining: false, secureMessaging: 'none', channel: 4 }],
    [0x4f, { kind: 'further-interindustry', secureMessaging: 'none', channel: 19 }],
    [0x50, { kind: 'further-interindustry', chaining: true, secureMessaging: 'none', channel: 4 }],
    [0x60, { kind: 'further-interindustry', chaining: false, secureMessaging: 'iso-header-not-processed', channel: 4 }],
    [0x7f, { kind: 'further-interindustry', chaining: true, secureMessaging: 'iso-header-not-processed', channel: 19 }],
  ] as const)('CLA %i', (cla, expected) => {
    expect(decodeCla(cla)).toMatchObject({ cla, ...expected });
  });

  it('20..3F are reserved: no channel, no chaining', () => {
    for (let cla = 0x20; cla <= 0x3f; cla++) {
      expect(decodeCla(cla)).toEqual({ cla, kind: 'rfu', proprietary: false, chaining: false, secureMessaging: 'none', channel: -1 });
    }
  });

  it('FF is invalid', () => {
    expect(decodeCla(0xff)).toMatchObject({ kind: 'invalid', channel: -1 });
  });

  it('refuses non-bytes', () => {
    for (const v of [-1, 256, 1.5, Number.NaN]) expect(() => decodeCla(v)).toThrow(BadInputError);
  });
});

describe('decodeCla: GlobalPlatform and other proprietary classes', () => {
  it.each([
    [0x80, { kind: 'proprietary', proprietary: true, chaining: false, secureMessaging: 'none', channel: 0 }],
    [0x81, { secureMessaging: 'none', channel: 1 }],
    [0x84, { kind: 'proprietary', secureMessaging: 'proprietary', channel: 0 }],
    [0x87, { secureMessaging: 'proprietary', channel: 3 }],
    [0x90, { chaining: true, secureMessaging: 'none', channel: 0 }],
    [0x94, { chaining: true, secureMessaging: 'proprietary', channel: 0 }],
    [0xc0, { kind: 'proprietary', secureMessaging: 'none', channel: 4 }],
    [0xcf, { secureMessaging: 'none', channel: 19 }],
    [0xe0, { kind: 'proprietary', secureMessaging: 'proprietary', channel: 4, chaining: false }],
    [0xef, { secureMessaging: 'proprietary', channel: 19 }],
    [0xf3, { chaining: true, secureMessaging: 'proprietary', channel: 7 }],
    // Java Card reads 8X..BX as the first form, b6 unused: A0 (GSM's class) is channel 0, A1 channel 1.
    [0xa0, { kind: 'proprietary', secureMessaging: 'none', channel: 0 }],
    [0xa1, { channel: 1 }],
    [0xb5, { chaining: true, secureMessaging: 'proprietary', channel: 1 }],
  ] as const)('CLA %i', (cla, expected) => {
    expect(decodeCla(cla)).toMatchObject({ cla, proprietary: true, ...expected });
  });

  it('every class except 20..3F and FF encodes a channel 0..19, and b8 says proprietary', () => {
    for (const cla of ALL) {
      const info: ClaInfo = decodeCla(cla);
      expect(info.proprietary).toBe(cla >= 0x80);
      if ((cla >= 0x20 && cla <= 0x3f) || cla === 0xff) expect(info.channel).toBe(-1);
      else {
        expect(info.channel).toBeGreaterThanOrEqual(0);
        expect(info.channel).toBeLessThanOrEqual(19);
        expect(info.chaining).toBe((cla & 0x10) !== 0);
      }
    }
  });
});

describe('claChannel', () => {
  it('reads 0..3 from b2b1 and 4..19 from b4..b1, 0 when none is coded', () => {
    expect(claChannel(0x02)).toBe(2);
    expect(claChannel(0x4a)).toBe(14);
    expect(claChannel(0xe0)).toBe(4);
    expect(claChannel(0x23)).toBe(0);
    expect(claChannel(0xff)).toBe(0);
  });
});

describe('claForChannel', () => {
  it('GlobalPlatform: 80 → C0.., 84 → E0.., and back', () => {
    expect(claForChannel(0x80, 1)).toBe(0x81);
    expect(claForChannel(0x80, 4)).toBe(0xc0);
    expect(claForChannel(0x80, 19)).toBe(0xcf);
    expect(claForChannel(0x84, 4)).toBe(0xe0);
    expect(claForChannel(0x84, 19)).toBe(0xef);
    expect(claForChannel(0xe0, 0)).toBe(0x84);
    expect(claForChannel(0xe5, 2)).toBe(0x86);
    expect(claForChannel(0xc7, 3)).toBe(0x83);
  });

  it('interindustry: 00 → 40.., 08 (ISO SM, header not processed) ↔ 60.., chaining kept', () => {
    expect(claForChannel(0x00, 3)).toBe(0x03);
    expect(claForChannel(0x00, 4)).toBe(0x40);
    expect(claForChannel(0x08, 5)).toBe(0x61);
    expect(claForChannel(0x60, 1)).toBe(0x09);
    expect(claForChannel(0x10, 7)).toBe(0x53);
    expect(claForChannel(0x53, 0)).toBe(0x10);
    expect(claForChannel(0x1c, 2)).toBe(0x1e);
  });

  it('refuses SM indications the further form cannot carry', () => {
    expect(() => claForChannel(0x04, 4)).toThrow(BadInputError); // proprietary SM, interindustry class
    expect(() => claForChannel(0x0c, 4)).toThrow(BadInputError); // header authenticated
    expect(() => claForChannel(0x88, 4)).toThrow(BadInputError); // ISO SM in a GlobalPlatform class
    expect(() => claForChannel(0x8c, 10)).toThrow(BadInputError);
  });

  it('refuses classes without channel bits, bad channels, and an FF result', () => {
    expect(() => claForChannel(0x20, 1)).toThrow(BadInputError);
    expect(() => claForChannel(0xff, 1)).toThrow(BadInputError);
    expect(() => claForChannel(0x00, 20)).toThrow(BadInputError);
    expect(() => claForChannel(0x00, -1)).toThrow(BadInputError);
    expect(() => claForChannel(0x00, 1.5)).toThrow(BadInputError);
    expect(() => claForChannel(0xf0, 19)).toThrow(/FF/); // chaining + GP SM on channel 19
    expect(() => claForChannel(0x94, 19)).toThrow(/FF/);
  });

  it('round trips: every channel-coding class, to every channel and back to its own', () => {
    let checked = 0;
    for (const cla of ALL) {
      const info = decodeCla(cla);
      if (info.channel < 0) continue;
      for (let ch = 0; ch <= 19; ch++) {
        let moved: number;
        try {
          moved = claForChannel(cla, ch);
        } catch (e) {
          // Only the documented refusals: an SM the other form cannot carry, or the FF result.
          expect(e).toBeInstanceOf(BadInputError);
          const carried = info.proprietary ? 'proprietary' : 'iso-header-not-processed';
          const crossesForm = ch < 4 !== info.channel < 4 && info.secureMessaging !== 'none' && info.secureMessaging !== carried;
          const ffResult = ch === 19 && info.proprietary && info.chaining && info.secureMessaging !== 'none';
          expect(crossesForm || ffResult, `CLA ${cla.toString(16)} → ${ch}`).toBe(true);
          continue;
        }
        const m = decodeCla(moved);
        expect(m.channel).toBe(ch);
        expect(m.proprietary).toBe(info.proprietary);
        expect(m.chaining).toBe(info.chaining);
        expect(m.secureMessaging).toBe(info.secureMessaging);
        expect(claForChannel(moved, info.channel), `CLA ${cla.toString(16)} → ${ch} → back`).toBe(
          // Within one form nothing but the channel changes; across forms, the b6 that the proprietary
          // first form does not use (A0..BF) is not carried.
          ch < 4 === info.channel < 4 || !(cla >= 0xa0 && cla <= 0xbf) ? cla : cla & ~0x20,
        );
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(3000);
  });
});

describe('claWithChaining', () => {
  it('sets and clears b5 in both forms and in GlobalPlatform classes', () => {
    expect(claWithChaining(0x00, true)).toBe(0x10);
    expect(claWithChaining(0x10, false)).toBe(0x00);
    expect(claWithChaining(0x4c, true)).toBe(0x5c);
    expect(claWithChaining(0x84, true)).toBe(0x94);
    expect(claWithChaining(0xe0, true)).toBe(0xf0);
    expect(claWithChaining(0x80, false)).toBe(0x80);
    for (const cla of ALL) {
      const info = decodeCla(cla);
      if (info.channel < 0 || cla === 0xef) continue;
      const chained = claWithChaining(cla, true);
      expect(decodeCla(chained)).toEqual({ ...info, cla: chained, chaining: true });
      expect(claWithChaining(chained, false)).toBe(cla & ~0x10);
    }
  });

  it('refuses RFU classes, FF, and a result of FF', () => {
    expect(() => claWithChaining(0x20, true)).toThrow(BadInputError);
    expect(() => claWithChaining(0xff, false)).toThrow(BadInputError);
    expect(() => claWithChaining(0xef, true)).toThrow(BadInputError);
    expect(() => claWithChaining(0x100, true)).toThrow(BadInputError);
  });
});
