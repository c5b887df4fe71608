/**
 * hilt's per-card key diversification (src/crypto/diversify.ts, applets-spec/security.md).
 *
 * The scheme is hilt's own, so there are no official vectors. The expected values below were
 * computed outside this code base (Python `cryptography`'s CMAC, from the layout in security.md),
 * and this file carries a second independent implementation on node:crypto (AES-ECB one block at a
 * time, its own CMAC checked against RFC 4493): every vector must agree with both.
 */
import { describe, expect, it } from 'vitest';
import { createCipheriv, createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  DIVERSIFICATION_LABEL,
  KDD_LENGTH,
  KEY_TYPE,
  KEY_TYPES,
  TEST_KEY_SETS,
  TEST_KEYS_LABEL,
  diversificationInput,
  diversifyKey,
  diversifyStaticKeys,
  kcvHex,
  kddFromSerial,
  keyCheckValue,
  testStaticKeys,
  type KeyType,
} from '../../src/crypto/diversify.js';
import { scp03DerivationData } from '../../src/crypto/kdf.js';
import { HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

// ------------------------------------------------------------------------------------------------
// The independent reference, on node:crypto only (no hilt code).

function refAesBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(block), c.final()]));
}

/** Doubling in GF(2^128) via BigInt, a different route from the byte loop in src/crypto/cmac.ts. */
function refDouble(b: Uint8Array): Uint8Array {
  let x = BigInt('0x' + Buffer.from(b).toString('hex'));
  const carry = x >> 127n;
  x = (x << 1n) & ((1n << 128n) - 1n);
  if (carry === 1n) x ^= 0x87n;
  return new Uint8Array(Buffer.from(x.toString(16).padStart(32, '0'), 'hex'));
}

function refCmac(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const k1 = refDouble(refAesBlock(key, new Uint8Array(16)));
  const k2 = refDouble(k1);
  const n = Math.max(1, Math.ceil(msg.length / 16));
  const complete = msg.length > 0 && msg.length % 16 === 0;
  let x: Uint8Array = new Uint8Array(16);
  for (let b = 0; b < n; b++) {
    const block = new Uint8Array(16);
    const part = msg.subarray(b * 16, b * 16 + 16);
    block.set(part);
    if (b === n - 1) {
      if (!complete) block[part.length] = 0x80;
      const sub = complete ? k1 : k2;
      for (let i = 0; i < 16; i++) block[i] ^= sub[i];
    }
    for (let i = 0; i < 16; i++) block[i] ^= x[i];
    x = refAesBlock(key, block);
  }
  return x;
}

const REF_TYPE: Record<KeyType, number> = { enc: 1, mac: 2, dek: 3 };

function refDiversify(master: Uint8Array, type: KeyType, kvn: number, data: Uint8Array): Uint8Array {
  const out: number[] = [];
  for (let i = 1; out.length < master.length; i++) {
    const input = Buffer.concat([
      Buffer.from([i]),
      Buffer.from('hilt-card-key-v1', 'ascii'),
      Buffer.from([0, REF_TYPE[type], kvn, data.length]),
      Buffer.from(data),
      Buffer.from([(master.length * 8) >> 8, (master.length * 8) & 0xff]),
    ]);
    out.push(...refCmac(master, new Uint8Array(input)));
  }
  return Uint8Array.from(out.slice(0, master.length));
}

function refKcv(key: Uint8Array): string {
  return Buffer.from(refAesBlock(key, new Uint8Array(16).fill(1)).subarray(0, 3)).toString('hex').toUpperCase();
}

function refKdd(serial: Uint8Array): Uint8Array {
  const h = createHash('sha256').update('hilt-kdd-v1').update(Uint8Array.of(serial.length)).update(serial).digest();
  return new Uint8Array(h.subarray(0, 10));
}

const range = (from: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => from + i);

// ------------------------------------------------------------------------------------------------
// Vectors (computed with Python `cryptography`, see the file comment)

interface DivVector {
  name: string;
  master: Uint8Array;
  kvn: number;
  data: Uint8Array;
  expected: Record<KeyType, string>;
  masterKcv: string;
}

const VECTORS: readonly DivVector[] = [
  {
    name: 'AES-128, kvn 01, 10-byte KDD',
    master: range(0x00, 16),
    kvn: 0x01,
    data: fromHex('00112233445566778899'),
    expected: {
      enc: '9bfbea46ac6fd6048a00d160464b855b',
      mac: 'b174e74dc662f537028d745ba1cbc6a6',
      dek: '3c5125bdf99ef80d13abee009fda962a',
    },
    masterKcv: 'C35280',
  },
  {
    name: 'AES-192, kvn 30, 1-byte serial',
    master: range(0x20, 24),
    kvn: 0x30,
    data: fromHex('a5'),
    expected: {
      enc: 'ce819fa3b06a25caece6bade6f34585dda149ae6694df372',
      mac: '07fe0d3b4f8ef3976fd104bc470ca54366fd5e4ab5a67749',
      dek: '9f3be0bb6f60467c95685cb66af4ce1b20f7f8d775a307ea',
    },
    masterKcv: '20ED61',
  },
  {
    name: 'AES-256, kvn FF, 32-byte serial',
    master: range(0x80, 32),
    kvn: 0xff,
    data: range(0x40, 32),
    expected: {
      enc: '534ec3f78f03dff1a4cbf60592ee65d42e5f448473cceb94e5ad32c38b32d3b6',
      mac: '4effd460f9399da7232d8e13c6abe18b4b855aaba673575f576616812a0b03f3',
      dek: '2774d5d5441ce042cda4d632ea4773c3a6b728505912fd72815c5fcaeaf1f19d',
    },
    masterKcv: 'AC98F7',
  },
];

/** The worked example of applets-spec/security.md: TEST master keys of 'emoney', serial "HILT0000001". */
const SPEC_EXAMPLE = {
  serial: fromHex('48494c5430303030303031'),
  kdd: '39fbd12da5d8f9ecfbd8',
  input: {
    enc: '0168696c742d636172642d6b65792d76310001010a39fbd12da5d8f9ecfbd80080',
    mac: '0168696c742d636172642d6b65792d76310002010a39fbd12da5d8f9ecfbd80080',
    dek: '0168696c742d636172642d6b65792d76310003010a39fbd12da5d8f9ecfbd80080',
  },
  cardKeys: { enc: '458f0c5e7d8c363d61db614df5b6347c', mac: '60e6d59eff75653da2aa1a003054d1f3', dek: '62e3942bb186370178d3ef88fb1ce9b5' },
  cardKcv: { enc: 'AC4F30', mac: 'B8B7D5', dek: '5FC3F0' },
} as const;

const KDD_VECTORS: readonly [serial: string, kdd: string][] = [
  ['01', '3d266629131b8e861e08'],
  ['0001', 'a8c8a9d81fae12eb91fa'],
  ['04a22b196c80', 'f5f9bd98961c43f8399d'],
  ['48494c54303030303031', '51644bbc5edf4bc599c4'],
];

/** Master KCVs of the built-in test keys (Python, as above). */
const TEST_KCVS: Record<string, Record<KeyType, string>> = {
  'gp-test': { enc: '504A77', mac: '504A77', dek: '504A77' },
  emoney: { enc: '7270F3', mac: '141973', dek: '511F2B' },
  bank: { enc: '486FD1', mac: '4C2700', dek: '37C445' },
  credit: { enc: '0AFA11', mac: '356BC7', dek: '9DA317' },
};

// ------------------------------------------------------------------------------------------------

describe('the independent reference', () => {
  it('computes RFC 4493 CMAC examples (so it can vouch for the vectors)', () => {
    const k = fromHex('2b7e151628aed2a6abf7158809cf4f3c');
    expect(toHex(refCmac(k, new Uint8Array(0)))).toBe('bb1d6929e95937287fa37d129b756746');
    expect(toHex(refCmac(k, fromHex('6bc1bee22e409f96e93d7e117393172a')))).toBe('070a16b46b4d4144f79bdd9dd04a287c');
    const m40 = fromHex('6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411');
    expect(toHex(refCmac(k, m40))).toBe('dfa66747de9ae63030ca32611497c827');
  });
});

describe('diversifyKey: known answers', () => {
  for (const v of VECTORS) {
    for (const t of KEY_TYPES) {
      it(`${v.name}, ${t}`, () => {
        expect(toHex(refDiversify(v.master, t, v.kvn, v.data))).toBe(v.expected[t]);
        expect(toHex(diversifyKey(v.master, t, v.kvn, v.data))).toBe(v.expected[t]);
      });
    }
    it(`${v.name}: diversifyStaticKeys derives each key from the master of its type`, () => {
      const master = { enc: v.master, mac: v.master, dek: v.master, kvn: v.kvn };
      const card = diversifyStaticKeys(master, v.data);
      expect({ enc: toHex(card.enc), mac: toHex(card.mac), dek: toHex(card.dek), kvn: card.kvn }).toEqual({ ...v.expected, kvn: v.kvn });
    });
  }

  it('the worked example of security.md: layout byte by byte, card keys and KCVs', () => {
    const master = testStaticKeys('emoney');
    const kdd = kddFromSerial(SPEC_EXAMPLE.serial);
    expect(toHex(kdd)).toBe(SPEC_EXAMPLE.kdd);
    for (const t of KEY_TYPES) {
      expect(toHex(diversificationInput(t, 0x01, kdd, 128, 1))).toBe(SPEC_EXAMPLE.input[t]);
    }
    const card = diversifyStaticKeys(master, kdd);
    for (const t of KEY_TYPES) {
      expect(toHex(card[t])).toBe(SPEC_EXAMPLE.cardKeys[t]);
      expect(toHex(refDiversify(master[t], t, 0x01, kdd))).toBe(SPEC_EXAMPLE.cardKeys[t]);
      expect(kcvHex(card[t])).toBe(SPEC_EXAMPLE.cardKcv[t]);
    }
  });

  it('the AES-256 and second-card examples of security.md', () => {
    const kdd = kddFromSerial(SPEC_EXAMPLE.serial);
    const bank = diversifyStaticKeys(testStaticKeys('bank'), kdd);
    expect([toHex(bank.enc), kcvHex(bank.enc), kcvHex(bank.mac), kcvHex(bank.dek)]).toEqual([
      'ba4f94d1893cb296fd3151762328ea37df35668bf9d74a2dfd6080a361b369f3',
      '3786AF',
      'F955EE',
      '7C7F5C',
    ]);
    const kdd2 = kddFromSerial(fromHex('48494c5430303030303032'));
    expect(toHex(kdd2)).toBe('aa4b93e188e6213be079');
    const enc2 = diversifyKey(testStaticKeys('emoney').enc, 'enc', 1, kdd2);
    expect([toHex(enc2), kcvHex(enc2)]).toEqual(['a744933668ff1aa2956177d70dd49e35', '41DD0F']);
  });

  it('pins the input layout: counter, label, separator, type, kvn, length-prefixed data, L', () => {
    const data = fromHex('aabbcc');
    const input = diversificationInput('dek', 0x7f, data, 256, 2);
    expect(input.length).toBe(21 + 3 + 2);
    expect(input[0]).toBe(2);
    expect(new TextDecoder().decode(input.subarray(1, 17))).toBe(DIVERSIFICATION_LABEL);
    expect(DIVERSIFICATION_LABEL).toHaveLength(16);
    expect(toHex(input.subarray(17))).toBe('00' + '03' + '7f' + '03' + 'aabbcc' + '0100');
    expect(KEY_TYPE).toEqual({ enc: 1, mac: 2, dek: 3 });
  });
});

describe('key check values', () => {
  it('the GlobalPlatform default test key 40..4F has the AES KCV 504A77', () => {
    expect(kcvHex(fromHex('404142434445464748494A4B4C4D4E4F'))).toBe('504A77');
    expect(toHex(keyCheckValue(fromHex('404142434445464748494A4B4C4D4E4F')))).toBe('504a77');
  });

  it('agrees with the reference for every size', () => {
    for (const v of VECTORS) {
      expect(kcvHex(v.master)).toBe(v.masterKcv);
      expect(refKcv(v.master)).toBe(v.masterKcv);
    }
  });

  it('refuses what is not an AES key', () => {
    expect(() => keyCheckValue(new Uint8Array(15))).toThrow(/got 15/);
  });
});

describe('kddFromSerial', () => {
  it('known answers (also from the reference)', () => {
    for (const [serial, kdd] of KDD_VECTORS) {
      expect(toHex(kddFromSerial(fromHex(serial)))).toBe(kdd);
      expect(toHex(refKdd(fromHex(serial)))).toBe(kdd);
    }
  });

  it('is 10 bytes for serials of 1..32 bytes, and 01 and 00 01 differ (no padding collision)', () => {
    expect(kddFromSerial(fromHex('01'))).toHaveLength(KDD_LENGTH);
    expect(kddFromSerial(range(0, 32))).toHaveLength(KDD_LENGTH);
    expect(toHex(kddFromSerial(fromHex('01')))).not.toBe(toHex(kddFromSerial(fromHex('0001'))));
    expect(() => kddFromSerial(new Uint8Array(0))).toThrow(/1 to 32 bytes, got 0/);
    expect(() => kddFromSerial(new Uint8Array(33))).toThrow(/got 33/);
  });
});

describe('properties', () => {
  const master = fc.constantFrom(16, 24, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
  const data = fc.uint8Array({ minLength: 1, maxLength: 32 });
  const kvn = fc.integer({ min: 1, max: 255 });
  const type = fc.constantFrom<KeyType>('enc', 'mac', 'dek');

  it('is deterministic, as long as the master key, and agrees with the reference', () => {
    fc.assert(
      fc.property(master, type, kvn, data, (m, t, v, d) => {
        const a = diversifyKey(m, t, v, d);
        expect(a).toHaveLength(m.length);
        expect(toHex(diversifyKey(m, t, v, d))).toBe(toHex(a));
        expect(toHex(refDiversify(m, t, v, d))).toBe(toHex(a));
      }),
      { seed: 0x5eed, numRuns: 150 },
    );
  });

  it('different diversification data give different keys; key version and key type matter', () => {
    fc.assert(
      fc.property(master, type, kvn, data, data, (m, t, v, d1, d2) => {
        fc.pre(toHex(d1) !== toHex(d2));
        const k = toHex(diversifyKey(m, t, v, d1));
        expect(toHex(diversifyKey(m, t, v, d2))).not.toBe(k);
        expect(toHex(diversifyKey(m, t, v === 255 ? 1 : v + 1, d1))).not.toBe(k);
        for (const other of KEY_TYPES) if (other !== t) expect(toHex(diversifyKey(m, other, v, d1))).not.toBe(k);
        expect(k).not.toBe(toHex(m));
      }),
      { seed: 0xd1ff, numRuns: 150 },
    );
  });

  it('neighbouring serials give unrelated keys: ~half the bits differ on average', () => {
    // Serials n and n+1 (a one-bit-ish change) must not give keys closer than random ones would be.
    const m = range(0x10, 16);
    const popcount = (x: number): number => x.toString(2).replace(/0/g, '').length;
    let total = 0;
    const pairs = 400;
    for (let n = 0; n < pairs; n++) {
      const a = diversifyKey(m, 'enc', 1, Uint8Array.of(0, 0, n >> 8, n & 0xff));
      const b = diversifyKey(m, 'enc', 1, Uint8Array.of(0, 0, (n + 1) >> 8, (n + 1) & 0xff));
      for (let i = 0; i < 16; i++) total += popcount(a[i] ^ b[i]);
    }
    const mean = total / pairs; // 64 expected for 128 independent bits; sd of the mean ~0.28
    expect(mean).toBeGreaterThan(61);
    expect(mean).toBeLessThan(67);
  });

  it('equal ENC/MAC/DEK masters (the gp-test shape) still give three distinct card keys', () => {
    const gp = testStaticKeys('gp-test');
    const card = diversifyStaticKeys(gp, fromHex('00112233445566778899'));
    expect(new Set([toHex(card.enc), toHex(card.mac), toHex(card.dek)]).size).toBe(3);
  });

  it('no derivation input can equal an SCP03 KDF input (first byte 01/02 against 00)', () => {
    fc.assert(
      fc.property(type, kvn, data, fc.constantFrom<128 | 192 | 256>(128, 192, 256), fc.constantFrom(1, 2), (t, v, d, bits, i) => {
        expect([1, 2]).toContain(diversificationInput(t, v, d, bits, i)[0]);
      }),
      { seed: 7, numRuns: 100 },
    );
    for (const constant of [0x00, 0x01, 0x02, 0x04, 0x06, 0x07]) {
      expect(scp03DerivationData(constant, 128, 1, range(0, 16))[0]).toBe(0);
    }
  });
});

describe('bad inputs are refused with BAD_INPUT, naming what was received', () => {
  const m = range(0, 16);
  const d = fromHex('0011');
  const cases: readonly [string, () => unknown, RegExp][] = [
    ['empty data', () => diversifyKey(m, 'enc', 1, new Uint8Array(0)), /1 to 32 bytes, got 0/],
    ['33 bytes of data', () => diversifyKey(m, 'enc', 1, new Uint8Array(33)), /got 33/],
    ['data not bytes', () => diversifyKey(m, 'enc', 1, 'aa' as unknown as Uint8Array), /expected Uint8Array, got string/],
    ['15-byte master', () => diversifyKey(new Uint8Array(15), 'enc', 1, d), /got 15/],
    ['kvn 0', () => diversifyKey(m, 'enc', 0, d), /1 to 255, got 0/],
    ['kvn 256', () => diversifyKey(m, 'enc', 256, d), /got 256/],
    ['key type', () => diversifyKey(m, 'kek' as KeyType, 1, d), /'enc', 'mac' or 'dek', got kek/],
    ['counter 3', () => diversificationInput('enc', 1, d, 128, 3), /1 to 2, got 3/],
    ['bits 64', () => diversificationInput('enc', 1, d, 64 as 128, 1), /got 64/],
    ['static keys kvn 0', () => diversifyStaticKeys({ enc: m, mac: m, dek: m, kvn: 0 }, d), /got 0/],
    ['unknown test provider', () => testStaticKeys('nobody'), /no built-in test key set for provider 'nobody'/],
  ];
  for (const [name, run, message] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        run();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HiltError);
      expect((err as HiltError).code).toBe('BAD_INPUT');
      expect((err as Error).message).toMatch(message);
    });
  }
});

describe('built-in TEST keys', () => {
  it('are the documented providers, with the documented KCVs, and every key differs across providers', () => {
    expect(TEST_KEY_SETS.map((s) => s.provider)).toEqual(['gp-test', 'emoney', 'bank', 'credit']);
    for (const s of TEST_KEY_SETS) {
      const k = testStaticKeys(s.provider);
      expect({ enc: kcvHex(k.enc), mac: kcvHex(k.mac), dek: kcvHex(k.dek) }).toEqual(TEST_KCVS[s.provider]);
    }
    const all = TEST_KEY_SETS.flatMap((s) => [...new Set([s.enc, s.mac, s.dek])]);
    expect(new Set(all).size).toBe(all.length);
    expect(TEST_KEY_SETS.find((s) => s.provider === 'gp-test')).toMatchObject({ diversify: false, kvn: 0x30 });
    expect(TEST_KEYS_LABEL).toMatch(/^TEST KEYS/);
  });

  it('testStaticKeys returns fresh copies (zeroizing one does not touch the table)', () => {
    const a = testStaticKeys('bank');
    a.enc.fill(0);
    expect(kcvHex(testStaticKeys('bank').enc)).toBe('486FD1');
  });
});
