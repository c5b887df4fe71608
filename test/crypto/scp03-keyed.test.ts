/**
 * The SCP03 MAC and encryption functions take a session key as bytes or as a keyed object
 * (AesKey for S-ENC, CmacKey for S-MAC / S-RMAC): both forms must give the same bytes, for every
 * key length, data length, counter and header, and a destroyed keyed object must be refused.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AesKey, KeyDestroyedError } from '../../src/crypto/aes.js';
import { CmacKey } from '../../src/crypto/cmac.js';
import {
  computeCMac,
  computeRMac,
  decryptCommandData,
  decryptResponseData,
  destroyKeyedSessionKeys,
  encryptCommandData,
  encryptResponseData,
  encryptionIcv,
  keySessionKeys,
  type SessionKeys,
} from '../../src/crypto/scp03.js';
import { toHex } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';

const anyKey = fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
const header = fc.record({ cla: fc.constantFrom(0x84, 0x04, 0xe0), ins: fc.integer({ min: 0, max: 255 }), p1: fc.integer({ min: 0, max: 255 }), p2: fc.integer({ min: 0, max: 255 }) });
const chain = fc.uint8Array({ minLength: 16, maxLength: 16 });
const counter = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

describe('SCP03 functions: bytes and keyed objects agree', () => {
  it('computeCMac and computeRMac (data 0..300 bytes, S8/S16, short/extended)', () => {
    fc.assert(
      fc.property(anyKey, chain, header, fc.uint8Array({ maxLength: 300 }), fc.constantFrom(8 as const, 16 as const), fc.boolean(), fc.integer({ min: 0, max: 0xffff }), (key, cv, h, data, n, ext, sw) => {
        const k = new CmacKey(key);
        expect(toHex(computeCMac(k, cv, h, data, n, ext))).toBe(toHex(computeCMac(key, cv, h, data, n, ext)));
        expect(toHex(computeRMac(k, cv, data, sw))).toBe(toHex(computeRMac(key, cv, data, sw)));
        k.destroy();
      }),
      { numRuns: 200 },
    );
  });

  it('encryptionIcv and command/response encryption both ways (data 0..300 bytes)', () => {
    fc.assert(
      fc.property(anyKey, counter, fc.uint8Array({ maxLength: 300 }), (key, ctr, data) => {
        const k = new AesKey(key);
        for (const forResponse of [false, true]) expect(toHex(encryptionIcv(k, ctr, forResponse))).toBe(toHex(encryptionIcv(key, ctr, forResponse)));
        const cmd = encryptCommandData(key, ctr, data);
        const rsp = encryptResponseData(key, ctr, data);
        expect(toHex(encryptCommandData(k, ctr, data))).toBe(toHex(cmd));
        expect(toHex(encryptResponseData(k, ctr, data))).toBe(toHex(rsp));
        expect(toHex(decryptCommandData(k, ctr, cmd) ?? new Uint8Array(1))).toBe(toHex(data));
        expect(toHex(decryptResponseData(k, ctr, rsp) ?? new Uint8Array(1))).toBe(toHex(data));
        // Wrong counter or direction: same verdict (usually bad padding) from both forms.
        expect(decryptCommandData(k, ctr, rsp)?.length).toBe(decryptCommandData(key, ctr, rsp)?.length);
        const other = ctr === Number.MAX_SAFE_INTEGER ? 0 : ctr + 1;
        expect(decryptResponseData(k, other, rsp)?.length).toBe(decryptResponseData(key, other, rsp)?.length);
        k.destroy();
      }),
      { numRuns: 200 },
    );
  });

  it('a ciphertext that is not whole blocks is undefined in both forms; an empty one is empty', () => {
    const key = new Uint8Array(16).fill(7);
    const k = new AesKey(key);
    expect(decryptCommandData(k, 1, new Uint8Array(15))).toBeUndefined();
    expect(decryptCommandData(key, 1, new Uint8Array(15))).toBeUndefined();
    expect(decryptResponseData(k, 1, new Uint8Array(0))?.length).toBe(0);
    expect(encryptCommandData(k, 1, new Uint8Array(0)).length).toBe(0);
  });

  it('the same bad inputs are refused the same way', () => {
    const k = new CmacKey(new Uint8Array(16));
    const a = new AesKey(new Uint8Array(16));
    const h = { cla: 0x84, ins: 0, p1: 0, p2: 0 };
    expect(() => computeCMac(k, new Uint8Array(8), h, new Uint8Array(0), 8, false)).toThrow(/MAC chaining value: expected 16 bytes, got 8/);
    expect(() => computeRMac(k, new Uint8Array(16), new Uint8Array(0), 0x10000)).toThrow(BadInputError);
    expect(() => encryptionIcv(a, -1, false)).toThrow(/encryption counter/);
    expect(() => encryptCommandData(a, -1, new Uint8Array(1))).toThrow(/encryption counter/);
    expect(() => computeCMac(new Uint8Array(15), new Uint8Array(16), h, new Uint8Array(0), 8, false)).toThrow(/S-MAC: expected 16, 24 or 32 bytes, got 15/);
  });
});

describe('SCP03 functions refuse destroyed keyed objects', () => {
  it('KeyDestroyedError (KEY_ACCESS) from every function, naming the key', () => {
    const keys: SessionKeys = { sEnc: new Uint8Array(16).fill(1), sMac: new Uint8Array(16).fill(2), sRmac: new Uint8Array(16).fill(3) };
    const keyed = keySessionKeys(keys);
    const h = { cla: 0x84, ins: 0, p1: 0, p2: 0 };
    const cv = new Uint8Array(16);
    const data = new Uint8Array(16);
    // Usable first.
    computeCMac(keyed.sMac, cv, h, data, 8, false);
    computeRMac(keyed.sRmac, cv, data, 0x9000);
    encryptCommandData(keyed.sEnc, 1, data);
    destroyKeyedSessionKeys(keyed);
    expect(keyed.sEnc.destroyed && keyed.sMac.destroyed && keyed.sRmac.destroyed).toBe(true);
    // The caller's bytes are the caller's: keySessionKeys copied them.
    expect(keys.sEnc.every((b) => b === 1)).toBe(true);
    const uses: [string, () => unknown][] = [
      ['S-MAC', () => computeCMac(keyed.sMac, cv, h, data, 8, false)],
      ['S-RMAC', () => computeRMac(keyed.sRmac, cv, data, 0x9000)],
      ['S-ENC', () => encryptCommandData(keyed.sEnc, 1, data)],
      ['S-ENC', () => decryptCommandData(keyed.sEnc, 1, data)],
      ['S-ENC', () => encryptResponseData(keyed.sEnc, 1, data)],
      ['S-ENC', () => decryptResponseData(keyed.sEnc, 1, data)],
      ['S-ENC', () => encryptCommandData(keyed.sEnc, 1, new Uint8Array(0))],
      ['AES key', () => encryptionIcv(keyed.sEnc, 1, false)],
    ];
    for (const [name, use] of uses) {
      expect(use).toThrow(KeyDestroyedError);
      expect(use).toThrow(new RegExp(`^${name} was destroyed`));
    }
  });

  it('keySessionKeys refuses a session key of the wrong length', () => {
    expect(() => keySessionKeys({ sEnc: new Uint8Array(16), sMac: new Uint8Array(16), sRmac: new Uint8Array(10) })).toThrow(/S-RMAC: expected 16, 24 or 32 bytes, got 10/);
  });
});
