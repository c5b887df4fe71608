import { describe, it, expect } from 'vitest';
import {
  describeSw,
  isKnownSw,
  isSuccess,
  expectSw,
  swMatches,
  StatusWordError,
  type SwCategory,
} from '../../src/apdu/sw.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { BadInputError, HiltError } from '../../src/util/errors.js';

/** The category ISO 7816-4 gives each SW1 (the rule the table's defaults must follow). */
function isoCategory(sw1: number): SwCategory {
  if (sw1 === 0x90 || sw1 === 0x61) return 'normal';
  if (sw1 === 0x62 || sw1 === 0x63) return 'warning';
  if (sw1 >= 0x64 && sw1 <= 0x66) return 'execution-error';
  if (sw1 >= 0x67 && sw1 <= 0x6f) return 'checking-error';
  return 'unknown';
}

describe('describeSw: parameterised families', () => {
  it('61XX: XX more bytes available, use GET RESPONSE', () => {
    const i = describeSw(0x61ff);
    expect(i).toMatchObject({ sw: 0x61ff, hex: '61FF', category: 'normal', param: 255, source: 'ISO 7816-4' });
    expect(i.meaning).toMatch(/^255 more bytes available .*GET RESPONSE/);
    expect(describeSw(0x6101).meaning).toMatch(/^1 more byte available/);
    expect(describeSw(0x6110).param).toBe(16);
    expect(describeSw(0x6100)).toMatchObject({ param: 256, category: 'normal' });
    expect(describeSw(0x6100).meaning).toMatch(/256 or more/);
  });

  it('6CXX: wrong Le, exact length XX', () => {
    const i = describeSw(0x6c1a);
    expect(i).toMatchObject({ category: 'checking-error', param: 26 });
    expect(i.meaning).toContain('exact length is 26 (0x1A)');
    expect(describeSw(0x6c00)).toMatchObject({ param: 256 });
    expect(describeSw(0x6c00).meaning).toMatch(/256/);
    expect(describeSw(0x6cff).param).toBe(255);
  });

  it('63CX: verification failed, X retries left', () => {
    const i = describeSw(0x63c2);
    expect(i).toMatchObject({ category: 'warning', param: 2 });
    expect(i.meaning).toMatch(/verification failed, 2 retries left/);
    expect(describeSw(0x63c1).meaning).toMatch(/1 retry left/);
    expect(describeSw(0x63c0).meaning).toMatch(/0 retries left/);
    expect(describeSw(0x63cf).param).toBe(15);
  });

  it('62XX / 64XX triggering ranges carry SW2', () => {
    expect(describeSw(0x6202)).toMatchObject({ category: 'warning', param: 2, source: 'ISO 7816-4' });
    expect(describeSw(0x6280).param).toBe(0x80);
    expect(describeSw(0x6402)).toMatchObject({ category: 'execution-error', param: 2 });
    expect(describeSw(0x6281).param).toBeUndefined(); // exact row wins over nothing: 6281 is outside 6202-6280
  });
});

describe('describeSw: interindustry and GlobalPlatform words', () => {
  it.each([
    [0x9000, 'normal', /success/],
    [0x6200, 'warning', /no information/],
    [0x6281, 'warning', /corrupted/],
    [0x6282, 'warning', /end of file/],
    [0x6283, 'warning', /deactivated.*card locked/],
    [0x6300, 'warning', /no information/],
    [0x6310, 'warning', /more data/],
    [0x6381, 'warning', /filled up/],
    [0x6400, 'execution-error', /no information/],
    [0x6438, 'execution-error', /imported package/],
    [0x6500, 'execution-error', /no information/],
    [0x6581, 'execution-error', /memory failure/],
    [0x6600, 'execution-error', /security/],
    [0x6700, 'checking-error', /wrong length/],
    [0x6800, 'checking-error', /CLA not supported/],
    [0x6881, 'checking-error', /logical channel not supported/],
    [0x6882, 'checking-error', /secure messaging not supported/],
    [0x6883, 'checking-error', /last command of the chain/],
    [0x6884, 'checking-error', /chaining not supported/],
    [0x6900, 'checking-error', /command not allowed/],
    [0x6981, 'checking-error', /file structure/],
    [0x6982, 'checking-error', /security status not satisfied/],
    [0x6983, 'checking-error', /authentication method blocked/],
    [0x6984, 'checking-error', /reference data not usable/],
    [0x6985, 'checking-error', /conditions of use not satisfied/],
    [0x6986, 'checking-error', /no current EF/],
    [0x6987, 'checking-error', /secure messaging data objects missing/],
    [0x6988, 'checking-error', /incorrect secure messaging/],
    [0x6999, 'checking-error', /applet selection failed/],
    [0x6a00, 'checking-error', /wrong parameters/],
    [0x6a80, 'checking-error', /incorrect parameters in the command data/],
    [0x6a81, 'checking-error', /function not supported/],
    [0x6a82, 'checking-error', /file or application not found/],
    [0x6a83, 'checking-error', /record not found/],
    [0x6a84, 'checking-error', /not enough memory/],
    [0x6a85, 'checking-error', /TLV/],
    [0x6a86, 'checking-error', /incorrect parameters P1-P2/],
    [0x6a87, 'checking-error', /Nc inconsistent with parameters/],
    [0x6a88, 'checking-error', /referenced data not found/],
    [0x6a89, 'checking-error', /file already exists/],
    [0x6a8a, 'checking-error', /DF name already exists/],
    [0x6b00, 'checking-error', /wrong parameters/],
    [0x6d00, 'checking-error', /instruction code not supported/],
    [0x6e00, 'checking-error', /class not supported/],
    [0x6f00, 'checking-error', /no precise diagnosis/],
    [0x9484, 'checking-error', /algorithm not supported/],
    [0x9485, 'checking-error', /invalid key check value/],
  ] as const)('%i', (sw, category, meaning) => {
    const i = describeSw(sw);
    expect(i.category).toBe(category);
    expect(i.meaning).toMatch(meaning);
    expect(i.source).toBeDefined();
    expect(isKnownSw(sw)).toBe(true);
  });

  it('GlobalPlatform rows say so', () => {
    expect(describeSw(0x6310).source).toBe('GlobalPlatform');
    expect(describeSw(0x9485).source).toBe('GlobalPlatform');
    expect(describeSw(0x6a88).source).toBe('ISO 7816-4');
  });
});

describe('describeSw: every word', () => {
  it('unknown words get the category of their SW1 and no source', () => {
    expect(describeSw(0x62a0).category).toBe('warning');
    expect(describeSw(0x62a0).source).toBeUndefined();
    expect(describeSw(0x62a0).meaning).toMatch(/SW2 A0 not defined/);
    expect(describeSw(0x64a0)).toMatchObject({ category: 'execution-error' });
    expect(describeSw(0x6a12)).toMatchObject({ category: 'checking-error' });
    expect(describeSw(0x6e12)).toMatchObject({ category: 'checking-error' });
    expect(describeSw(0x9001).category).toBe('normal');
    expect(isKnownSw(0x9001)).toBe(false);
    expect(describeSw(0x9123)).toMatchObject({ category: 'unknown' });
    expect(describeSw(0x9123).meaning).toMatch(/proprietary/);
    expect(describeSw(0x6000)).toMatchObject({ category: 'unknown' });
    expect(describeSw(0x6000).meaning).toMatch(/not a valid status word/);
    expect(describeSw(0x0000).meaning).toMatch(/not a valid status word/);
    expect(isKnownSw(0x62a0)).toBe(false);
  });

  it('all 65536 words: hex is right, category follows SW1 except the GlobalPlatform 94XX errors', () => {
    let known = 0;
    const wrong: string[] = [];
    for (let sw = 0; sw <= 0xffff; sw++) {
      const i = describeSw(sw);
      const hex = sw.toString(16).toUpperCase().padStart(4, '0');
      if (i.sw !== sw || i.hex !== hex || i.meaning.length === 0) wrong.push(`${hex}: ${JSON.stringify(i)}`);
      if (sw !== 0x9484 && sw !== 0x9485 && i.category !== isoCategory(sw >> 8)) wrong.push(`${hex}: category ${i.category}`);
      if (/\{|\}/.test(i.meaning)) wrong.push(`${hex}: unrendered template "${i.meaning}"`);
      if (i.source) known++;
    }
    expect(wrong).toEqual([]);
    // 9000, 256 of 61XX, 256 of 6CXX, 16 of 63CX, 127 + 127 triggering words, and the single rows.
    expect(known).toBeGreaterThan(800);
    expect(known).toBeLessThan(900);
  });

  it('refuses what is not a 16-bit word', () => {
    for (const v of [-1, 0x10000, 1.5]) expect(() => describeSw(v)).toThrow(BadInputError);
  });
});

describe('isSuccess / expectSw / StatusWordError', () => {
  it('isSuccess is 9000 and 61XX, for numbers and responses', () => {
    expect(isSuccess(0x9000)).toBe(true);
    expect(isSuccess(0x6110)).toBe(true);
    expect(isSuccess(ResponseApdu.status(0x9000))).toBe(true);
    expect(isSuccess(0x9001)).toBe(false);
    expect(isSuccess(0x6283)).toBe(false);
    expect(isSuccess(ResponseApdu.status(0x6a82))).toBe(false);
  });

  it('expectSw returns the response when allowed (9000 by default)', () => {
    const r = ResponseApdu.status(0x9000);
    expect(expectSw(r)).toBe(r);
    const warn = ResponseApdu.status(0x6283);
    expect(expectSw(warn, 0x9000, 0x6283)).toBe(warn);
    expect(expectSw(ResponseApdu.status(0x63c1), '63CX').sw).toBe(0x63c1);
    expect(expectSw(ResponseApdu.status(0x61ab), 0x9000, '61xx').sw).toBe(0x61ab);
  });

  it('expectSw throws a StatusWordError with code SW, the word, its meaning and what was allowed', () => {
    let err: unknown;
    try {
      expectSw(ResponseApdu.status(0x6a82), 0x9000, '61XX');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StatusWordError);
    expect(err).toBeInstanceOf(HiltError);
    const e = err as StatusWordError;
    expect(e.code).toBe('SW');
    expect(e.sw).toBe(0x6a82);
    expect(e.sw1).toBe(0x6a);
    expect(e.sw2).toBe(0x82);
    expect(e.info.meaning).toBe('file or application not found');
    expect(e.expected).toEqual(['9000', '61XX']);
    expect(e.message).toBe('status word 6A82: file or application not found (checking-error); expected 9000 or 61XX');
    expect(e.name).toBe('StatusWordError');
    expect(() => expectSw(ResponseApdu.status(0x6283))).toThrow(StatusWordError);
  });

  it('StatusWordError can name what was sent', () => {
    const e = new StatusWordError(0x63c2, { context: 'VERIFY' });
    expect(e.message).toBe('VERIFY: status word 63C2: verification failed, 2 retries left (counter 2) (warning)');
  });

  it('swMatches: numbers exactly, strings with X nibbles, any case', () => {
    expect(swMatches(0x6a82, 0x6a82)).toBe(true);
    expect(swMatches(0x6a82, 0x6a83)).toBe(false);
    expect(swMatches(0x63c5, '63CX')).toBe(true);
    expect(swMatches(0x63d5, '63CX')).toBe(false);
    expect(swMatches(0x6aff, '6aXX')).toBe(true);
    expect(swMatches(0x1234, 'XXXX')).toBe(true);
    expect(swMatches(0x9000, 'x000')).toBe(true);
    expect(swMatches(0x8000, '9XXX')).toBe(false);
  });

  it('malformed patterns are refused, not silently unmatched', () => {
    for (const p of ['900', '90000', '9G00', '', 0x10000, -1]) {
      expect(() => expectSw(ResponseApdu.status(0x9000), p)).toThrow(BadInputError);
    }
  });
});
