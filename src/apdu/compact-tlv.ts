/**
 * COMPACT-TLV (ISO/IEC 7816-4 §8.1.1.2 / historical bytes): one byte holds the tag in its high
 * nibble and the length (0..15) in its low nibble, then the value. Used in the ATR's historical
 * bytes and EF.ATR. Every tag nibble is accepted (ISO leaves most of them RFU, and an RFU tag is
 * still well-formed data); only a value running past the end is refused.
 */
import { DecodeError, BadInputError } from '../util/errors.js';
import { concatBytes, toHex } from '../util/bytes.js';
import { assertInt } from '../util/assert.js';

export const COMPACT_TLV_MAX_LENGTH = 15;

/** Interindustry compact-TLV tags of the historical bytes (ISO 7816-4 §8.1.1.2). */
export const COMPACT_TLV_TAG_NAMES: ReadonlyMap<number, string> = new Map([
  [0x1, 'country code (ISO 3166-1)'],
  [0x2, 'issuer identification number (ISO/IEC 7812-1)'],
  [0x3, 'card service data'],
  [0x4, 'initial access data'],
  [0x5, "card issuer's data"],
  [0x6, 'pre-issuing data'],
  [0x7, 'card capabilities'],
  [0x8, 'status indicator'],
  [0xf, 'application identifier'],
]);

export function compactTlvTagName(tag: number): string {
  return COMPACT_TLV_TAG_NAMES.get(tag) ?? 'RFU';
}

export interface CompactTlv {
  /** 0..15 */
  readonly tag: number;
  readonly value: Uint8Array;
  /** Offset of the tag-length byte in the parsed input (0 for objects built in code). */
  readonly offset: number;
}

/** One object, validated: tag 0..15, value at most 15 bytes. */
export function compactTlv(tag: number, value: Uint8Array): CompactTlv {
  assertInt(tag, 'compact-TLV tag', 0, 15);
  if (!(value instanceof Uint8Array)) throw new BadInputError('compact-TLV value: expected Uint8Array');
  if (value.length > COMPACT_TLV_MAX_LENGTH) {
    throw new BadInputError(`compact-TLV value: at most ${COMPACT_TLV_MAX_LENGTH} bytes, got ${value.length}`);
  }
  return Object.freeze({ tag, value: value.slice(), offset: 0 });
}

export interface CompactTlvPrefix {
  /** The objects before the first one that does not fit. */
  objects: CompactTlv[];
  /** Why parsing stopped early, if it did. */
  error?: DecodeError;
}

/**
 * Parses as many whole objects as `bytes` holds, and says why it stopped if that was before the
 * end. For callers that show what they can of damaged data (the ATR's historical bytes).
 */
export function parseCompactTlvPrefix(bytes: Uint8Array, base = 0): CompactTlvPrefix {
  if (!(bytes instanceof Uint8Array)) return { objects: [], error: new DecodeError('TLV_MALFORMED', 'compact-TLV input must be bytes', -1) };
  const objects: CompactTlv[] = [];
  let p = 0;
  while (p < bytes.length) {
    const tag = bytes[p] >> 4;
    const len = bytes[p] & 0x0f;
    if (p + 1 + len > bytes.length) {
      const error = new DecodeError(
        'TLV_MALFORMED',
        `compact-TLV ${toHex(bytes.subarray(p, p + 1)).toUpperCase()} announces ${len} byte(s), only ${bytes.length - p - 1} remain`,
        base + p,
      );
      return { objects, error };
    }
    objects.push(Object.freeze({ tag, value: bytes.slice(p + 1, p + 1 + len), offset: base + p }));
    p += 1 + len;
  }
  return { objects };
}

/**
 * Parses objects back to back to the end of `bytes`; refuses a value running past the end with
 * DecodeError('TLV_MALFORMED'). `base` is added to offsets (in objects and errors), so a caller
 * parsing a slice of an ATR reports positions in the ATR.
 */
export function parseCompactTlv(bytes: Uint8Array, base = 0): CompactTlv[] {
  const { objects, error } = parseCompactTlvPrefix(bytes, base);
  if (error) throw error;
  return objects;
}

export function encodeCompactTlv(objects: readonly CompactTlv[]): Uint8Array {
  return concatBytes(
    ...objects.map((o) => {
      const checked = compactTlv(o.tag, o.value);
      return concatBytes(Uint8Array.of((checked.tag << 4) | checked.value.length), checked.value);
    }),
  );
}
