/**
 * hilt's message pairs (src/hostlink/messages.ts): every constructor's output goes through the wire
 * (sign, pack, unpack, verify) and parses back to what was given; every parser refuses what the
 * specs and content rules forbid; and the README's example hex is what the code produces.
 */
import { CURRENCIES } from '../../src/util/iso4217.js';
import { currencyByAlpha } from '../../src/terminal/purse/currency.js';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  ANOMALY_DETAILS_MAX,
  ANOMALY_REPORT_KINDS,
  MESSAGE_SPECS,
  NETWORK_CODES,
  RC,
  RESPONSE_CODES,
  RESPONSE_CODE_TABLE,
  TAG,
  TAG_TABLE,
  adviceRequest,
  adviceResponse,
  anomalyReportRequest,
  anomalyReportResponse,
  checkMessageFields,
  chunkNegativeListChanges,
  currencyNumeric,
  decodeNegativeListChanges,
  echoRequest,
  encodeNegativeListChanges,
  encodeOriginalData,
  keyChangeRequest,
  loadAuthorizationRequest,
  loadAuthorizationResponse,
  negativeListRequest,
  negativeListResponse,
  networkResponse,
  parseAdviceRequest,
  parseAdviceResponse,
  parseAnomalyReportRequest,
  parseAnomalyReportResponse,
  parseHiltMessage,
  parseLoadAuthorizationRequest,
  parseLoadAuthorizationResponse,
  parseNegativeListRequest,
  parseNegativeListResponse,
  parseNetworkRequest,
  parseNetworkResponse,
  parseReconciliationRequest,
  parseReconciliationResponse,
  parseReversalRequest,
  parseReversalResponse,
  reconciliationRequest,
  reconciliationResponse,
  refusal,
  reversalRequest,
  reversalResponse,
  signOffRequest,
  signOnRequest,
  transmissionDateTime,
  type AdviceInput,
  type AnomalyReportInput,
  type NegativeListChange,
  type PurseRecord,
  type ReconciliationTotals,
} from '../../src/hostlink/messages.js';
import { IsoMessage, MTI_TABLE } from '../../src/hostlink/iso8583/message.js';
import { FIELD_TABLE } from '../../src/hostlink/iso8583/fields.js';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { signMessage, verifyMessage, wrapKey, unwrapKey, deriveTerminalKey } from '../../src/hostlink/iso8583/mac.js';
import { Iso8583Error, type Iso8583Reason } from '../../src/hostlink/iso8583/errors.js';
import { Tlv, encodeTlv } from '../../src/apdu/tlv.js';
import { encodePurseDateTime, purseCardKey, purseCertificate, testPurseMasterKey, type PurseDateTime } from '../../src/crypto/purse-certificate.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { AT, TERMINAL, TEST_MASTER_KEK, header, macKeyOf } from './helpers.js';

const KEY = macKeyOf(TERMINAL);
const SERIAL = fromHex('48494c5430303030303031'); // "HILT0000001"
const DT: PurseDateTime = { year: 2025, month: 3, day: 14, hour: 18, minute: 30, second: 15 };
const LATER = new Date(AT.getTime() + 1500);

/** Through the wire and back: sign, pack, unpack, verify. */
function wire(m: IsoMessage): IsoMessage {
  const bytes = pack(signMessage(m, KEY));
  expect(verifyMessage(bytes, KEY)).toBe(true);
  const back = unpack(bytes).message;
  checkMessageFields(back);
  return back;
}

function refused(f: () => unknown, reason: Iso8583Reason, field?: number): Iso8583Error {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(Iso8583Error);
    const x = e as Iso8583Error;
    expect(x.reason, x.message).toBe(reason);
    if (field !== undefined) expect(x.field, x.message).toBe(field);
    return x;
  }
  throw new Error(`expected Iso8583Error ${reason}`);
}

function purseRecord(overrides: Partial<PurseRecord> = {}): PurseRecord {
  const fields = {
    serial: SERIAL,
    counter: 8,
    type: 'debit' as const,
    amount: 300,
    currency: 392,
    terminalId: new TextEncoder().encode(TERMINAL),
    terminalSequence: 77,
    dateTime: encodePurseDateTime(DT),
    balanceAfter: 4700,
    ...overrides,
  };
  const key = purseCardKey(testPurseMasterKey(), fields.serial);
  return { ...fields, certificate: purseCertificate(key, fields), ...('certificate' in overrides ? { certificate: overrides.certificate! } : {}) };
}

const TOTALS: ReconciliationTotals = {
  loads: { count: 3, amount: 30000 },
  loadReversals: { count: 1, amount: 5000 },
  purchases: { count: 120, amount: 45_600 },
  purchaseReversals: { count: 0, amount: 0 },
  authorizations: 4,
};

describe('tables', () => {
  it('has a spec for every MTI, and response codes and tags as data', () => {
    expect([...MESSAGE_SPECS.keys()].sort()).toEqual(MTI_TABLE.map((m) => m.mti).sort());
    for (const s of MESSAGE_SPECS.values()) {
      expect(s.mandatory.filter((n) => s.optional.includes(n)), s.mti).toEqual([]);
      for (const n of [7, 11, 41, 42, 53]) expect(s.mandatory, `${s.mti} ${n}`).toContain(n);
    }
    expect(RESPONSE_CODE_TABLE.map((r) => r.code)).toEqual(Object.values(RC));
    expect(RESPONSE_CODES.get('91')?.retry).toBe(true);
    expect(RESPONSE_CODES.get('94')?.kind).toBe('duplicate');
    expect(RESPONSE_CODES.get('63')?.meaning).toMatch(/MAC/);
    expect(new Set(TAG_TABLE.map((t) => t.tag)).size).toBe(TAG_TABLE.length);
    expect(NETWORK_CODES).toEqual({ signOn: '001', signOff: '002', keyChange: '161', echo: '301' });
    expect(currencyNumeric('JPY')).toBe('392');
    expect(currencyNumeric('978')).toBe('978');
    refused(() => currencyNumeric('XXX'), 'bad-value', 49);
    // Every currency a terminal can be configured with travels in field 49 (one ISO 4217 table).
    expect(currencyNumeric('CHF')).toBe('756');
    expect(currencyNumeric('BHD')).toBe('048');
    for (const c of CURRENCIES) expect(currencyNumeric(currencyByAlpha(c.alpha).alpha)).toBe(String(c.numeric).padStart(3, '0'));
    expect(transmissionDateTime(new Date(Date.UTC(2025, 11, 31, 23, 59, 58)))).toBe('1231235958');
  });
});

describe('0800 / 0810 network management', () => {
  it('sign-on, sign-off, echo and key change round-trip', () => {
    for (const [make, code] of [
      [(h = header()) => signOnRequest(h), 'signOn'],
      [(h = header()) => signOffRequest(h), 'signOff'],
      [(h = header()) => echoRequest(h), 'echo'],
      [(h = header()) => keyChangeRequest(h), 'keyChange'],
    ] as const) {
      const req = wire(make(header({ stan: 12, nii: 5 })));
      const parsed = parseNetworkRequest(req);
      expect(parsed.code).toBe(code);
      expect(parsed.header).toEqual({ mti: '0800', terminalId: TERMINAL, readerId: 'READER01', stan: 12, transmitted: '0314093015', keyVersion: 1, nii: 5 });
      expect(parsed.readerAuth).toBeUndefined();
      if (code === 'keyChange') continue;
      const res = parseNetworkResponse(wire(networkResponse(req, { responseCode: RC.approved, at: LATER })));
      expect(res).toEqual({ header: { ...parsed.header, mti: '0810', transmitted: '0314093016', nii: undefined }, responseCode: '00', code });
    }
  });

  it('carries reader authentication in 62', () => {
    const req = wire(signOnRequest(header(), { signature: fromHex('3045022100aa') }));
    expect(parseNetworkRequest(req).readerAuth).toEqual({ signature: fromHex('3045022100aa') });
    const res = wire(networkResponse(req, { responseCode: RC.approved, at: LATER, readerAuth: { challenge: fromHex('0102030405060708') } }));
    expect(parseNetworkResponse(res).readerAuth).toEqual({ challenge: fromHex('0102030405060708') });
    refused(() => signOnRequest(header(), {}), 'bad-value', 62);
    refused(() => signOnRequest(header(), { challenge: new Uint8Array(7) }), 'bad-value', 62);
  });

  it('carries a wrapped key in an approved key change, which the terminal unwraps', () => {
    const req = wire(keyChangeRequest(header()));
    const kek = deriveTerminalKey(TEST_MASTER_KEK, 'kek', TERMINAL, 1);
    const newKey = macKeyOf(TERMINAL, 2);
    const res = parseNetworkResponse(wire(networkResponse(req, { responseCode: RC.approved, at: LATER, keyChange: { newKeyVersion: 2, key: wrapKey(kek, newKey) } })));
    expect(res.code).toBe('keyChange');
    expect(res.header.keyVersion).toBe(1); // MACed with the old key
    expect(res.keyChange?.newKeyVersion).toBe(2);
    expect(unwrapKey(kek, res.keyChange!.key.wrapped, res.keyChange!.key.kcv)).toEqual(newKey);
    refused(() => networkResponse(req, { responseCode: RC.approved, at: LATER }), 'missing-field', 48);
    const echo = wire(echoRequest(header()));
    refused(() => networkResponse(echo, { responseCode: RC.approved, at: LATER, keyChange: { newKeyVersion: 2, key: wrapKey(kek, newKey) } }), 'bad-value', 48);
    // A refused key change carries no key.
    expect(parseNetworkResponse(wire(networkResponse(req, { responseCode: RC.systemMalfunction, at: LATER }))).keyChange).toBeUndefined();
  });
});

describe('0200 / 0210 load authorization', () => {
  const input = { serial: SERIAL, amount: { minor: 5000, currency: 'JPY' }, cardCounter: 7, dateTime: DT, acquirer: '123456' };

  it('round-trips the request', () => {
    const req = wire(loadAuthorizationRequest(header({ stan: 42 }), input));
    expect(req.text(3)).toBe('210000');
    expect(req.text(12)).toBe('183015');
    expect(req.text(13)).toBe('0314');
    const parsed = parseLoadAuthorizationRequest(req);
    expect(parsed).toEqual({ header: expect.objectContaining({ stan: 42 }), ...input, amount: { minor: 5000, currency: '392' } });
  });

  it('round-trips an approval and a refusal', () => {
    const req = wire(loadAuthorizationRequest(header({ stan: 42 }), input));
    const cryptogram = fromHex('00112233445566778899aabbccddeeff');
    const ok = parseLoadAuthorizationResponse(
      wire(loadAuthorizationResponse(req, { responseCode: RC.approved, at: LATER, issuerReference: 'REF000000042', authorizationId: 'A00042', loadCryptogram: cryptogram })),
    );
    expect(ok).toEqual({ header: expect.objectContaining({ mti: '0210', stan: 42 }), responseCode: '00', issuerReference: 'REF000000042', authorizationId: 'A00042', loadCryptogram: cryptogram });
    const no = parseLoadAuthorizationResponse(wire(loadAuthorizationResponse(req, { responseCode: RC.invalidCard, at: LATER })));
    expect(no).toEqual({ header: expect.objectContaining({ mti: '0210' }), responseCode: '14' });
    refused(() => loadAuthorizationResponse(req, { responseCode: RC.approved, at: LATER }), 'missing-field');
    refused(() => loadAuthorizationResponse(req, { responseCode: RC.doNotHonour, at: LATER, loadCryptogram: cryptogram }), 'unexpected-field');
  });

  it('refuses a request whose 12/13 disagree with the date-time, or another processing code', () => {
    const req = loadAuthorizationRequest(header(), input);
    refused(() => parseLoadAuthorizationRequest(req.with(12, '183016')), 'bad-value', 12);
    refused(() => parseLoadAuthorizationRequest(req.with(13, '0315')), 'bad-value', 13);
    refused(() => parseLoadAuthorizationRequest(req.with(3, '000000')), 'bad-value', 3);
    refused(() => parseLoadAuthorizationRequest(req.with(3, '990000')), 'bad-value', 3);
    refused(() => parseLoadAuthorizationRequest(req.without(55)), 'missing-field', 55);
    refused(() => parseLoadAuthorizationRequest(req.with(70, '001')), 'unexpected-field', 70);
    refused(() => parseLoadAuthorizationRequest(req.with(2, new Uint8Array(0))), 'bad-value', 2);
    refused(() => parseLoadAuthorizationRequest(req.with(55, encodeTlv([Tlv.primitive(TAG.cardCounter, fromHex('000007'))]))), 'bad-value', 55);
    refused(() => parseLoadAuthorizationRequest(req.with(55, encodeTlv([Tlv.primitive(0x9f36, fromHex('0007'))]))), 'bad-value', 55);
    refused(() => parseLoadAuthorizationRequest(req.with(55, encodeTlv([Tlv.primitive(TAG.cardCounter, fromHex('00000007')), Tlv.primitive(TAG.cardCounter, fromHex('00000007'))]))), 'bad-value', 55);
    refused(() => parseLoadAuthorizationRequest(req.with(48, encodeTlv([Tlv.primitive(TAG.dateTime, fromHex('20251314183015'))]))), 'bad-value', 48);
    refused(() => parseLoadAuthorizationRequest(req.withMti('0220')), 'unexpected-field', 0);
    refused(() => parseLoadAuthorizationRequest(req.with(41, '        ')), 'bad-value', 41);
    refused(() => parseLoadAuthorizationRequest(req.with(7, '1314093015')), 'bad-value', 7);
  });
});

describe('0220 / 0221 / 0230 advice', () => {
  const purchase = (overrides: Partial<AdviceInput> = {}): AdviceInput => ({
    kind: 'purchase',
    outcome: 'complete',
    serial: SERIAL,
    amount: { minor: 300, currency: '392' },
    dateTime: DT,
    purse: purseRecord(),
    ...overrides,
  });

  it('round-trips a completed purchase with its purse record and certificate', () => {
    const req = wire(adviceRequest(header({ stan: 77 }), purchase()));
    expect(req.mti).toBe('0220');
    const parsed = parseAdviceRequest(req);
    expect(parsed).toEqual({ header: expect.objectContaining({ stan: 77 }), repeat: false, ...purchase() });
    const res = parseAdviceResponse(wire(adviceResponse(req, { responseCode: RC.approved, at: LATER })));
    expect(res.responseCode).toBe('00');
    expect(res.header.stan).toBe(77);
  });

  it('sends a repeat as 0221 and failed transactions without a record', () => {
    const repeat = wire(adviceRequest(header({ stan: 77 }), { ...purchase(), repeat: true }));
    expect(repeat.mti).toBe('0221');
    expect(parseAdviceRequest(repeat).repeat).toBe(true);
    expect(adviceResponse(repeat, { responseCode: RC.duplicate, at: LATER }).mti).toBe('0230');
    const failed = { ...purchase({ outcome: 'failed', purse: undefined, cardCounter: 8, note: 'card answered 94 01' }) };
    delete failed.purse;
    expect(parseAdviceRequest(wire(adviceRequest(header({ stan: 78 }), failed)))).toEqual({ header: expect.objectContaining({ stan: 78 }), repeat: false, ...failed });
    const never = purchase({ outcome: 'never-happened' });
    delete never.purse;
    expect(parseAdviceRequest(wire(adviceRequest(header({ stan: 79 }), never))).outcome).toBe('never-happened');
  });

  it('round-trips a completed load with its authorization reference', () => {
    const load = purchase({ kind: 'load', amount: { minor: 5000, currency: '392' }, retrievalReference: 'REF000000042', purse: purseRecord({ type: 'load', amount: 5000, balanceAfter: 9700 }) });
    const parsed = parseAdviceRequest(wire(adviceRequest(header({ stan: 77 }), load)));
    expect(parsed.retrievalReference).toBe('REF000000042');
    expect(parsed.purse?.type).toBe('load');
  });

  it('refuses a purse record that does not describe the advice', () => {
    const h = header({ stan: 77 });
    refused(() => adviceRequest(h, purchase({ purse: purseRecord({ serial: fromHex('01') }) })), 'bad-value', 2);
    refused(() => adviceRequest(h, purchase({ purse: purseRecord({ amount: 301 }) })), 'bad-value', 4);
    refused(() => adviceRequest(h, purchase({ purse: purseRecord({ currency: 840 }) })), 'bad-value', 49);
    refused(() => adviceRequest(h, purchase({ purse: purseRecord({ terminalId: new TextEncoder().encode('TERM0002') }) })), 'bad-value', 41);
    refused(() => adviceRequest(header({ stan: 76 }), purchase()), 'bad-value', 11);
    refused(() => adviceRequest(h, purchase({ purse: purseRecord({ type: 'load' }) })), 'bad-value', 3);
    refused(() => adviceRequest(h, purchase({ dateTime: { ...DT, second: 16 } })), 'bad-value', 55);
    refused(() => adviceRequest(h, purchase({ purse: undefined })), 'missing-field', 55);
    refused(() => adviceRequest(h, purchase({ outcome: 'failed' })), 'unexpected-field', 55);
    refused(() => adviceRequest(h, purchase({ cardCounter: 3 })), 'unexpected-field', 55);
    // And the same checks on what arrives: a record edited in transit (the MAC would catch it too).
    const req = adviceRequest(h, purchase());
    refused(() => parseAdviceRequest(req.withStan(78)), 'bad-value', 11);
    refused(() => parseAdviceRequest(req.without(55)), 'missing-field', 55);
    const partial = encodeTlv([Tlv.primitive(TAG.serial, SERIAL), Tlv.primitive(TAG.cardCounter, fromHex('00000008'))]);
    refused(() => parseAdviceRequest(req.with(55, partial)), 'bad-value', 55);
    const noCert = encodeTlv(purseTlvsWithout(TAG.balanceAfter));
    refused(() => parseAdviceRequest(req.with(55, noCert)), 'missing-field', 55);
    refused(() => parseAdviceRequest(req.with(48, encodeTlv([Tlv.primitive(TAG.outcome, fromHex('09')), Tlv.primitive(TAG.dateTime, encodePurseDateTime(DT))]))), 'bad-value', 48);
    refused(() => parseAdviceRequest(req.with(48, encodeTlv([Tlv.primitive(TAG.outcome, fromHex('01')), Tlv.primitive(TAG.dateTime, encodePurseDateTime(DT)), Tlv.primitive(TAG.note, fromHex('ff'))]))), 'bad-value', 48);
  });

  function purseTlvsWithout(tag: number): Tlv[] {
    const p = purseRecord();
    const all: Array<[number, Uint8Array]> = [
      [TAG.serial, p.serial],
      [TAG.cardCounter, fromHex('00000008')],
      [TAG.purseType, fromHex('01')],
      [TAG.purseAmount, fromHex('0000012c')],
      [TAG.purseCurrency, fromHex('0392')],
      [TAG.purseTerminalId, p.terminalId],
      [TAG.terminalSequence, fromHex('0000004d')],
      [TAG.purseDateTime, p.dateTime],
      [TAG.balanceAfter, fromHex('0000125c')],
      [TAG.certificate, p.certificate],
    ];
    return all.filter(([t]) => t !== tag).map(([t, v]) => Tlv.primitive(t, v));
  }
});

describe('0620 / 0621 / 0630 administrative advice (anomaly report)', () => {
  const report = (overrides: Partial<AnomalyReportInput> = {}): AnomalyReportInput => ({
    kind: 'rollback',
    serial: SERIAL,
    dateTime: DT,
    cardCounter: 2,
    lastCounter: 4,
    readerSequence: 31,
    details: { missingCount: 0, note: 'counter went back', replay: false, seen: null },
    ...overrides,
  });
  /** The 48 TLVs of a report with `f` applied, everything else as built. */
  const with48 = (m: IsoMessage, f: (tlvs: Tlv[]) => Tlv[]): IsoMessage => {
    const tlvs = [Tlv.primitive(TAG.anomalyKind, Uint8Array.of(1)), Tlv.primitive(TAG.dateTime, encodePurseDateTime(DT)), Tlv.primitive(TAG.anomalyDetails, new TextEncoder().encode('{}'))];
    return m.with(48, encodeTlv(f(tlvs)));
  };
  const details = (json: string) => (tlvs: Tlv[]) => [...tlvs.slice(0, 2), Tlv.primitive(TAG.anomalyDetails, new TextEncoder().encode(json))];

  it('round-trips a report with every optional part, and one with none', () => {
    const req = wire(anomalyReportRequest(header({ stan: 12 }), report()));
    expect(req.mti).toBe('0620');
    expect(parseAnomalyReportRequest(req)).toEqual({ header: expect.objectContaining({ stan: 12, mti: '0620' }), repeat: false, ...report() });
    const bare: AnomalyReportInput = { kind: 'other', serial: SERIAL, dateTime: DT, details: {} };
    const back = wire(anomalyReportRequest(header({ stan: 13 }), bare));
    expect(back.has(55)).toBe(false);
    expect(parseAnomalyReportRequest(back)).toEqual({ header: expect.objectContaining({ stan: 13 }), repeat: false, ...bare });
    const res = parseAnomalyReportResponse(wire(anomalyReportResponse(req, { responseCode: RC.approved, at: LATER })));
    expect(res).toMatchObject({ responseCode: '00', header: { stan: 12, mti: '0630' } });
  });

  it('sends a repeat as 0621 (same STAN), answered by an 0630', () => {
    const repeat = wire(anomalyReportRequest(header({ stan: 12 }), { ...report(), repeat: true }));
    expect(repeat.mti).toBe('0621');
    expect(parseAnomalyReportRequest(repeat).repeat).toBe(true);
    expect(anomalyReportResponse(repeat, { responseCode: RC.duplicate, at: LATER }).mti).toBe('0630');
    refused(() => anomalyReportResponse(signOnRequest(header()), { responseCode: RC.approved, at: LATER }), 'unexpected-field', 0);
  });

  it('refuses to build what it could not carry', () => {
    refused(() => anomalyReportRequest(header(), report({ kind: 'meltdown' as never })), 'bad-value', 48);
    refused(() => anomalyReportRequest(header(), report({ details: { nested: {} as never } })), 'bad-value', 48);
    refused(() => anomalyReportRequest(header(), report({ details: { n: Number.NaN } })), 'bad-value', 48);
    refused(() => anomalyReportRequest(header(), report({ details: { big: 'x'.repeat(ANOMALY_DETAILS_MAX) } })), 'bad-value', 48);
    refused(() => anomalyReportRequest(header(), report({ lastCounter: 2 ** 32 })), 'bad-value', 48);
    refused(() => anomalyReportRequest(header(), report({ cardCounter: -1 })), 'bad-value', 55);
    refused(() => anomalyReportRequest(header(), report({ serial: new Uint8Array(0) })), 'bad-value', 2);
    // The largest details that fit still make a message within field 48.
    const largest = { d: 'x'.repeat(ANOMALY_DETAILS_MAX - '{"d":""}'.length) };
    expect(parseAnomalyReportRequest(wire(anomalyReportRequest(header(), report({ details: largest })))).details).toEqual(largest);
  });

  it('refuses a received report whose 48 or 55 break the rules', () => {
    const base = anomalyReportRequest(header({ stan: 12 }), report());
    expect(() => parseAnomalyReportRequest(with48(base, (t) => t))).not.toThrow();
    refused(() => parseAnomalyReportRequest(with48(base, (t) => [Tlv.primitive(TAG.anomalyKind, Uint8Array.of(9)), ...t.slice(1)])), 'bad-value', 48);
    refused(() => parseAnomalyReportRequest(with48(base, (t) => t.slice(1))), 'missing-field', 48);
    refused(() => parseAnomalyReportRequest(with48(base, (t) => [t[0], t[1]])), 'missing-field', 48);
    refused(() => parseAnomalyReportRequest(with48(base, (t) => [...t, Tlv.primitive(TAG.outcome, Uint8Array.of(1))])), 'bad-value', 48);
    refused(() => parseAnomalyReportRequest(with48(base, (t) => [...t, t[0]])), 'bad-value', 48);
    for (const json of ['[]', '"x"', '{"a":{"b":1}}', '{"a":[1]}', '{ "a": 1 }', '{"a":1.0}', '{"a":1,"a":2}', '{"a":', '\u00ff']) {
      refused(() => parseAnomalyReportRequest(with48(base, details(json))), 'bad-value', 48);
    }
    refused(() => parseAnomalyReportRequest(with48(base, (t) => [t[0], t[1], Tlv.primitive(TAG.anomalyDetails, Uint8Array.of(0x7b, 0xff, 0x7d))])), 'bad-value', 48); // not UTF-8
    refused(() => parseAnomalyReportRequest(base.with(12, '000000')), 'bad-value', 12);
    refused(() => parseAnomalyReportRequest(base.with(55, encodeTlv([Tlv.primitive(TAG.certificate, new Uint8Array(16))]))), 'bad-value', 55);
    refused(() => parseAnomalyReportRequest(base.with(55, encodeTlv([]))), 'missing-field', 55);
    refused(() => parseAnomalyReportRequest(base.with(3, '000000')), 'unexpected-field', 3);
    refused(() => parseAnomalyReportRequest(base.without(2)), 'missing-field', 2);
  });

  const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Object.is(x, -0)), fc.boolean(), fc.constant(null));
  const reportArb: fc.Arbitrary<AnomalyReportInput> = fc
    .record(
      {
        kind: fc.constantFrom(...(Object.keys(ANOMALY_REPORT_KINDS) as (keyof typeof ANOMALY_REPORT_KINDS)[])),
        serial: fc.uint8Array({ minLength: 1, maxLength: 32 }),
        dateTime: fc.record({ year: fc.integer({ min: 2000, max: 2099 }), month: fc.integer({ min: 1, max: 12 }), day: fc.integer({ min: 1, max: 28 }), hour: fc.integer({ min: 0, max: 23 }), minute: fc.integer({ min: 0, max: 59 }), second: fc.integer({ min: 0, max: 59 }) }),
        cardCounter: fc.nat({ max: 0xffff_ffff }),
        lastCounter: fc.nat({ max: 0xffff_ffff }),
        readerSequence: fc.nat({ max: 0xffff_ffff }),
        details: fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'), scalar, { maxKeys: 8 }),
      },
      { requiredKeys: ['kind', 'serial', 'dateTime', 'details'] },
    );

  it('property: any report round-trips through the wire, and any single-byte change of 48 or 55 parses or is refused with PROTOCOL', () => {
    fc.assert(
      fc.property(reportArb, fc.nat({ max: 0xffff_ffff }), fc.nat(), fc.nat(255), (input, stan, at, byte) => {
        const req = wire(anomalyReportRequest(header({ stan }), input));
        expect(parseAnomalyReportRequest(req)).toEqual({ header: expect.objectContaining({ stan }), repeat: false, ...input });
        for (const n of [48, 55]) {
          const v = req.bytes(n);
          if (v === undefined) continue;
          const changed = v.slice();
          changed[at % changed.length] = byte;
          let m: IsoMessage;
          try {
            m = req.with(n, changed);
          } catch (e) {
            expect((e as Iso8583Error).reason).toBe('bad-tlv'); // not BER-TLV any more: the codec refuses it first
            continue;
          }
          try {
            parseAnomalyReportRequest(m);
          } catch (e) {
            expect(e).toBeInstanceOf(Iso8583Error);
            expect((e as Iso8583Error).code).toBe('PROTOCOL');
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('0400 / 0401 / 0410 reversal', () => {
  const original = { mti: '0200', stan: 42, transmitted: '0314093015', acquirer: '00000123456' };
  const input = { kind: 'load' as const, serial: SERIAL, amount: { minor: 5000, currency: '392' }, original };

  it('round-trips request and response with field 90', () => {
    const req = wire(reversalRequest(header({ stan: 42 }), input));
    expect(req.text(90)).toBe('0200' + '0000000042' + '0314093015' + '00000123456' + '0000000');
    expect(parseReversalRequest(req)).toEqual({ header: expect.objectContaining({ stan: 42 }), repeat: false, ...input });
    const repeat = wire(reversalRequest(header({ stan: 42 }), { ...input, repeat: true }));
    expect(repeat.mti).toBe('0401');
    const res = parseReversalResponse(wire(reversalResponse(repeat, { responseCode: RC.approved, at: LATER })));
    expect(res.original).toEqual(original);
    expect(res.header.mti).toBe('0410');
  });

  it('refuses original data that is not a reversible request', () => {
    refused(() => encodeOriginalData({ ...original, mti: '0800' }), 'bad-value', 90);
    refused(() => encodeOriginalData({ ...original, acquirer: '123456789012' }), 'bad-value', 90);
    const req = reversalRequest(header(), input);
    refused(() => parseReversalRequest(req.with(90, '0800' + '0000000042' + '0314093015' + '00000123456' + '0000000')), 'bad-value', 90);
    refused(() => parseReversalRequest(req.with(90, '0200' + '0000000042' + '0314093015' + '00000123456' + '0000001')), 'bad-value', 90);
    refused(() => parseReversalRequest(req.without(90)), 'missing-field', 90);
  });
});

describe('0300 / 0310 negative list', () => {
  const changes: NegativeListChange[] = [
    { action: 'add', serial: SERIAL, reason: 'reported stolen' },
    { action: 'remove', serial: fromHex('0102') },
    { action: 'add', serial: fromHex('ff'), reason: 'clone détecté' },
  ];

  it('round-trips request and a delta chunk', () => {
    const req = wire(negativeListRequest(header({ stan: 9 }), { version: 3, chunk: 0 }));
    expect(parseNegativeListRequest(req)).toEqual({ header: expect.objectContaining({ stan: 9 }), version: 3, chunk: 0 });
    const update = { kind: 'delta' as const, fromVersion: 3, toVersion: 5, chunk: 0, chunkCount: 1, changes };
    const res = parseNegativeListResponse(wire(negativeListResponse(req, { responseCode: RC.approved, at: LATER, update })));
    expect(res.update).toEqual(update);
    const upToDate = { kind: 'delta' as const, fromVersion: 5, toVersion: 5, chunk: 0, chunkCount: 1, changes: [] };
    const none = wire(negativeListResponse(req, { responseCode: RC.approved, at: LATER, update: upToDate }));
    expect(none.has(63)).toBe(false);
    expect(parseNegativeListResponse(none).update).toEqual(upToDate);
    expect(parseNegativeListResponse(wire(negativeListResponse(req, { responseCode: RC.recordNotFound, at: LATER })))).toEqual({ header: expect.anything(), responseCode: '25' });
  });

  it('refuses inconsistent updates', () => {
    const req = negativeListRequest(header(), { version: 3, chunk: 0 });
    const bad = (u: object) => refused(() => negativeListResponse(req, { responseCode: RC.approved, at: LATER, update: { kind: 'delta', fromVersion: 3, toVersion: 5, chunk: 0, chunkCount: 1, changes, ...u } }), 'bad-value', 48);
    bad({ chunk: 1 });
    bad({ chunkCount: 0 });
    bad({ toVersion: 2 });
    bad({ toVersion: 3 });
    bad({ kind: 'snapshot' });
    bad({ kind: 'full' });
    refused(() => negativeListResponse(req, { responseCode: RC.approved, at: LATER }), 'missing-field', 48);
    refused(() => decodeNegativeListChanges(encodeTlv([Tlv.constructed(TAG.addEntry, [Tlv.primitive(TAG.serial, SERIAL)])])), 'missing-field', 63);
    refused(() => decodeNegativeListChanges(encodeTlv([Tlv.primitive(TAG.serial, SERIAL)])), 'bad-value', 63);
    refused(() => decodeNegativeListChanges(encodeTlv([Tlv.constructed(TAG.removeEntry, [Tlv.primitive(TAG.serial, SERIAL), Tlv.primitive(TAG.reason, fromHex('41'))])])), 'bad-value', 63);
    refused(() => encodeNegativeListChanges([{ action: 'add', serial: new Uint8Array(0), reason: 'x' }]), 'bad-value', 63);
    refused(() => encodeNegativeListChanges([{ action: 'add', serial: SERIAL, reason: '' }]), 'bad-value', 63);
  });

  it('cuts a long list into chunks that each fit field 63 and a frame', () => {
    const many: NegativeListChange[] = Array.from({ length: 500 }, (_, i) =>
      i % 3 === 0 ? { action: 'remove', serial: Uint8Array.of(i >> 8, i & 0xff) } : { action: 'add', serial: Uint8Array.from({ length: 32 }, (_, k) => (i + k) & 0xff), reason: `reason ${i}` },
    );
    const chunks = chunkNegativeListChanges(many);
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.flat()).toEqual(many);
    const req = negativeListRequest(header(), { version: 0, chunk: 0 });
    chunks.forEach((c, i) => {
      expect(encodeNegativeListChanges(c).length).toBeLessThanOrEqual(999);
      const res = wire(negativeListResponse(req, { responseCode: RC.approved, at: LATER, update: { kind: 'snapshot', fromVersion: 0, toVersion: 9, chunk: i, chunkCount: chunks.length, changes: c.filter((x) => x.action === 'add') } }));
      expect(pack(res).length).toBeLessThan(1200);
    });
    expect(chunkNegativeListChanges([])).toEqual([[]]);
    expect(chunkNegativeListChanges(many, 100).every((c) => encodeNegativeListChanges(c).length <= 100)).toBe(true);
    refused(() => chunkNegativeListChanges([{ action: 'add', serial: SERIAL, reason: 'x'.repeat(200) }], 100), 'bad-value', 63);
  });
});

describe('0500 / 0510 reconciliation', () => {
  it('round-trips with a secondary bitmap and the MAC in 128', () => {
    const req = wire(reconciliationRequest(header({ stan: 200 }), { currency: 'JPY', firstSequence: 1, lastSequence: 199, totals: TOTALS }));
    expect(req.has(128)).toBe(true);
    expect(req.has(64)).toBe(false);
    expect(parseReconciliationRequest(req)).toEqual({ header: expect.objectContaining({ stan: 200 }), currency: '392', firstSequence: 1, lastSequence: 199, totals: TOTALS });
    const theirs = { ...TOTALS, purchases: { count: 119, amount: 45_300 } };
    const res = parseReconciliationResponse(wire(reconciliationResponse(req, { responseCode: RC.reconcileError, at: LATER, totals: theirs })));
    expect(res).toEqual({ header: expect.objectContaining({ mti: '0510' }), responseCode: '95', currency: '392', totals: theirs });
    const busy = parseReconciliationResponse(wire(reconciliationResponse(req, { responseCode: RC.systemMalfunction, at: LATER })));
    expect(busy.totals).toBeUndefined();
  });

  it('keeps amounts integers and refuses what n10 / n16 cannot hold', () => {
    const big = { ...TOTALS, purchases: { count: 9_999_999_999, amount: Number.MAX_SAFE_INTEGER } };
    const req = wire(reconciliationRequest(header(), { currency: '392', firstSequence: 1, lastSequence: 1, totals: big }));
    expect(parseReconciliationRequest(req).totals.purchases).toEqual({ count: 9_999_999_999, amount: Number.MAX_SAFE_INTEGER });
    refused(() => reconciliationRequest(header(), { currency: '392', firstSequence: 1, lastSequence: 1, totals: { ...TOTALS, loads: { count: 1e10, amount: 0 } } }), 'bad-value');
    refused(() => reconciliationRequest(header(), { currency: '392', firstSequence: 1, lastSequence: 1, totals: { ...TOTALS, loads: { count: 1, amount: 0.5 } } }), 'bad-value');
    refused(() => reconciliationRequest(header(), { currency: '392', firstSequence: 5, lastSequence: 4, totals: TOTALS }), 'bad-value', 48);
    refused(() => parseReconciliationRequest(req.with(88, '9999999999999999')), 'bad-value', 88);
    refused(() => reconciliationResponse(req, { responseCode: RC.approved, at: LATER }), 'missing-field');
  });
});

describe('refusals and dispatch', () => {
  it('answers any request with the short refusal, which parses as its response', () => {
    const requests = [
      signOnRequest(header()),
      loadAuthorizationRequest(header(), { serial: SERIAL, amount: { minor: 1, currency: '392' }, cardCounter: 0, dateTime: DT }),
      negativeListRequest(header(), { version: 0, chunk: 0 }),
      reversalRequest(header(), { kind: 'purchase', serial: SERIAL, amount: { minor: 1, currency: '392' }, original: { mti: '0220', stan: 1, transmitted: '0314093015', acquirer: '' } }),
      reconciliationRequest(header(), { currency: '392', firstSequence: 1, lastSequence: 1, totals: TOTALS }),
      anomalyReportRequest(header(), { kind: 'other', serial: SERIAL, dateTime: DT, details: {} }),
    ];
    for (const req of requests) {
      for (const rc of [RC.formatError, RC.securityViolation]) {
        const res = wire(refusal(req, { responseCode: rc, at: LATER }));
        const parsed = parseHiltMessage(res);
        expect(parsed.kind.endsWith('-response'), req.mti).toBe(true);
        expect((parsed.data as { responseCode: string }).responseCode).toBe(rc);
      }
    }
    refused(() => refusal(new IsoMessage('0800', { 70: '001' }), { responseCode: RC.formatError, at: LATER }), 'missing-field', 11);
    refused(() => refusal(signOnRequest(header()), { responseCode: '99' as never, at: LATER }), 'bad-value', 39);
    refused(() => refusal(wire(networkResponse(signOnRequest(header()), { responseCode: RC.approved, at: LATER })), { responseCode: RC.formatError, at: LATER }), 'not-a-request');
  });

  it('dispatches every message by MTI, and refuses response codes hilt does not use', () => {
    const kinds = [
      parseHiltMessage(wire(echoRequest(header()))).kind,
      parseHiltMessage(wire(adviceRequest(header({ stan: 77 }), { kind: 'purchase', outcome: 'complete', serial: SERIAL, amount: { minor: 300, currency: '392' }, dateTime: DT, purse: purseRecord() }))).kind,
      parseHiltMessage(wire(anomalyReportRequest(header({ stan: 3 }), { kind: 'rollback', serial: SERIAL, dateTime: DT, details: {} }))).kind,
    ];
    expect(kinds).toEqual(['network', 'advice', 'anomaly-report']);
    const res = networkResponse(signOnRequest(header()), { responseCode: RC.approved, at: LATER });
    refused(() => parseNetworkResponse(res.with(39, '99')), 'bad-value', 39);
    refused(() => parseNetworkResponse(res.with(70, '999')), 'bad-value', 70);
    refused(() => parseNetworkResponse(res.with(48, encodeTlv([]))), 'unexpected-field', 48);
    refused(() => parseNetworkRequest(signOnRequest(header()).without(70)), 'missing-field', 70);
  });
});

describe('README example', () => {
  it('shows the hex this code produces for its example 0200', () => {
    const readme = readFileSync(new URL('../../src/hostlink/README.md', import.meta.url), 'utf8');
    const block = /<!-- example-0200 -->\s*```text\n([\s\S]*?)```/.exec(readme);
    expect(block, 'the README marks its example with <!-- example-0200 -->').not.toBeNull();
    const hexInReadme = block![1].replace(/#.*$/gm, '').replace(/\s+/g, '');
    const m = loadAuthorizationRequest(header({ stan: 42 }), { serial: SERIAL, amount: { minor: 5000, currency: '392' }, cardCounter: 7, dateTime: DT });
    const bytes = pack(signMessage(m, KEY));
    expect(hexInReadme).toBe(toHex(bytes));
    expect(readme).toContain(`terminal key ${toHex(KEY)}`);
  });

  it('documents the field table as fields.ts defines it', () => {
    const readme = readFileSync(new URL('../../src/hostlink/README.md', import.meta.url), 'utf8');
    const table = /<!-- field-table -->([\s\S]*?)<!-- \/field-table -->/.exec(readme)![1];
    const rows = table
      .split('\n')
      .filter((l) => /^\| \d+ \|/.test(l))
      .map((l) => l.split('|').slice(1, 6).map((c) => c.trim()).join(' | '));
    expect(rows).toEqual(FIELD_TABLE.map((d) => [d.n, d.name, d.type, d.kind, d.length].join(' | ')));
  });
});
