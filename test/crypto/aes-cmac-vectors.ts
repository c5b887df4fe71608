/**
 * Known-answer vectors for AES and AES-CMAC, shared by the one-shot tests (cmac.test.ts) and the
 * keyed-object tests (keyed-aes.test.ts). Not a test file itself.
 */

export interface AesBlockVector {
  name: string;
  key: string;
  plaintext: string;
  ciphertext: string;
}

/** FIPS 197 Appendix C, example vectors for the three key sizes. */
export const FIPS197: readonly AesBlockVector[] = [
  { name: 'C.1 AES-128', key: '000102030405060708090a0b0c0d0e0f', plaintext: '00112233445566778899aabbccddeeff', ciphertext: '69c4e0d86a7b0430d8cdb78070b4c55a' },
  { name: 'C.2 AES-192', key: '000102030405060708090a0b0c0d0e0f1011121314151617', plaintext: '00112233445566778899aabbccddeeff', ciphertext: 'dda97ca4864cdfe06eaf70a0ec0d7191' },
  { name: 'C.3 AES-256', key: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', plaintext: '00112233445566778899aabbccddeeff', ciphertext: '8ea2b7ca516745bfeafc49904b496089' },
];

export interface CbcVector {
  name: string;
  key: string;
  iv: string;
  plaintext: string;
  ciphertext: string;
}

/** NIST SP 800-38A F.2.1 (CBC-AES128) and F.2.5 (CBC-AES256), all four blocks. */
export const SP800_38A_PLAINTEXT =
  '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710';
export const SP800_38A_CBC: readonly CbcVector[] = [
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

export interface CmacKeyVectors {
  name: string;
  key: string;
  k1: string;
  k2: string;
  /** Examples 1..4 of SP 800-38B D.1/D.2/D.3: messages of 0, 16, 40 and 64 bytes. */
  tags: readonly [string, string, string, string];
}

/** The example messages of SP 800-38B Appendix D (prefixes of one 64-byte string). */
export const CMAC_MESSAGE_LENGTHS = [0, 16, 40, 64] as const;

/** NIST SP 800-38B Appendix D (AES-128 also RFC 4493 §4). */
export const SP800_38B: readonly CmacKeyVectors[] = [
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
