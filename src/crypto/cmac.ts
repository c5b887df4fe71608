/**
 * AES-CMAC (NIST SP 800-38B, RFC 4493) for 128, 192 and 256-bit keys.
 *
 * The whole message is run through one AES-CBC call with a zero IV (CBC-MAC), after the last block
 * has been completed (80 00.. padding when it is partial) and masked with subkey K1 (complete) or
 * K2 (padded); the tag is the last ciphertext block. Subkeys and the masked copy of the message are
 * zeroed before returning: the subkeys are as secret as the key.
 */
import { aesCbcEncrypt, aesEncryptBlock, assertAesKey, AES_BLOCK } from './aes.js';
import { assertBytes } from '../util/assert.js';
import { zeroize } from '../util/bytes.js';

/** The constant R_128 of SP 800-38B §5.3: x^128 + x^7 + x^2 + x + 1, low byte. */
const RB = 0x87;

export const CMAC_LENGTH = 16;

/** One left shift of a 16-byte string, XOR Rb when the bit shifted out was set. */
function _dbl(block: Uint8Array): Uint8Array {
  const out = new Uint8Array(AES_BLOCK);
  for (let i = 0; i < AES_BLOCK - 1; i++) out[i] = ((block[i] << 1) | (block[i + 1] >> 7)) & 0xff;
  out[AES_BLOCK - 1] = (block[AES_BLOCK - 1] << 1) & 0xff;
  // Constant time in the secret bit: mask instead of branch.
  out[AES_BLOCK - 1] ^= RB & -(block[0] >> 7);
  return out;
}

/** The two CMAC subkeys (SP 800-38B §6.1). The caller owns and should zeroize them. */
export function cmacSubkeys(key: Uint8Array): { k1: Uint8Array; k2: Uint8Array } {
  assertAesKey(key, 'CMAC key');
  const l = aesEncryptBlock(key, new Uint8Array(AES_BLOCK));
  const k1 = _dbl(l);
  const k2 = _dbl(k1);
  zeroize(l);
  return { k1, k2 };
}

/** CMAC(key, msg): the full 16-byte tag. Truncate at the call site when a protocol wants fewer. */
export function cmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  assertAesKey(key, 'CMAC key');
  assertBytes(msg, 'CMAC message');
  const { k1, k2 } = cmacSubkeys(key);
  const complete = msg.length > 0 && msg.length % AES_BLOCK === 0;
  const blocks = Math.max(1, Math.ceil(msg.length / AES_BLOCK));
  const m = new Uint8Array(blocks * AES_BLOCK);
  m.set(msg);
  if (!complete) m[msg.length] = 0x80;
  const subkey = complete ? k1 : k2;
  const last = (blocks - 1) * AES_BLOCK;
  for (let i = 0; i < AES_BLOCK; i++) m[last + i] ^= subkey[i];
  const c = aesCbcEncrypt(key, new Uint8Array(AES_BLOCK), m);
  const tag = c.slice(c.length - AES_BLOCK);
  zeroize(k1, k2, m, c);
  return tag;
}
