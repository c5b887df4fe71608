import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FrameDecoder,
  FrameError,
  VPCD_MAX_FRAME_LENGTH,
  VpcdControl,
  classifyVpcdPayload,
  encodeControl,
  encodeFrame,
  isVpcdControlCode,
  vpcdControlName,
} from '../../src/apdu/vpcd-frame.js';
import { BadInputError, ProtocolError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

describe('encodeFrame', () => {
  it('prefixes the big-endian length in the same buffer', () => {
    expect(toHex(encodeFrame(fromHex('00a4040000')))).toBe('000500a4040000');
    const big = new Uint8Array(0x1234).fill(7);
    const f = encodeFrame(big);
    expect(f.length).toBe(0x1236);
    expect([f[0], f[1], f[2], f[f.length - 1]]).toEqual([0x12, 0x34, 7, 7]);
  });

  it('carries the largest payload a 2-byte length can announce', () => {
    const f = encodeFrame(new Uint8Array(VPCD_MAX_FRAME_LENGTH));
    expect([f[0], f[1]]).toEqual([0xff, 0xff]);
  });

  it('refuses empty, oversized and non-byte payloads', () => {
    expect(() => encodeFrame(new Uint8Array(0))).toThrow(BadInputError);
    expect(() => encodeFrame(new Uint8Array(VPCD_MAX_FRAME_LENGTH + 1))).toThrow(/at most 65535/);
    expect(() => encodeFrame('00a4' as unknown as Uint8Array)).toThrow(BadInputError);
  });

  it('encodes control codes as 3-byte frames', () => {
    expect(toHex(encodeControl(VpcdControl.PowerOff))).toBe('000100');
    expect(toHex(encodeControl(VpcdControl.PowerOn))).toBe('000101');
    expect(toHex(encodeControl(VpcdControl.Reset))).toBe('000102');
    expect(toHex(encodeControl(VpcdControl.GetAtr))).toBe('000104');
    expect(() => encodeControl(3 as never)).toThrow(BadInputError);
  });
});

describe('control codes and classification', () => {
  it('knows exactly the four vpcd control codes', () => {
    const known = [...Array(256).keys()].filter(isVpcdControlCode);
    expect(known).toEqual([0, 1, 2, 4]);
    expect(vpcdControlName(4)).toBe('GetAtr');
    expect(vpcdControlName(7)).toBe('unknown 0x07');
  });

  it('reads 1-byte payloads as control codes and longer ones as APDUs', () => {
    expect(classifyVpcdPayload(Uint8Array.of(1))).toEqual({ kind: 'control', code: 1 });
    expect(classifyVpcdPayload(Uint8Array.of(9))).toEqual({ kind: 'control', code: 9 });
    const m = classifyVpcdPayload(fromHex('00b0'));
    expect(m.kind).toBe('apdu');
    expect(() => classifyVpcdPayload(new Uint8Array(0))).toThrow(BadInputError);
  });
});

describe('FrameDecoder', () => {
  it('returns several frames delivered in one chunk, in order', () => {
    const d = new FrameDecoder();
    const chunk = concatBytes(encodeControl(VpcdControl.PowerOn), encodeControl(VpcdControl.GetAtr), encodeFrame(fromHex('00b0000010')));
    expect(d.push(chunk).map(toHex)).toEqual(['01', '04', '00b0000010']);
    expect(d.pending).toBe(0);
  });

  it('assembles a frame delivered one byte at a time', () => {
    const d = new FrameDecoder();
    const bytes = encodeFrame(fromHex('3b80800101'));
    const got: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i++) {
      got.push(...d.push(bytes.subarray(i, i + 1)));
      if (i < bytes.length - 1) expect(d.pending).toBe(i + 1);
    }
    expect(got.map(toHex)).toEqual(['3b80800101']);
  });

  it('returns copies, not views of the pushed chunk', () => {
    const d = new FrameDecoder();
    const chunk = encodeFrame(fromHex('a1a2a3'));
    const [p] = d.push(chunk);
    chunk.fill(0);
    expect(toHex(p)).toBe('a1a2a3');
    expect(p).not.toBeInstanceOf(Buffer);
  });

  it('refuses a zero-length frame with its stream offset, then refuses everything until reset', () => {
    const d = new FrameDecoder();
    expect(d.push(encodeFrame(fromHex('0102')))).toHaveLength(1);
    let err: unknown;
    try {
      d.push(Uint8Array.of(0x00, 0x00, 0x00, 0x01, 0x04));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FrameError);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as FrameError).code).toBe('PROTOCOL');
    expect((err as FrameError).reason).toBe('empty');
    expect((err as FrameError).offset).toBe(4);
    expect(d.failed).toBe(true);
    expect(() => d.push(encodeControl(VpcdControl.GetAtr))).toThrow(expect.objectContaining({ reason: 'after-error' }));
    d.reset();
    expect(d.failed).toBe(false);
    expect(d.push(encodeControl(VpcdControl.GetAtr)).map(toHex)).toEqual(['04']);
  });

  it('refuses a frame over the configured maximum as soon as its header is complete', () => {
    const d = new FrameDecoder({ maxFrameLength: 300 });
    expect(d.push(encodeFrame(new Uint8Array(300)))).toHaveLength(1);
    expect(d.push(Uint8Array.of(0x01))).toEqual([]);
    expect(() => d.push(Uint8Array.of(0x2d))).toThrow(expect.objectContaining({ reason: 'too-long', length: 301, offset: 302 }));
  });

  it('validates its maximum', () => {
    expect(() => new FrameDecoder({ maxFrameLength: 0 })).toThrow(BadInputError);
    expect(() => new FrameDecoder({ maxFrameLength: 65536 })).toThrow(BadInputError);
    expect(new FrameDecoder().maxFrameLength).toBe(65535);
  });

  it('round-trips any payloads however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (payloads, cutSeeds) => {
          const stream = concatBytes(...payloads.map(encodeFrame));
          const cuts = [...new Set(cutSeeds.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const d = new FrameDecoder();
          const got: Uint8Array[] = [];
          let from = 0;
          for (const c of [...cuts, stream.length]) {
            got.push(...d.push(stream.subarray(from, c)));
            from = c;
          }
          expect(got.map(toHex)).toEqual(payloads.map(toHex));
          expect(d.pending).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('round-trips a maximal frame split in TCP-sized pieces', () => {
    const payload = new Uint8Array(VPCD_MAX_FRAME_LENGTH).map((_, i) => (i * 31) & 0xff);
    const stream = concatBytes(encodeFrame(payload), encodeControl(VpcdControl.Reset));
    const d = new FrameDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += 1448) got.push(...d.push(stream.subarray(i, i + 1448)));
    expect(got).toHaveLength(2);
    expect(toHex(got[0])).toBe(toHex(payload));
    expect(toHex(got[1])).toBe('02');
  });

  it('fuzz: 100,000 random streams only ever yield payloads or a FrameError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 48 }), (bytes, max, step) => {
        const d = new FrameDecoder({ maxFrameLength: max });
        let consumedIntoFrames = 0;
        try {
          for (let i = 0; i < bytes.length; i += step) {
            for (const p of d.push(bytes.subarray(i, i + step))) {
              expect(p.length).toBeGreaterThanOrEqual(1);
              expect(p.length).toBeLessThanOrEqual(max);
              consumedIntoFrames += 2 + p.length;
            }
          }
          expect(consumedIntoFrames + d.pending).toBe(bytes.length);
        } catch (e) {
          if (!(e instanceof FrameError)) throw e;
          expect(e.offset).toBeLessThan(bytes.length);
        }
      }),
      { numRuns: 100_000 },
    );
  });
});
