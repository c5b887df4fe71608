import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cmac, cmacSubkeys } from '../../src/crypto/cmac.js';
import { aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock } from '../../src/crypto/aes.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';
import { CMAC_MESSAGE_LENGTHS, FIPS197, SP800_38A_CBC, SP800_38A_PLAINTEXT, SP800_38B } from './aes-cmac-vectors.js';

// ------------------------------------------------------------------------------------------------
// A reference CMAC written straight from SP 800-38B §6.2, block by block, to check the one-call
// implementation on random inputs.

function referenceCmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const { k1, k2 } = cmacSubkeys(key);
  const n = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  let c: Uint8Array = new Uint8Array(16);
  for (let b = 0; b < n; b++) {
    const block = new Uint8Array(16);
    const part = msg.subarray(b * 16, b * 16 + 16);
    block.set(part);
    if (b === n - 1) {
      if (!complete) block[part.length] = 0x80;
      const sub = complete ? k1 : k2;
      for (let i = 0; i < 16; i++) block[i] ^= sub[i];
    }
    for (let i = 0; i < 16; i++) block[i] ^= c[i];
    c = aesEncryptBlock(key, block);
  }
  return c;
}

describe('AES', () => {
  it.each(FIPS197)('encrypts one block: FIPS 197 $name', (v) => {
    expect(toHex(aesEncryptBlock(fromHex(v.key), fromHex(v.plaintext)))).toBe(v.ciphertext);
  });

  it.each(SP800_38A_CBC)('CBC without padding: SP 800-38A $name, both ways', (v) => {
    const key = fromHex(v.key);
    const iv = fromHex(v.iv);
    expect(toHex(aesCbcEncrypt(key, iv, fromHex(v.plaintext)))).toBe(v.ciphertext);
    expect(toHex(aesCbcDecrypt(key, iv, fromHex(v.ciphertext)))).toBe(v.plaintext);
    // No padding block is ever added: output length = input length.
    expect(aesCbcEncrypt(key, iv, fromHex(v.plaintext)).length).toBe(64);
  });

  it('returns plain Uint8Arrays, not Buffers', () => {
    const out = aesEncryptBlock(new Uint8Array(16), new Uint8Array(16));
    expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
  });

  const badKeys: readonly [string, unknown][] = [
    ['15 bytes', new Uint8Array(15)],
    ['17 bytes', new Uint8Array(17)],
    ['0 bytes', new Uint8Array(0)],
    ['33 bytes', new Uint8Array(33)],
    ['a string', '000102030405060708090a0b0c0d0e0f'],
    ['null', null],
  ];
  it.each(badKeys)('refuses a key of %s, naming what it got', (label, key) => {
    expect(() => aesEncryptBlock(key as Uint8Array, new Uint8Array(16))).toThrow(BadInputError);
    expect(() => aesCbcEncrypt(key as Uint8Array, new Uint8Array(16), new Uint8Array(16))).toThrow(BadInputError);
    expect(() => cmac(key as Uint8Array, new Uint8Array(0))).toThrow(BadInputError);
  });

  it('says how many key bytes it received', () => {
    expect(() => aesEncryptBlock(new Uint8Array(15), new Uint8Array(16))).toThrow(/expected 16, 24 or 32 bytes, got 15/);
  });

  it('refuses partial blocks and wrong IVs instead of padding', () => {
    const key = new Uint8Array(16);
    expect(() => aesEncryptBlock(key, new Uint8Array(15))).toThrow(/got 15/);
    expect(() => aesCbcEncrypt(key, new Uint8Array(16), new Uint8Array(17))).toThrow(/multiple of 16 bytes, got 17/);
    expect(() => aesCbcDecrypt(key, new Uint8Array(16), new Uint8Array(31))).toThrow(/multiple of 16 bytes, got 31/);
    expect(() => aesCbcEncrypt(key, new Uint8Array(8), new Uint8Array(16))).toThrow(/IV: expected 16 bytes, got 8/);
  });
});

describe('AES-CMAC (SP 800-38B)', () => {
  const message = fromHex(SP800_38A_PLAINTEXT);

  it.each(SP800_38B)('subkeys K1, K2: $name', (v) => {
    const { k1, k2 } = cmacSubkeys(fromHex(v.key));
    expect(toHex(k1)).toBe(v.k1);
    expect(toHex(k2)).toBe(v.k2);
  });

  for (const v of SP800_38B) {
    it.each(CMAC_MESSAGE_LENGTHS.map((len, i) => ({ len, tag: v.tags[i] })))(`${v.name}, message of $len bytes`, ({ len, tag }) => {
      expect(toHex(cmac(fromHex(v.key), message.subarray(0, len)))).toBe(tag);
    });
  }

  it('does not change its inputs', () => {
    const key = fromHex(SP800_38B[0].key);
    const msg = message.slice(0, 40);
    cmac(key, msg);
    expect(toHex(key)).toBe(SP800_38B[0].key);
    expect(toHex(msg)).toBe(SP800_38A_PLAINTEXT.slice(0, 80));
  });

  it('agrees with a block-by-block reference on random keys and messages', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.uint8Array({ maxLength: 100 }),
        (key, msg) => {
          expect(toHex(cmac(key, msg))).toBe(toHex(referenceCmac(key, msg)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('tells apart a complete last block from its padded prefix (K1 vs K2)', () => {
    const key = fromHex(SP800_38B[0].key);
    const full = Uint8Array.of(...message.subarray(0, 15), 0x80);
    expect(toHex(cmac(key, full))).not.toBe(toHex(cmac(key, message.subarray(0, 15))));
  });

  it('refuses a message that is not bytes', () => {
    expect(() => cmac(new Uint8Array(16), 'abc' as unknown as Uint8Array)).toThrow(/CMAC message: expected Uint8Array, got string/);
  });
});
