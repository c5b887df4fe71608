/**
 * The purse's shared cryptography (src/crypto/purse-certificate.ts): purse key derivation, the
 * transaction certificate, the load cryptogram, and the BCD field codecs.
 *
 * The scheme is hilt's own, so there are no official vectors. The expected values were computed
 * outside this code base with Python `cryptography`'s CMAC, from the byte layouts written in the
 * module comment and applets-spec/emoney-purse.md (the script is reproduced in that spec).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PURSE_KEY_LABEL,
  PURSE_MAC_KIND,
  TEST_PURSE_MASTER_HEX,
  decodeCurrency,
  decodePurseDateTime,
  encodeCertificateInput,
  encodeCurrency,
  encodeLoadCryptogramInput,
  encodePurseDateTime,
  loadCryptogram,
  purseCardKey,
  purseCertificate,
  purseKeyDerivationInput,
  testPurseMasterKey,
  verifyLoadCryptogram,
  verifyPurseCertificate,
  type LoadCryptogramFields,
  type PurseCertificateFields,
} from '../../src/crypto/purse-certificate.js';
import { diversificationInput } from '../../src/crypto/diversify.js';
import { scp03DerivationData } from '../../src/crypto/kdf.js';
import { HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();

const SERIAL = ascii('HILT0000001');
const TERMINAL = ascii('TERM0001');
const WHEN = fromHex('20250314093015');

/** Computed with Python `cryptography` (see the file comment). */
const VECTORS = {
  key128: 'BB98D8D95A80C4F43DD43A1DEB420D99',
  key128Serial2: '9785E41448595A42826C0FE13352DE9F',
  key192: '9E32B53267F8D7F15D5CBF4B87FAB2FDAF66FE0A2A676EB2',
  key256: 'F22386B6D84BCA91B55DD81B7B3EE35EB0569CEFDA9C60314E67FD13FDA74B15',
  certificateInput: 'C1010B48494C54303030303030310000000101000004E203925445524D303030310000002A202503140930150000222E',
  certificate: '9364EED5EA544CF4E28AF42CA821BDAF',
  loadCertificate: '82DF6D4D5767C6F4C425D0A2EE091BDD',
  loadInput: 'A1010B48494C5430303030303031000000010000138803925445524D303030310000002B20250314093015303030303030313233343536',
  load: 'A67C64C346709D928A93E26E8DD231D1',
} as const;

const DEBIT: PurseCertificateFields = {
  serial: SERIAL,
  counter: 1,
  type: 'debit',
  amount: 1250,
  currency: 392,
  terminalId: TERMINAL,
  terminalSequence: 42,
  dateTime: WHEN,
  balanceAfter: 8750,
};

const LOAD: LoadCryptogramFields = {
  serial: SERIAL,
  counter: 1,
  amount: 5000,
  currency: 392,
  terminalId: TERMINAL,
  terminalSequence: 43,
  dateTime: WHEN,
  issuerReference: ascii('000000123456'),
};

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof HiltError ? e.code : `not a HiltError: ${String(e)}`;
  }
  return undefined;
}

describe('purse key derivation', () => {
  it('derives the vector keys for AES-128, -192 and -256 masters', () => {
    expect(hex(purseCardKey(testPurseMasterKey(), SERIAL))).toBe(VECTORS.key128);
    expect(hex(purseCardKey(testPurseMasterKey(), ascii('HILT0000002')))).toBe(VECTORS.key128Serial2);
    const m192 = Uint8Array.from({ length: 24 }, (_, i) => 0x10 + i);
    const m256 = Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i);
    expect(hex(purseCardKey(m192, Uint8Array.of(1)))).toBe(VECTORS.key192);
    expect(hex(purseCardKey(m256, Uint8Array.from({ length: 32 }, (_, i) => i)))).toBe(VECTORS.key256);
  });

  it('lays out the PRF input as specified', () => {
    expect(hex(purseKeyDerivationInput(SERIAL, 128, 1))).toBe('01' + hex(ascii(PURSE_KEY_LABEL)) + '00' + '0B' + hex(SERIAL) + '0080');
    expect(hex(purseKeyDerivationInput(Uint8Array.of(0xaa), 256, 2))).toBe('02' + hex(ascii('hilt-purse-key-v1')) + '00' + '01AA' + '0100');
  });

  it('never produces an SCP03 or card-key diversification input', () => {
    const mine = purseKeyDerivationInput(SERIAL, 128, 1);
    const card = diversificationInput('enc', 1, SERIAL, 128, 1);
    const scp = scp03DerivationData(0x04, 128, 1, SERIAL);
    expect(mine[0]).not.toBe(0);
    expect(scp[0]).toBe(0);
    // same counter byte, labels differ at their sixth byte ('p' / 'c')
    expect(mine.subarray(0, 6)).toEqual(card.subarray(0, 6));
    expect(mine[6]).not.toBe(card[6]);
  });

  it('gives unrelated keys to serials that differ in length only', () => {
    const a = purseCardKey(testPurseMasterKey(), Uint8Array.of(1));
    const b = purseCardKey(testPurseMasterKey(), Uint8Array.of(0, 1));
    expect(hex(a)).not.toBe(hex(b));
  });

  it('refuses bad masters and serials', () => {
    expect(code(() => purseCardKey(new Uint8Array(15), SERIAL))).toBe('BAD_INPUT');
    expect(code(() => purseCardKey(testPurseMasterKey(), new Uint8Array(0)))).toBe('BAD_INPUT');
    expect(code(() => purseCardKey(testPurseMasterKey(), new Uint8Array(33)))).toBe('BAD_INPUT');
    expect(purseCardKey(testPurseMasterKey(), new Uint8Array(32)).length).toBe(16);
    expect(TEST_PURSE_MASTER_HEX).toHaveLength(32);
  });
});

describe('transaction certificate', () => {
  const key = fromHex(VECTORS.key128);

  it('encodes the input byte by byte and MACs it', () => {
    expect(hex(encodeCertificateInput(DEBIT))).toBe(VECTORS.certificateInput);
    expect(hex(purseCertificate(key, DEBIT))).toBe(VECTORS.certificate);
    expect(hex(purseCertificate(key, { ...DEBIT, counter: 2, type: 'load', amount: 5000, terminalSequence: 43, balanceAfter: 13750 }))).toBe(
      VECTORS.loadCertificate,
    );
    expect(encodeCertificateInput(DEBIT)[0]).toBe(PURSE_MAC_KIND.certificate);
  });

  it('verifies the genuine certificate and refuses it after any change to any field', () => {
    const mac = purseCertificate(key, DEBIT);
    expect(verifyPurseCertificate(key, DEBIT, mac)).toBe(true);
    const altered: [string, PurseCertificateFields][] = [
      ['serial', { ...DEBIT, serial: ascii('HILT0000002') }],
      ['counter', { ...DEBIT, counter: 2 }],
      ['type', { ...DEBIT, type: 'load' }],
      ['amount', { ...DEBIT, amount: 1251 }],
      ['currency', { ...DEBIT, currency: 978 }],
      ['terminal id', { ...DEBIT, terminalId: ascii('TERM0002') }],
      ['terminal sequence', { ...DEBIT, terminalSequence: 43 }],
      ['date-time', { ...DEBIT, dateTime: fromHex('20250314093016') }],
      ['balance after', { ...DEBIT, balanceAfter: 8751 }],
    ];
    for (const [what, fields] of altered) expect(verifyPurseCertificate(key, fields, mac), what).toBe(false);
    for (let i = 0; i < mac.length; i++) {
      const bad = mac.slice();
      bad[i] ^= 0x01;
      expect(verifyPurseCertificate(key, DEBIT, bad), `bit flip in byte ${i}`).toBe(false);
    }
    expect(verifyPurseCertificate(key, DEBIT, mac.subarray(0, 8)), 'truncated').toBe(false);
    expect(verifyPurseCertificate(purseCardKey(testPurseMasterKey(), ascii('HILT0000002')), DEBIT, mac), 'another card').toBe(false);
  });

  it('changes with every field (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (amount, balance): void => {
        const a = { ...DEBIT, amount, balanceAfter: balance };
        const mac = purseCertificate(key, a);
        expect(verifyPurseCertificate(key, a, mac)).toBe(true);
        expect(verifyPurseCertificate(key, { ...a, amount: (amount + 1) % 2 ** 32 }, mac)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses malformed fields', () => {
    const bad: [string, Partial<PurseCertificateFields>][] = [
      ['empty serial', { serial: new Uint8Array(0) }],
      ['long serial', { serial: new Uint8Array(33) }],
      ['negative counter', { counter: -1 }],
      ['counter 2^32', { counter: 2 ** 32 }],
      ['amount 2^32', { amount: 2 ** 32 }],
      ['fractional amount', { amount: 1.5 }],
      ['currency 0', { currency: 0 }],
      ['currency 1000', { currency: 1000 }],
      ['terminal id 7 bytes', { terminalId: new Uint8Array(7) }],
      ['date-time not BCD', { dateTime: fromHex('2025031409301A') }],
      ['month 13', { dateTime: fromHex('20251314093015') }],
      ['6 date-time bytes', { dateTime: fromHex('202503140930') }],
      ['unknown type', { type: 'refund' as 'debit' }],
      ['balance -1', { balanceAfter: -1 }],
    ];
    for (const [what, change] of bad) expect(code(() => encodeCertificateInput({ ...DEBIT, ...change })), what).toBe('BAD_INPUT');
    expect(code(() => purseCertificate(new Uint8Array(10), DEBIT))).toBe('BAD_INPUT');
  });
});

describe('load cryptogram', () => {
  const key = fromHex(VECTORS.key128);

  it('encodes the input byte by byte and MACs it', () => {
    expect(hex(encodeLoadCryptogramInput(LOAD))).toBe(VECTORS.loadInput);
    expect(hex(loadCryptogram(key, LOAD))).toBe(VECTORS.load);
    expect(encodeLoadCryptogramInput(LOAD)[0]).toBe(PURSE_MAC_KIND.loadCryptogram);
  });

  it('verifies only the load it was made for', () => {
    const c = loadCryptogram(key, LOAD);
    expect(verifyLoadCryptogram(key, LOAD, c)).toBe(true);
    const altered: [string, LoadCryptogramFields][] = [
      ['serial', { ...LOAD, serial: ascii('HILT0000002') }],
      ['counter (a replay after the load)', { ...LOAD, counter: 2 }],
      ['amount', { ...LOAD, amount: 5001 }],
      ['currency', { ...LOAD, currency: 840 }],
      ['terminal id', { ...LOAD, terminalId: ascii('TERM0002') }],
      ['terminal sequence', { ...LOAD, terminalSequence: 44 }],
      ['date-time', { ...LOAD, dateTime: fromHex('20250314093016') }],
      ['issuer reference', { ...LOAD, issuerReference: ascii('000000123457') }],
    ];
    for (const [what, fields] of altered) expect(verifyLoadCryptogram(key, fields, c), what).toBe(false);
    expect(code(() => encodeLoadCryptogramInput({ ...LOAD, issuerReference: new Uint8Array(11) }))).toBe('BAD_INPUT');
  });

  it('is never a certificate, nor a certificate a cryptogram, for the same values', () => {
    const asCertificate = encodeCertificateInput({ ...DEBIT, counter: LOAD.counter, amount: LOAD.amount });
    const asLoad = encodeLoadCryptogramInput(LOAD);
    expect(asCertificate[0]).not.toBe(asLoad[0]);
  });
});

describe('BCD fields', () => {
  it('codes currencies as 0d dd', () => {
    expect(hex(encodeCurrency(392))).toBe('0392');
    expect(hex(encodeCurrency(978))).toBe('0978');
    expect(hex(encodeCurrency(1))).toBe('0001');
    expect(decodeCurrency(fromHex('0840'))).toBe(840);
    for (const bad of ['0000', '1392', '03A2', '039F', 'FFFF', '03', '039200']) expect(decodeCurrency(fromHex(bad)), bad).toBeNull();
    expect(code(() => encodeCurrency(0))).toBe('BAD_INPUT');
    expect(code(() => encodeCurrency(1000))).toBe('BAD_INPUT');
  });

  it('codes date-times as YYYY MM DD hh mm ss', () => {
    const dt = { year: 2025, month: 3, day: 14, hour: 9, minute: 30, second: 15 };
    expect(hex(encodePurseDateTime(dt))).toBe('20250314093015');
    expect(decodePurseDateTime(fromHex('20250314093015'))).toEqual(dt);
    expect(decodePurseDateTime(fromHex('99991231235959'))).toEqual({ year: 9999, month: 12, day: 31, hour: 23, minute: 59, second: 59 });
    for (const bad of ['20250014093015', '20251314093015', '20250300093015', '20250332093015', '20250314240000', '20250314096000', '20250314093060', '2025031409301F', 'A0250314093015']) {
      expect(decodePurseDateTime(fromHex(bad)), bad).toBeNull();
    }
    expect(code(() => encodePurseDateTime({ ...dt, month: 0 }))).toBe('BAD_INPUT');
  });

  it('round-trips every valid value (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 999 }), (c) => decodeCurrency(encodeCurrency(c)) === c));
    const dtArb = fc.record({
      year: fc.integer({ min: 0, max: 9999 }),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 1, max: 31 }),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      second: fc.integer({ min: 0, max: 59 }),
    });
    fc.assert(
      fc.property(dtArb, (dt) => {
        expect(decodePurseDateTime(encodePurseDateTime(dt))).toEqual(dt);
      }),
    );
  });

  it('never throws on any bytes (100,000 inputs per decoder)', () => {
    let seed = 0x1234567;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 8;
    };
    let accepted = 0;
    for (let n = 0; n < 100_000; n++) {
      const len = next() % 10;
      // bias towards digits so that some inputs are valid and the re-encoding check runs
      const b = Uint8Array.from({ length: len }, () => (next() % 4 === 0 ? next() & 0xff : ((next() % 10) << 4) | next() % 10));
      const c = decodeCurrency(b);
      const dt = decodePurseDateTime(b);
      if (c !== null) expect(hex(encodeCurrency(c))).toBe(hex(b));
      if (dt !== null) expect(hex(encodePurseDateTime(dt))).toBe(hex(b));
      if (c !== null || dt !== null) accepted++;
    }
    expect(accepted).toBeGreaterThan(100);
  });
});
