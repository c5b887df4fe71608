/**
 * Malformed ISO 8583 messages every decoder of the host link must refuse: unpack, verifyMessage on
 * bytes, and an IsoChannel receiving them as a frame. Each names the Iso8583Error reason (and field)
 * it must be refused with. Import it from a test and loop; do not copy it.
 *
 * The bytes are written by hand: MTI, then a bitmap computed here (not by the packager under test),
 * then each field's hex exactly as it would be on the wire, length prefix included.
 */
import { concatBytes, fromHex } from '../../src/util/bytes.js';
import type { Iso8583Reason } from '../../src/hostlink/iso8583/errors.js';

export interface BadMessage {
  name: string;
  bytes: Uint8Array;
  reason: Iso8583Reason;
  /** The field the error must name (0 = MTI, 1 = bitmaps), when it concerns one. */
  field?: number;
  why: string;
}

/** Bitmap(s) for these field numbers, bit 1 set when one is above 64 (or when forced). */
function bitmapHex(numbers: number[], forceSecondary = false): string {
  const secondary = forceSecondary || numbers.some((n) => n > 64);
  const b = new Uint8Array(secondary ? 16 : 8);
  if (secondary) b[0] |= 0x80;
  for (const n of numbers) b[Math.floor((n - 1) / 8)] |= 0x80 >> ((n - 1) % 8);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** MTI hex + bitmap + the fields' wire hex, in the order given. */
function message(mti: string, fields: Array<[number, string]>): Uint8Array {
  return fromHex(mti + bitmapHex(fields.map(([n]) => n)) + fields.map(([, hex]) => hex).join(''));
}

const h = (hex: string) => hex.replace(/\s/g, '');
const rep = (byte: string, n: number) => byte.repeat(n);

/** A valid 0230 (7, 11, 39, 41, 42, 53) as fields, to be broken one way at a time. */
const F7 = '0314093015';
const F11 = '0000000001';
const F39 = '3030';
const F41 = h('5445524D 30303031');
const F42 = h('52454144 45523031 20202020 202020');
const F53 = '0000000000000001';
const VALID_0230: Array<[number, string]> = [[7, F7], [11, F11], [39, F39], [41, F41], [42, F42], [53, F53]];

/** The valid 0230 above, packed (the packager must accept it). */
export const VALID_0230_BYTES = message('0230', VALID_0230);

function replace(n: number, hex: string): Array<[number, string]> {
  return VALID_0230.map(([k, v]) => [k, k === n ? hex : v]);
}

export const BAD_MESSAGES: readonly BadMessage[] = [
  { name: 'empty', bytes: new Uint8Array(0), reason: 'truncated', field: 0, why: 'no MTI' },
  { name: '1 byte', bytes: fromHex('02'), reason: 'truncated', field: 0, why: 'MTI cut after its first byte' },
  { name: 'MTI alone', bytes: fromHex('0230'), reason: 'truncated', field: 1, why: 'the primary bitmap is mandatory' },
  { name: 'MTI not BCD', bytes: fromHex('0A30' + bitmapHex([7])), reason: 'bad-digit', field: 0, why: 'nibble A in the MTI' },
  { name: 'MTI version 1', bytes: message('1230', VALID_0230), reason: 'bad-mti', field: 0, why: 'version 1 is ISO 8583:1993; hilt speaks 1987' },
  { name: 'MTI 0100', bytes: message('0100', VALID_0230), reason: 'unknown-mti', field: 0, why: 'authorization request: a 1987 MTI hilt does not use' },
  { name: 'MTI 0900', bytes: message('0900', VALID_0230), reason: 'unknown-mti', field: 0, why: 'class 9 does not exist in 1987' },
  { name: 'MTI 0231', bytes: message('0231', VALID_0230), reason: 'unknown-mti', field: 0, why: 'a repeat of a response is not a message hilt sends' },
  { name: 'primary bitmap cut', bytes: fromHex('0230 022000'), reason: 'truncated', field: 1, why: '3 of 8 bitmap bytes' },
  { name: 'secondary bitmap missing', bytes: fromHex('0800' + '8000000000000000'), reason: 'truncated', field: 1, why: 'bit 1 announces 8 more bitmap bytes' },
  { name: 'secondary bitmap empty', bytes: fromHex('0800' + '8000000000000000' + '0000000000000000'), reason: 'empty-secondary', field: 1, why: 'bit 1 set for a secondary bitmap with no bit: not canonical' },
  { name: 'bit 65 (tertiary bitmap)', bytes: fromHex('0800' + '8000000000000000' + '8000000000000000'), reason: 'undefined-field', field: 65, why: '1987 has no tertiary bitmap' },
  { name: 'bit 5 (undefined field)', bytes: fromHex('0230' + bitmapHex([5])), reason: 'undefined-field', field: 5, why: 'field 5 has no line in the table' },
  { name: 'bit 127 (undefined field)', bytes: fromHex('0800' + bitmapHex([127])), reason: 'undefined-field', field: 127, why: 'field 127 has no line in the table' },
  { name: 'fixed field cut', bytes: message('0230', [[7, '03140930']]), reason: 'truncated', field: 7, why: 'field 7 is 5 BCD bytes, 4 follow' },
  { name: 'last field cut', bytes: VALID_0230_BYTES.subarray(0, VALID_0230_BYTES.length - 1), reason: 'truncated', field: 53, why: 'the message ends inside field 53' },
  { name: 'BCD digit A', bytes: message('0230', replace(7, '0314093A15')), reason: 'bad-digit', field: 7, why: 'nibble A in a numeric field' },
  { name: 'pad nibble not 0', bytes: message('0800', [[70, '1001']]), reason: 'bad-digit', field: 70, why: 'n 3 packs as 0ddd: the first nibble must be 0' },
  { name: 'LLVAR n pad nibble', bytes: message('0200', [[32, '03' + '1234']]), reason: 'bad-digit', field: 32, why: '3 digits in 2 bytes: the pad nibble must be 0' },
  { name: 'LL prefix not BCD', bytes: message('0200', [[2, 'A1' + rep('00', 32)]]), reason: 'bad-digit', field: 2, why: 'a length prefix is BCD' },
  { name: 'LL prefix over the maximum', bytes: message('0200', [[2, '33' + rep('00', 33)]]), reason: 'bad-length', field: 2, why: 'field 2 holds at most 32 bytes' },
  { name: 'LL prefix over the n maximum', bytes: message('0200', [[32, '12' + rep('11', 6)]]), reason: 'bad-length', field: 32, why: 'field 32 holds at most 11 digits' },
  { name: 'LLL prefix 1000', bytes: message('0200', [[48, '1000']]), reason: 'bad-length', field: 48, why: 'an LLL prefix is 0000..0999; 1000 is above every maximum' },
  { name: 'LLL prefix over the maximum', bytes: message('0200', [[55, '0256' + rep('00', 256)]]), reason: 'bad-length', field: 55, why: 'field 55 holds at most 255 bytes' },
  { name: 'LLL prefix cut', bytes: message('0200', [[48, '00']]), reason: 'truncated', field: 48, why: 'the LLL prefix is 2 bytes' },
  { name: 'LLVAR value cut', bytes: message('0200', [[35, '37' + rep('11', 5)]]), reason: 'truncated', field: 35, why: '37 track 2 characters are 19 bytes, 5 follow' },
  { name: 'ans control character', bytes: message('0230', replace(41, '5445524D00303031')), reason: 'bad-charset', field: 41, why: '00 is not printable' },
  { name: 'ans byte above 7E', bytes: message('0230', replace(42, '80' + F42.slice(2))), reason: 'bad-charset', field: 42, why: 'ASCII only' },
  { name: 'an with a dash', bytes: message('0230', replace(39, '2D30')), reason: 'bad-charset', field: 39, why: 'an is letters, digits and space' },
  { name: 'track 2 nibble A', bytes: message('0200', [[35, '02' + 'A1']]), reason: 'bad-digit', field: 35, why: 'track 2 nibbles are digits and D' },
  { name: 'track 2 pad not F', bytes: message('0200', [[35, '01' + '12']]), reason: 'bad-digit', field: 35, why: 'an odd track 2 ends with an F nibble' },
  { name: 'field 55 not BER-TLV', bytes: message('0200', [[55, '0003' + '9F0205']]), reason: 'bad-tlv', field: 55, why: 'the object announces 5 value bytes, none follow' },
  { name: 'field 48 padding', bytes: message('0200', [[48, '0002' + '0000']]), reason: 'bad-tlv', field: 48, why: 'TLV fields are strict: 00 is padding, not a tag' },
  { name: 'field 63 value cut', bytes: message('0310', [[63, '0003' + 'DF5101']]), reason: 'bad-tlv', field: 63, why: 'DF51 01 announces a value byte the field does not hold' },
  { name: 'field 64 with a secondary bitmap', bytes: message('0800', [[64, rep('00', 8)], [70, '0001']]), reason: 'mac-position', field: 64, why: 'with a secondary bitmap the MAC goes in 128' },
  { name: 'trailing byte', bytes: concatBytes(VALID_0230_BYTES, fromHex('FF')), reason: 'trailing-bytes', why: 'a frame holds exactly one message' },
];

/** Not bytes at all: unpack refuses these with reason 'not-bytes', never a TypeError. */
export const NOT_BYTES: readonly { name: string; value: unknown }[] = [
  { name: 'undefined', value: undefined },
  { name: 'null', value: null },
  { name: 'hex string', value: '0800' },
  { name: 'number array', value: [8, 0] },
  { name: 'ArrayBuffer', value: new ArrayBuffer(10) },
  { name: 'DataView', value: new DataView(new ArrayBuffer(10)) },
  { name: 'Uint16Array', value: Uint16Array.of(0x0800) },
  { name: 'plain object', value: { length: 2, 0: 8, 1: 0 } },
];
