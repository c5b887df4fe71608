/**
 * The IsoMessage model: MTI rules, validation at construction, immutability, typed helpers.
 */
import { describe, expect, it } from 'vitest';
import {
  IsoMessage,
  MTI_TABLE,
  checkMti,
  fromDigits,
  isRequestMti,
  responseMti,
  toDigits,
} from '../../src/hostlink/iso8583/message.js';
import { Iso8583Error, type Iso8583Reason } from '../../src/hostlink/iso8583/errors.js';
import { fromHex } from '../../src/util/bytes.js';

function reasonOf(f: () => unknown): { reason: Iso8583Reason; code: string; field: number | null } {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Iso8583Error);
    const x = e as Iso8583Error;
    return { reason: x.reason, code: x.code, field: x.field };
  }
  throw new Error('expected an Iso8583Error');
}

describe('MTI', () => {
  it('answers each request with its response MTI', () => {
    const pairs = Object.fromEntries(MTI_TABLE.filter((m) => m.response).map((m) => [m.mti, responseMti(m.mti)]));
    expect(pairs).toEqual({
      '0200': '0210',
      '0220': '0230',
      '0221': '0230',
      '0300': '0310',
      '0400': '0410',
      '0401': '0410',
      '0500': '0510',
      '0620': '0630',
      '0621': '0630',
      '0800': '0810',
    });
    for (const m of MTI_TABLE) expect(isRequestMti(m.mti)).toBe(m.response !== undefined);
    // Every response MTI is itself in the table, and answers nothing.
    for (const m of MTI_TABLE) if (m.response) expect(reasonOf(() => responseMti(m.response!)).reason).toBe('not-a-request');
  });

  it('refuses malformed, non-1987 and unknown MTIs with distinct reasons', () => {
    expect(reasonOf(() => checkMti('200')).reason).toBe('bad-mti');
    expect(reasonOf(() => checkMti('02x0')).reason).toBe('bad-mti');
    expect(reasonOf(() => checkMti(200)).reason).toBe('bad-mti');
    expect(reasonOf(() => checkMti('1200')).reason).toBe('bad-mti');
    expect(reasonOf(() => checkMti('2200')).reason).toBe('bad-mti');
    expect(reasonOf(() => checkMti('0100')).reason).toBe('unknown-mti');
    expect(reasonOf(() => checkMti('0600')).reason).toBe('unknown-mti');
    expect(reasonOf(() => checkMti('0100', 'PROTOCOL')).code).toBe('PROTOCOL');
    expect(reasonOf(() => new IsoMessage('0900')).code).toBe('BAD_INPUT');
    for (const m of MTI_TABLE) expect(() => checkMti(m.mti)).not.toThrow();
  });
});

describe('IsoMessage', () => {
  it('validates every field at construction, with the field number', () => {
    const cases: Array<[number, unknown, Iso8583Reason]> = [
      [5, '000000000000', 'undefined-field'],
      [1, new Uint8Array(8), 'undefined-field'],
      [65, new Uint8Array(8), 'undefined-field'],
      [4, 100, 'bad-type'],
      [4, '100', 'bad-length'],
      [4, '-00000000100', 'bad-charset'],
      [2, '4849', 'bad-type'],
      [2, new Uint8Array(33), 'bad-length'],
      [41, 'TERM001', 'bad-length'],
      [41, 'TERM\n001', 'bad-charset'],
      [39, '0_', 'bad-charset'],
      [55, fromHex('9f0205'), 'bad-tlv'],
      [48, fromHex('00'), 'bad-tlv'],
    ];
    for (const [n, v, reason] of cases) {
      const e = reasonOf(() => new IsoMessage('0200', [[n, v as string]]));
      expect(e, `field ${n} = ${String(v)}`).toEqual({ reason, code: 'BAD_INPUT', field: n });
    }
  });

  it('refuses field 64 next to fields 65..128', () => {
    expect(reasonOf(() => new IsoMessage('0800', { 64: new Uint8Array(8), 70: '001' })).reason).toBe('mac-position');
    expect(reasonOf(() => new IsoMessage('0800', { 70: '001' }).with(64, new Uint8Array(8))).reason).toBe('mac-position');
    expect(() => new IsoMessage('0800', { 70: '001', 128: new Uint8Array(8) })).not.toThrow();
  });

  it('accepts fields as an object, a Map or entries, and refuses a field given twice', () => {
    const a = new IsoMessage('0800', { 70: '001', 11: '0000000001' });
    const b = new IsoMessage('0800', new Map([[11, '0000000001'], [70, '001']]));
    const c = new IsoMessage('0800', [[70, '001'], [11, '0000000001']]);
    expect(a.equals(b) && b.equals(c)).toBe(true);
    expect(a.numbers()).toEqual([11, 70]);
    expect(reasonOf(() => new IsoMessage('0800', [[70, '001'], [70, '002']])).reason).toBe('bad-value');
    expect(reasonOf(() => new IsoMessage('0800', null as never)).reason).toBe('bad-type');
  });

  it('is immutable: with/without return new messages, bytes are copied in and out', () => {
    const serial = fromHex('01020304');
    const m = new IsoMessage('0200', { 2: serial });
    serial[0] = 0xff;
    expect(m.bytes(2)).toEqual(fromHex('01020304'));
    const out = m.bytes(2)!;
    out[1] = 0xff;
    (m.get(2) as Uint8Array)[2] = 0xff;
    (m.fields.get(2) as Uint8Array)[3] = 0xff;
    expect(m.bytes(2)).toEqual(fromHex('01020304'));
    const m2 = m.with(3, '000000');
    expect(m.has(3)).toBe(false);
    expect(m2.has(3)).toBe(true);
    expect(m2.without(2, 3).numbers()).toEqual([]);
    expect(m2.numbers()).toEqual([2, 3]);
    expect(Object.isFrozen(m)).toBe(true);
    expect(m.withMti('0210').mti).toBe('0210');
    expect(m.equals(m.with(3, '000000'))).toBe(false);
    expect(m.equals(new IsoMessage('0200', { 2: fromHex('01020305') }))).toBe(false);
  });

  it('tells text from bytes', () => {
    const m = new IsoMessage('0200', { 2: fromHex('01'), 3: '000000' });
    expect(m.text(3)).toBe('000000');
    expect(reasonOf(() => m.text(2)).reason).toBe('bad-type');
    expect(reasonOf(() => m.bytes(3)).reason).toBe('bad-type');
    expect(m.text(4)).toBeUndefined();
    expect(m.toString()).toBe('0200 2=01 3="000000"');
  });
});

describe('typed helpers', () => {
  const base = new IsoMessage('0200');

  it('keeps amounts as integer minor units with their currency', () => {
    const m = base.withAmount({ minor: 123456, currency: '392' });
    expect(m.text(4)).toBe('000000123456');
    expect(m.text(49)).toBe('392');
    expect(m.amount()).toEqual({ minor: 123456, currency: '392' });
    expect(base.withAmount({ minor: 999_999_999_999, currency: '840' }).amount()?.minor).toBe(999_999_999_999);
    for (const minor of [1.5, -1, 1e12, Number.NaN, '100' as unknown as number]) {
      expect(reasonOf(() => base.withAmount({ minor, currency: '392' })).reason, String(minor)).toBe('bad-value');
    }
    expect(reasonOf(() => base.withAmount({ minor: 1, currency: 'JPY' })).field).toBe(49);
    expect(base.amount()).toBeUndefined();
    expect(reasonOf(() => base.with(4, '000000000001').amount()).reason).toBe('missing-field');
  });

  it('carries the STAN, ids, response code and key version', () => {
    const m = base.withStan(4_294_967_295).withTerminalId('T1').withReaderId('R-7').withKeyVersion(3).with(39, '05');
    expect(m.text(11)).toBe('4294967295');
    expect(m.stan()).toBe(4_294_967_295);
    expect(m.text(41)).toBe('T1      ');
    expect(m.terminalId()).toBe('T1');
    expect(m.text(42)).toBe('R-7            ');
    expect(m.readerId()).toBe('R-7');
    expect(m.keyVersion()).toBe(3);
    expect(m.text(53)).toBe('0000000000000003');
    expect(m.responseCode()).toBe('05');
    expect(reasonOf(() => base.withStan(10_000_000_000)).reason).toBe('bad-value');
    for (const id of ['', 'TOOLONG12', ' T1', 'T1 ', 'T\u00e91']) expect(reasonOf(() => base.withTerminalId(id)).field, id).toBe(41);
    expect(reasonOf(() => base.withKeyVersion(0)).field).toBe(53);
    expect(reasonOf(() => base.withKeyVersion(256)).field).toBe(53);
    expect(reasonOf(() => base.with(53, '0000000000000000').keyVersion()).code).toBe('PROTOCOL');
  });

  it('converts digits and integers without floats', () => {
    expect(toDigits(7, 3)).toBe('007');
    expect(reasonOf(() => toDigits(1000, 3)).reason).toBe('bad-value');
    expect(fromDigits('0000000000000042')).toBe(42);
    expect(fromDigits(String(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    expect(reasonOf(() => fromDigits('9999999999999999')).reason).toBe('bad-value');
    expect(reasonOf(() => fromDigits('12a')).reason).toBe('bad-digit');
  });
});
