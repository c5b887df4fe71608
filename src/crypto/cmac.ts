/**
 * AES-CMAC (NIST SP 800-38B, RFC 4493) for 128, 192 and 256-bit keys.
 *
 * The whole message is run through one AES-CBC pass with a zero IV (CBC-MAC), after the last block
 * has been completed (80 00.. padding when it is partial) and masked with subkey K1 (complete) or
 * K2 (padded); the tag is the last ciphertext block. Subkeys and the masked copy of the message are
 * zeroed before returning: the subkeys are as secret as the key.
 *
 * CmacKey keeps one AesKey and the subkeys for the life of a key (an SCP03 session's S-MAC or
 * S-RMAC): subkeys computed once, one update() per MAC. cmac(key, msg) is the one-shot form over a
 * CmacKey built and destroyed for the call.
 */
import { AesKey, KeyDestroyedError, aesEncryptBlock, assertAesKey, AES_BLOCK } from './aes.js';
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

/**
 * A CMAC key: one AesKey (persistent cipher) and the subkeys K1, K2, computed once, on the first
 * mac() (so a key that is never used costs no cipher). mac() gives the same tags as cmac(key, msg).
 * destroy() zeroizes the subkeys and destroys the AesKey; any use after it throws KeyDestroyedError.
 */
export class CmacKey {
  readonly #aes: AesKey;
  #subkeys: { k1: Uint8Array; k2: Uint8Array } | undefined;
  #destroyed = false;

  constructor(key: Uint8Array) {
    assertAesKey(key, 'CMAC key');
    this.#aes = new AesKey(key);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  #keys(): { k1: Uint8Array; k2: Uint8Array } {
    if (this.#subkeys === undefined) {
      const l = this.#aes.encryptBlock(new Uint8Array(AES_BLOCK));
      const k1 = _dbl(l);
      this.#subkeys = { k1, k2: _dbl(k1) };
      zeroize(l);
    }
    return this.#subkeys;
  }

  /** The full 16-byte tag of `msg`. Truncate at the call site when a protocol wants fewer. */
  mac(msg: Uint8Array): Uint8Array {
    if (this.#destroyed) throw new KeyDestroyedError('CMAC key');
    assertBytes(msg, 'CMAC message');
    const { k1, k2 } = this.#keys();
    const complete = msg.length > 0 && msg.length % AES_BLOCK === 0;
    const blocks = Math.max(1, Math.ceil(msg.length / AES_BLOCK));
    const m = new Uint8Array(blocks * AES_BLOCK);
    m.set(msg);
    if (!complete) m[msg.length] = 0x80;
    const subkey = complete ? k1 : k2;
    const last = (blocks - 1) * AES_BLOCK;
    for (let i = 0; i < AES_BLOCK; i++) m[last + i] ^= subkey[i];
    let c: Uint8Array | undefined;
    try {
      c = this.#aes.cbcEncrypt(new Uint8Array(AES_BLOCK), m);
      return c.slice(last);
    } finally {
      zeroize(m);
      if (c !== undefined) zeroize(c);
    }
  }

  /** Zeroizes the subkeys and destroys the AES key. Idempotent. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#subkeys !== undefined) zeroize(this.#subkeys.k1, this.#subkeys.k2);
    this.#subkeys = undefined;
    this.#aes.destroy();
  }
}

/** CMAC(key, msg): the full 16-byte tag. Truncate at the call site when a protocol wants fewer. */
export function cmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  assertAesKey(key, 'CMAC key');
  assertBytes(msg, 'CMAC message');
  const k = new CmacKey(key);
  try {
    return k.mac(msg);
  } finally {
    k.destroy();
  }
}
