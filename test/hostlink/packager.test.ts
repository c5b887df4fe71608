/**
 * The ISO 8583 codec: the field table's invariants, known-answer packs computed by hand, each wire
 * encoding, strict round trips (property tests), and the shared bad-input table.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ENCODING, FIELDS, FIELD_TABLE, PREFIX_MAX, fieldValueProblem } from '../../src/hostlink/iso8583/fields.js';
import { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { buildBitmap, encodeBcd, pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { Iso8583Error } from '../../src/hostlink/iso8583/errors.js';
import { DEFAULT_MAX_FRAME_LENGTH } from '../../src/hostlink/framing.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { BAD_MESSAGES, NOT_BYTES, VALID_0230_BYTES } from './bad-inputs.js';
import { messageArb, valueArb } from './helpers.js';

function refusal(f: () => unknown): Iso8583Error {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Iso8583Error);
    return e as Iso8583Error;
  }
  throw new Error('expected an Iso8583Error, nothing was thrown');
}

describe('field table', () => {
  it('has one line per field, ascending, within 2..128, never the bitmap bits 1 and 65', () => {
    const numbers = FIELD_TABLE.map((d) => d.n);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
    expect(numbers.every((n) => n >= 2 && n <= 128)).toBe(true);
    expect(numbers).not.toContain(65);
    expect(FIELDS.size).toBe(FIELD_TABLE.length);
  });

  it('keeps every variable field within what its prefix can say', () => {
    for (const d of FIELD_TABLE) {
      if (d.kind !== 'fixed') expect(d.length, `field ${d.n}`).toBeLessThanOrEqual(PREFIX_MAX[d.kind]);
      expect(d.length, `field ${d.n}`).toBeGreaterThan(0);
      if (d.tlv) expect(d.type, `field ${d.n}`).toBe('b');
    }
  });

  it('defines the ISO 8583:1987 fields hilt uses with their formats', () => {
    const f = (n: number) => {
      const d = FIELDS.get(n);
      return d && `${d.type} ${d.kind} ${d.length}`;
    };
    expect(f(3)).toBe('n fixed 6');
    expect(f(4)).toBe('n fixed 12');
    expect(f(7)).toBe('n fixed 10');
    expect(f(39)).toBe('an fixed 2');
    expect(f(41)).toBe('ans fixed 8');
    expect(f(42)).toBe('ans fixed 15');
    expect(f(49)).toBe('n fixed 3');
    expect(f(55)).toBe('b LLLVAR 255');
    expect(f(64)).toBe('b fixed 8');
    expect(f(70)).toBe('n fixed 3');
    expect(f(90)).toBe('n fixed 42');
    expect(f(128)).toBe('b fixed 8');
    for (const n of [48, 55, 62, 63]) expect(FIELDS.get(n)?.tlv, `field ${n}`).toBe(true);
    expect(ENCODING).toEqual({ n: 'bcd', an: 'ascii', ans: 'ascii', b: 'binary', z: 'track2-nibbles' });
  });

  it('says what is wrong with a value', () => {
    const d = (n: number) => FIELDS.get(n)!;
    expect(fieldValueProblem(d(4), '000000000100')).toBeUndefined();
    expect(fieldValueProblem(d(4), '100')?.[0]).toBe('bad-length');
    expect(fieldValueProblem(d(4), '00000000010x')?.[0]).toBe('bad-charset');
    expect(fieldValueProblem(d(4), 100)?.[0]).toBe('bad-type');
    expect(fieldValueProblem(d(2), 'abc')?.[0]).toBe('bad-type');
    expect(fieldValueProblem(d(2), new Uint8Array(33))?.[0]).toBe('bad-length');
    expect(fieldValueProblem(d(39), '0-')?.[0]).toBe('bad-charset');
    expect(fieldValueProblem(d(41), 'T\u00e9RM0001')?.[0]).toBe('bad-charset');
    expect(fieldValueProblem(d(35), '1234=5678')).toBeUndefined();
  });
});

describe('known-answer packs', () => {
  it('packs a 0230 with only a primary bitmap, bit by bit', () => {
    const m = new IsoMessage('0230', {
      7: '0314093015',
      11: '0000000001',
      39: '00',
      41: 'TERM0001',
      42: 'READER01       ',
      53: '0000000000000001',
      64: fromHex('0102030405060708'),
    });
    // Primary bitmap, fields 7 11 39 41 42 53 64 (bit n is bit (n-1) from the MSB of byte 0):
    //   byte 0 (1..8):   7           → 0000 0010 = 02
    //   byte 1 (9..16):  11          → 0010 0000 = 20
    //   byte 4 (33..40): 39          → 0000 0010 = 02
    //   byte 5 (41..48): 41, 42      → 1100 0000 = C0
    //   byte 6 (49..56): 53          → 0000 1000 = 08
    //   byte 7 (57..64): 64          → 0000 0001 = 01
    const expected =
      '0230' + // MTI, BCD
      '02200000' + '02c00801' + // primary bitmap
      '0314093015' + // 7, n 10 BCD
      '0000000001' + // 11, n 10 BCD
      '3030' + // 39, an 2 ASCII "00"
      '5445524d30303031' + // 41, ans 8 "TERM0001"
      '524541444552303120202020202020' + // 42, ans 15 "READER01" + 7 spaces
      '0000000000000001' + // 53, n 16 BCD
      '0102030405060708'; // 64, b 8
    expect(toHex(pack(m))).toBe(expected);
    // The bad-input table's valid base is this message without field 64.
    expect(toHex(VALID_0230_BYTES)).toBe(expected.replace('02c00801', '02c00800').slice(0, -16));
    const { message, consumed } = unpack(fromHex(expected));
    expect(consumed).toBe(expected.length / 2);
    expect(message.equals(m)).toBe(true);
  });

  it('packs an 0800 with a secondary bitmap, bit by bit', () => {
    const m = new IsoMessage('0800')
      .with(7, '0314093015')
      .withStan(1)
      .withTerminalId('TERM0001')
      .withReaderId('READER01')
      .withKeyVersion(1)
      .with(70, '001')
      .with(128, fromHex('a1a2a3a4a5a6a7a8'));
    // Primary: bit 1 (a secondary bitmap follows) and 7 → byte 0 = 1000 0010 = 82; 11 → byte 1 = 20;
    //          41, 42 → byte 5 = C0; 53 → byte 6 = 08; 64 absent → byte 7 = 00.
    // Secondary: 70 is bit 6 of it → byte 0 = 0000 0100 = 04; 128 is its last bit → byte 7 = 01.
    const expected =
      '0800' +
      '8220000000c00800' +
      '0400000000000001' +
      '0314093015' +
      '0000000001' +
      '5445524d30303031' +
      '524541444552303120202020202020' +
      '0000000000000001' +
      '0001' + // 70, n 3: odd, one 0 nibble in front
      'a1a2a3a4a5a6a7a8';
    expect(toHex(pack(m))).toBe(expected);
    expect(unpack(fromHex(expected)).message.equals(m)).toBe(true);
  });

  it('encodes each type and prefix as the table documents', () => {
    const one = (n: number, v: string | Uint8Array) => toHex(pack(new IsoMessage('0200', [[n, v]]))).slice(4 + 16);
    expect(one(2, fromHex('48494c54'))).toBe('04' + '48494c54'); // LLVAR b: prefix counts bytes
    expect(one(32, '12345')).toBe('05' + '012345'); // LLVAR n: prefix counts digits, value right-justified
    expect(one(32, '')).toBe('00');
    expect(one(35, '1234=56')).toBe('07' + '1234d56f'); // z: '=' is D, odd count ends with F
    expect(one(35, '12')).toBe('02' + '12');
    expect(one(48, fromHex('df020101'))).toBe('0004' + 'df020101'); // LLLVAR: 2-byte BCD prefix
    expect(one(60, 'hi there')).toBe('0008' + '6869207468657265');
    expect(one(3, '210000')).toBe('210000');
    expect(one(49, '392')).toBe('0392');
    expect(toHex(encodeBcd('12345'))).toBe('012345');
  });

  it('builds bitmaps from the fields present', () => {
    expect(toHex(buildBitmap([2, 64]))).toBe('4000000000000001');
    expect(toHex(buildBitmap([2, 128]))).toBe('c000000000000000' + '0000000000000001');
    expect(toHex(buildBitmap([]))).toBe('0000000000000000');
  });

  it('packs the largest message of the profile within the default frame', () => {
    const max = new IsoMessage(
      '0200',
      FIELD_TABLE.filter((d) => d.n !== 64).map((d) => {
        if (d.type === 'b') {
          if (!d.tlv) return [d.n, new Uint8Array(d.length)] as const;
          // One primitive object filling the field: tag DF51, 82 xx xx length form.
          const value = new Uint8Array(d.length - 5);
          return [d.n, concatBytes(fromHex('df5182'), Uint8Array.of(value.length >> 8, value.length & 0xff), value)] as const;
        }
        return [d.n, (d.type === 'z' ? '1' : '7').repeat(d.length)] as const;
      }),
    );
    const bytes = pack(max);
    expect(bytes.length).toBeLessThan(6 * 1024); // as framing.ts says
    expect(bytes.length).toBeLessThan(DEFAULT_MAX_FRAME_LENGTH);
    expect(unpack(bytes).message.equals(max)).toBe(true);
  });
});

describe('round trips', () => {
  it('pack → unpack gives the same message, and unpack → pack the same bytes (property)', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const bytes = pack(m);
        const { message, consumed } = unpack(bytes);
        expect(consumed).toBe(bytes.length);
        expect(message.equals(m)).toBe(true);
        expect(toHex(pack(message))).toBe(toHex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('every field alone, at random valid values (property)', () => {
    for (const def of FIELD_TABLE) {
      fc.assert(
        fc.property(valueArb(def), (v) => {
          const m = new IsoMessage('0800', [[def.n, v]]);
          expect(unpack(pack(m)).message.equals(m)).toBe(true);
        }),
        { numRuns: 40 },
      );
    }
  });

  it('with allowTrailing, reports where the message ended', () => {
    fc.assert(
      fc.property(messageArb, fc.uint8Array({ minLength: 1, maxLength: 8 }), (m, tail) => {
        const bytes = pack(m);
        const { message, consumed } = unpack(concatBytes(bytes, tail), { allowTrailing: true });
        expect(consumed).toBe(bytes.length);
        expect(message.equals(m)).toBe(true);
        expect(refusal(() => unpack(concatBytes(bytes, tail))).reason).toBe('trailing-bytes');
      }),
      { numRuns: 100 },
    );
  });
});

describe('bad input', () => {
  it('accepts the valid base of the bad-input table', () => {
    expect(unpack(VALID_0230_BYTES).message.mti).toBe('0230');
  });

  for (const bad of BAD_MESSAGES) {
    it(`refuses ${bad.name}: ${bad.why}`, () => {
      const e = refusal(() => unpack(bad.bytes));
      expect(e.code).toBe('PROTOCOL');
      expect(e.reason).toBe(bad.reason);
      if (bad.field !== undefined) expect(e.field).toBe(bad.field);
      // The same refusal with trailing bytes allowed, except where the trailing bytes were the fault.
      if (bad.reason !== 'trailing-bytes') expect(refusal(() => unpack(bad.bytes, { allowTrailing: true })).reason).toBe(bad.reason);
    });
  }

  for (const nb of NOT_BYTES) {
    it(`refuses ${nb.name} as input`, () => {
      const e = refusal(() => unpack(nb.value as Uint8Array));
      expect(e.reason).toBe('not-bytes');
    });
  }

  it('names the byte offset of the problem', () => {
    // Field 7 starts after MTI (2) and bitmap (8): its nibble A is in its 4th byte, offset 13.
    const e = refusal(() => unpack(BAD_MESSAGES.find((b) => b.name === 'BCD digit A')!.bytes));
    expect(e.offset).toBe(13);
    expect(e.message).toMatch(/field 7, at byte 13/);
  });
});
