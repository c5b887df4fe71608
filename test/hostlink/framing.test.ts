/**
 * Framing: the generic length-prefixed decoder (src/util/length-prefixed.ts) and the host link's two
 * framings. Frames split anywhere and merged several to a chunk, oversized and malformed headers.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEFAULT_MAX_FRAME_LENGTH,
  asciiLengthFraming,
  twoByteLengthFraming,
  type Framing,
} from '../../src/hostlink/framing.js';
import { BIG_ENDIAN_U16, LengthPrefixError, LengthPrefixedDecoder, encodeLengthPrefixed } from '../../src/util/length-prefixed.js';
import { BadInputError, ProtocolError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

/** Name, factory, header bytes, and the header announcing `n`. */
const FRAMINGS: Array<[string, () => Framing, number, (n: number) => Uint8Array]> = [
  ['2-byte binary', () => twoByteLengthFraming(), 2, (n) => Uint8Array.of(n >> 8, n & 0xff)],
  ['4 ASCII digits', () => asciiLengthFraming(), 4, (n) => new TextEncoder().encode(String(n).padStart(4, '0'))],
];

function thrown(f: () => unknown): LengthPrefixError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LengthPrefixError);
    expect(e).toBeInstanceOf(ProtocolError);
    return e as LengthPrefixError;
  }
  throw new Error('expected a LengthPrefixError');
}

describe('encoding', () => {
  it('prefixes a 2-byte big-endian length in the same buffer', () => {
    const f = twoByteLengthFraming();
    expect(toHex(f.encode(fromHex('0800aabb')))).toBe('0004' + '0800aabb');
    const big = f.encode(new Uint8Array(0x1234));
    expect([big[0], big[1], big.length]).toEqual([0x12, 0x34, 0x1236]);
    expect(f.maxFrameLength).toBe(DEFAULT_MAX_FRAME_LENGTH);
    expect(f.name).toBe('2-byte binary length');
  });

  it('prefixes 4 ASCII digits', () => {
    const f = asciiLengthFraming();
    expect(toHex(f.encode(fromHex('0800aabb')))).toBe('30303034' + '0800aabb');
    expect(new TextDecoder().decode(f.encode(new Uint8Array(1234)).subarray(0, 4))).toBe('1234');
  });

  it('refuses empty and oversized payloads on the sending side', () => {
    for (const [, make, headerSize] of FRAMINGS) {
      const f = make();
      expect(() => f.encode(new Uint8Array(0))).toThrow(BadInputError);
      expect(() => f.encode(new Uint8Array(DEFAULT_MAX_FRAME_LENGTH + 1))).toThrow(/at most 8192/);
      expect(f.encode(new Uint8Array(DEFAULT_MAX_FRAME_LENGTH)).length).toBe(DEFAULT_MAX_FRAME_LENGTH + headerSize);
    }
    expect(twoByteLengthFraming({ maxFrameLength: 65535 }).encode(new Uint8Array(65535)).length).toBe(65537);
    expect(() => twoByteLengthFraming({ maxFrameLength: 65536 })).toThrow(BadInputError);
    expect(() => asciiLengthFraming({ maxFrameLength: 10000 })).toThrow(BadInputError);
    expect(() => twoByteLengthFraming({ maxFrameLength: 0 })).toThrow(BadInputError);
  });
});

describe('decoding', () => {
  for (const [name, make, , headerFor] of FRAMINGS) {
    describe(name, () => {
      it('cuts a stream split at every position back into its frames', () => {
        const f = make();
        const payloads = [fromHex('01'), fromHex('0203'), new Uint8Array(300).fill(7), fromHex('040506')];
        const stream = concatBytes(...payloads.map((p) => f.encode(p)));
        for (let cut = 0; cut <= stream.length; cut++) {
          const d = f.decoder();
          const out = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
          expect(out.map(toHex), `cut at ${cut}`).toEqual(payloads.map(toHex));
          expect(d.pending).toBe(0);
        }
      });

      it('takes one byte at a time and many frames in one chunk (property)', () => {
        fc.assert(
          fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { maxLength: 10 }), fc.array(fc.nat(40)), (payloads, cuts) => {
            const f = make();
            const stream = concatBytes(...payloads.map((p) => f.encode(p)));
            const d = f.decoder();
            const out: Uint8Array[] = [];
            let at = 0;
            for (const c of cuts) {
              out.push(...d.push(stream.subarray(at, at + c)));
              at = Math.min(stream.length, at + c);
            }
            out.push(...d.push(stream.subarray(at)));
            expect(out.map(toHex)).toEqual(payloads.map(toHex));
          }),
        );
      });

      it('refuses an oversized frame from its header, before any body arrives', () => {
        const f = make();
        const d = f.decoder();
        const e = thrown(() => d.push(concatBytes(f.encode(fromHex('aa')), headerFor(8193))));
        expect(e.reason).toBe('too-long');
        expect(e.length).toBe(8193);
        expect(e.offset).toBe(f.encode(fromHex('aa')).length);
        expect(d.failed).toBe(true);
        expect(thrown(() => d.push(fromHex('00'))).reason).toBe('after-error');
      });

      it('refuses a zero-length frame', () => {
        const f = make();
        expect(thrown(() => f.decoder().push(headerFor(0))).reason).toBe('empty');
      });
    });
  }

  it('refuses ASCII headers that are not digits', () => {
    for (const header of ['12a4', ' 123', '-001', '\u0000\u0000\u0000\u0001']) {
      const d = asciiLengthFraming().decoder();
      const e = thrown(() => d.push(new TextEncoder().encode(header + 'xxxx')));
      expect(e.reason, header).toBe('bad-header');
      expect(e.length).toBe(-1);
    }
  });

  it('honours a smaller maximum, and the full 65535 when asked', () => {
    const small = twoByteLengthFraming({ maxFrameLength: 16 });
    expect(thrown(() => small.decoder().push(fromHex('0011'))).reason).toBe('too-long');
    expect(small.decoder().push(concatBytes(fromHex('0010'), new Uint8Array(16)))).toHaveLength(1);
    const full = twoByteLengthFraming({ maxFrameLength: 65535 }).decoder();
    expect(full.push(concatBytes(fromHex('ffff'), new Uint8Array(65535)))[0].length).toBe(65535);
  });

  it('resets after an error', () => {
    const d = new LengthPrefixedDecoder({ header: BIG_ENDIAN_U16, maxFrameLength: 4 });
    expect(thrown(() => d.push(fromHex('0005'))).reason).toBe('too-long');
    d.reset();
    expect(d.failed).toBe(false);
    expect(d.push(fromHex('0001ff')).map(toHex)).toEqual(['ff']);
  });

  it('can allow empty frames when a protocol has them', () => {
    const d = new LengthPrefixedDecoder({ header: BIG_ENDIAN_U16, allowEmpty: true });
    expect(d.push(fromHex('0000' + '0001aa' + '0000')).map(toHex)).toEqual(['', 'aa', '']);
    expect(toHex(encodeLengthPrefixed(new Uint8Array(0), { header: BIG_ENDIAN_U16, allowEmpty: true }))).toBe('0000');
  });

  it('refuses chunks that are not bytes', () => {
    expect(() => twoByteLengthFraming().decoder().push('0001aa' as unknown as Uint8Array)).toThrow(BadInputError);
  });
});
