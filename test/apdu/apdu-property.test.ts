/**
 * Property tests (fast-check) of the command and response APDU codecs: every valid value survives
 * encode → decode field by field, and every valid encoding survives decode → encode byte for byte.
 * Valid encodings are built here from the ISO 7816-4 layout directly, not with the encoder under test.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { CommandApdu, type CommandApduFields } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { describeCommand, describeResponse } from '../../src/apdu/describe.js';
import { toHex, concatBytes } from '../../src/util/bytes.js';

const hex = (b: Uint8Array) => toHex(b);

const byte = fc.integer({ min: 0, max: 255 });
const cla = fc.integer({ min: 0, max: 0xfe });
/** Ne with the boundaries drawn often: 0 (no Le), 1, 255, 256 (short max), 257, 65535, 65536. */
const ne = fc.oneof(
  fc.constant(0),
  fc.constantFrom(1, 255, 256, 257, 65535, 65536),
  fc.integer({ min: 1, max: 256 }),
  fc.integer({ min: 257, max: 65536 }),
);
/** Data with the Nc boundaries 0, 1, 255, 256 drawn often, up to 600 bytes. */
const data = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ minLength: 1, maxLength: 16 }),
  fc.uint8Array({ minLength: 250, maxLength: 260 }),
  fc.uint8Array({ minLength: 0, maxLength: 600 }),
);
const fields: fc.Arbitrary<CommandApduFields> = fc.record({ cla, ins: byte, p1: byte, p2: byte, data, ne, extended: fc.boolean() });

/** The length ISO 7816-4 gives the encoding of these fields. */
function expectedLength(nc: number, n: number, extended: boolean): number {
  if (nc === 0 && n === 0) return 4;
  if (!extended) return 4 + (nc > 0 ? 1 + nc : 0) + (n > 0 ? 1 : 0);
  return 4 + (nc > 0 ? 3 + nc : 0) + (n > 0 ? (nc > 0 ? 2 : 3) : 0);
}

/** A valid encoding built straight from the layout table, with the values it encodes. */
const validEncoding = fc
  .record({
    head: fc.tuple(cla, byte, byte, byte),
    body: fc.oneof(
      fc.constant({ kind: '1' as const }),
      fc.record({ kind: fc.constant('2S' as const), le: byte }),
      fc.record({ kind: fc.constant('3S' as const), data: fc.uint8Array({ minLength: 1, maxLength: 255 }) }),
      fc.record({ kind: fc.constant('4S' as const), data: fc.uint8Array({ minLength: 1, maxLength: 255 }), le: byte }),
      fc.record({ kind: fc.constant('2E' as const), le: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ kind: fc.constant('3E' as const), data: fc.uint8Array({ minLength: 1, maxLength: 700 }) }),
      fc.record({
        kind: fc.constant('4E' as const),
        data: fc.uint8Array({ minLength: 1, maxLength: 700 }),
        le: fc.integer({ min: 0, max: 0xffff }),
      }),
    ),
  })
  .map(({ head, body }) => {
    const h = Uint8Array.from(head);
    const two = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
    switch (body.kind) {
      case '1':
        return { bytes: h, nc: 0, ne: 0, extended: false, d: new Uint8Array(0) };
      case '2S':
        return { bytes: concatBytes(h, Uint8Array.of(body.le)), nc: 0, ne: body.le || 256, extended: false, d: new Uint8Array(0) };
      case '3S':
        return { bytes: concatBytes(h, Uint8Array.of(body.data.length), body.data), nc: body.data.length, ne: 0, extended: false, d: body.data };
      case '4S':
        return {
          bytes: concatBytes(h, Uint8Array.of(body.data.length), body.data, Uint8Array.of(body.le)),
          nc: body.data.length,
          ne: body.le || 256,
          extended: false,
          d: body.data,
        };
      case '2E':
        return { bytes: concatBytes(h, Uint8Array.of(0), two(body.le)), nc: 0, ne: body.le || 65536, extended: true, d: new Uint8Array(0) };
      case '3E':
        return {
          bytes: concatBytes(h, Uint8Array.of(0), two(body.data.length), body.data),
          nc: body.data.length,
          ne: 0,
          extended: true,
          d: body.data,
        };
      case '4E':
        return {
          bytes: concatBytes(h, Uint8Array.of(0), two(body.data.length), body.data, two(body.le)),
          nc: body.data.length,
          ne: body.le || 65536,
          extended: true,
          d: body.data,
        };
    }
  });

describe('CommandApdu properties', () => {
  it('decode(encode(c)) equals c field by field, with the ISO length and form', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const c = new CommandApdu(f);
        const nc = f.data?.length ?? 0;
        const n = f.ne ?? 0;
        const mustExtend = nc > 255 || n > 256 || (f.extended === true && (nc > 0 || n > 0));
        expect(c.extended).toBe(mustExtend);
        const bytes = c.encode();
        expect(bytes.length).toBe(expectedLength(nc, n, mustExtend));
        const d = CommandApdu.decode(bytes);
        expect([d.cla, d.ins, d.p1, d.p2, d.ne, d.nc, d.extended, d.case]).toEqual([c.cla, c.ins, c.p1, c.p2, c.ne, c.nc, c.extended, c.case]);
        expect(hex(d.data)).toBe(hex(c.data));
        expect(hex(d.encode())).toBe(hex(bytes));
        expect(d).toEqual(c);
      }),
      { numRuns: 1000 },
    );
  });

  it('encode(decode(bytes)) === bytes for every valid encoding, and decode reads the values encoded', () => {
    fc.assert(
      fc.property(validEncoding, (v) => {
        const c = CommandApdu.decode(v.bytes);
        expect(hex(c.encode())).toBe(hex(v.bytes));
        expect([c.cla, c.ins, c.p1, c.p2]).toEqual(Array.from(v.bytes.subarray(0, 4)));
        expect([c.nc, c.ne, c.extended]).toEqual([v.nc, v.ne, v.extended]);
        expect(hex(c.data)).toBe(hex(v.d));
      }),
      { numRuns: 3000 },
    );
  });

  it('the largest sizes round-trip too', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 60000, max: 65535 }),
        fc.oneof(fc.constant(0), fc.constant(65536), fc.integer({ min: 1, max: 65536 })),
        byte,
        (nc, n, fillByte) => {
          const c = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(nc).fill(fillByte), ne: n });
          const bytes = c.encode();
          expect(bytes.length).toBe(expectedLength(nc, n, true));
          const d = CommandApdu.decode(bytes);
          expect([d.nc, d.ne, d.extended]).toEqual([nc, n, true]);
          expect(hex(d.encode())).toBe(hex(bytes));
        },
      ),
      { numRuns: 20 },
    );
  });

  it('describeCommand: the fields, laid end to end at their offsets, are the encoding', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const c = new CommandApdu(f);
        const h = hex(c.encode()).toUpperCase();
        const d = describeCommand(c);
        expect(d.hex).toBe(h);
        expect(d.fields.map((x) => x.hex).join('')).toBe(h);
        let offset = 0;
        for (const x of d.fields) {
          expect(x.offset).toBe(offset);
          offset += x.hex.length / 2;
        }
        expect(d.case.startsWith(String(c.case))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('ResponseApdu properties', () => {
  const sw = fc.integer({ min: 0, max: 0xffff });
  const respData = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 1000 }));

  it('decode(encode(r)) equals r', () => {
    fc.assert(
      fc.property(respData, sw, (d, w) => {
        const r = new ResponseApdu(d, w);
        const bytes = r.encode();
        expect(bytes.length).toBe(d.length + 2);
        const back = ResponseApdu.decode(bytes);
        expect(back.sw).toBe(w);
        expect(hex(back.data)).toBe(hex(d));
        expect(back).toEqual(r);
      }),
      { numRuns: 2000 },
    );
  });

  it('encode(decode(bytes)) === bytes for every 2..1002-byte string; the last two bytes are the SW', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 1002 }), (bytes) => {
        const r = ResponseApdu.decode(bytes);
        expect(hex(r.encode())).toBe(hex(bytes));
        expect(r.sw).toBe((bytes[bytes.length - 2] << 8) | bytes[bytes.length - 1]);
        expect(r.data.length).toBe(bytes.length - 2);
        const d = describeResponse(r);
        expect(d.fields.map((x) => x.hex).join('')).toBe(hex(bytes).toUpperCase());
      }),
      { numRuns: 2000 },
    );
  });
});
