/**
 * Per-card key diversification and key check values (applets-spec/security.md, "Diversification").
 *
 * Each service provider keeps one master key set (ENC, MAC, DEK, key version). A card never holds a
 * master key: its security domain for that provider holds card keys derived from the master keys
 * and the card's diversification data, so one card's keys say nothing about another card's, nor
 * about the master keys.
 *
 * The scheme is hilt's own: NIST SP 800-108 KDF in counter mode, PRF = AES-CMAC keyed with the
 * master key, one derivation per key type, output as long as the master key. The PRF input for
 * counter i (01, then 02 when a 192/256-bit key needs a second block) is
 *
 *   offset   | bytes | field
 *   ---------|-------|-----------------------------------------------------------------
 *   0        | 1     | i, the counter: 01, 02
 *   1        | 16    | label: ASCII "hilt-card-key-v1"
 *   17       | 1     | separator 00
 *   18       | 1     | key type: 01 ENC, 02 MAC, 03 DEK (the GlobalPlatform key identifiers)
 *   19       | 1     | key version number of the master key set (01..FF)
 *   20       | 1     | n, the length of the diversification data (1..32)
 *   21       | n     | diversification data
 *   21+n     | 2     | L, the output length in bits, big-endian: 0080, 00C0, 0100
 *
 * Card key = the first L/8 bytes of CMAC(master, input(i=1)) || CMAC(master, input(i=2)).
 *
 * Why its own layout rather than kdf.ts with a new derivation constant: every SCP03 derivation input
 * starts with 00 (its label is eleven zero bytes), every input here starts with the counter, 01 or
 * 02, so no input of this scheme can equal an SCP03 input under the same key, whatever a future
 * SCP03 constant may be. The length prefix of the diversification data and the fixed offsets make
 * the encoding injective: distinct (type, version, data, length) give distinct inputs.
 *
 * The diversification data hilt's terminals use is the 10-byte key diversification data (KDD) the
 * card returns in INITIALIZE UPDATE; a hilt card sets it to kddFromSerial(serial). The function
 * accepts any 1..32 bytes, so a card serial read another way can be used as is.
 */
import { createHash } from 'node:crypto';
import { aesEncryptBlock, assertAesKey, AES_BLOCK } from './aes.js';

import { cmacCounterKdf } from './kdf.js';
import { assertStaticKeys, type StaticKeys } from './scp03.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { BadInputError } from '../util/errors.js';
import { fromHex, toHex, zeroize } from '../util/bytes.js';

// ---------------------------------------------------------------------------------------------
// Tables

/** Key types and their code in the derivation input (GlobalPlatform key identifiers 1, 2, 3). */
export const KEY_TYPE = { enc: 0x01, mac: 0x02, dek: 0x03 } as const;
export type KeyType = keyof typeof KEY_TYPE;
export const KEY_TYPES: readonly KeyType[] = ['enc', 'mac', 'dek'];

/** The label of the derivation input: 16 ASCII bytes, version 1 of the scheme. */
export const DIVERSIFICATION_LABEL = 'hilt-card-key-v1';

/** Bounds of the diversification data. */
export const DIVERSIFICATION_DATA_MIN = 1;
export const DIVERSIFICATION_DATA_MAX = 32;

/** Length of the key diversification data returned in INITIALIZE UPDATE. */
export const KDD_LENGTH = 10;

/** Domain separation of kddFromSerial: ASCII "hilt-kdd-v1". */
export const KDD_LABEL = 'hilt-kdd-v1';

/** Key check value: AES-ECB(key, 16 bytes of 01), first 3 bytes (GlobalPlatform, AES keys). */
export const KCV_LENGTH = 3;
const KCV_PLAINTEXT_BYTE = 0x01;

const LABEL_BYTES = Uint8Array.from(DIVERSIFICATION_LABEL, (c) => c.charCodeAt(0));
const OFFSET = { counter: 0, label: 1, separator: 17, keyType: 18, kvn: 19, dataLength: 20, data: 21 } as const;

// ---------------------------------------------------------------------------------------------
// Diversification

function _assertKeyType(keyType: unknown): asserts keyType is KeyType {
  if (typeof keyType !== 'string' || !(KEY_TYPES as readonly string[]).includes(keyType)) {
    throw new BadInputError(`key type: expected 'enc', 'mac' or 'dek', got ${String(keyType)}`);
  }
}

function _assertDiversificationData(data: unknown): asserts data is Uint8Array {
  assertBytes(data, 'diversification data');
  if (data.length < DIVERSIFICATION_DATA_MIN || data.length > DIVERSIFICATION_DATA_MAX) {
    throw new BadInputError(`diversification data: expected ${DIVERSIFICATION_DATA_MIN} to ${DIVERSIFICATION_DATA_MAX} bytes, got ${data.length}`);
  }
}

/** The PRF input for one counter value (exported so tests can pin the layout byte by byte). */
export function diversificationInput(keyType: KeyType, kvn: number, data: Uint8Array, bits: 128 | 192 | 256, counter: number): Uint8Array {
  _assertKeyType(keyType);
  assertInt(kvn, 'key version number', 1, 0xff);
  _assertDiversificationData(data);
  if (bits !== 128 && bits !== 192 && bits !== 256) throw new BadInputError(`output length: expected 128, 192 or 256 bits, got ${String(bits)}`);
  assertInt(counter, 'KDF counter', 1, 2);
  const out = new Uint8Array(OFFSET.data + data.length + 2);
  out[OFFSET.counter] = counter;
  out.set(LABEL_BYTES, OFFSET.label);
  // out[OFFSET.separator] = 00
  out[OFFSET.keyType] = KEY_TYPE[keyType];
  out[OFFSET.kvn] = kvn;
  out[OFFSET.dataLength] = data.length;
  out.set(data, OFFSET.data);
  out[OFFSET.data + data.length] = bits >> 8;
  out[OFFSET.data + data.length + 1] = bits & 0xff;
  return out;
}

/** One card key: `keyType` key of version `kvn`, diversified from `master` with `data`. */
export function diversifyKey(master: Uint8Array, keyType: KeyType, kvn: number, data: Uint8Array): Uint8Array {
  assertAesKey(master, 'master key');
  const bits = (master.length * 8) as 128 | 192 | 256;
  return cmacCounterKdf(master, master.length, (i) => diversificationInput(keyType, kvn, data, bits, i));
}

/**
 * The card's static keys for one provider: ENC, MAC and DEK each diversified from the master key
 * of the same type, same key version. The caller owns the result and zeroizes it when done.
 */
export function diversifyStaticKeys(master: StaticKeys, data: Uint8Array): StaticKeys {
  assertStaticKeys(master);
  assertInt(master.kvn, 'key version number', 1, 0xff);
  _assertDiversificationData(data);
  return {
    enc: diversifyKey(master.enc, 'enc', master.kvn, data),
    mac: diversifyKey(master.mac, 'mac', master.kvn, data),
    dek: diversifyKey(master.dek, 'dek', master.kvn, data),
    kvn: master.kvn,
  };
}

/**
 * The 10-byte key diversification data a hilt card returns in INITIALIZE UPDATE, from its serial
 * (1..32 bytes): the first 10 bytes of SHA-256("hilt-kdd-v1" || length of serial || serial).
 * A hash rather than padding or truncation, so serials of any length map to distinct KDDs
 * (00 01 and 01 would collide under left padding; long serials sharing a tail under truncation).
 */
export function kddFromSerial(serial: Uint8Array): Uint8Array {
  _assertDiversificationData(serial);
  const h = createHash('sha256');
  h.update(KDD_LABEL, 'latin1');
  h.update(Uint8Array.of(serial.length));
  h.update(serial);
  const digest = h.digest();
  const out = Uint8Array.from(digest.subarray(0, KDD_LENGTH));
  digest.fill(0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Key check values

/** The 3-byte key check value of an AES key: AES-ECB(key, 01 01 .. 01), first 3 bytes. */
export function keyCheckValue(key: Uint8Array): Uint8Array {
  assertAesKey(key, 'key');
  const c = aesEncryptBlock(key, new Uint8Array(AES_BLOCK).fill(KCV_PLAINTEXT_BYTE));
  const kcv = c.slice(0, KCV_LENGTH);
  zeroize(c);
  return kcv;
}

/** The key check value as 6 upper-case hex digits, the form key files and listings show. */
export function kcvHex(key: Uint8Array): string {
  return toHex(keyCheckValue(key)).toUpperCase();
}

// ---------------------------------------------------------------------------------------------
// Test master keys

/** The label every listing and log of a test-key domain carries. */
export const TEST_KEYS_LABEL = 'TEST KEYS: publicly known, never use them for real cards or real value';

/** One built-in test key set, as hex (parsed afresh by each user, so nobody zeroizes the table). */
export interface TestKeySet {
  provider: string;
  kvn: number;
  enc: string;
  mac: string;
  dek: string;
  /** Whether cards hold keys diversified from these (false: the card holds these keys as they are). */
  diversify: boolean;
}

/**
 * TEST KEYS, published here on purpose: the demo cards of the emulator are personalised from them
 * and the terminal's demo key store loads them (labelled TEST KEYS everywhere). They live in the
 * crypto layer so that both the emulator (which may not import src/terminal) and the terminal can
 * use them. gp-test is the GlobalPlatform default test key, used undiversified as factory-fresh GP
 * cards carry it; the demo providers' master keys are random values drawn once, one AES size each.
 */
export const TEST_KEY_SETS: readonly TestKeySet[] = Object.freeze([
  {
    provider: 'gp-test',
    kvn: 0x30,
    enc: '404142434445464748494A4B4C4D4E4F',
    mac: '404142434445464748494A4B4C4D4E4F',
    dek: '404142434445464748494A4B4C4D4E4F',
    diversify: false,
  },
  {
    provider: 'emoney',
    kvn: 0x01,
    enc: '6E8117D5A7FAACC883C616D6246EE38F',
    mac: 'B833FD3142AEDD3ED9C98FD77DFAC965',
    dek: '21A8446A6AC88973BFA903843CFE5D80',
    diversify: true,
  },
  {
    provider: 'bank',
    kvn: 0x01,
    enc: 'FA8A77FABE36BC979F3F5B80B190938A397B111AF5E95535304A108EC5F7A8AE',
    mac: '603F9DA162259D45340D236E9051BFC59CA2A12E2DE4B152954B1319345C045C',
    dek: '2CE484E97D76863833E2597A769E01EFABA3595F2EDA52FF419114FAB3E9FD8A',
    diversify: true,
  },
  {
    provider: 'credit',
    kvn: 0x01,
    enc: 'BBD61B371F84B1CFEA7BD6A759C5F42D5EAA4AB055FBFC4D',
    mac: '1CBE1A7C65D4EF24D4EC693EDAD0F1723C8FE63FA8175064',
    dek: 'D3CC8485AEF7DBE5437C2E62C1969257A3DC0D19C61BBC7F',
    diversify: true,
  },
].map((s) => Object.freeze(s)));

/** A fresh copy of one built-in TEST key set (for personalising demo cards); the caller zeroizes it. */
export function testStaticKeys(provider: string): StaticKeys {
  const set = TEST_KEY_SETS.find((s) => s.provider === provider);
  if (set === undefined) {
    throw new BadInputError(`test keys: no built-in test key set for provider '${String(provider)}' (have ${TEST_KEY_SETS.map((s) => s.provider).join(', ')})`);
  }
  return { enc: fromHex(set.enc), mac: fromHex(set.mac), dek: fromHex(set.dek), kvn: set.kvn };
}
