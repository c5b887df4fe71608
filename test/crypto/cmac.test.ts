import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cmac, cmacSubkeys } from '../../src/crypto/cmac.js';
import { aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock } from '../../src/crypto/aes.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';

// ------------------------------------------------------------------------------------------------
// Known-answer vectors, as typed constants.

interface AesBlockVector {
  name: string;
  key: string;
  plaintext: string;
  ciphertext: string;
}

/** FIPS 197 Appendix C, example vectors for the three key sizes. */
const FIPS197: readonly AesBlockVector[] = [
  { name: 'C.1 AES-128', key: '000102030405060708090a0b0c0d0e0f', plaintext: '00112233445566778899aabbccddeeff', ciphertext: '69c4e0d86a7b0430d8cdb78070b4c55a' },
  { name: 'C.2 AES-192', key: '000102030405060708090a0b0c0d0e0f1011121314151617', plaintext: '00112233445566778899aabbccddeeff', ciphertext: 'dda97ca4864cdfe06eaf70a0ec0d7191' },
  { name: 'C.3 AES-256', key: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', plaintext: '00112233445566778899aabbccddeeff', ciphertext: '8ea2b7ca516745bfeafc49904b496089' },
];

interface CbcVector {
  name: string;
  key: string;
  iv: string;
  plaintext: string;
  ciphertext: string;
}

/** NIST SP 800-38A F.2.1 (CBC-AES128) and F.2.5 (CBC-AES256), all four blocks. */
const SP800_38A_PLAINTEXT =
  '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710';
const SP800_38A_CBC: readonly CbcVector[] = [
  {
    name: 'F.2.1 CBC-AES128',
    key: '2b7e151628aed2a6abf7158809cf4f3c',
    iv: '000102030405060708090a0b0c0d0e0f',
    plaintext: SP800_38A_PLAINTEXT,
    ciphertext: '7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7',
  },
  {
    name: 'F.2.5 CBC-AES256',
    key: '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4',
    iv: '000102030405060708090a0b0c0d0e0f',
    plaintext: SP800_38A_PLAINTEXT,
    ciphertext: 'f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b',
  },
];

interface CmacKeyVectors {
  name: string;
  key: string;
  k1: string;
  k2: string;
  /** Examples 1..4 of SP 800-38B D.1/D.2/D.3: messages of 0, 16, 40 and 64 bytes. */
  tags: readonly [string, string, string, string];
}

/** The example messages of SP 800-38B Appendix D (prefixes of one 64-byte string). */
const CMAC_MESSAGE_LENGTHS = [0, 16, 40, 64] as const;

/** NIST SP 800-38B Appendix D (AES-128 also RFC 4493 §4). */
const SP800_38B: readonly CmacKeyVectors[] = [
  {
    name: 'D.1 AES-128',
    key: '2b7e151628aed2a6abf7158809cf4f3c',
    k1: 'fbeed618357133667c85e08f7236a8de',
    k2: 'f7ddac306ae266ccf90bc11ee46d513b',
    tags: ['bb1d6929e95937287fa37d129b756746', '070a16b46b4d4144f79bdd9dd04a287c', 'dfa66747de9ae63030ca32611497c827', '51f0bebf7e3b9d92fc49741779363cfe'],
  },
  {
    name: 'D.2 AES-192',
    key: '8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b',
    k1: '448a5b1c93514b273ee6439dd4daa296',
    k2: '8914b63926a2964e7dcc873ba9b5452c',
    tags: ['d17ddf46adaacde531cac483de7a9367', '9e99a7bf31e710900662f65e617c5184', '8a1de5be2eb31aad089a82e6ee908b0e', 'a1d5df0eed790f794d77589659f39a11'],
  },
  {
    name: 'D.3 AES-256',
    key: '603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4',
    k1: 'cad1ed03299eedac2e9a99808621502f',
    k2: '95a3da06533ddb585d3533010c42a0d9',
    tags: ['028962f61b7bf89efc6b551f4667d983', '28a7023f452e8f82bd4bf28d8c37c35c', 'aaf3d8f1de5640c232f5b169b9c911e6', 'e1992190549f6ed5696a2c056c315410'],
  },
];

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
