/**
 * hilt's ISO 8583:1987 field profile: one line per field, as data. The packager, the message model
 * and the documentation (src/hostlink/README.md) all follow this table; nothing else knows a field's
 * format.
 *
 * Types (ISO 8583 notation):
 *   n    numeric digits 0-9
 *   an   letters, digits, and space (used only as right padding of fixed fields)
 *   ans  printable ASCII 20..7E
 *   b    binary, raw bytes
 *   z    track 2 data: digits and the separator '='
 *
 * One wire encoding per type (`ENCODING`), the same in every field (the "binary" flavour of 1987,
 * jPOS's ISO87B family):
 *   n    BCD, two digits per byte, right-justified: an odd number of digits gets one 0 nibble in front.
 *        Unpacking refuses a non-zero pad nibble, so unpack → pack gives back the same bytes.
 *   an   ASCII, one byte per character
 *   ans  ASCII, one byte per character
 *   b    the bytes as they are
 *   z    one nibble per character (0-9, '=' as D), left-justified: an odd count gets an F nibble after
 *        the last character (the EMV track 2 convention).
 *
 * Lengths: `length` is the fixed length (kind 'fixed') or the maximum (LLVAR, LLLVAR), counted in
 * digits for n, characters for an, ans and z, bytes for b. (ISO writes b fields in bits: b 64 is
 * 8 bytes here.) The length prefix of a variable field says that same count:
 *   LLVAR    1 byte BCD, 00..99
 *   LLLVAR   2 bytes BCD, 0000..0999 (the first nibble is always 0)
 *
 * The message type indicator is 4 digits BCD (2 bytes); the primary bitmap is 8 bytes binary, bit 1
 * (the most significant bit of its first byte) announcing the secondary bitmap, 8 more bytes for
 * fields 65..128. Field 1 is therefore the secondary bitmap itself and field 65 (the tertiary bitmap
 * bit) is never set. A field number's bit is bit (n - 1) of the bitmaps counted from the most
 * significant bit of the first byte: byte (n - 1) >> 3, mask 80 >> ((n - 1) & 7).
 *
 * Where hilt's profile departs from the 1987 formats, `iso1987` says what the standard has and `hilt`
 * says why. Fields 60..63 are "reserved private" in 1987; hilt's use of them is in `hilt`.
 */

export type FieldType = 'n' | 'an' | 'ans' | 'b' | 'z';
export type LengthKind = 'fixed' | 'LLVAR' | 'LLLVAR';
export type WireEncoding = 'bcd' | 'ascii' | 'binary' | 'track2-nibbles';

/** The one wire encoding of each type. */
export const ENCODING: Readonly<Record<FieldType, WireEncoding>> = Object.freeze({
  n: 'bcd',
  an: 'ascii',
  ans: 'ascii',
  b: 'binary',
  z: 'track2-nibbles',
});

/** Largest count a length prefix can say: LLVAR 99, LLLVAR 999. */
export const PREFIX_MAX: Readonly<Record<Exclude<LengthKind, 'fixed'>, number>> = Object.freeze({ LLVAR: 99, LLLVAR: 999 });
/** Bytes of a length prefix. */
export const PREFIX_BYTES: Readonly<Record<LengthKind, number>> = Object.freeze({ fixed: 0, LLVAR: 1, LLLVAR: 2 });

export interface FieldDef {
  /** Field number, 2..128 (1 and 65 are bitmap bits, not fields). */
  readonly n: number;
  readonly name: string;
  readonly type: FieldType;
  readonly kind: LengthKind;
  /** Fixed length, or maximum for a variable field (digits, characters, or bytes for b). */
  readonly length: number;
  /** The value must be well-formed BER-TLV (src/apdu/tlv.ts, strict: no padding). */
  readonly tlv: boolean;
  /** The 1987 format where hilt's differs. */
  readonly iso1987?: string;
  /** What hilt carries in the field, where the name does not say it. */
  readonly hilt?: string;
}

interface Extra {
  tlv?: boolean;
  iso1987?: string;
  hilt?: string;
}

function f(n: number, name: string, type: FieldType, kind: LengthKind, length: number, extra: Extra = {}): FieldDef {
  return Object.freeze({ n, name, type, kind, length, tlv: extra.tlv === true, iso1987: extra.iso1987, hilt: extra.hilt });
}

// prettier-ignore
/** The profile. Fields not listed here are refused, in a bitmap and in a message. */
export const FIELD_TABLE: readonly FieldDef[] = Object.freeze([
  f(2,   'Primary account number',               'b',   'LLVAR',  32,  { iso1987: 'n..19', hilt: 'the card serial, 1..32 raw bytes (GET DATA DF01), which is not a decimal PAN' }),
  f(3,   'Processing code',                      'n',   'fixed',  6,   { hilt: 'PROCESSING_CODES in messages.ts' }),
  f(4,   'Amount, transaction',                  'n',   'fixed',  12,  { hilt: 'integer minor units of field 49' }),
  f(7,   'Transmission date and time',           'n',   'fixed',  10,  { hilt: 'MMDDhhmmss, UTC' }),
  f(11,  'Systems trace audit number',           'n',   'fixed',  10,  { iso1987: 'n 6', hilt: 'the reader sequence number, a 32-bit counter that must never wrap (the host keys records by terminal id and sequence)' }),
  f(12,  'Time, local transaction',              'n',   'fixed',  6,   { hilt: 'hhmmss' }),
  f(13,  'Date, local transaction',              'n',   'fixed',  4,   { hilt: 'MMDD' }),
  f(24,  'Network international identifier',     'n',   'fixed',  3,   { hilt: 'destination host the gateway routes to' }),
  f(32,  'Acquiring institution identification', 'n',   'LLVAR',  11),
  f(35,  'Track 2 data',                         'z',   'LLVAR',  37,  { hilt: 'defined, not used' }),
  f(37,  'Retrieval reference number',           'an',  'fixed',  12,  { hilt: "the issuer's reference of a load, which the card's load cryptogram covers" }),
  f(38,  'Authorization identification response', 'an', 'fixed',  6),
  f(39,  'Response code',                        'an',  'fixed',  2,   { hilt: 'RESPONSE_CODES in messages.ts' }),
  f(41,  'Card acceptor terminal identification', 'ans', 'fixed', 8,   { hilt: 'terminal id, right-padded with spaces' }),
  f(42,  'Card acceptor identification code',    'ans', 'fixed',  15,  { hilt: 'reader id, right-padded with spaces' }),
  f(48,  'Additional data, private',             'b',   'LLLVAR', 999, { tlv: true, iso1987: 'ans..999', hilt: 'BER-TLV of hilt tags (HILT_TAGS in messages.ts)' }),
  f(49,  'Currency code, transaction',           'n',   'fixed',  3,   { hilt: 'ISO 4217 numeric' }),
  f(52,  'Personal identification number data',  'b',   'fixed',  8,   { hilt: 'defined, not used' }),
  f(53,  'Security related control information', 'n',   'fixed',  16,  { hilt: 'version of the key that MACs this message, right-justified' }),
  f(55,  'ICC data',                             'b',   'LLLVAR', 255, { tlv: true, iso1987: 'ans..999 (reserved ISO)', hilt: 'BER-TLV card data, as EMV: the purse transaction and its certificate, the load cryptogram' }),
  f(60,  'Reserved private',                     'ans', 'LLLVAR', 999, { hilt: 'reserved for hilt, not sent' }),
  f(61,  'Reserved private',                     'ans', 'LLLVAR', 999, { hilt: 'reserved for hilt, not sent' }),
  f(62,  'Reserved private',                     'b',   'LLLVAR', 999, { tlv: true, iso1987: 'ans..999', hilt: 'reader authentication: challenge and signature, BER-TLV' }),
  f(63,  'Reserved private',                     'b',   'LLLVAR', 999, { tlv: true, iso1987: 'ans..999', hilt: 'negative-list entries of one delta or snapshot chunk, BER-TLV' }),
  f(64,  'Message authentication code',          'b',   'fixed',  8,   { hilt: 'MAC of a message without secondary bitmap (mac.ts)' }),
  f(70,  'Network management information code', 'n',   'fixed',  3,   { hilt: 'NETWORK_CODES in messages.ts' }),
  f(74,  'Credits, number',                      'n',   'fixed',  10,  { hilt: 'loads' }),
  f(75,  'Credits, reversal number',             'n',   'fixed',  10,  { hilt: 'reversed loads' }),
  f(76,  'Debits, number',                       'n',   'fixed',  10,  { hilt: 'purchases' }),
  f(77,  'Debits, reversal number',              'n',   'fixed',  10,  { hilt: 'reversed purchases' }),
  f(81,  'Authorizations, number',               'n',   'fixed',  10,  { hilt: 'load authorizations asked for (0200)' }),
  f(86,  'Credits, amount',                      'n',   'fixed',  16),
  f(87,  'Credits, reversal amount',             'n',   'fixed',  16),
  f(88,  'Debits, amount',                       'n',   'fixed',  16),
  f(89,  'Debits, reversal amount',              'n',   'fixed',  16),
  f(90,  'Original data elements',               'n',   'fixed',  42,  { hilt: 'original MTI (4), STAN (10), transmission date-time (10), acquiring institution (11), 0000000 (7)' }),
  f(128, 'Message authentication code',          'b',   'fixed',  8,   { hilt: 'MAC of a message with secondary bitmap (mac.ts)' }),
]);

/** The table by field number. */
export const FIELDS: ReadonlyMap<number, FieldDef> = new Map(FIELD_TABLE.map((d) => [d.n, d]));

/** The MAC field of a message with only a primary bitmap, and of one with a secondary bitmap. */
export const MAC_FIELD_PRIMARY = 64;
export const MAC_FIELD_SECONDARY = 128;
/** Bitmap bit 1: a secondary bitmap follows. Bit 65: a tertiary one (never in 1987, refused). */
export const SECONDARY_BITMAP_BIT = 1;
export const TERTIARY_BITMAP_BIT = 65;

export function fieldDef(n: number): FieldDef | undefined {
  return FIELDS.get(n);
}

const CHARSET: Readonly<Record<Exclude<FieldType, 'b'>, RegExp>> = Object.freeze({
  n: /^[0-9]*$/,
  an: /^[A-Za-z0-9 ]*$/,
  ans: /^[\x20-\x7e]*$/,
  z: /^[0-9=]*$/,
});

/** What the problem with `value` for field `def` is: [reason, text], or undefined if it fits. */
export function fieldValueProblem(def: FieldDef, value: unknown): ['bad-type' | 'bad-length' | 'bad-charset', string] | undefined {
  if (def.type === 'b') {
    if (!(value instanceof Uint8Array)) return ['bad-type', `${def.name} is binary: expected Uint8Array, got ${describeType(value)}`];
  } else if (typeof value !== 'string') {
    return ['bad-type', `${def.name} is ${def.type}: expected a string, got ${describeType(value)}`];
  }
  const length = value.length;
  if (def.kind === 'fixed' ? length !== def.length : length > def.length) {
    const unit = def.type === 'b' ? 'bytes' : def.type === 'n' ? 'digits' : 'characters';
    return ['bad-length', `${def.name}: expected ${def.kind === 'fixed' ? '' : 'at most '}${def.length} ${unit}, got ${length}`];
  }
  if (typeof value === 'string' && def.type !== 'b' && !CHARSET[def.type].test(value)) {
    const bad = [...value].find((c) => !CHARSET[def.type as Exclude<FieldType, 'b'>].test(c)) ?? '?';
    return ['bad-charset', `${def.name} (${def.type}): character ${JSON.stringify(bad)} is not allowed`];
  }
  return undefined;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof Uint8Array) return 'Uint8Array';
  return typeof value;
}
