/**
 * Fuzz of the host link's decoders, from a seeded PRNG so a failure replays:
 * - unpack: 120,000 random and mutated messages (bit flips, truncations, appended bytes, overwritten
 *   bytes, bitmap bits toggled, length prefixes bumped, spliced messages). Each input is either
 *   accepted, and then packs back to exactly the same bytes, or refused with Iso8583Error code
 *   PROTOCOL and a documented reason; nothing else escapes. verifyMessage on the same bytes throws
 *   only that error or answers false.
 * - the framing decoders: 30,000 streams of valid and broken frames pushed in random chunks;
 *   only LengthPrefixError escapes, and the payloads before a problem come out intact.
 */
import { describe, expect, it } from 'vitest';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { Iso8583Error, type Iso8583Reason } from '../../src/hostlink/iso8583/errors.js';
import { verifyMessage, signMessage } from '../../src/hostlink/iso8583/mac.js';
import { asciiLengthFraming, twoByteLengthFraming } from '../../src/hostlink/framing.js';
import { LengthPrefixError } from '../../src/util/length-prefixed.js';
import { bytesEqual, concatBytes, toHex } from '../../src/util/bytes.js';
import { prng, randomMessage, type Rng } from './helpers.js';

const SEED = 0x150_8583;
const MESSAGES = 120_000;
const STREAMS = 30_000;
const POOL = 4_000;
const KEY = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

const UNPACK_REASONS: ReadonlySet<Iso8583Reason> = new Set<Iso8583Reason>([
  'truncated',
  'bad-mti',
  'unknown-mti',
  'undefined-field',
  'empty-secondary',
  'bad-digit',
  'bad-length',
  'bad-charset',
  'bad-tlv',
  'mac-position',
  'trailing-bytes',
]);

function mutate(r: Rng, valid: Uint8Array, other: Uint8Array): { kind: string; bytes: Uint8Array } {
  const b = valid.slice();
  const kind = r.int(9);
  switch (kind) {
    case 0:
      return { kind: 'random', bytes: r.bytes(r.int(80)) };
    case 1:
      return { kind: 'valid', bytes: b };
    case 2: {
      for (let i = 1 + r.int(3); i > 0; i--) b[r.int(b.length)] ^= 1 << r.int(8);
      return { kind: 'bit-flips', bytes: b };
    }
    case 3:
      return { kind: 'truncate', bytes: b.subarray(0, r.int(b.length)) };
    case 4:
      return { kind: 'append', bytes: concatBytes(b, r.bytes(1 + r.int(6))) };
    case 5: {
      b[r.int(b.length)] = r.int(256);
      return { kind: 'overwrite', bytes: b };
    }
    case 6: {
      // Toggle a bitmap bit: the fields no longer line up with the bitmap.
      const bitmapBytes = b[2] & 0x80 ? 16 : 8;
      b[2 + r.int(bitmapBytes)] ^= 0x80 >> r.int(8);
      return { kind: 'bitmap', bytes: b };
    }
    case 7: {
      // Bump a byte after the bitmap up or down by one: length prefixes and BCD digits off by one.
      const at = 10 + r.int(Math.max(1, b.length - 10));
      if (at < b.length) b[at] = (b[at] + (r.int(2) === 0 ? 1 : 255)) & 0xff;
      return { kind: 'off-by-one', bytes: b };
    }
    default: {
      const cut = r.int(b.length + 1);
      return { kind: 'splice', bytes: concatBytes(b.subarray(0, cut), other.subarray(r.int(other.length + 1))) };
    }
  }
}

describe('fuzz', () => {
  it(`unpack: ${MESSAGES} random and mutated inputs, only typed refusals, strict round trips`, () => {
    const r = prng(SEED);
    const accepted: Record<string, number> = {};
    const refused: Record<string, number> = {};
    // A pool of valid messages (some signed) to mutate: building one costs more than decoding it.
    const pool = Array.from({ length: POOL }, (_, i) => pack(i % 7 === 0 ? signMessage(randomMessage(r), KEY) : randomMessage(r)));
    for (let i = 0; i < MESSAGES; i++) {
      const { kind, bytes } = mutate(r, r.pick(pool), r.pick(pool));
      try {
        const { message, consumed } = unpack(bytes);
        if (consumed !== bytes.length) throw new Error(`input ${i} (${kind}): consumed ${consumed} of ${bytes.length}`);
        if (!bytesEqual(pack(message), bytes)) throw new Error(`accepted ${toHex(bytes)} (${kind}) but it packs back as ${toHex(pack(message))}`);
        accepted[kind] = (accepted[kind] ?? 0) + 1;
      } catch (e) {
        if (!(e instanceof Iso8583Error) || e.code !== 'PROTOCOL' || !UNPACK_REASONS.has(e.reason)) {
          throw new Error(`input ${i} (${kind}) ${toHex(bytes)}: ${String(e)}`, { cause: e });
        }
        refused[e.reason] = (refused[e.reason] ?? 0) + 1;
      }
      if (i % 10 === 0) {
        try {
          verifyMessage(bytes, KEY);
        } catch (e) {
          if (!(e instanceof Iso8583Error)) throw new Error(`verifyMessage on input ${i}: ${String(e)}`, { cause: e });
        }
      }
    }
    // The mutations reach every structural refusal and still leave valid messages.
    for (const reason of UNPACK_REASONS) expect(refused[reason] ?? 0, reason).toBeGreaterThan(0);
    expect(accepted.valid).toBeGreaterThan(MESSAGES / 20);
    expect(accepted['bit-flips'] ?? 0).toBeGreaterThan(0);
  });

  it(`framing: ${STREAMS} streams of valid and broken frames in random chunks`, () => {
    const r = prng(SEED + 1);
    const framings = [twoByteLengthFraming({ maxFrameLength: 256 }), asciiLengthFraming({ maxFrameLength: 256 })];
    const reasons: Record<string, number> = {};
    for (let i = 0; i < STREAMS; i++) {
      const f = framings[i % 2];
      const payloads = Array.from({ length: r.int(5) }, () => r.bytes(1 + r.int(40)));
      let stream = concatBytes(...payloads.map((p) => f.encode(p)));
      const broken = r.int(3) !== 0;
      const flipped = broken && r.int(3) === 0 && stream.length > 0;
      if (flipped) stream[r.int(stream.length)] ^= 1 << r.int(8);
      else if (broken) stream = concatBytes(stream, r.bytes(1 + r.int(r.int(2) === 0 ? 8 : 300)));
      const d = f.decoder();
      const out: Uint8Array[] = [];
      try {
        let at = 0;
        while (at < stream.length) {
          const n = 1 + r.int(64);
          out.push(...d.push(stream.subarray(at, at + n)));
          at += n;
        }
      } catch (e) {
        if (!(e instanceof LengthPrefixError)) throw new Error(`stream ${i} ${toHex(stream)}: ${String(e)}`, { cause: e });
        reasons[e.reason] = (reasons[e.reason] ?? 0) + 1;
      }
      if (!broken && (out.length !== payloads.length || out.some((p, k) => !bytesEqual(p, payloads[k])) || d.pending !== 0)) {
        throw new Error(`stream ${i}: ${toHex(stream)} decoded as ${out.map(toHex).join(' ')}`);
      }
      // Garbage appended after valid frames never alters them: what came out starts with them, unchanged
      // (frames completed in the same push as an error are dropped with it, as documented).
      if (broken && !flipped && out.some((p, k) => k < payloads.length && !bytesEqual(p, payloads[k]))) {
        throw new Error(`stream ${i}: a valid frame before the garbage was altered`);
      }
      if (out.some((p) => p.length < 1 || p.length > 256)) throw new Error(`stream ${i}: a payload outside 1..256 bytes`);
    }
    expect(reasons['too-long'] ?? 0).toBeGreaterThan(0);
    expect(reasons.empty ?? 0).toBeGreaterThan(0);
    expect(reasons['bad-header'] ?? 0).toBeGreaterThan(0);
  });
});
