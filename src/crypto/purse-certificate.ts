/**
 * The e-money purse's shared cryptography (applets-spec/emoney-purse.md, "Cryptography"): what the
 * card computes and what the issuer computes or checks, as pure functions over bytes.
 *
 * One secret per card, the **purse key**: derived by the issuer from its purse master key and the card
 * serial (`purseCardKey`), written into the card at issuance, never read back. The terminal never
 * holds it (it holds SCP03 keys, which only open the secure channel). Two uses, kept apart by the
 * first byte of every MAC input (its "kind"), so that no input of one use can equal an input of the
 * other:
 *
 * - **Transaction certificate** (card → issuer), kind C1: AES-CMAC over the transaction as the card
 *   recorded it. The terminal forwards it; the issuer verifies it. A terminal cannot make one up.
 * - **Load cryptogram** (issuer → card), kind A1: AES-CMAC over the load the issuer authorized,
 *   bound to the card's transaction counter before the load, so it is good for one load only. The
 *   card verifies it before crediting. A terminal cannot make one up either.
 *
 * Both MACs are the full 16-byte CMAC tag (no truncation: a card answers one guess per APDU and a
 * stored certificate may be checked offline years later, so there is no reason to give bits away).
 *
 * Certificate input (all integers unsigned big-endian; n = serial length, 1..32):
 *
 *   offset | bytes | field
 *   -------|-------|---------------------------------------------------------------
 *   0      | 1     | kind: C1
 *   1      | 1     | format version: 01
 *   2      | 1     | n
 *   3      | n     | card serial
 *   3+n    | 4     | card transaction counter of this transaction (after the increment)
 *   7+n    | 1     | transaction type: 01 DEBIT, 02 LOAD
 *   8+n    | 4     | amount, minor units
 *   12+n   | 2     | currency, ISO 4217 numeric as BCD (JPY 392 → 03 92)
 *   14+n   | 8     | terminal id
 *   22+n   | 4     | terminal sequence number
 *   26+n   | 7     | date-time, BCD YYYY MM DD hh mm ss
 *   33+n   | 4     | balance after the transaction
 *   37+n   |       | end
 *
 * Load cryptogram input:
 *
 *   offset | bytes | field
 *   -------|-------|---------------------------------------------------------------
 *   0      | 1     | kind: A1
 *   1      | 1     | format version: 01
 *   2      | 1     | n
 *   3      | n     | card serial
 *   3+n    | 4     | card transaction counter BEFORE the load (as READ STATUS reports it)
 *   7+n    | 4     | amount
 *   11+n   | 2     | currency (BCD)
 *   13+n   | 8     | terminal id
 *   21+n   | 4     | terminal sequence number
 *   25+n   | 7     | date-time (BCD)
 *   32+n   | 12    | issuer reference (e.g. the retrieval reference number of the authorization)
 *   44+n   |       | end
 *
 * Purse key derivation (NIST SP 800-108 counter mode, PRF = AES-CMAC keyed with the master key,
 * output as long as the master key), PRF input for counter i (01, then 02 for 192/256-bit keys):
 *
 *   offset | bytes | field
 *   -------|-------|---------------------------------------------------------------
 *   0      | 1     | i
 *   1      | 17    | label: ASCII "hilt-purse-key-v1"
 *   18     | 1     | separator 00
 *   19     | 1     | n, serial length (1..32)
 *   20     | n     | card serial
 *   20+n   | 2     | L, output length in bits: 0080, 00C0, 0100
 *
 * The same shape as the SCP03 card-key diversification of diversify.ts, with a label of its own:
 * every SCP03 KDF input starts with 00, every diversify.ts input with i then "hilt-card-key-v1",
 * every input here with i then "hilt-purse-key-v1"; the labels differ at their sixth byte, so no
 * input of one scheme equals an input of another under the same master key. The serial is the card
 * serial itself (GET DATA DF01), length-prefixed, so distinct serials give distinct inputs.
 */
import { cmac, CMAC_LENGTH } from './cmac.js';
import { cmacCounterKdf } from './kdf.js';
import { assertAesKey } from './aes.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { BadInputError } from '../util/errors.js';
import { concatBytes, constantTimeEqual, fromHex, zeroize } from '../util/bytes.js';

// ---------------------------------------------------------------------------------------------
// Tables

/** First byte of every MAC input: what the MAC is for. */
export const PURSE_MAC_KIND = { certificate: 0xc1, loadCryptogram: 0xa1 } as const;

/** Format version of both MAC inputs. */
export const PURSE_MAC_FORMAT_VERSION = 0x01;

/** Transaction types, as coded in certificates and log records. */
export const PURSE_TRANSACTION_TYPE = { debit: 0x01, load: 0x02 } as const;
export type PurseTransactionType = keyof typeof PURSE_TRANSACTION_TYPE;

/** Field sizes in bytes, shared by the MAC inputs and the applet's data fields. */
export const PURSE_FIELD_LENGTH = {
  counter: 4,
  amount: 4,
  balance: 4,
  currency: 2,
  terminalId: 8,
  terminalSequence: 4,
  dateTime: 7,
  issuerReference: 12,
  mac: CMAC_LENGTH,
} as const;

/** Largest value of every 4-byte field (amounts, balances, counters, sequence numbers). */
export const PURSE_U32_MAX = 0xffff_ffff;

/** Bounds of the card serial. */
export const PURSE_SERIAL_MIN = 1;
export const PURSE_SERIAL_MAX = 32;

/** Label of the purse key derivation, 17 ASCII bytes. */
export const PURSE_KEY_LABEL = 'hilt-purse-key-v1';
const PURSE_KEY_LABEL_BYTES = Uint8Array.from(PURSE_KEY_LABEL, (c) => c.charCodeAt(0));

// ---------------------------------------------------------------------------------------------
// Field codecs: currency and date-time, BCD

/** ISO 4217 numeric code 1..999 as two BCD bytes: 392 → 03 92, 978 → 09 78. */
export function encodeCurrency(code: number): Uint8Array {
  assertInt(code, 'currency (ISO 4217 numeric)', 1, 999);
  const d = [Math.floor(code / 100), Math.floor(code / 10) % 10, code % 10];
  return Uint8Array.of(d[0], (d[1] << 4) | d[2]);
}

/** The ISO 4217 numeric code of two BCD bytes, or null if they are not 0d dd with a code 1..999. */
export function decodeCurrency(bytes: Uint8Array): number | null {
  if (!(bytes instanceof Uint8Array) || bytes.length !== PURSE_FIELD_LENGTH.currency) return null;
  const nibbles = [bytes[0] >> 4, bytes[0] & 15, bytes[1] >> 4, bytes[1] & 15];
  if (nibbles[0] !== 0 || nibbles.some((x) => x > 9)) return null;
  const code = nibbles[1] * 100 + nibbles[2] * 10 + nibbles[3];
  return code === 0 ? null : code;
}

export interface PurseDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** Ranges of the date-time fields; the day is checked against 1..31 whatever the month. */
const DATE_TIME_RANGES: readonly (readonly [keyof PurseDateTime, number, number])[] = [
  ['year', 0, 9999],
  ['month', 1, 12],
  ['day', 1, 31],
  ['hour', 0, 23],
  ['minute', 0, 59],
  ['second', 0, 59],
];

function _bcdByte(v: number): number {
  return (Math.floor(v / 10) << 4) | v % 10;
}

/** The 7 BCD bytes YYYY MM DD hh mm ss of a date-time (the terminal's local time, as on a receipt). */
export function encodePurseDateTime(dt: PurseDateTime): Uint8Array {
  for (const [name, min, max] of DATE_TIME_RANGES) assertInt(dt?.[name], `date-time ${name}`, min, max);
  return Uint8Array.of(
    _bcdByte(Math.floor(dt.year / 100)),
    _bcdByte(dt.year % 100),
    _bcdByte(dt.month),
    _bcdByte(dt.day),
    _bcdByte(dt.hour),
    _bcdByte(dt.minute),
    _bcdByte(dt.second),
  );
}

/** The date-time of 7 BCD bytes, or null when a nibble is not a digit or a field is out of range. */
export function decodePurseDateTime(bytes: Uint8Array): PurseDateTime | null {
  if (!(bytes instanceof Uint8Array) || bytes.length !== PURSE_FIELD_LENGTH.dateTime) return null;
  const v: number[] = [];
  for (const b of bytes) {
    if (b >> 4 > 9 || (b & 15) > 9) return null;
    v.push((b >> 4) * 10 + (b & 15));
  }
  const dt: PurseDateTime = { year: v[0] * 100 + v[1], month: v[2], day: v[3], hour: v[4], minute: v[5], second: v[6] };
  for (const [name, min, max] of DATE_TIME_RANGES) if (dt[name] < min || dt[name] > max) return null;
  return dt;
}

function _u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function _assertSerial(serial: unknown): asserts serial is Uint8Array {
  assertBytes(serial, 'card serial');
  if (serial.length < PURSE_SERIAL_MIN || serial.length > PURSE_SERIAL_MAX) {
    throw new BadInputError(`card serial: expected ${PURSE_SERIAL_MIN} to ${PURSE_SERIAL_MAX} bytes, got ${serial.length}`);
  }
}

function _assertU32(v: unknown, name: string): asserts v is number {
  assertInt(v, name, 0, PURSE_U32_MAX);
}

function _assertDateTime(bytes: unknown): asserts bytes is Uint8Array {
  assertBytes(bytes, 'date-time', [PURSE_FIELD_LENGTH.dateTime]);
  if (decodePurseDateTime(bytes) === null) throw new BadInputError('date-time: expected 7 BCD bytes YYYY MM DD hh mm ss with every field in range');
}

// ---------------------------------------------------------------------------------------------
// Transaction certificate

/** What a transaction certificate covers. */
export interface PurseCertificateFields {
  /** The card serial, 1..32 bytes. */
  serial: Uint8Array;
  /** The card transaction counter of this transaction (after the increment). */
  counter: number;
  type: PurseTransactionType;
  /** Minor units, 0..2^32-1 (the card never certifies 0, the encoding allows it). */
  amount: number;
  /** ISO 4217 numeric code, 1..999. */
  currency: number;
  /** 8 bytes. */
  terminalId: Uint8Array;
  terminalSequence: number;
  /** 7 BCD bytes (encodePurseDateTime). */
  dateTime: Uint8Array;
  balanceAfter: number;
}

/** The certificate's MAC input (layout in the module comment). Throws BadInputError on a bad field. */
export function encodeCertificateInput(f: PurseCertificateFields): Uint8Array {
  _assertSerial(f.serial);
  _assertU32(f.counter, 'counter');
  if (!Object.hasOwn(PURSE_TRANSACTION_TYPE, f.type)) throw new BadInputError(`transaction type: expected 'debit' or 'load', got ${String(f.type)}`);
  _assertU32(f.amount, 'amount');
  assertBytes(f.terminalId, 'terminal id', [PURSE_FIELD_LENGTH.terminalId]);
  _assertU32(f.terminalSequence, 'terminal sequence number');
  _assertDateTime(f.dateTime);
  _assertU32(f.balanceAfter, 'balance after');
  return concatBytes(
    Uint8Array.of(PURSE_MAC_KIND.certificate, PURSE_MAC_FORMAT_VERSION, f.serial.length),
    f.serial,
    _u32(f.counter),
    Uint8Array.of(PURSE_TRANSACTION_TYPE[f.type]),
    _u32(f.amount),
    encodeCurrency(f.currency),
    f.terminalId,
    _u32(f.terminalSequence),
    f.dateTime,
    _u32(f.balanceAfter),
  );
}

/** The 16-byte transaction certificate: AES-CMAC(purse key, certificate input). */
export function purseCertificate(key: Uint8Array, fields: PurseCertificateFields): Uint8Array {
  assertAesKey(key, 'purse key');
  const input = encodeCertificateInput(fields);
  const mac = cmac(key, input);
  zeroize(input);
  return mac;
}

/**
 * True when `mac` is the certificate of `fields` under `key` (compared in constant time). A `mac`
 * that is not 16 bytes is simply false; bad fields or a bad key throw BadInputError.
 */
export function verifyPurseCertificate(key: Uint8Array, fields: PurseCertificateFields, mac: Uint8Array): boolean {
  const expected = purseCertificate(key, fields);
  const ok = mac instanceof Uint8Array && constantTimeEqual(expected, mac);
  zeroize(expected);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Load cryptogram

/** What the issuer's load cryptogram covers. */
export interface LoadCryptogramFields {
  serial: Uint8Array;
  /** The card transaction counter BEFORE the load, as READ STATUS reported it. */
  counter: number;
  amount: number;
  currency: number;
  terminalId: Uint8Array;
  terminalSequence: number;
  dateTime: Uint8Array;
  /** 12 bytes chosen by the issuer (e.g. the authorization's retrieval reference number, ASCII). */
  issuerReference: Uint8Array;
}

/** The load cryptogram's MAC input (layout in the module comment). */
export function encodeLoadCryptogramInput(f: LoadCryptogramFields): Uint8Array {
  _assertSerial(f.serial);
  _assertU32(f.counter, 'counter');
  _assertU32(f.amount, 'amount');
  assertBytes(f.terminalId, 'terminal id', [PURSE_FIELD_LENGTH.terminalId]);
  _assertU32(f.terminalSequence, 'terminal sequence number');
  _assertDateTime(f.dateTime);
  assertBytes(f.issuerReference, 'issuer reference', [PURSE_FIELD_LENGTH.issuerReference]);
  return concatBytes(
    Uint8Array.of(PURSE_MAC_KIND.loadCryptogram, PURSE_MAC_FORMAT_VERSION, f.serial.length),
    f.serial,
    _u32(f.counter),
    _u32(f.amount),
    encodeCurrency(f.currency),
    f.terminalId,
    _u32(f.terminalSequence),
    f.dateTime,
    f.issuerReference,
  );
}

/** The 16-byte load cryptogram: AES-CMAC(purse key, load cryptogram input). The issuer computes it. */
export function loadCryptogram(key: Uint8Array, fields: LoadCryptogramFields): Uint8Array {
  assertAesKey(key, 'purse key');
  const input = encodeLoadCryptogramInput(fields);
  const mac = cmac(key, input);
  zeroize(input);
  return mac;
}

/** True when `cryptogram` is the load cryptogram of `fields` under `key` (constant-time compare). */
export function verifyLoadCryptogram(key: Uint8Array, fields: LoadCryptogramFields, cryptogram: Uint8Array): boolean {
  const expected = loadCryptogram(key, fields);
  const ok = cryptogram instanceof Uint8Array && constantTimeEqual(expected, cryptogram);
  zeroize(expected);
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Purse key derivation

/** The PRF input for one counter value (exported so tests can pin the layout byte by byte). */
export function purseKeyDerivationInput(serial: Uint8Array, bits: 128 | 192 | 256, counter: number): Uint8Array {
  _assertSerial(serial);
  if (bits !== 128 && bits !== 192 && bits !== 256) throw new BadInputError(`output length: expected 128, 192 or 256 bits, got ${String(bits)}`);
  assertInt(counter, 'KDF counter', 1, 2);
  const out = new Uint8Array(1 + PURSE_KEY_LABEL_BYTES.length + 1 + 1 + serial.length + 2);
  out[0] = counter;
  out.set(PURSE_KEY_LABEL_BYTES, 1);
  // separator 00 at 18
  out[19] = serial.length;
  out.set(serial, 20);
  out[20 + serial.length] = bits >> 8;
  out[21 + serial.length] = bits & 0xff;
  return out;
}

/**
 * The card's purse key, from the issuer's purse master key (16, 24 or 32 bytes) and the card serial.
 * Same length as the master key. The caller owns and zeroizes the result.
 */
export function purseCardKey(master: Uint8Array, serial: Uint8Array): Uint8Array {
  assertAesKey(master, 'purse master key');
  _assertSerial(serial);
  const bits = (master.length * 8) as 128 | 192 | 256;
  return cmacCounterKdf(master, master.length, (i) => purseKeyDerivationInput(serial, bits, i));
}

// ---------------------------------------------------------------------------------------------
// Test master key

/**
 * TEST KEY, published on purpose: the purse master key of the demo e-money issuer (a random value
 * drawn once). Demo cards are issued with it and the mock issuer host verifies with it. Never use it
 * for real cards or real value.
 */
export const TEST_PURSE_MASTER_HEX = 'E84DE871681C08E2F019D68F202AC237';

/** A fresh copy of the TEST purse master key; the caller zeroizes it. */
export function testPurseMasterKey(): Uint8Array {
  return fromHex(TEST_PURSE_MASTER_HEX);
}
