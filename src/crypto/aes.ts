/**
 * AES primitives over node:crypto: one-block ECB encryption and CBC without padding. These are the
 * building blocks of CMAC and of SCP03's command/response encryption, which pad by themselves
 * (ISO 9797-1 method 2), so OpenSSL's PKCS#7 padding is always switched off.
 *
 * node:crypto works on Buffers; every result is copied into a plain Uint8Array and the Buffer that
 * held it is zeroed, because the plaintext of a decryption (and the subkey material of CMAC) may be
 * secret.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { BadInputError } from '../util/errors.js';
import { assertBytes } from '../util/assert.js';

export const AES_BLOCK = 16;
export const AES_KEY_LENGTHS = [16, 24, 32] as const;
export type AesKeyLength = (typeof AES_KEY_LENGTHS)[number];

/** Refuses anything that is not a 16, 24 or 32-byte Uint8Array, naming what was received. */
export function assertAesKey(key: unknown, name = 'AES key'): asserts key is Uint8Array {
  assertBytes(key, name, AES_KEY_LENGTHS);
}

function _cipherName(key: Uint8Array, mode: 'ecb' | 'cbc'): string {
  return `aes-${key.length * 8}-${mode}`;
}

function _assertBlocks(data: unknown, name: string): asserts data is Uint8Array {
  assertBytes(data, name);
  if (data.length % AES_BLOCK !== 0) {
    throw new BadInputError(`${name}: expected a multiple of ${AES_BLOCK} bytes, got ${data.length}`);
  }
}

/** Copies node's output out of its Buffers, zeroing them. */
function _collect(...parts: Buffer[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
    p.fill(0);
  }
  return out;
}

/** E(key, block): AES encryption of exactly one 16-byte block. */
export function aesEncryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  assertAesKey(key);
  assertBytes(block, 'AES block', [AES_BLOCK]);
  const c = createCipheriv(_cipherName(key, 'ecb'), key, null);
  c.setAutoPadding(false);
  return _collect(c.update(block), c.final());
}

/** AES-CBC encryption; `data` must already be a whole number of blocks (no padding is added). */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  assertAesKey(key);
  assertBytes(iv, 'IV', [AES_BLOCK]);
  _assertBlocks(data, 'CBC plaintext');
  if (data.length === 0) return new Uint8Array(0);
  const c = createCipheriv(_cipherName(key, 'cbc'), key, iv);
  c.setAutoPadding(false);
  return _collect(c.update(data), c.final());
}

/** AES-CBC decryption; `data` must be a whole number of blocks (no padding is removed). */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  assertAesKey(key);
  assertBytes(iv, 'IV', [AES_BLOCK]);
  _assertBlocks(data, 'CBC ciphertext');
  if (data.length === 0) return new Uint8Array(0);
  const d = createDecipheriv(_cipherName(key, 'cbc'), key, iv);
  d.setAutoPadding(false);
  return _collect(d.update(data), d.final());
}
