import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseAtr, bitRate, describeInterfaceByte, decodeHistoricalBytes, MAX_ATR_LENGTH, MAX_ATR_LEVELS, type Atr } from '../../src/apdu/atr.js';
import { FI_TABLE, DI_TABLE, FMAX_MHZ_TABLE, lifeCycleStatus } from '../../src/apdu/atr-tables.js';
import { DecodeError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const atr = (hex: string) => parseAtr(fromHex(hex));
/** Appends the TCK that makes T0..TCK XOR to zero. */
const withTck = (hex: string) => {
  const b = fromHex(hex);
  let x = 0;
  for (let i = 1; i < b.length; i++) x ^= b[i];
  return `${hex} ${x.toString(16).padStart(2, '0')}`;
};
const byName = (a: Atr, name: string) => a.interfaceBytes.find((b) => `${b.name}${b.i}` === name);

function refused(hex: string, pattern: RegExp): DecodeError {
  let err: unknown;
  try {
    parseAtr(fromHex(hex));
  } catch (e) {
    err = e;
  }
  expect(err, hex).toBeInstanceOf(DecodeError);
  expect((err as DecodeError).code).toBe('ATR_MALFORMED');
  expect((err as DecodeError).message).toMatch(pattern);
  return err as DecodeError;
}

describe('ATR tables', () => {
  it('hold ISO 7816-3 Tables 7 and 8', () => {
    expect(FI_TABLE.length).toBe(16);
    expect(DI_TABLE.length).toBe(16);
    expect([FI_TABLE[1], FMAX_MHZ_TABLE[1], FI_TABLE[9], FMAX_MHZ_TABLE[0xa], FI_TABLE[0xd]]).toEqual([372, 5, 512, 7.5, 2048]);
    expect([DI_TABLE[0], DI_TABLE[1], DI_TABLE[8], DI_TABLE[9], DI_TABLE[0xa]]).toEqual([null, 1, 12, 20, null]);
    expect(FI_TABLE.filter((x) => x === null).length).toBe(4);
  });
  it('life cycle status (ISO 7816-4 Table 13)', () => {
    const names = Array.from({ length: 17 }, (_, i) => lifeCycleStatus(i));
    expect(names).toEqual([
      'no information given',
      'creation state',
      'RFU',
      'initialisation state',
      'operational state (deactivated)',
      'operational state (activated)',
      'operational state (deactivated)',
      'operational state (activated)',
      'RFU',
      'RFU',
      'RFU',
      'RFU',
      'termination state',
      'termination state',
      'termination state',
      'termination state',
      'proprietary',
    ]);
  });
  it('card service data access methods (b4-b2) and TC for T=1 RFU bits', () => {
    const access = (b: number) => decodeHistoricalBytes(Uint8Array.of(0x80, 0x31, b)).objects[0].cardService?.access;
    expect([access(0b1000), access(0b0000), access(0b0100), access(0b0010), access(0b1110)]).toEqual(['READ BINARY', 'READ RECORD', 'GET DATA', 'RFU', 'RFU']);
    expect(decodeHistoricalBytes(Uint8Array.of(0x80, 0x31, 0x01)).objects[0].cardService?.hasMf).toBe(false);
    const tc = (v: number) => byName(atr(withTck(`3B 80 41 ${v.toString(16).padStart(2, '0')}`)), 'TC2');
    // TC2 is WI for T=0 whatever TD1 says; TC3 after a T=1 TD is the error detection byte.
    expect(tc(0x81)?.decoded).toEqual({ kind: 'waiting-integer', wi: 0x81 });
    const edc = (v: number) => byName(atr(withTck(`3B 80 81 41 ${v.toString(16).padStart(2, '0')}`)), 'TC3')?.decoded;
    expect(edc(0x00)).toEqual({ kind: 'error-detection', code: 'LRC', rfuBits: false });
    expect(edc(0x01)).toEqual({ kind: 'error-detection', code: 'CRC', rfuBits: false });
    expect(edc(0x81)).toEqual({ kind: 'error-detection', code: 'CRC', rfuBits: true });
    expect(edc(0x02)).toEqual({ kind: 'error-detection', code: 'LRC', rfuBits: true });
  });
  it('bit rate is f × Di / Fi', () => {
    expect(bitRate(372, 1, 3.57e6)).toBeCloseTo(9597, 0);
    expect(bitRate(512, 8, 4e6)).toBe(62500);
  });
});

describe('ATR known cases', () => {
  it('T=0 only, no interface bytes, proprietary historical bytes (3B 02 14 50)', () => {
    const a = atr('3B 02 14 50');
    expect(a.convention).toBe('direct');
    expect([a.y1, a.k]).toEqual([0, 2]);
    expect(a.interfaceBytes).toEqual([]);
    expect(a.protocols).toEqual([0]);
    expect(a.tck).toEqual({ present: false, required: false });
    expect(a.historical).toMatchObject({ category: 0x14, kind: 'proprietary', objects: [] });
    expect(a.parameters).toMatchObject({ ta1Present: false, fi: 372, di: 1, fmaxMHz: 5, extraGuardTime: 0, wi: 10 });
    expect(Object.isFrozen(a) && Object.isFrozen(a.parameters) && Object.isFrozen(a.interfaceBytes)).toBe(true);
  });

  it('PC/SC part 3 contactless: T=0 and T=1, compact-TLV initial access data, good TCK', () => {
    const a = atr('3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A');
    expect(a.protocols).toEqual([0, 1]);
    expect(a.interfaceBytes.map((b) => `${b.name}${b.i}=${b.value.toString(16)}`)).toEqual(['TD1=80', 'TD2=1']);
    expect(a.tck).toEqual({ present: true, required: true, value: 0x6a, valid: true, expected: 0x6a });
    expect(a.historical.kind).toBe('compact-tlv');
    // PC/SC Part 3: RID A000000306 (PC/SC workgroup), standard 03 (ISO 14443 A part 3), card 0001.
    expect(a.historical.objects).toEqual([]);
    expect(a.historical.error).toBeUndefined();
    expect(a.historical.pcsc).toEqual({ rid: fromHex('A000000306'), standard: 3, cardName: 1 });
    // A real compact-TLV tag 4 object is still read as one.
    const b = decodeHistoricalBytes(fromHex('80 43 01 02 03'));
    expect(b.objects).toMatchObject([{ tag: 4, name: 'initial access data', offset: 1 }]);
    expect(b.pcsc).toBeUndefined();
  });

  it('T=1 card: TA1, IFSC, BWI/CWI (3B F5 13 00 00 81 31 FE 45 ...)', () => {
    const a = atr('3B F5 13 00 00 81 31 FE 45 73 74 64 31 30 8F');
    expect(byName(a, 'TA1')?.decoded).toEqual({ kind: 'rate', fiCode: 1, diCode: 3, fi: 372, di: 4, fmaxMHz: 5, cyclesPerEtu: 93 });
    expect(byName(a, 'TB1')?.decoded).toMatchObject({ kind: 'vpp', connected: false });
    expect(byName(a, 'TC1')?.decoded).toEqual({ kind: 'extra-guard-time', n: 0, special: false });
    expect(byName(a, 'TA3')).toMatchObject({ scope: 1, decoded: { kind: 'ifsc', ifsc: 254, rfu: false } });
    expect(byName(a, 'TB3')?.decoded).toEqual({ kind: 'bwi-cwi', bwi: 4, cwi: 5, rfu: false });
    expect(a.protocols).toEqual([1]);
    expect(a.parameters).toMatchObject({ fi: 372, di: 4, ifsc: 254, bwi: 4, cwi: 5, errorDetection: 'LRC' });
    expect(a.tck.valid).toBe(true);
    expect(describeInterfaceByte(byName(a, 'TA1')!)).toBe('Fi=372, Di=4, 93 cycles/ETU, 43010 bits/s at 4 MHz, fMax for Fi = 5 MHz => 53763 bits/s');
    expect(describeInterfaceByte(byName(a, 'TA1')!, 3.5712e6)).toMatch(/38400 bits\/s at 3\.571 MHz/);
  });

  it('T=15 global bytes: clock stop and classes; category 80 with service data, capabilities, status', () => {
    const a = atr('3B 9F 96 80 1F C3 80 31 E0 73 FE 21 1B B3 E2 02 7E 83 0F 90 00 82');
    expect(a.protocols).toEqual([0]);
    expect(a.hasGlobalT15).toBe(true);
    expect(a.tck).toMatchObject({ present: true, required: true, valid: true });
    expect(byName(a, 'TA1')?.decoded).toMatchObject({ fi: 512, di: 32, cyclesPerEtu: 16 });
    expect(byName(a, 'TA3')).toMatchObject({ scope: 'global', decoded: { kind: 'clock-stop-class', clockStop: 'no preference', classes: ['A', 'B'], rfuClassBits: 0 } });
    expect(a.parameters).toMatchObject({ clockStop: 'no preference', classes: ['A', 'B'] });
    const [service, caps, rfu, status] = a.historical.objects;
    expect(service.cardService).toEqual({
      selectionByFullDfName: true,
      selectionByPartialDfName: true,
      berTlvInEfDir: true,
      berTlvInEfAtr: false,
      access: 'READ RECORD',
      hasMf: true,
    });
    expect(caps.capabilities?.selectionMethods).toEqual([
      'DF selection by full DF name',
      'DF selection by partial DF name',
      'DF selection by path',
      'DF selection by file identifier',
      'implicit DF selection',
      'short EF identifier supported',
      'record number supported',
    ]);
    expect(caps.capabilities?.dataCoding).toEqual({ efTlvSupported: false, writeBehaviour: 'proprietary', ffTagValid: false, dataUnitQuartets: 2 });
    expect(caps.capabilities?.chaining).toEqual({
      commandChaining: false,
      extendedLength: false,
      extendedLengthInfoInEfAtr: false,
      logicalChannelAssignment: 'by the interface device and the card',
      maxLogicalChannels: 4,
    });
    expect(rfu).toMatchObject({ tag: 0xb, name: 'RFU' });
    expect(status.status).toEqual({ lcs: 0x0f, lcsMeaning: 'termination state', sw: 0x9000 });
    expect(a.historical.status).toEqual(status.status);
  });

  it('inverse convention, category 00 with its status indicator', () => {
    const a = atr('3F 28 00 00 11 14 00 03 68 90 00');
    expect(a.convention).toBe('inverse');
    expect(a.interfaceBytes.map((b) => `${b.name}${b.i}`)).toEqual(['TB1']);
    expect(byName(a, 'TB1')?.decoded).toMatchObject({ connected: false });
    expect(a.historical.kind).toBe('compact-tlv-status');
    expect(a.historical.status).toEqual({ lcs: 0x68, lcsMeaning: 'proprietary', sw: 0x9000 });
    // 11 14 | 00 | 03 (tag 0, 3 bytes, none left): what fits, then the damage.
    expect(a.historical.objects.map((o) => [o.tag, toHex(o.value)])).toEqual([
      [1, '14'],
      [0, ''],
    ]);
    expect(a.historical.error?.offset).toBe(7);
    const b = decodeHistoricalBytes(fromHex('00 31 E0 05 90 00'));
    expect(b.kind).toBe('compact-tlv-status');
    expect(b.objects.map((o) => o.tag)).toEqual([3]);
    expect(b.status).toEqual({ lcs: 5, lcsMeaning: 'operational state (activated)', sw: 0x9000 });
  });

  it('TC1 = FF, TA2 specific mode, TB1 programming voltage, TC2 waiting integer, TC3 CRC', () => {
    const a = atr(withTck('3B F1 11 25 FF F1 91 32 45 80 41 01 01'));
    // TA2 = 91: unable to change, implicit, T=1. TB2 = 32 (5.0 V in dV). TC2 = 45 (WI 69).
    expect(byName(a, 'TB1')?.decoded).toEqual({ kind: 'vpp', pi1: 5, ii: 1, connected: true, vppVolts: 5, ippMilliamps: 50 });
    expect(byName(a, 'TC1')?.decoded).toEqual({ kind: 'extra-guard-time', n: 255, special: true });
    expect(byName(a, 'TA2')?.decoded).toEqual({ kind: 'specific-mode', protocol: 1, canChange: false, implicit: true });
    expect(byName(a, 'TB2')?.decoded).toEqual({ kind: 'vpp2', pi2: 0x32, vppDecivolts: 50 });
    expect(byName(a, 'TC2')).toMatchObject({ scope: 0, decoded: { kind: 'waiting-integer', wi: 0x45 } });
    expect(byName(a, 'TD2')?.decoded).toMatchObject({ protocol: 0 });
    expect(byName(a, 'TD3')?.decoded).toMatchObject({ protocol: 1 });
    expect(byName(a, 'TC4')?.decoded).toEqual({ kind: 'error-detection', code: 'CRC', rfuBits: false });
    expect(a.warnings.join()).toMatch(/T=0 listed after T=1/);
    expect(a.parameters).toMatchObject({ extraGuardTime: 255, wi: 0x45, specificMode: { protocol: 1 }, errorDetection: 'CRC' });
    expect(a.historical.bytes).toEqual(fromHex('01'));
    expect(a.tck).toMatchObject({ present: true, valid: true });
    expect(describeInterfaceByte(byName(a, 'TC1')!)).toMatch(/special value/);
  });

  it('only the first TA/TB/TC for T=1 is decoded; TA for T=14 is left alone', () => {
    const a = atr(withTck('3B 80 81 B1 FE 45 B1 20 45 1E 11'));
    expect(a.interfaceBytes.map((b) => `${b.name}${b.i}`)).toEqual(['TD1', 'TD2', 'TA3', 'TB3', 'TD3', 'TA4', 'TB4', 'TD4', 'TA5']);
    expect(byName(a, 'TA3')?.decoded).toMatchObject({ kind: 'ifsc', ifsc: 254 });
    expect(byName(a, 'TB3')?.decoded).toMatchObject({ kind: 'bwi-cwi', bwi: 4, cwi: 5 });
    expect(byName(a, 'TA4')).toMatchObject({ scope: 1, decoded: { kind: 'undecoded', reason: 'not the first TA for T=1' } });
    expect(byName(a, 'TB4')?.decoded.kind).toBe('undecoded');
    expect(byName(a, 'TA5')).toMatchObject({ scope: 14, decoded: { kind: 'undecoded' } });
    expect(a.parameters.ifsc).toBe(254);
    expect(a.protocols).toEqual([1, 14]);
  });

  it('a wrong TCK is reported, not refused', () => {
    const a = atr('3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6B');
    expect(a.tck).toEqual({ present: true, required: true, value: 0x6b, valid: false, expected: 0x6a });
  });

  it('an optional TCK on a T=0-only ATR is read and warned about (as ATR_analysis does)', () => {
    const a = atr('3B 02 14 50 11');
    expect(a.tck).toEqual({ present: true, required: false, value: 0x11, valid: false, expected: 0x46 });
    expect(a.warnings).toContain('TCK present although only T=0 is indicated');
  });

  it('historical damage is reported, the ATR still parses', () => {
    const a = atr('3B 03 80 45 01');
    expect(a.historical.error?.message).toMatch(/announces 5/);
    expect(a.historical.error?.offset).toBe(3);
    expect(atr('3B 02 00 01').historical.error?.message).toMatch(/3-byte status/);
    expect(atr('3B 01 10').historical.error?.message).toMatch(/DIR data reference/);
    expect(atr('3B 02 10 50').historical.dirReference).toBe(0x50);
    expect(atr('3B 01 85').historical.kind).toBe('rfu');
  });
});

describe('ATR refusals', () => {
  it('empty, TS, T0', () => {
    expect(refused('', /empty/).offset).toBe(0);
    refused('3C 00', /TS must be 3B/);
    refused('03 00', /TS must be/); // inverse convention read as direct
    expect(refused('3B', /T0 missing/).offset).toBe(1);
  });
  it('interface bytes running past the end', () => {
    expect(refused('3B 80', /TD1 missing/).offset).toBe(2);
    refused('3B F0 11 00', /TC1 missing/);
    refused('3B 80 81', /TD2 missing/);
  });
  it('historical bytes truncated', () => {
    refused('3B 02 14', /truncated: T0 announces 2 historical byte\(s\), 1 present/);
    refused('3B 6D 00 00', /truncated/);
  });
  it('TCK missing when required, bytes after the TCK, two extra bytes on T=0', () => {
    refused('3B 81 01 80', /TCK missing/);
    refused('3B 81 0F 80', /TCK missing/); // T=15 requires a TCK too
    refused('3B 81 01 80 00 00', /after the TCK/);
    refused('3B 00 3B 28', /too long/);
  });
  it('more than 33 bytes, more than MAX_ATR_LEVELS TD bytes', () => {
    refused('3B 0F' + ' 41'.repeat(15) + ' 00'.repeat(MAX_ATR_LENGTH - 16), /at most 33/);
    const tds = ' 80'.repeat(MAX_ATR_LEVELS) + ' 00';
    refused('3B 80' + tds, /more than 15 TD/);
    expect(atr('3B 80' + ' 80'.repeat(MAX_ATR_LEVELS - 1) + ' 00').interfaceBytes).toHaveLength(MAX_ATR_LEVELS);
  });
});

/** A structurally valid ATR and what it should decode to. */
const atrArb = fc
  .record({
    inverse: fc.boolean(),
    levels: fc.array(
      fc.record({ ta: fc.option(fc.integer({ min: 0, max: 255 })), tb: fc.option(fc.integer({ min: 0, max: 255 })), tc: fc.option(fc.integer({ min: 0, max: 255 })), t: fc.integer({ min: 0, max: 15 }) }),
      { minLength: 1, maxLength: 4 },
    ),
    historical: fc.uint8Array({ maxLength: 15 }),
    tckDelta: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })),
  })
  .map(({ inverse, levels, historical, tckDelta }) => {
    const out: number[] = [inverse ? 0x3f : 0x3b];
    const expected: { name: string; value: number }[] = [];
    const y = (l: (typeof levels)[number], hasTd: boolean) => (l.ta !== null ? 1 : 0) | (l.tb !== null ? 2 : 0) | (l.tc !== null ? 4 : 0) | (hasTd ? 8 : 0);
    // levels[0] are TA1..TC1; levels[i].t is the T of the TD that ends level i (none on the last).
    out.push((y(levels[0], levels.length > 1) << 4) | historical.length);
    levels.forEach((l, i) => {
      for (const [name, v] of [['TA', l.ta], ['TB', l.tb], ['TC', l.tc]] as const) {
        if (v !== null) {
          out.push(v);
          expected.push({ name: `${name}${i + 1}`, value: v });
        }
      }
      if (i < levels.length - 1) {
        const td = (y(levels[i + 1], i + 2 < levels.length) << 4) | l.t;
        out.push(td);
        expected.push({ name: `TD${i + 1}`, value: td });
      }
    });
    out.push(...historical);
    const required = levels.slice(0, -1).some((l) => l.t !== 0);
    let x = 0;
    for (let j = 1; j < out.length; j++) x ^= out[j];
    if (required) out.push(x ^ tckDelta);
    return { bytes: Uint8Array.from(out), expected, required, tckOk: tckDelta === 0, historical };
  })
  .filter((c) => c.bytes.length <= MAX_ATR_LENGTH);

describe('ATR properties', () => {
  it('decodes every generated ATR to the bytes it was built from', () => {
    fc.assert(
      fc.property(atrArb, (c) => {
        const a = parseAtr(c.bytes);
        expect(a.interfaceBytes.map((b) => ({ name: `${b.name}${b.i}`, value: b.value }))).toEqual(c.expected);
        expect(a.historical.bytes).toEqual(c.historical);
        expect(a.tck.present).toBe(c.required);
        if (c.required) expect(a.tck.valid).toBe(c.tckOk);
        for (const b of a.interfaceBytes) expect(c.bytes[b.offset]).toBe(b.value);
        for (const b of a.interfaceBytes) expect(typeof describeInterfaceByte(b)).toBe('string');
      }),
      { numRuns: 2000 },
    );
  });
});
