/**
 * Message MACs, per-terminal key derivation and key wrapping (src/hostlink/iso8583/mac.ts).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  IsoMacError,
  KeyUnwrapError,
  MAC_LENGTH,
  TERMINAL_KEY_LABEL,
  assertMessageMac,
  deriveTerminalKey,
  macFieldFor,
  signMessage,
  terminalKeyDerivationInput,
  unwrapKey,
  verifyMessage,
  wrapKey,
} from '../../src/hostlink/iso8583/mac.js';
import { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { Iso8583Error } from '../../src/hostlink/iso8583/errors.js';
import { cmac } from '../../src/crypto/cmac.js';
import { aesCbcEncrypt } from '../../src/crypto/aes.js';
import { diversificationInput, keyCheckValue } from '../../src/crypto/diversify.js';
import { purseKeyDerivationInput } from '../../src/crypto/purse-certificate.js';
import { scp03DerivationData } from '../../src/crypto/kdf.js';
import { BadInputError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';
import { TEST_MASTER_KEK, TEST_MASTER_MAC, macKeyOf, messageArb } from './helpers.js';

const KEY = fromHex('2b7e151628aed2a6abf7158809cf4f3c'); // RFC 4493's key, as a terminal key

/** The unsigned sign-on of packager.test.ts, by hand: MTI, bitmaps with bit 128, fields. */
const SIGN_ON_BEFORE_MAC =
  '0800' + '8220000000c00800' + '0400000000000001' + '0314093015' + '0000000001' + '5445524d30303031' + '524541444552303120202020202020' + '0000000000000001' + '0001';

function signOn(): IsoMessage {
  return new IsoMessage('0800').with(7, '0314093015').withStan(1).withTerminalId('TERM0001').withReaderId('READER01').withKeyVersion(1).with(70, '001');
}

describe('message MAC', () => {
  it('is the first 8 bytes of AES-CMAC over the packed message up to the MAC value', () => {
    const signed = signMessage(signOn(), KEY);
    const bytes = pack(signed);
    // Independent of the packager: the MAC input is the hand-written hex, bitmap already showing 128.
    const expectedMac = cmac(KEY, fromHex(SIGN_ON_BEFORE_MAC)).subarray(0, 8);
    expect(toHex(bytes)).toBe(SIGN_ON_BEFORE_MAC + toHex(expectedMac));
    expect(signed.bytes(128)).toEqual(expectedMac);
    expect(signed.has(64)).toBe(false);
    expect(verifyMessage(signed, KEY)).toBe(true);
    expect(verifyMessage(bytes, KEY)).toBe(true);
  });

  it('puts the MAC in 64 without a secondary bitmap, in 128 with one, and replaces an old one', () => {
    const primary = new IsoMessage('0230', { 11: '0000000001', 39: '00' });
    expect(macFieldFor(primary)).toBe(64);
    const p = signMessage(primary, KEY);
    expect(p.numbers()).toEqual([11, 39, 64]);
    expect(toHex(pack(p)).slice(-16)).toBe(toHex(cmac(KEY, pack(primary.with(64, new Uint8Array(8))).subarray(0, -8)).subarray(0, 8)));
    expect(macFieldFor(signOn())).toBe(128);
    // Re-signing with another key replaces the MAC; signing never stacks two.
    const again = signMessage(p, macKeyOf('TERM0001'));
    expect(again.numbers()).toEqual([11, 39, 64]);
    expect(verifyMessage(again, KEY)).toBe(false);
    // A message that only had 128 goes back to 64 once the secondary fields are gone.
    expect(signMessage(new IsoMessage('0230', { 39: '00', 128: new Uint8Array(8) }), KEY).numbers()).toEqual([39, 64]);
  });

  it('verifies any valid message it signs, from the message and from the bytes (property)', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const signed = signMessage(m, KEY);
        expect(verifyMessage(signed, KEY)).toBe(true);
        expect(verifyMessage(pack(signed), KEY)).toBe(true);
        expect(verifyMessage(m.without(64, 128), KEY)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('fails when any single bit of the signed bytes flips', () => {
    for (const m of [signOn(), new IsoMessage('0230', { 7: '0314093015', 11: '0000000009', 39: '00', 41: 'TERM0001' })]) {
      const bytes = pack(signMessage(m, KEY));
      let undecodable = 0;
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const flipped = bytes.slice();
        flipped[bit >> 3] ^= 0x80 >> (bit & 7);
        try {
          expect(verifyMessage(flipped, KEY), `bit ${bit}`).toBe(false);
        } catch (e) {
          // A flip in the structure makes bytes that are not a message at all: refused by the codec.
          if (!(e instanceof Iso8583Error)) throw e;
          undecodable++;
        }
      }
      expect(undecodable).toBeLessThan(bytes.length * 8);
    }
  });

  it('fails under another terminal key, another key version, another master', () => {
    const key = macKeyOf('TERM0001');
    const signed = signMessage(signOn(), key);
    expect(verifyMessage(signed, key)).toBe(true);
    expect(verifyMessage(signed, macKeyOf('TERM0002'))).toBe(false);
    expect(verifyMessage(signed, macKeyOf('TERM0001', 2))).toBe(false);
    expect(verifyMessage(signed, deriveTerminalKey(TEST_MASTER_KEK, 'mac', 'TERM0001', 1))).toBe(false);
    expect(verifyMessage(signed, deriveTerminalKey(TEST_MASTER_MAC, 'kek', 'TERM0001', 1))).toBe(false);
  });

  it('does not verify a MAC in the wrong field, nor a message without one', () => {
    const signed = signMessage(new IsoMessage('0230', { 39: '00' }), KEY);
    const moved = new IsoMessage('0230', { 39: '00', 128: signed.bytes(64)! });
    expect(verifyMessage(moved, KEY)).toBe(false);
    expect(() => assertMessageMac(moved, KEY)).toThrow(IsoMacError);
    try {
      assertMessageMac(signed.with(39, '05'), KEY);
      throw new Error('expected IsoMacError');
    } catch (e) {
      expect(e).toBeInstanceOf(IsoMacError);
      expect((e as IsoMacError).reason).toBe('bad-mac');
      expect((e as IsoMacError).code).toBe('AUTH_FAILED');
      expect((e as IsoMacError).isoMessage?.text(39)).toBe('05');
    }
    try {
      assertMessageMac(new IsoMessage('0230', { 39: '00' }), KEY);
      throw new Error('expected IsoMacError');
    } catch (e) {
      expect((e as IsoMacError).reason).toBe('no-mac');
    }
  });

  it('refuses bytes that are not a message with the codec error, and bad keys as bad input', () => {
    expect(() => verifyMessage(fromHex('0800'), KEY)).toThrow(Iso8583Error);
    expect(() => verifyMessage(signOn(), new Uint8Array(15))).toThrow(BadInputError);
    expect(() => signMessage(signOn(), new Uint8Array(8))).toThrow(BadInputError);
    expect(() => signMessage({} as IsoMessage, KEY)).toThrow(BadInputError);
    expect(MAC_LENGTH).toBe(8);
    expect(unpack(pack(signMessage(signOn(), KEY))).message.bytes(128)).toHaveLength(8);
  });
});

describe('per-terminal key derivation', () => {
  it('lays the PRF input out as documented, byte by byte', () => {
    const input = terminalKeyDerivationInput('mac', 0x07, 'TERM0001', 128, 1);
    const expected = concatBytes(
      fromHex('01'), // counter
      new TextEncoder().encode('hilt-hostlink-key-v1'), // label, 20 bytes
      fromHex('00'), // separator
      fromHex('01'), // usage: MAC
      fromHex('07'), // key version
      fromHex('08'), // terminal id length
      new TextEncoder().encode('TERM0001'),
      fromHex('0080'), // L = 128 bits
    );
    expect(toHex(input)).toBe(toHex(expected));
    expect(TERMINAL_KEY_LABEL).toHaveLength(20);
    expect(terminalKeyDerivationInput('kek', 1, 'T', 256, 2)[22]).toBe(0x02);
  });

  it('derives CMAC(master, input) blocks, as long as the master key', () => {
    const k128 = deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM0001', 1);
    expect(toHex(k128)).toBe(toHex(cmac(TEST_MASTER_MAC, terminalKeyDerivationInput('mac', 1, 'TERM0001', 128, 1))));
    const master256 = fromHex('603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4');
    const k256 = deriveTerminalKey(master256, 'kek', 'T9', 3);
    expect(k256).toHaveLength(32);
    expect(toHex(k256)).toBe(
      toHex(concatBytes(cmac(master256, terminalKeyDerivationInput('kek', 3, 'T9', 256, 1)), cmac(master256, terminalKeyDerivationInput('kek', 3, 'T9', 256, 2)))),
    );
    const master192 = fromHex('8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b');
    expect(deriveTerminalKey(master192, 'mac', 'T9', 3)).toHaveLength(24);
  });

  it('gives distinct keys for distinct terminals, versions and uses', () => {
    const keys = [
      deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM0001', 1),
      deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM0002', 1),
      deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM0001', 2),
      deriveTerminalKey(TEST_MASTER_MAC, 'kek', 'TERM0001', 1),
      deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM000', 1),
    ].map(toHex);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("never builds an input of SCP03's, diversify.ts's or the purse key's KDF", () => {
    const id = new TextEncoder().encode('TERM0001');
    for (const counter of [1, 2]) {
      const ours = terminalKeyDerivationInput('mac', 1, 'TERM0001', 256, counter);
      // SCP03 inputs start with 00, ours with the counter.
      expect(scp03DerivationData(0x04, 256, counter, id)[0]).toBe(0x00);
      expect(ours[0]).toBe(counter);
      // diversify.ts and the purse key start with the counter too; the labels differ at byte 6 of the input.
      expect(String.fromCharCode(ours[6])).toBe('h');
      expect(String.fromCharCode(diversificationInput('mac', 1, id, 256, counter)[6])).toBe('c');
      expect(String.fromCharCode(purseKeyDerivationInput(id, 256, counter)[6])).toBe('p');
    }
  });

  it('refuses bad parameters', () => {
    expect(() => deriveTerminalKey(new Uint8Array(15), 'mac', 'T', 1)).toThrow(BadInputError);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'dek' as never, 'T', 1)).toThrow(BadInputError);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'TERM00001', 1)).toThrow(/1 to 8/);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'mac', '', 1)).toThrow(BadInputError);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'T ', 1)).toThrow(BadInputError);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'T', 0)).toThrow(BadInputError);
    expect(() => deriveTerminalKey(TEST_MASTER_MAC, 'mac', 'T', 256)).toThrow(BadInputError);
  });
});

describe('key wrapping', () => {
  const kek = deriveTerminalKey(TEST_MASTER_KEK, 'kek', 'TERM0001', 1);

  it('wraps AES-CBC, zero IV, over the key padded 80 00.., with its KCV', () => {
    const key = fromHex('000102030405060708090a0b0c0d0e0f');
    const w = wrapKey(kek, key);
    const padded = concatBytes(key, fromHex('80'), new Uint8Array(15));
    expect(toHex(w.wrapped)).toBe(toHex(aesCbcEncrypt(kek, new Uint8Array(16), padded)));
    expect(w.kcv).toEqual(keyCheckValue(key));
    expect(unwrapKey(kek, w.wrapped, w.kcv)).toEqual(key);
  });

  it('round-trips 16, 24 and 32-byte keys', () => {
    for (const n of [16, 24, 32]) {
      const key = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      const w = wrapKey(kek, key);
      expect(w.wrapped.length).toBe(n === 32 ? 48 : 32);
      expect(unwrapKey(kek, w.wrapped, w.kcv)).toEqual(key);
    }
  });

  it('refuses a wrong KEK, a changed wrap or KCV, and bad padding, with one error', () => {
    const key = fromHex('000102030405060708090a0b0c0d0e0f');
    const w = wrapKey(kek, key);
    const other = deriveTerminalKey(TEST_MASTER_KEK, 'kek', 'TERM0002', 1);
    expect(() => unwrapKey(other, w.wrapped, w.kcv)).toThrow(KeyUnwrapError);
    const flipped = w.wrapped.slice();
    flipped[5] ^= 1;
    expect(() => unwrapKey(kek, flipped, w.kcv)).toThrow(KeyUnwrapError);
    expect(() => unwrapKey(kek, w.wrapped, Uint8Array.of(0, 0, 0))).toThrow(KeyUnwrapError);
    // A 20-byte "key" padded to 32: a length no AES key has.
    const odd = aesCbcEncrypt(kek, new Uint8Array(16), concatBytes(new Uint8Array(20).fill(1), fromHex('80'), new Uint8Array(11)));
    expect(() => unwrapKey(kek, odd, w.kcv)).toThrow(KeyUnwrapError);
    const noMarker = aesCbcEncrypt(kek, new Uint8Array(16), new Uint8Array(32));
    expect(() => unwrapKey(kek, noMarker, w.kcv)).toThrow(KeyUnwrapError);
    expect(() => unwrapKey(kek, new Uint8Array(16), w.kcv)).toThrow(BadInputError);
    try {
      unwrapKey(other, w.wrapped, w.kcv);
    } catch (e) {
      expect((e as KeyUnwrapError).code).toBe('AUTH_FAILED');
    }
  });
});
