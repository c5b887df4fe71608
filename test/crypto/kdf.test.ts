import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { scp03DerivationData, scp03Kdf, KDF_OUTPUT_BITS, type KdfOutputBits } from '../../src/crypto/kdf.js';
import { cmac } from '../../src/crypto/cmac.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';

/**
 * Known answers taken from the first SCP03 session of test/vectors/scp03/aes128-level03.json:
 * the card's cryptogram in INITIALIZE UPDATE's response is KDF(S-MAC, 00, hc || cc, 64) with
 * S-MAC = KDF(K-MAC, 06, hc || cc, 128), and its pseudo-random challenge is
 * KDF(K-ENC, 02, sequence counter 000001 || AID of the ISD-R, 64).
 */
const SCP03_SESSION = {
  kEnc: '000102030405060708090a0b0c0d0e0f',
  kMac: '101112131415161718191a1b1c1d1e1f',
  hostChallenge: '8e1552d0513c60f3',
  cardChallenge: '30760cd2c47c1dd3',
  cardCryptogram: '95065fe5ead8a9d7',
  sequenceCounter: '000001',
  aid: 'a0000005591010ffffffff8900000100',
} as const;

describe('SCP03 KDF: derivation data layout', () => {
  it('is 11 zero bytes, the constant, 00, L in bits, the counter, then the context', () => {
    const ctx = fromHex('a1a2a3a4a5a6a7a8b1b2b3b4b5b6b7b8');
    expect(toHex(scp03DerivationData(0x04, 128, 1, ctx))).toBe('0000000000000000000000' + '04' + '00' + '0080' + '01' + toHex(ctx));
    expect(toHex(scp03DerivationData(0x07, 256, 2, ctx))).toBe('0000000000000000000000' + '07' + '00' + '0100' + '02' + toHex(ctx));
    expect(toHex(scp03DerivationData(0x00, 64, 1, new Uint8Array(0)))).toBe('0000000000000000000000' + '00' + '00' + '0040' + '01');
    expect(toHex(scp03DerivationData(0x02, 192, 1, new Uint8Array(0))).slice(26, 30)).toBe('00c0');
  });

  it('refuses out-of-range constants and counters', () => {
    expect(() => scp03DerivationData(256, 128, 1, new Uint8Array(0))).toThrow(/derivation constant: expected an integer from 0 to 255, got 256/);
    expect(() => scp03DerivationData(4, 128, 0, new Uint8Array(0))).toThrow(/KDF counter/);
  });
});

describe('SCP03 KDF: known answers (SCP03 session vectors)', () => {
  const hc = fromHex(SCP03_SESSION.hostChallenge);
  const cc = fromHex(SCP03_SESSION.cardChallenge);
  const ctx = concatBytes(hc, cc);

  it('derives S-MAC (128 bits) then the card cryptogram (64 bits)', () => {
    const sMac = scp03Kdf(fromHex(SCP03_SESSION.kMac), 0x06, ctx, 128);
    expect(sMac.length).toBe(16);
    expect(toHex(scp03Kdf(sMac, 0x00, ctx, 64))).toBe(SCP03_SESSION.cardCryptogram);
  });

  it('derives the pseudo-random card challenge from the sequence counter and AID', () => {
    const context = concatBytes(fromHex(SCP03_SESSION.sequenceCounter), fromHex(SCP03_SESSION.aid));
    expect(toHex(scp03Kdf(fromHex(SCP03_SESSION.kEnc), 0x02, context, 64))).toBe(SCP03_SESSION.cardChallenge);
  });

  it('a wrong constant, key or context gives another result', () => {
    const sMac = scp03Kdf(fromHex(SCP03_SESSION.kMac), 0x06, ctx, 128);
    expect(toHex(scp03Kdf(sMac, 0x01, ctx, 64))).not.toBe(SCP03_SESSION.cardCryptogram);
    expect(toHex(scp03Kdf(fromHex(SCP03_SESSION.kEnc), 0x00, ctx, 64))).not.toBe(SCP03_SESSION.cardCryptogram);
    expect(toHex(scp03Kdf(sMac, 0x00, concatBytes(cc, hc), 64))).not.toBe(SCP03_SESSION.cardCryptogram);
  });
});

describe('SCP03 KDF: output lengths', () => {
  const keys = [16, 24, 32].map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff));
  const ctx = fromHex('0102030405060708090a0b0c0d0e0f10');

  it.each(KDF_OUTPUT_BITS.map((bits) => ({ bits })))('gives $bits bits as the prefix of PRF(i=1) || PRF(i=2)', ({ bits }) => {
    for (const key of keys) {
      const out = scp03Kdf(key, 0x04, ctx, bits);
      expect(out.length).toBe(bits / 8);
      const prf = concatBytes(cmac(key, scp03DerivationData(0x04, bits, 1, ctx)), cmac(key, scp03DerivationData(0x04, bits, 2, ctx)));
      expect(toHex(out)).toBe(toHex(prf.subarray(0, bits / 8)));
    }
  });

  it('binds L: a shorter output is not a prefix of a longer one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 32 }), (key, context) => {
        const lengths: KdfOutputBits[] = [64, 128, 192, 256];
        const outs = lengths.map((b) => toHex(scp03Kdf(key, 0x06, context, b)));
        for (let a = 0; a < outs.length; a++) {
          for (let b = a + 1; b < outs.length; b++) expect(outs[b].startsWith(outs[a])).toBe(false);
        }
      }),
      { numRuns: 50 },
    );
  });

  it('refuses other lengths and bad keys, naming what it got', () => {
    const key = new Uint8Array(16);
    expect(() => scp03Kdf(key, 4, ctx, 96 as KdfOutputBits)).toThrow(BadInputError);
    expect(() => scp03Kdf(key, 4, ctx, 96 as KdfOutputBits)).toThrow(/got 96/);
    expect(() => scp03Kdf(new Uint8Array(20), 4, ctx, 128)).toThrow(/KDF key: expected 16, 24 or 32 bytes, got 20/);
    expect(() => scp03Kdf(key, 4, 'ctx' as unknown as Uint8Array, 128)).toThrow(/KDF context: expected Uint8Array, got string/);
  });
});
