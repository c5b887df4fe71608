/**
 * The ISO 8583 codec: IsoMessage ↔ bytes, driven by the field table (fields.ts, which also
 * documents the encodings). Pure functions, no state.
 *
 *   MTI (2 bytes BCD) | primary bitmap (8) | [secondary bitmap (8)] | fields in ascending order
 *
 * The bitmaps are built from the fields present; bit 1 (secondary bitmap) is set exactly when a field
 * 65..128 is present. `unpack` is strict, so that whatever it accepts packs back to the same bytes:
 * it refuses, each with Iso8583Error code PROTOCOL, a reason, the field and the byte offset:
 *   truncated        the input ends inside the MTI, a bitmap, a prefix or a value
 *   bad-mti          non-BCD MTI, or a version other than 0; unknown-mti: one hilt does not speak
 *   undefined-field  a bitmap bit with no line in the field table (bit 65 among them)
 *   empty-secondary  bit 1 set but no bit in the secondary bitmap
 *   bad-digit        a BCD nibble above 9, a non-zero pad nibble, a bad track 2 nibble
 *   bad-length       a length prefix above the field's maximum
 *   bad-charset      a byte outside an an/ans field's set
 *   bad-tlv          a TLV field that is not strict BER-TLV
 *   mac-position     field 64 in a message with a secondary bitmap
 *   trailing-bytes   bytes after the message (unless `allowTrailing`)
 * and never lets another exception escape, whatever the input.
 */
import { Iso8583Error } from './errors.js';
import {
  FIELDS,
  PREFIX_BYTES,
  type FieldDef,
} from './fields.js';
import { IsoMessage, _trustedMessage, checkField, checkMacPosition, checkMti, type FieldValue } from './message.js';
import { concatBytes } from '../../util/bytes.js';

const MTI_BYTES = 2;
const BITMAP_BYTES = 8;
const TRACK2_SEPARATOR_NIBBLE = 0xd;
const TRACK2_PAD_NIBBLE = 0xf;

// ---------------------------------------------------------------------------------------------
// Primitive encodings

/** Digits as BCD, right-justified: an odd count gets a leading 0 nibble. */
export function encodeBcd(digits: string): Uint8Array {
  const padded = digits.length % 2 === 1 ? '0' + digits : digits;
  const out = new Uint8Array(padded.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = ((padded.charCodeAt(2 * i) - 0x30) << 4) | (padded.charCodeAt(2 * i + 1) - 0x30);
  return out;
}

/** Track 2 characters, one nibble each ('=' as D), left-justified: an odd count ends with an F nibble. */
function encodeTrack2(text: string): Uint8Array {
  const nibbles = [...text].map((c) => (c === '=' ? TRACK2_SEPARATOR_NIBBLE : c.charCodeAt(0) - 0x30));
  if (nibbles.length % 2 === 1) nibbles.push(TRACK2_PAD_NIBBLE);
  const out = new Uint8Array(nibbles.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
  return out;
}

function encodeAscii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/** Count (digits, characters or bytes) → length prefix. */
function encodePrefix(def: FieldDef, count: number): Uint8Array {
  if (def.kind === 'fixed') return new Uint8Array(0);
  return encodeBcd(String(count).padStart(def.kind === 'LLVAR' ? 2 : 4, '0'));
}

function encodeValue(def: FieldDef, value: FieldValue): Uint8Array {
  if (typeof value !== 'string') return value;
  switch (def.type) {
    case 'n':
      return encodeBcd(value);
    case 'z':
      return encodeTrack2(value);
    default:
      return encodeAscii(value);
  }
}

/** Bytes a value of `count` units of this field's type takes (prefix excluded). */
function valueBytes(def: FieldDef, count: number): number {
  return def.type === 'n' || def.type === 'z' ? Math.ceil(count / 2) : count;
}

// ---------------------------------------------------------------------------------------------
// Bitmaps

/** The 8 or 16 bitmap bytes for these field numbers (bit 1 set when any is above 64). */
export function buildBitmap(numbers: Iterable<number>): Uint8Array {
  const list = [...numbers];
  const secondary = list.some((n) => n > 64);
  const out = new Uint8Array(secondary ? 2 * BITMAP_BYTES : BITMAP_BYTES);
  if (secondary) out[0] |= 0x80;
  for (const n of list) out[(n - 1) >> 3] |= 0x80 >> ((n - 1) & 7);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pack

/** The message's bytes: MTI, bitmap(s), fields in ascending order. */
export function pack(message: IsoMessage): Uint8Array {
  if (!(message instanceof IsoMessage)) throw new Iso8583Error('BAD_INPUT', 'bad-type', 'pack: expected an IsoMessage');
  const parts: Uint8Array[] = [encodeBcd(message.mti), buildBitmap(message.numbers())];
  for (const n of message.numbers()) {
    const def = FIELDS.get(n) as FieldDef;
    const value = message.get(n) as FieldValue;
    parts.push(encodePrefix(def, value.length), encodeValue(def, value));
  }
  return concatBytes(...parts);
}

// ---------------------------------------------------------------------------------------------
// Unpack

export interface UnpackOptions {
  /** Accept bytes after the message (consumed < length); default false: a frame is one message. */
  allowTrailing?: boolean;
}

export interface Unpacked {
  message: IsoMessage;
  /** Bytes the message took from the start of the input. */
  consumed: number;
}

function fail(reason: ConstructorParameters<typeof Iso8583Error>[1], message: string, field: number | null, offset: number): Iso8583Error {
  return new Iso8583Error('PROTOCOL', reason, message, field, offset);
}

/** A cursor over the input that refuses to read past its end. */
class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}
  take(n: number, what: string, field: number | null): Uint8Array {
    if (n > this.bytes.length - this.pos) {
      throw fail('truncated', `${what}: needs ${n} bytes, ${this.bytes.length - this.pos} remain`, field, this.pos);
    }
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** BCD bytes → `count` digits; the pad nibble of an odd count must be 0. */
function decodeBcd(bytes: Uint8Array, count: number, field: number | null, offset: number): string {
  let s = '';
  const skip = bytes.length * 2 - count; // 0 or 1 leading pad nibble
  for (let i = 0; i < bytes.length * 2; i++) {
    const nibble = i % 2 === 0 ? bytes[i >> 1] >> 4 : bytes[i >> 1] & 0x0f;
    if (i < skip) {
      if (nibble !== 0) throw fail('bad-digit', `pad nibble ${nibble.toString(16).toUpperCase()} is not 0`, field, offset + (i >> 1));
      continue;
    }
    if (nibble > 9) throw fail('bad-digit', `nibble ${nibble.toString(16).toUpperCase()} is not a BCD digit`, field, offset + (i >> 1));
    s += String.fromCharCode(0x30 + nibble);
  }
  return s;
}

function decodeTrack2(bytes: Uint8Array, count: number, field: number, offset: number): string {
  let s = '';
  for (let i = 0; i < bytes.length * 2; i++) {
    const nibble = i % 2 === 0 ? bytes[i >> 1] >> 4 : bytes[i >> 1] & 0x0f;
    if (i >= count) {
      if (nibble !== TRACK2_PAD_NIBBLE) throw fail('bad-digit', `track 2 pad nibble ${nibble.toString(16).toUpperCase()} is not F`, field, offset + (i >> 1));
      continue;
    }
    if (nibble <= 9) s += String.fromCharCode(0x30 + nibble);
    else if (nibble === TRACK2_SEPARATOR_NIBBLE) s += '=';
    else throw fail('bad-digit', `track 2 nibble ${nibble.toString(16).toUpperCase()} is neither a digit nor the separator D`, field, offset + (i >> 1));
  }
  return s;
}

function decodeAscii(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function readField(r: Reader, def: FieldDef): FieldValue {
  const start = r.pos;
  let count = def.length;
  if (def.kind !== 'fixed') {
    const prefixBytes = PREFIX_BYTES[def.kind];
    const prefixAt = r.pos;
    const digits = decodeBcd(r.take(prefixBytes, `${def.name}: length prefix`, def.n), prefixBytes * 2, def.n, prefixAt);
    count = Number(digits);
    if (count > def.length) throw fail('bad-length', `${def.name}: length ${count} is above the maximum ${def.length}`, def.n, prefixAt);
  }
  const valueAt = r.pos;
  const raw = r.take(valueBytes(def, count), def.name, def.n);
  let value: FieldValue;
  switch (def.type) {
    case 'n':
      value = decodeBcd(raw, count, def.n, valueAt);
      break;
    case 'z':
      value = decodeTrack2(raw, count, def.n, valueAt);
      break;
    case 'b':
      value = raw.slice();
      break;
    default:
      value = decodeAscii(raw);
  }
  // Charset, and BER-TLV for the TLV fields; lengths are right by construction.
  checkField(def.n, value, 'PROTOCOL', start);
  return value;
}

/**
 * Reads one message from the start of `bytes`. By default the message must fill the input (a
 * frame holds exactly one message); with `allowTrailing` the rest is left and `consumed` says where
 * the message ended.
 */
export function unpack(bytes: Uint8Array, options: UnpackOptions = {}): Unpacked {
  if (!(bytes instanceof Uint8Array)) throw fail('not-bytes', `unpack: expected Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, null, -1);
  const r = new Reader(bytes);
  const mti = decodeBcd(r.take(MTI_BYTES, 'MTI', 0), 4, 0, 0);
  checkMti(mti, 'PROTOCOL', 0);

  const bitmapAt = r.pos;
  const primary = r.take(BITMAP_BYTES, 'primary bitmap', 1);
  const hasSecondary = (primary[0] & 0x80) !== 0;
  const secondary = hasSecondary ? r.take(BITMAP_BYTES, 'secondary bitmap', 1) : new Uint8Array(BITMAP_BYTES);
  if (hasSecondary && secondary.every((b) => b === 0)) {
    throw fail('empty-secondary', 'bit 1 announces a secondary bitmap that has no bit set', 1, bitmapAt + BITMAP_BYTES);
  }
  const numbers: number[] = [];
  for (let n = 2; n <= 128; n++) {
    const map = n <= 64 ? primary : secondary;
    const bit = n <= 64 ? n - 1 : n - 65;
    if ((map[bit >> 3] & (0x80 >> (bit & 7))) === 0) continue;
    if (!FIELDS.has(n)) {
      const at = bitmapAt + (n <= 64 ? 0 : BITMAP_BYTES) + (bit >> 3);
      throw fail('undefined-field', n === 65 ? 'bit 65 announces a tertiary bitmap, which 1987 does not have' : `bit ${n} announces a field not in hilt's field table`, n, at);
    }
    numbers.push(n);
  }
  checkMacPosition(numbers, 'PROTOCOL', bitmapAt);

  const fields = new Map<number, FieldValue>();
  for (const n of numbers) fields.set(n, readField(r, FIELDS.get(n) as FieldDef));
  if (options.allowTrailing !== true && r.pos !== bytes.length) {
    throw fail('trailing-bytes', `${bytes.length - r.pos} bytes after the end of the message`, null, r.pos);
  }
  // Every rule of the model (MTI, each field, MAC position) has been checked above with code PROTOCOL.
  return { message: _trustedMessage(mti, fields), consumed: r.pos };
}
