/**
 * The purse terminal's configuration and its text forms: validation of every field, the JSON file,
 * the card's terminal id and date-time, amounts written and read in the currency's units, and the
 * terminal-side decoders of the card's answers refusing what the spec does not allow.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toHex } from '../../../src/util/bytes.js';
import {
  CURRENCIES,
  decodeCardLog,
  decodeCardStatus,
  decodeDebitAnswer,
  formatAmount,
  formatLocalTime,
  parseAmount,
  parsePurseTerminalConfig,
  purseDateTime,
  purseTerminalConfig,
  terminalIdBytes,
  currencyByAlpha,
} from '../../../src/terminal/purse/index.js';

const base = { terminalId: 'TERM0001', readerId: 'R-01', currency: 'JPY' };

describe('purse terminal configuration', () => {
  it('fills defaults and freezes', () => {
    const c = purseTerminalConfig(base);
    expect(c).toMatchObject({ provider: 'emoney', utcOffsetMinutes: 0, currency: { alpha: 'JPY', numeric: 392, exponent: 0 }, limits: { perTransaction: 50_000 } });
    expect(Object.isFrozen(c) && Object.isFrozen(c.limits)).toBe(true);
    expect(c.loadLimits).toEqual({ perTransaction: 50_000, perCardPerDay: 200_000, perReaderPerDay: 10_000_000 });
    expect(Object.isFrozen(c.loadLimits)).toBe(true);
    expect(purseTerminalConfig({ ...base, loadLimits: { perCardPerDay: 7 } }).loadLimits).toMatchObject({ perTransaction: 50_000, perCardPerDay: 7 });
  });

  it.each([
    [{ terminalId: 'TERMINAL9' }, /terminalId: expected 1 to 8/],
    [{ terminalId: '' }, /terminalId/],
    [{ terminalId: 'T 1' }, /terminalId/],
    [{ readerId: '' }, /readerId/],
    [{ currency: 'XXX' }, /currency: expected one of/],
    [{ limits: { perTransaction: 0 } }, /limits\.perTransaction/],
    [{ limits: { perTransaction: 1.5 } }, /limits\.perTransaction/],
    [{ limits: { perWeek: 10 } }, /unknown field "perWeek"/],
    [{ loadLimits: { perTransaction: 0 } }, /loadLimits\.perTransaction/],
    [{ loadLimits: { perWeek: 10 } }, /loadLimits: unknown field "perWeek"/],
    [{ utcOffsetMinutes: 900 }, /utcOffsetMinutes/],
  ])('refuses %j', (change, message) => {
    expect(() => purseTerminalConfig({ ...base, ...(change as object) })).toThrow(message);
  });

  it('reads a JSON file form and refuses unknown fields', () => {
    expect(parsePurseTerminalConfig(JSON.stringify({ ...base, utcOffsetMinutes: 540, limits: { perCardPerDay: 9 } }))).toMatchObject({ utcOffsetMinutes: 540 });
    expect(parsePurseTerminalConfig(JSON.stringify({ ...base, loadLimits: { perTransaction: 9 } }))).toMatchObject({ loadLimits: { perTransaction: 9 } });
    expect(() => parsePurseTerminalConfig('{"terminalId":"T1","readerId":"R","currency":"JPY","clock":1}', 'x.json')).toThrow(/x\.json: unknown field "clock"/);
    expect(() => parsePurseTerminalConfig('[]')).toThrow(/expected a JSON object/);
    expect(() => parsePurseTerminalConfig('{')).toThrow(/not JSON/);
  });

  it('terminal id on the card: ASCII right-padded with spaces to 8 bytes', () => {
    expect(toHex(terminalIdBytes('TERM0001'))).toBe('5445524d30303031');
    expect(toHex(terminalIdBytes('T1'))).toBe('5431202020202020');
  });

  it("the card's date-time is local time at the configured offset", () => {
    const t = Date.UTC(2025, 11, 31, 20, 5, 9);
    expect(toHex(purseDateTime(t, 540))).toBe('20260101050509');
    expect(toHex(purseDateTime(t, -60))).toBe('20251231190509');
    expect(formatLocalTime(t, 540)).toBe('2026-01-01 05:05:09 +09:00');
    expect(formatLocalTime(t, -90)).toBe('2025-12-31 18:35:09 -01:30');
  });
});

describe('amounts in the currency units', () => {
  it('parses with the exponent', () => {
    const eur = currencyByAlpha('EUR');
    expect(parseAmount('12.50', eur)).toBe(1250);
    expect(parseAmount('12.5', eur)).toBe(1250);
    expect(parseAmount('12', eur)).toBe(1200);
    expect(parseAmount('0.05', eur)).toBe(5);
    expect(parseAmount('1250', currencyByAlpha('JPY'))).toBe(1250);
    expect(parseAmount('0', currencyByAlpha('JPY'))).toBe(0);
    expect(parseAmount('-3', currencyByAlpha('JPY'))).toBe(-3);
    for (const bad of ['12.505', '1e3', '', ' ', '1,000', '0x10', '12.', '.5', '9999999999999999']) expect(() => parseAmount(bad, eur), bad).toThrow(/amount/);
    expect(() => parseAmount('1.5', currencyByAlpha('JPY'))).toThrow(/0 decimal place/);
  });

  it('format then parse is the identity, for every currency', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (c, minor) => {
        const text = formatAmount(minor, c);
        expect(text.startsWith(`${c.alpha} `)).toBe(true);
        expect(parseAmount(text.slice(4).replace(/,/g, ''), c)).toBe(minor);
      }),
    );
  });
});

describe("decoders of the card's answers", () => {
  const status = (hex: string) => decodeCardStatus(Uint8Array.from(Buffer.from(hex, 'hex')));
  it('READ STATUS', () => {
    expect(status('0F00000002000022C4039200030D4000007530' + '0A02' + '03010203')).toMatchObject({ active: true, counter: 2, balance: 8900, currency: 392, logCount: 2 });
    expect(() => status('0F0000000200')).toThrow(/at least/);
    expect(() => status('0E00000002000022C4039200030D4000007530' + '0A02' + '03010203')).toThrow(/life cycle 0E/);
    expect(() => status('0F00000002000022C403A200030D4000007530' + '0A02' + '03010203')).toThrow(/not BCD/);
    expect(() => status('0F00000001000022C4039200030D4000007530' + '0A02' + '03010203')).toThrow(/2 log records for counter 1/);
    expect(() => status('0F00000002000022C4039200030D4000007530' + '0A02' + '0401020304')).not.toThrow();
    expect(() => status('0F00000002000022C4039200030D4000007530' + '0A02' + '05010203')).toThrow(/serial/);
  });

  it('READ LOG and DEBIT answers of the wrong shape', () => {
    expect(() => decodeCardLog(new Uint8Array(49))).toThrow(/whole number/);
    expect(decodeCardLog(new Uint8Array(0))).toEqual([]);
    expect(() => decodeCardLog(new Uint8Array(50))).toThrow(/record 1/);
    expect(() => decodeDebitAnswer(new Uint8Array(23))).toThrow(/24/);
    expect(decodeDebitAnswer(Uint8Array.from({ length: 24 }, (_, i) => i))).toMatchObject({ counter: 0x00010203, balanceAfter: 0x04050607 });
  });

  it('never lets anything but a PROTOCOL error out, on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
        for (const decode of [decodeCardStatus, decodeCardLog, decodeDebitAnswer]) {
          try {
            decode(b);
          } catch (e) {
            expect((e as { code?: string }).code).toBe('PROTOCOL');
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
