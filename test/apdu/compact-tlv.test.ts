import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseCompactTlv, parseCompactTlvPrefix, encodeCompactTlv, compactTlv, compactTlvTagName } from '../../src/apdu/compact-tlv.js';
import { DecodeError, BadInputError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

describe('compact-TLV', () => {
  it('parses historical bytes objects (JCOP-style: service data, capabilities, issuer data)', () => {
    // The compact-TLV part of "80 31 E0 73 FE 21 1B 66 ..." historical bytes, category byte removed.
    const objs = parseCompactTlv(fromHex('31 E0 73 FE 21 1B 83 0F 90 00'), 5);
    expect(objs.map((o) => [o.tag, toHex(o.value), o.offset])).toEqual([
      [3, 'e0', 5],
      [7, 'fe211b', 7],
      [8, '0f9000', 11],
    ]);
    expect(objs.map((o) => compactTlvTagName(o.tag))).toEqual(['card service data', 'card capabilities', 'status indicator']);
    expect(compactTlvTagName(0xb)).toBe('RFU');
    expect(compactTlvTagName(0xf)).toBe('application identifier');
  });

  it('accepts zero-length objects and RFU tags, and empty input', () => {
    expect(parseCompactTlv(fromHex('00 90 B1 AA')).map((o) => [o.tag, o.value.length])).toEqual([
      [0, 0],
      [9, 0],
      [0xb, 1],
    ]);
    expect(parseCompactTlv(new Uint8Array(0))).toEqual([]);
  });

  it('refuses a value running past the end, at the offending object', () => {
    for (const [hex, offset] of [
      ['31', 0],
      ['31 E0 73 FE 21', 2],
      ['4F 0C A0 00', 0],
      ['00 00 02', 2],
    ] as const) {
      let err: unknown;
      try {
        parseCompactTlv(fromHex(hex), 10);
      } catch (e) {
        err = e;
      }
      expect(err, hex).toBeInstanceOf(DecodeError);
      expect((err as DecodeError).code).toBe('TLV_MALFORMED');
      expect((err as DecodeError).offset).toBe(10 + offset);
    }
  });

  it('parseCompactTlvPrefix keeps the objects before the damage', () => {
    const { objects, error } = parseCompactTlvPrefix(fromHex('31 E0 45 01 02'));
    expect(objects.map((o) => o.tag)).toEqual([3]);
    expect(error?.offset).toBe(2);
    expect(parseCompactTlvPrefix(fromHex('31 E0')).error).toBeUndefined();
  });

  it('builds and refuses what cannot be encoded', () => {
    expect(encodeCompactTlv([compactTlv(3, fromHex('E0')), compactTlv(0xf, fromHex('A000000003'))])).toEqual(fromHex('31 E0 F5 A0 00 00 00 03'));
    expect(() => compactTlv(16, new Uint8Array(0))).toThrow(BadInputError);
    expect(() => compactTlv(1, new Uint8Array(16))).toThrow(BadInputError);
    expect(() => encodeCompactTlv([{ tag: 1, value: new Uint8Array(16), offset: 0 }])).toThrow(BadInputError);
  });

  it('round trips: parse(encode(objects)) and encode(parse(bytes))', () => {
    const obj = fc.tuple(fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 15 }));
    fc.assert(
      fc.property(fc.array(obj, { maxLength: 8 }), (list) => {
        const bytes = encodeCompactTlv(list.map(([t, v]) => compactTlv(t, v)));
        const back = parseCompactTlv(bytes);
        expect(back.map((o) => [o.tag, toHex(o.value)])).toEqual(list.map(([t, v]) => [t, toHex(v)]));
        expect(encodeCompactTlv(back)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });
});
