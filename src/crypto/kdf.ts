/**
 * The SCP03 data derivation function (GlobalPlatform Card Specification Amendment D §4.1.5): the
 * NIST SP 800-108 KDF in counter mode with AES-CMAC as PRF, and the fixed input laid out as
 *
 *   offset | bytes | field
 *   -------|-------|-----------------------------------------------------------
 *   0      | 11    | label: 00 .. 00
 *   11     | 1     | derivation constant (card cryptogram 00, S-ENC 04, ...)
 *   12     | 1     | separation indicator 00
 *   13     | 2     | L, the output length in bits, big-endian (0040, 0080, 00C0, 0100)
 *   15     | 1     | counter i, 01 then 02 when L needs a second PRF block
 *   16     | n     | context (host challenge || card challenge, or sequence counter || AID)
 *
 * The output is the first L/8 bytes of PRF(i=1) || PRF(i=2).
 */
import { cmac, CMAC_LENGTH } from './cmac.js';
import { assertAesKey } from './aes.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { BadInputError } from '../util/errors.js';
import { zeroize } from '../util/bytes.js';

export const KDF_OUTPUT_BITS = [64, 128, 192, 256] as const;
export type KdfOutputBits = (typeof KDF_OUTPUT_BITS)[number];

const LABEL_LENGTH = 12; // 11 zero bytes + the derivation constant
const FIXED_LENGTH = LABEL_LENGTH + 1 + 2 + 1;

/** The PRF input for one counter value (exported so tests can pin the layout byte by byte). */
export function scp03DerivationData(constant: number, bits: KdfOutputBits, counter: number, context: Uint8Array): Uint8Array {
  assertInt(constant, 'derivation constant', 0, 0xff);
  assertInt(counter, 'KDF counter', 1, 0xff);
  assertBytes(context, 'KDF context');
  const out = new Uint8Array(FIXED_LENGTH + context.length);
  out[11] = constant;
  // out[12] = 00: separation indicator
  out[13] = bits >> 8;
  out[14] = bits & 0xff;
  out[15] = counter;
  out.set(context, FIXED_LENGTH);
  return out;
}

/**
 * NIST SP 800-108 KDF in counter mode with AES-CMAC as the PRF: `length` bytes made of
 * CMAC(key, input(1)) ‖ CMAC(key, input(2)) ‖ …, cut to length. Each scheme of hilt (SCP03 session
 * keys, per-card keys, per-terminal keys, purse keys) differs only in how `input` lays out its fixed
 * input data around the counter; the layouts keep the schemes apart (see each one).
 */
export function cmacCounterKdf(key: Uint8Array, length: number, input: (counter: number) => Uint8Array): Uint8Array {
  assertAesKey(key, 'KDF key');
  assertInt(length, 'KDF output length', 1, 255 * CMAC_LENGTH);
  const blocks = Math.ceil(length / CMAC_LENGTH);
  const out = new Uint8Array(blocks * CMAC_LENGTH);
  for (let i = 1; i <= blocks; i++) {
    const data = input(i);
    const block = cmac(key, data);
    out.set(block, (i - 1) * CMAC_LENGTH);
    zeroize(block, data);
  }
  const result = out.slice(0, length);
  zeroize(out);
  return result;
}

/** Derives `bits` bits from `key` for `constant` and `context` (see the table above). */
export function scp03Kdf(key: Uint8Array, constant: number, context: Uint8Array, bits: KdfOutputBits): Uint8Array {
  assertAesKey(key, 'KDF key');
  if (!(KDF_OUTPUT_BITS as readonly number[]).includes(bits)) {
    throw new BadInputError(`KDF output: expected 64, 128, 192 or 256 bits, got ${String(bits)}`);
  }
  return cmacCounterKdf(key, bits / 8, (i) => scp03DerivationData(constant, bits, i, context));
}
