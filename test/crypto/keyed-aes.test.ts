/**
 * The keyed objects AesKey and CmacKey: known-answer vectors, agreement with the one-shot
 * functions on random keys and messages (and on random interleavings of operations on one key,
 * since encryption runs through one persistent CBC cipher whose state the object tracks), node's
 * decipher returning every block without hold-back, and destroy semantics (refusal, zeroization).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { AesKey, KeyDestroyedError, aesCbcDecrypt, aesCbcEncrypt, aesEncryptBlock } from '../../src/crypto/aes.js';
import { CmacKey, cmac, cmacSubkeys } from '../../src/crypto/cmac.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';
import { CMAC_MESSAGE_LENGTHS, FIPS197, SP800_38A_CBC, SP800_38A_PLAINTEXT, SP800_38B } from './aes-cmac-vectors.js';

const anyKey = fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
const block = fc.uint8Array({ minLength: 16, maxLength: 16 });
const blocks = (max: number): fc.Arbitrary<Uint8Array> => fc.integer({ min: 0, max }).chain((n) => fc.uint8Array({ minLength: n * 16, maxLength: n * 16 }));

/** ECB the slow way, one one-shot block at a time. */
const ecbOneShot = (key: Uint8Array, data: Uint8Array): Uint8Array => {
  const out = new Uint8Array(data.length);
  for (let o = 0; o < data.length; o += 16) out.set(aesEncryptBlock(key, data.subarray(o, o + 16)), o);
  return out;
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('node:crypto with padding off', () => {
  it('an ECB decipher returns every block from update(), holding none back for final()', () => {
    const key = fromHex(SP800_38A_CBC[0].key);
    const enc = createCipheriv('aes-128-ecb', key, null);
    enc.setAutoPadding(false);
    const dec = createDecipheriv('aes-128-ecb', key, null);
    dec.setAutoPadding(false);
    for (const n of [1, 1, 3, 1, 16, 2]) {
      const plain = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 31 + n) & 0xff);
      const c = enc.update(plain);
      expect(c.length).toBe(plain.length);
      const p = dec.update(c);
      expect(p.length).toBe(plain.length); // with padding on, the last block would wait for final()
      expect(toHex(p)).toBe(toHex(plain));
    }
  });

  it('with padding ON the same decipher holds the last block back (what the check above guards against)', () => {
    const key = new Uint8Array(16);
    const dec = createDecipheriv('aes-128-ecb', key, null);
    expect(dec.update(new Uint8Array(32)).length).toBe(16);
  });

  it('AesKey.decryptBlocks answers a single block at once, every time', () => {
    const v = FIPS197[0];
    const k = new AesKey(fromHex(v.key));
    for (let i = 0; i < 3; i++) expect(toHex(k.decryptBlocks(fromHex(v.ciphertext)))).toBe(v.plaintext);
  });
});

describe('AesKey: known-answer vectors', () => {
  it.each(FIPS197)('FIPS 197 $name: encryptBlock, encryptBlocks, decryptBlocks', (v) => {
    const k = new AesKey(fromHex(v.key));
    expect(k.length).toBe(v.key.length / 2);
    expect(toHex(k.encryptBlock(fromHex(v.plaintext)))).toBe(v.ciphertext);
    expect(toHex(k.encryptBlocks(fromHex(v.plaintext + v.plaintext)))).toBe(v.ciphertext + v.ciphertext);
    expect(toHex(k.decryptBlocks(fromHex(v.ciphertext)))).toBe(v.plaintext);
    // The first block again, after other work: no state leaks from one call into the next.
    expect(toHex(k.encryptBlock(fromHex(v.plaintext)))).toBe(v.ciphertext);
  });

  it.each(SP800_38A_CBC)('SP 800-38A $name: cbcEncrypt and cbcDecrypt, twice each, interleaved', (v) => {
    const k = new AesKey(fromHex(v.key));
    const iv = fromHex(v.iv);
    for (let i = 0; i < 2; i++) {
      expect(toHex(k.cbcEncrypt(iv, fromHex(v.plaintext)))).toBe(v.ciphertext);
      expect(toHex(k.cbcDecrypt(iv, fromHex(v.ciphertext)))).toBe(v.plaintext);
    }
    // Block 2..4 under IV = ciphertext block 1: the chaining continues correctly from any IV.
    expect(toHex(k.cbcEncrypt(fromHex(v.ciphertext.slice(0, 32)), fromHex(v.plaintext.slice(32))))).toBe(v.ciphertext.slice(32));
    expect(toHex(k.cbcDecrypt(fromHex(v.ciphertext.slice(0, 32)), fromHex(v.ciphertext.slice(32))))).toBe(v.plaintext.slice(32));
  });

  it('returns plain Uint8Arrays, never Buffers, and empty input gives empty output', () => {
    const k = new AesKey(new Uint8Array(16));
    const iv = new Uint8Array(16);
    for (const out of [k.encryptBlock(iv), k.encryptBlocks(new Uint8Array(32)), k.decryptBlocks(new Uint8Array(32)), k.cbcEncrypt(iv, new Uint8Array(32)), k.cbcDecrypt(iv, new Uint8Array(32))]) {
      expect(Object.getPrototypeOf(out)).toBe(Uint8Array.prototype);
    }
    expect(k.cbcEncrypt(iv, new Uint8Array(0)).length).toBe(0);
    expect(k.cbcDecrypt(iv, new Uint8Array(0)).length).toBe(0);
    expect(k.decryptBlocks(new Uint8Array(0)).length).toBe(0);
    expect(k.encryptBlocks(new Uint8Array(0)).length).toBe(0);
  });

  it('refuses bad keys, partial blocks and wrong IVs like the one-shot functions', () => {
    for (const bad of [new Uint8Array(15), new Uint8Array(33), 'key', null]) expect(() => new AesKey(bad as Uint8Array)).toThrow(BadInputError);
    const k = new AesKey(new Uint8Array(16));
    expect(() => k.encryptBlock(new Uint8Array(15))).toThrow(/got 15/);
    expect(() => k.encryptBlocks(new Uint8Array(17))).toThrow(/multiple of 16 bytes, got 17/);
    expect(() => k.decryptBlocks(new Uint8Array(17))).toThrow(/multiple of 16 bytes, got 17/);
    expect(() => k.cbcEncrypt(new Uint8Array(16), new Uint8Array(17))).toThrow(/multiple of 16 bytes, got 17/);
    expect(() => k.cbcDecrypt(new Uint8Array(16), new Uint8Array(31))).toThrow(/multiple of 16 bytes, got 31/);
    expect(() => k.cbcEncrypt(new Uint8Array(8), new Uint8Array(16))).toThrow(/IV: expected 16 bytes, got 8/);
    // A refused call leaves the key working and its chaining state intact.
    const v = FIPS197[0];
    const k2 = new AesKey(fromHex(v.key));
    expect(() => k2.cbcEncrypt(new Uint8Array(16), new Uint8Array(17))).toThrow(BadInputError);
    expect(toHex(k2.encryptBlock(fromHex(v.plaintext)))).toBe(v.ciphertext);
  });

  it('keeps its own copy of the key and leaves the inputs alone', () => {
    const v = SP800_38A_CBC[0];
    const key = fromHex(v.key);
    const k = new AesKey(key);
    key.fill(0xaa); // the caller reuses its buffer
    const iv = fromHex(v.iv);
    const plain = fromHex(v.plaintext);
    expect(toHex(k.cbcEncrypt(iv, plain))).toBe(v.ciphertext);
    expect(toHex(iv)).toBe(v.iv);
    expect(toHex(plain)).toBe(v.plaintext);
    k.destroy();
    expect(key.every((b) => b === 0xaa)).toBe(true); // destroy zeroizes its copy, not the caller's key
  });
});

describe('AesKey agrees with the one-shot functions (random keys, data, and call orders)', () => {
  type Op = { kind: 'block'; data: Uint8Array } | { kind: 'ecb' | 'ecb-dec'; data: Uint8Array } | { kind: 'cbc' | 'cbc-dec'; iv: Uint8Array; data: Uint8Array };
  const op: fc.Arbitrary<Op> = fc.oneof(
    block.map((data): Op => ({ kind: 'block', data })),
    blocks(5).map((data): Op => ({ kind: 'ecb', data })),
    blocks(5).map((data): Op => ({ kind: 'ecb-dec', data })),
    fc.tuple(block, blocks(19)).map(([iv, data]): Op => ({ kind: 'cbc', iv, data })),
    fc.tuple(block, blocks(19)).map(([iv, data]): Op => ({ kind: 'cbc-dec', iv, data })),
  );

  it('every operation, in any order on one key, gives what a fresh one-shot call gives', () => {
    fc.assert(
      fc.property(anyKey, fc.array(op, { minLength: 1, maxLength: 12 }), (key, ops) => {
        const k = new AesKey(key);
        for (const o of ops) {
          switch (o.kind) {
            case 'block':
              expect(toHex(k.encryptBlock(o.data))).toBe(toHex(aesEncryptBlock(key, o.data)));
              break;
            case 'ecb':
              expect(toHex(k.encryptBlocks(o.data))).toBe(toHex(ecbOneShot(key, o.data)));
              break;
            case 'ecb-dec':
              expect(toHex(ecbOneShot(key, k.decryptBlocks(o.data)))).toBe(toHex(o.data));
              break;
            case 'cbc':
              expect(toHex(k.cbcEncrypt(o.iv, o.data))).toBe(toHex(aesCbcEncrypt(key, o.iv, o.data)));
              break;
            case 'cbc-dec':
              expect(toHex(k.cbcDecrypt(o.iv, o.data))).toBe(toHex(aesCbcDecrypt(key, o.iv, o.data)));
              break;
          }
        }
        k.destroy();
      }),
      { numRuns: 200 },
    );
  });
});

describe('CmacKey', () => {
  const message = fromHex(SP800_38A_PLAINTEXT);

  it.each(SP800_38B)('SP 800-38B $name (RFC 4493 for AES-128): examples 1-4 on one key, forwards then backwards', (v) => {
    const k = new CmacKey(fromHex(v.key));
    const order = [0, 1, 2, 3, 3, 2, 1, 0];
    for (const i of order) expect(toHex(k.mac(message.subarray(0, CMAC_MESSAGE_LENGTHS[i])))).toBe(v.tags[i]);
  });

  it('agrees with cmac(key, msg) on random keys (16/24/32) and messages of 0..300 bytes, reusing each key', () => {
    fc.assert(
      fc.property(anyKey, fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 4 }), (key, msgs) => {
        const k = new CmacKey(key);
        for (const m of msgs) expect(toHex(k.mac(m))).toBe(toHex(cmac(key, m)));
        k.destroy();
      }),
      { numRuns: 300 },
    );
  });

  it('leaves the message alone and answers a fresh Uint8Array', () => {
    const k = new CmacKey(fromHex(SP800_38B[0].key));
    const msg = message.slice(0, 40);
    const tag = k.mac(msg);
    expect(toHex(msg)).toBe(SP800_38A_PLAINTEXT.slice(0, 80));
    expect(Object.getPrototypeOf(tag)).toBe(Uint8Array.prototype);
    tag.fill(0); // the caller owns the tag: scribbling on it changes nothing next time
    expect(toHex(k.mac(msg))).toBe(SP800_38B[0].tags[2]);
  });

  it('refuses a bad key and a message that is not bytes', () => {
    expect(() => new CmacKey(new Uint8Array(20))).toThrow(/CMAC key: expected 16, 24 or 32 bytes, got 20/);
    expect(() => new CmacKey(new Uint8Array(16)).mac('abc' as unknown as Uint8Array)).toThrow(/CMAC message: expected Uint8Array, got string/);
  });
});

describe('destroy()', () => {
  it('AesKey: every method refuses with KeyDestroyedError (KEY_ACCESS); destroy is idempotent', () => {
    const k = new AesKey(new Uint8Array(16));
    k.encryptBlock(new Uint8Array(16));
    k.decryptBlocks(new Uint8Array(16));
    expect(k.destroyed).toBe(false);
    k.destroy();
    k.destroy();
    expect(k.destroyed).toBe(true);
    const iv = new Uint8Array(16);
    const uses = [
      () => k.encryptBlock(iv),
      () => k.encryptBlocks(iv),
      () => k.decryptBlocks(iv),
      () => k.cbcEncrypt(iv, iv),
      () => k.cbcDecrypt(iv, iv),
      () => k.cbcEncrypt(iv, new Uint8Array(0)),
    ];
    for (const use of uses) {
      expect(use).toThrow(KeyDestroyedError);
      expect(use).toThrow(expect.objectContaining({ code: 'KEY_ACCESS' }));
    }
  });

  it('a never-used AesKey can be destroyed, and then refuses too', () => {
    const k = new AesKey(new Uint8Array(32));
    k.destroy();
    expect(() => k.encryptBlock(new Uint8Array(16))).toThrow(KeyDestroyedError);
  });

  it('CmacKey: mac refuses with KeyDestroyedError after destroy, used or not', () => {
    const used = new CmacKey(new Uint8Array(16));
    used.mac(new Uint8Array(3));
    const unused = new CmacKey(new Uint8Array(16));
    for (const k of [used, unused]) {
      k.destroy();
      k.destroy();
      expect(k.destroyed).toBe(true);
      expect(() => k.mac(new Uint8Array(0))).toThrow(KeyDestroyedError);
    }
  });

  /** Records the contents of every Uint8Array (or, with `buffers`, node Buffer) zeroed by fill(0) while `run` runs. */
  function zeroedDuring(run: () => void, buffers = false): Set<string> {
    const seen = new Set<string>();
    const proto: Uint8Array = buffers ? Buffer.prototype : Uint8Array.prototype;
    const original = proto.fill;
    vi.spyOn(proto, 'fill').mockImplementation(function (this: Uint8Array, value: number, start?: number, end?: number) {
      if (value === 0 && start === undefined && end === undefined) seen.add(toHex(this));
      return original.call(this, value, start, end);
    });
    try {
      run();
    } finally {
      vi.restoreAllMocks();
    }
    return seen;
  }

  it('CmacKey.destroy zeroizes the subkeys K1, K2 and the key copy', () => {
    const v = SP800_38B[1];
    const key = fromHex(v.key);
    const k = new CmacKey(key);
    expect(toHex(k.mac(new Uint8Array(0)))).toBe(v.tags[0]);
    const { k1, k2 } = cmacSubkeys(key);
    const zeroed = zeroedDuring(() => k.destroy());
    expect(zeroed).toContain(toHex(k1));
    expect(zeroed).toContain(toHex(k2));
    expect(zeroed).toContain(v.key);
  });

  it("AesKey.destroy zeroizes the key copy and the cipher's chaining state (the last ciphertext block)", () => {
    const v = SP800_38A_CBC[1];
    const k = new AesKey(fromHex(v.key));
    k.cbcEncrypt(fromHex(v.iv), fromHex(v.plaintext));
    const zeroed = zeroedDuring(() => k.destroy());
    expect(zeroed).toContain(v.key);
    expect(zeroed).toContain(v.ciphertext.slice(-32));
  });

  it("zeroes node's output Buffers after copying them out", () => {
    const v = FIPS197[2];
    const k = new AesKey(fromHex(v.key));
    const decrypted = zeroedDuring(() => k.decryptBlocks(fromHex(v.ciphertext)), true);
    expect(decrypted).toEqual(new Set([v.plaintext])); // node's Buffer held the plaintext, and was zeroed
    const iv = fromHex(v.plaintext);
    const cbc = zeroedDuring(() => k.cbcDecrypt(iv, fromHex(v.ciphertext + v.ciphertext)), true);
    expect(cbc.size).toBe(1);
    const encrypted = zeroedDuring(() => k.encryptBlock(fromHex(v.plaintext)), true);
    expect(encrypted).toEqual(new Set([v.ciphertext]));
  });
});
