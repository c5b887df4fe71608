import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Tlv, parseTlv, parseSingleTlv, encodeTlv, find, findAll, walk, tagBytes, tagHex, isValidTag, MAX_TLV_DEPTH } from '../../src/apdu/tlv.js';
import { tlvTagName } from '../../src/apdu/tlv-tags.js';
import { DecodeError, BadInputError } from '../../src/util/errors.js';
import { fromHex, toHex, concatBytes } from '../../src/util/bytes.js';

const h = fromHex;

function refusal(input: Uint8Array, options?: { padding?: boolean }): DecodeError {
  try {
    parseTlv(input, options);
  } catch (e) {
    expect(e).toBeInstanceOf(DecodeError);
    expect((e as DecodeError).code).toBe('TLV_MALFORMED');
    return e as DecodeError;
  }
  throw new Error(`parseTlv accepted ${toHex(input)}`);
}

describe('BER-TLV known cases', () => {
  // SELECT of the card manager on an NXP JCOP card: ISD AID and 9F65 (max command data length).
  const gpFci = h('6F 10 84 08 A0 00 00 00 03 00 00 00 A5 04 9F 65 01 FF');
  // SELECT 2PAY.SYS.DDF01 on a Visa contactless card (PPSE).
  const ppse = h('6F 23 84 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 A5 11 BF 0C 0E 61 0C 4F 07 A0 00 00 00 03 10 10 87 01 01');
  // An EMV READ RECORD answer: track 2 equivalent, cardholder name, service code.
  const record = h(
    '70 27 57 11 47 61 73 90 01 01 00 10 D2 21 22 01 17 58 92 88 89 5F 20 0C 56 49 53 41 20 41 43 51 54 45 53 54 5F 30 02 02 01',
  );

  it('parses a GlobalPlatform card manager FCI', () => {
    const [fci, ...rest] = parseTlv(gpFci);
    expect(rest).toEqual([]);
    expect(fci.tag).toBe(0x6f);
    expect(fci.constructed).toBe(true);
    expect(fci.length).toBe(16);
    expect(fci.children?.map((c) => c.tag)).toEqual([0x84, 0xa5]);
    expect(toHex(find(fci, [0x6f, 0x84])!.value)).toBe('a000000003000000');
    const maxLen = find(fci, [0x6f, 0xa5, 0x9f65])!;
    expect(maxLen.constructed).toBe(false);
    expect(maxLen.value).toEqual(Uint8Array.of(0xff));
    expect(encodeTlv(fci)).toEqual(gpFci);
  });

  it('parses a PPSE FCI down to the application template', () => {
    const tlvs = parseTlv(ppse);
    expect(new TextDecoder().decode(find(tlvs, [0x6f, 0x84])!.value)).toBe('2PAY.SYS.DDF01');
    const bf0c = find(tlvs, [0x6f, 0xa5, 0xbf0c])!;
    expect(bf0c.constructed).toBe(true);
    expect(tagHex(bf0c.tag)).toBe('BF0C');
    expect(toHex(find(tlvs, [0x6f, 0xa5, 0xbf0c, 0x61, 0x4f])!.value)).toBe('a0000000031010');
    expect(find(tlvs, [0x6f, 0xa5, 0xbf0c, 0x61, 0x87])!.value).toEqual(Uint8Array.of(1));
    expect(find(tlvs, [0x6f, 0xa5, 0x61])).toBeUndefined();
    expect(encodeTlv(tlvs)).toEqual(ppse);
    expect([...walk(tlvs)].map((v) => `${v.depth}:${tagHex(v.node.tag)}`)).toEqual(['0:6F', '1:84', '1:A5', '2:BF0C', '3:61', '4:4F', '4:87']);
    expect([...walk(tlvs)].at(-1)!.path).toEqual([0x6f, 0xa5, 0xbf0c, 0x61, 0x87]);
  });

  it('parses an EMV record', () => {
    const rec = parseSingleTlv(record);
    expect(rec.tag).toBe(0x70);
    expect(rec.children?.map((c) => tagHex(c.tag))).toEqual(['57', '5F20', '5F30']);
    expect(new TextDecoder().decode(rec.child(0x5f20)!.value)).toBe('VISA ACQTEST');
    expect(toHex(rec.child(0x57)!.value)).toBe('4761739001010010d22122011758928889');
    expect(rec.encode()).toEqual(record);
    expect(tlvTagName(0x5f20)).toBe('Cardholder name');
    expect(tlvTagName(0x84, 0x62)).toBe('DF name');
    expect(tlvTagName(0x80, 0x62)).toBe('Number of data bytes in the file');
    expect(tlvTagName(0x80)).toBe('Response message template format 1');
  });

  it('keeps the long forms 81..84, minimal or not, byte for byte', () => {
    const cert = concatBytes(h('70 81 83 90 81 80'), new Uint8Array(128).fill(0x5a));
    const [t] = parseTlv(cert);
    expect(t.children![0].length).toBe(128);
    expect(t.lengthBytes).toBe(1);
    expect(encodeTlv([t])).toEqual(cert);
    for (const hex of ['5A 81 02 12 34', '5A 82 00 02 12 34', '5A 83 00 00 02 12 34', '5A 84 00 00 00 02 12 34', '6F 84 00 00 00 04 5A 81 01 00']) {
      const x = h(hex);
      expect(toHex(encodeTlv(parseTlv(x)))).toBe(toHex(x));
    }
    // Built in code: minimal form.
    expect(toHex(Tlv.primitive(0x5a, h('1234')).encode())).toBe('5a021234');
    expect(toHex(Tlv.primitive(0x5a, new Uint8Array(200)).encode()).slice(0, 8)).toBe('5a81c800');
    expect(toHex(Tlv.primitive(0x5a, new Uint8Array(300)).encode()).slice(0, 10)).toBe('5a82012c00');
    expect(new Tlv({ tag: 0x5a, value: h('12'), lengthBytes: 2 }).encode()).toEqual(h('5A 82 00 01 12'));
    expect(() => new Tlv({ tag: 0x5a, value: new Uint8Array(200), lengthBytes: 0 })).toThrow(BadInputError);
  });

  it('reads tags of one to four bytes', () => {
    expect(parseTlv(h('9F 38 00'))[0].tag).toBe(0x9f38);
    expect(parseTlv(h('9F 02 00'))[0].tag).toBe(0x9f02); // EMV: second byte below 1F
    expect(parseTlv(h('DF 81 01 00'))[0].tag).toBe(0xdf8101);
    expect(parseTlv(h('DF 81 81 01 01 AA'))[0].tag).toBe(0xdf818101);
    expect(tagBytes(0xdf818101)).toEqual(h('DF818101'));
    expect(isValidTag(0xdf818101)).toBe(true);
    expect(isValidTag(0x9f80)).toBe(false);
    expect(isValidTag(0x1f)).toBe(false);
    expect(isValidTag(0x9f)).toBe(false);
    expect(isValidTag(0x5a5a)).toBe(false);
  });

  it('builds primitive and constructed objects and refuses inconsistent ones', () => {
    const fci = Tlv.constructed(0x6f, [Tlv.primitive(0x84, h('A000000003000000')), Tlv.constructed(0xa5, [Tlv.primitive(0x9f65, h('FF'))])]);
    expect(fci.encode()).toEqual(h('6F 10 84 08 A0 00 00 00 03 00 00 00 A5 04 9F 65 01 FF'));
    expect(Object.isFrozen(fci)).toBe(true);
    expect(() => Tlv.primitive(0x6f, h('00'))).toThrow(BadInputError);
    expect(() => Tlv.constructed(0x84, [])).toThrow(BadInputError);
    expect(() => Tlv.primitive(0x9f80, h('00'))).toThrow(BadInputError);
    expect(() => Tlv.primitive(0x00, h('00'))).toThrow(BadInputError);
    expect(() => new Tlv({ tag: 0x6f, value: h('84 01 00'), children: [] })).toThrow(BadInputError);
    // A constructed object given as bytes is parsed, so children always describe value.
    expect(new Tlv({ tag: 0x6f, value: h('84 01 00') }).children![0].tag).toBe(0x84);
    expect(() => new Tlv({ tag: 0x6f, value: h('84 05 00') })).toThrow(DecodeError);
    // The value is copied: changing the caller's buffer changes nothing.
    const v = h('0102');
    const t = Tlv.primitive(0x5a, v);
    v[0] = 9;
    expect(t.value).toEqual(h('0102'));
  });

  it('findAll searches every branch', () => {
    const tlvs = parseTlv(h('61 03 4F 01 01 61 03 4F 01 02 61 03 50 01 41'));
    expect(findAll(tlvs, [0x61, 0x4f]).map((t) => t.value[0])).toEqual([1, 2]);
    expect(find(tlvs, [0x61, 0x50])!.value).toEqual(h('41'));
    expect(findAll(tlvs, [])).toEqual([]);
    expect(parseTlv(new Uint8Array(0))).toEqual([]);
  });
});

describe('BER-TLV refusals', () => {
  it('indefinite length', () => {
    expect(refusal(h('6F 80 84 00 00 00')).offset).toBe(1);
  });
  it('length forms 85 and above', () => {
    expect(refusal(h('5A 85 00 00 00 00 01 00')).offset).toBe(1);
    refusal(h('5A FF 00'));
  });
  it('a length beyond the input', () => {
    expect(refusal(h('5A 03 01 02')).offset).toBe(0);
    expect(refusal(h('5A 82 01 00 00')).message).toMatch(/announces 256 value bytes, only 1 remain/);
    refusal(h('5A 84 FF FF FF FF'));
  });
  it('a truncated length field', () => {
    expect(refusal(h('5A 82 01')).offset).toBe(1);
    refusal(h('5A'));
  });
  it('a trailing partial object after whole ones', () => {
    expect(refusal(h('5A 01 00 9F')).offset).toBe(4);
    expect(refusal(h('5A 01 00 4F 02 01')).offset).toBe(3);
    expect(refusal(h('5A 01 00 4F')).message).toMatch(/without a length/);
  });
  it('a child running past its parent, even when the input goes on', () => {
    expect(refusal(h('6F 03 84 02 00 00')).offset).toBe(2);
  });
  it('tags longer than four bytes and non-minimal tags', () => {
    expect(refusal(h('DF 81 81 81 01 00')).message).toMatch(/longer than 4/);
    expect(refusal(h('9F 80 01 00')).message).toMatch(/80 is not minimal/);
    expect(refusal(h('9F 81')).message).toMatch(/truncated tag/);
  });
  it('padding in strict mode, and what lenient mode skips', () => {
    expect(refusal(h('00 5A 01 01')).offset).toBe(0);
    expect(refusal(h('5A 01 01 FF')).offset).toBe(3);
    const padded = h('00 00 5A 01 01 FF 70 05 00 5F 20 01 41 00');
    const tlvs = parseTlv(padded, { padding: true });
    expect(tlvs.map((t) => t.tag)).toEqual([0x5a, 0x70]);
    expect(tlvs[1].children!.map((t) => t.tag)).toEqual([0x5f20]);
    // Padding inside a template stays in its value; top-level padding is dropped.
    expect(tlvs[1].encode()).toEqual(h('70 05 00 5F 20 01 41'));
    expect(parseTlv(h('00 FF 00'), { padding: true })).toEqual([]);
  });
  it('parseSingleTlv wants exactly one object', () => {
    expect(() => parseSingleTlv(new Uint8Array(0))).toThrow(DecodeError);
    expect(() => parseSingleTlv(h('5A 00 5A 00'))).toThrow(/got 2/);
    expect(() => parseSingleTlv(h('00'), { padding: true })).toThrow(/got none/);
  });
  it('nesting deeper than the bound', () => {
    let x: Uint8Array = h('5A 00');
    for (let i = 0; i < MAX_TLV_DEPTH; i++) x = concatBytes(Uint8Array.of(0x61, 0x84), new Uint8Array([x.length >>> 24, (x.length >>> 16) & 255, (x.length >>> 8) & 255, x.length & 255]), x);
    expect(parseTlv(x).length).toBe(1); // MAX_TLV_DEPTH templates around one object
    const deeper = concatBytes(Uint8Array.of(0x61, 0x81, x.length), x);
    expect(refusal(deeper).message).toMatch(/nested deeper/);
  });
  it('refuses 50,000 levels of well-formed nesting with a DecodeError, not a stack overflow', () => {
    const levels = 50_000;
    const deep = new Uint8Array(levels * 6 + 2);
    for (let i = 0; i < levels; i++) {
      const len = deep.length - 6 * (i + 1);
      deep.set([0x61, 0x84, len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255], 6 * i);
    }
    deep.set([0x5a, 0x00], levels * 6);
    expect(refusal(deep).message).toMatch(/nested deeper/);
  });
});

/** Valid trees: tags of 1 to 4 bytes, either b6, lengths in any of the five forms. */
const tagArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0x01, max: 0xfe }).filter((b) => (b & 0x1f) !== 0x1f),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0x7f })).map(([a, b]) => ((a << 5) | 0x1f) * 256 + b),
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0x81, max: 0xff }), fc.integer({ min: 0, max: 0x7f }))
    .map(([a, b, c]) => ((a << 5) | 0x1f) * 65536 + b * 256 + c),
  fc
    .tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0x81, max: 0xff }), fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0, max: 0x7f }))
    .map(([a, b, c, d]) => ((a << 5) | 0x1f) * 16777216 + b * 65536 + c * 256 + d),
).filter((t) => isValidTag(t));

/** The same tag with b6 of its first byte cleared (primitive) or set (constructed). */
function withB6(tag: number, constructed: boolean): number {
  const firstByteWeight = 256 ** (tagBytes(tag).length - 1);
  const b6Set = (tagBytes(tag)[0] & 0x20) !== 0;
  if (b6Set === constructed) return tag;
  return constructed ? tag + 0x20 * firstByteWeight : tag - 0x20 * firstByteWeight;
}

/** A length form at least as long as the minimal one: `extra` 0 keeps the minimal form. */
const lengthForm = (minimal: number, extra: number) => (extra === 0 ? minimal : Math.max(minimal, extra));

// Setting b6 on DF gives FF, which is not a tag (ISO 7816-4: FF and 00 are padding): filtered.
const primitiveTagArb = tagArb.map((t) => withB6(t, false)).filter(isValidTag);
const constructedTagArb = tagArb.map((t) => withB6(t, true)).filter(isValidTag);

const { tree: treeArb } = fc.letrec<{ tree: Tlv }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(primitiveTagArb, fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 4 })).map(([ptag, value, extra]) => {
      return new Tlv({ tag: ptag, value, lengthBytes: lengthForm(Tlv.primitive(ptag, value).lengthBytes, extra) });
    }),
    fc.tuple(constructedTagArb, fc.array(tie('tree'), { maxLength: 4 }), fc.integer({ min: 0, max: 4 })).map(([ctag, children, extra]) => {
      return new Tlv({ tag: ctag, children, lengthBytes: lengthForm(Tlv.constructed(ctag, children).lengthBytes, extra) });
    }),
  ),
}));

function sameTree(a: Tlv, b: Tlv): void {
  expect(b.tag).toBe(a.tag);
  expect(b.constructed).toBe(a.constructed);
  expect(b.lengthBytes).toBe(a.lengthBytes);
  expect(toHex(b.value)).toBe(toHex(a.value));
  expect(b.children?.length).toBe(a.children?.length);
  a.children?.forEach((c, i) => sameTree(c, b.children![i]));
}

describe('BER-TLV properties', () => {
  it('encode → parse gives the same tree, and encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.array(treeArb, { maxLength: 4 }), (trees) => {
        const bytes = encodeTlv(trees);
        const parsed = parseTlv(bytes);
        expect(parsed.length).toBe(trees.length);
        trees.forEach((t, i) => sameTree(t, parsed[i]));
        expect(toHex(encodeTlv(parsed))).toBe(toHex(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('every strict parse re-encodes to its input (arbitrary bytes that happen to parse)', () => {
    fc.assert(
      fc.property(fc.array(treeArb, { maxLength: 3 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 255 }), (trees, pos, byte) => {
        const bytes = encodeTlv(trees).slice();
        if (bytes.length > 0) bytes[pos % bytes.length] = byte;
        let parsed: Tlv[];
        try {
          parsed = parseTlv(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
          return;
        }
        expect(toHex(encodeTlv(parsed))).toBe(toHex(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('walk visits every node once, parents first', () => {
    fc.assert(
      fc.property(fc.array(treeArb, { maxLength: 4 }), (trees) => {
        const count = (t: Tlv): number => 1 + (t.children ?? []).reduce((n, c) => n + count(c), 0);
        const visits = [...walk(trees)];
        expect(visits.length).toBe(trees.reduce((n, t) => n + count(t), 0));
        for (const v of visits) {
          expect(v.path.length).toBe(v.depth + 1);
          expect(v.path.at(-1)).toBe(v.node.tag);
          expect(findAll(trees, v.path)).toContain(v.node);
        }
      }),
      { numRuns: 200 },
    );
  });
});
