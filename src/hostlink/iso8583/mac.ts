/**
 * Message authentication of hilt's host link, and the per-terminal keys it uses.
 *
 * MAC scheme (the ANSI X9.19 / ISO 9807 shape with AES-CMAC as the function):
 * - The MAC field is 64 for a message with only a primary bitmap and 128 for one with a secondary
 *   bitmap (any field 65..127 present). It is always the last field, so its value is always the last
 *   8 bytes of the packed message.
 * - MAC input: the packed message with the MAC field present in the bitmap, from the first MTI byte
 *   up to (excluding) the MAC field's value. MTI and bitmaps are covered, so a field cannot be added,
 *   removed or moved without breaking the MAC, and a request cannot be replayed as its response.
 * - MAC = the first 8 bytes of AES-CMAC(terminal MAC key, input) (SP 800-38B allows truncation to 64
 *   bits for messages this short and this few per key).
 * - Verification recomputes it and compares in constant time. A message without its MAC field, or
 *   with its MAC in the other field, does not verify.
 * - Field 53 says the version of the key that MACs the message, so a host can roll keys (the
 *   0800/0810 key change of messages.ts) while older messages are still in flight.
 *
 * Per-terminal keys: the host holds one master key per use and version; a terminal holds only its own
 * keys, derived (NIST SP 800-108 KDF in counter mode, PRF = AES-CMAC keyed with the master key, output
 * as long as the master key) with this PRF input for counter i (01, then 02 for 192/256-bit keys):
 *
 *   offset | bytes | field
 *   -------|-------|------------------------------------------------------------------
 *   0      | 1     | i
 *   1      | 20    | label: ASCII "hilt-hostlink-key-v1"
 *   21     | 1     | separator 00
 *   22     | 1     | usage: 01 MAC key, 02 key-encryption key (wraps a new MAC key at key change)
 *   23     | 1     | key version number (01..FF)
 *   24     | 1     | n, terminal id length (1..8)
 *   25     | n     | terminal id, ASCII, without field 41's padding
 *   25+n   | 2     | L, output length in bits: 0080, 00C0, 0100
 *
 * Key = the first L/8 bytes of CMAC(master, input(1)) || CMAC(master, input(2)). Domain separation
 * from hilt's other CMAC KDFs under a shared key: every SCP03 input starts with 00; the card-key
 * (diversify.ts) and purse-key (purse-certificate.ts) inputs start with i then "hilt-card-key-v1" and
 * "hilt-purse-key-v1"; these start with i then "hilt-hostlink-key-v1", which differs from both at
 * its sixth byte. The length prefix makes (usage, version, terminal id, L) → input injective.
 *
 * Key wrapping (key change): the new key K, padded ISO 9797-1 method 2 (80 00..) to a whole number of
 * AES blocks, encrypted AES-CBC with a zero IV under the terminal's key-encryption key, plus K's
 * 3-byte key check value. The wrap is not authenticated by itself: it travels inside a MACed 0810.
 */
import { cmac } from '../../crypto/cmac.js';
import { cmacCounterKdf } from '../../crypto/kdf.js';
import { aesCbcDecrypt, aesCbcEncrypt, assertAesKey, AES_BLOCK } from '../../crypto/aes.js';
import { keyCheckValue, KCV_LENGTH } from '../../crypto/diversify.js';
import { assertBytes, assertInt } from '../../util/assert.js';
import { BadInputError, HiltError } from '../../util/errors.js';
import { constantTimeEqual, zeroize } from '../../util/bytes.js';
import { IsoMessage } from './message.js';
import { MAC_FIELD_PRIMARY, MAC_FIELD_SECONDARY } from './fields.js';
import { pack, unpack } from './packager.js';

/** Bytes of the MAC in field 64 / 128. */
export const MAC_LENGTH = 8;

/** Why a message did not authenticate. */
export type MacFailure =
  | 'bad-mac' // the MAC does not verify under the key
  | 'no-mac' // the MAC field is absent (or in the wrong one of 64 / 128)
  | 'no-key'; // no key for the message's terminal id and key version

/**
 * A message that failed authentication. `isoMessage` is the decoded message (NOT authentic: use it
 * only to address a refusal, response code 63), when there is one.
 */
export class IsoMacError extends HiltError {
  readonly reason: MacFailure;
  readonly isoMessage: IsoMessage | null;
  constructor(reason: MacFailure, message: string, isoMessage: IsoMessage | null = null) {
    super('AUTH_FAILED', message);
    this.reason = reason;
    this.isoMessage = isoMessage;
  }
}

/** 128 when the message has any field 65..127 (so a secondary bitmap), else 64. */
export function macFieldFor(message: IsoMessage): 64 | 128 {
  return message.numbers().some((n) => n > 64 && n < MAC_FIELD_SECONDARY) ? MAC_FIELD_SECONDARY : MAC_FIELD_PRIMARY;
}

function _mac(key: Uint8Array, packed: Uint8Array): Uint8Array {
  const tag = cmac(key, packed.subarray(0, packed.length - MAC_LENGTH));
  const mac = tag.slice(0, MAC_LENGTH);
  zeroize(tag);
  return mac;
}

/** The message with its MAC in field 64 or 128 (any MAC it had is replaced). */
export function signMessage(message: IsoMessage, key: Uint8Array): IsoMessage {
  if (!(message instanceof IsoMessage)) throw new BadInputError('signMessage: expected an IsoMessage');
  assertAesKey(key, 'MAC key');
  const base = message.without(MAC_FIELD_PRIMARY, MAC_FIELD_SECONDARY);
  const field = macFieldFor(base);
  const packed = pack(base.with(field, new Uint8Array(MAC_LENGTH)));
  return base.with(field, _mac(key, packed));
}

/**
 * Whether the message (or its packed bytes, as received) carries a valid MAC under `key`. Bytes
 * that do not unpack throw the codec's Iso8583Error: they are not a message, so not a MAC question.
 */
export function verifyMessage(input: IsoMessage | Uint8Array, key: Uint8Array): boolean {
  assertAesKey(key, 'MAC key');
  let message: IsoMessage;
  let packed: Uint8Array;
  if (input instanceof IsoMessage) {
    message = input;
    packed = pack(input);
  } else {
    // unpack is strict: what it accepts packs back to exactly these bytes, so they are the MAC input.
    message = unpack(input).message;
    packed = input;
  }
  const field = macFieldFor(message);
  if (!message.has(field)) return false;
  const expected = _mac(key, packed);
  const ok = constantTimeEqual(expected, packed.subarray(packed.length - MAC_LENGTH));
  zeroize(expected);
  return ok;
}

/** verifyMessage that throws IsoMacError ('no-mac' or 'bad-mac') instead of answering false. */
export function assertMessageMac(message: IsoMessage, key: Uint8Array): void {
  if (!message.has(macFieldFor(message))) {
    throw new IsoMacError('no-mac', `${message.mti} from terminal ${JSON.stringify(message.terminalId() ?? '')} carries no MAC in field ${macFieldFor(message)}`, message);
  }
  if (!verifyMessage(message, key)) {
    throw new IsoMacError('bad-mac', `${message.mti} from terminal ${JSON.stringify(message.terminalId() ?? '')}: the MAC does not verify`, message);
  }
}

// ---------------------------------------------------------------------------------------------
// Per-terminal keys

/** ASCII label of the derivation input, version 1 of the scheme. */
export const TERMINAL_KEY_LABEL = 'hilt-hostlink-key-v1';
/** Key uses and their code in the derivation input. */
export const TERMINAL_KEY_USAGE = { mac: 0x01, kek: 0x02 } as const;
export type TerminalKeyUsage = keyof typeof TERMINAL_KEY_USAGE;
/** Terminal ids are field 41's content: 1..8 characters. */
export const TERMINAL_ID_MAX = 8;

const LABEL_BYTES = Uint8Array.from(TERMINAL_KEY_LABEL, (c) => c.charCodeAt(0));
const OFFSET = { counter: 0, label: 1, separator: 21, usage: 22, version: 23, idLength: 24, id: 25 } as const;

function _terminalIdBytes(terminalId: unknown): Uint8Array {
  if (typeof terminalId !== 'string' || terminalId.length < 1 || terminalId.length > TERMINAL_ID_MAX || !/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(terminalId)) {
    throw new BadInputError(`terminal id: expected 1 to ${TERMINAL_ID_MAX} printable ASCII characters without surrounding spaces, got ${JSON.stringify(terminalId)}`);
  }
  return Uint8Array.from(terminalId, (c) => c.charCodeAt(0));
}

function _assertUsage(usage: unknown): asserts usage is TerminalKeyUsage {
  if (usage !== 'mac' && usage !== 'kek') throw new BadInputError(`key usage: expected 'mac' or 'kek', got ${String(usage)}`);
}

/** The PRF input for one counter value (exported so tests can pin the layout byte by byte). */
export function terminalKeyDerivationInput(usage: TerminalKeyUsage, keyVersion: number, terminalId: string, bits: 128 | 192 | 256, counter: number): Uint8Array {
  _assertUsage(usage);
  assertInt(keyVersion, 'key version number', 1, 0xff);
  const id = _terminalIdBytes(terminalId);
  if (bits !== 128 && bits !== 192 && bits !== 256) throw new BadInputError(`output length: expected 128, 192 or 256 bits, got ${String(bits)}`);
  assertInt(counter, 'KDF counter', 1, 2);
  const out = new Uint8Array(OFFSET.id + id.length + 2);
  out[OFFSET.counter] = counter;
  out.set(LABEL_BYTES, OFFSET.label);
  out[OFFSET.usage] = TERMINAL_KEY_USAGE[usage];
  out[OFFSET.version] = keyVersion;
  out[OFFSET.idLength] = id.length;
  out.set(id, OFFSET.id);
  out[OFFSET.id + id.length] = bits >> 8;
  out[OFFSET.id + id.length + 1] = bits & 0xff;
  return out;
}

/** One terminal's key for `usage`, version `keyVersion`, from the host's master key of that use. */
export function deriveTerminalKey(master: Uint8Array, usage: TerminalKeyUsage, terminalId: string, keyVersion: number): Uint8Array {
  assertAesKey(master, 'master key');
  const bits = (master.length * 8) as 128 | 192 | 256;
  return cmacCounterKdf(master, master.length, (i) => terminalKeyDerivationInput(usage, keyVersion, terminalId, bits, i));
}

// ---------------------------------------------------------------------------------------------
// Key wrapping

export interface WrappedKey {
  /** AES-CBC(kek, IV 0, key || 80 00..): 32 bytes for 16 and 24-byte keys, 48 for 32-byte keys. */
  wrapped: Uint8Array;
  /** The key's check value (diversify.ts keyCheckValue), 3 bytes. */
  kcv: Uint8Array;
}

/** The largest wrapped key (a 32-byte key and its padding block). */
export const WRAPPED_KEY_MAX = 48;

/** A key unwrap that failed: padding or key check value wrong. One message for both (no oracle). */
export class KeyUnwrapError extends HiltError {
  constructor() {
    super('AUTH_FAILED', 'wrapped key: does not unwrap under this key-encryption key (or its check value differs)');
  }
}

export function wrapKey(kek: Uint8Array, key: Uint8Array): WrappedKey {
  assertAesKey(kek, 'key-encryption key');
  assertAesKey(key, 'key to wrap');
  const padded = new Uint8Array((Math.floor(key.length / AES_BLOCK) + 1) * AES_BLOCK);
  padded.set(key);
  padded[key.length] = 0x80;
  const wrapped = aesCbcEncrypt(kek, new Uint8Array(AES_BLOCK), padded);
  zeroize(padded);
  return { wrapped, kcv: keyCheckValue(key) };
}

/** The key inside `wrapped`, checked against `kcv`; KeyUnwrapError when either does not fit. */
export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array, kcv: Uint8Array): Uint8Array {
  assertAesKey(kek, 'key-encryption key');
  assertBytes(wrapped, 'wrapped key', [32, 48]);
  assertBytes(kcv, 'key check value', [KCV_LENGTH]);
  const plain = aesCbcDecrypt(kek, new Uint8Array(AES_BLOCK), wrapped);
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--;
  const ok = end >= 0 && plain[end] === 0x80 && (end === 16 || end === 24 || end === 32) && plain.length === (Math.floor(end / AES_BLOCK) + 1) * AES_BLOCK;
  if (!ok) {
    zeroize(plain);
    throw new KeyUnwrapError();
  }
  const key = plain.slice(0, end);
  zeroize(plain);
  const check = keyCheckValue(key);
  if (!constantTimeEqual(check, kcv)) {
    zeroize(key);
    throw new KeyUnwrapError();
  }
  return key;
}
