import { describe, it, expect } from 'vitest';
import { CommandApdu, apdu, MAX_COMMAND_LENGTH, type CommandApduFields } from '../../src/apdu/command.js';
import { insName, describeIns, isValidIns } from '../../src/apdu/ins.js';
import { describeCommand } from '../../src/apdu/describe.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError, DecodeError } from '../../src/util/errors.js';
import { BAD_COMMAND_APDUS, NOT_BYTES } from './bad-inputs.js';

const hex = (b: Uint8Array) => toHex(b).toUpperCase();
const seq = (n: number, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

/** Builds, encodes, checks the hex, decodes and checks every field back. */
function roundTrip(fields: CommandApduFields, expectedHex: string): CommandApdu {
  const c = new CommandApdu(fields);
  expect(hex(c.encode())).toBe(expectedHex.toUpperCase());
  const d = CommandApdu.decode(fromHex(expectedHex));
  expect(d.cla).toBe(c.cla);
  expect(d.ins).toBe(c.ins);
  expect(d.p1).toBe(c.p1);
  expect(d.p2).toBe(c.p2);
  expect(hex(d.data)).toBe(hex(c.data));
  expect(d.ne).toBe(c.ne);
  expect(d.extended).toBe(c.extended);
  expect(d.case).toBe(c.case);
  expect(hex(d.encode())).toBe(expectedHex.toUpperCase());
  return d;
}

describe('CommandApdu: the seven ISO cases, exact bytes', () => {
  it('case 1: header only', () => {
    const d = roundTrip({ cla: 0x00, ins: 0x70, p1: 0x80, p2: 0x01 }, '00708001');
    expect(d.case).toBe(1);
    expect(d.extended).toBe(false);
    expect(d.nc).toBe(0);
    expect(d.ne).toBe(0);
  });

  it('case 2S: Le 1..255 as is, Ne 256 as 00', () => {
    expect(roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1 }, '00B0000001').case).toBe(2);
    roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 255 }, '00B00000FF');
    const d = roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 }, '00B0000000');
    expect(d.ne).toBe(256);
    expect(d.extended).toBe(false);
  });

  it('case 3S: Lc then data', () => {
    const d = roundTrip({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: fromHex('0102') }, '00D60000020102');
    expect(d.case).toBe(3);
    expect(d.nc).toBe(2);
  });

  it('case 4S: Lc, data, Le (00 = 256)', () => {
    const d = roundTrip(
      { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: fromHex('A0000000030000'), ne: 256 },
      '00A4040007A000000003000000',
    );
    expect(d.case).toBe(4);
    roundTrip({ cla: 0, ins: 0x88, p1: 0, p2: 0, data: fromHex('11'), ne: 8 }, '00880000011108');
  });

  it('case 2E: 7 bytes, 00 marker then two Le bytes; 65536 ↔ 0000', () => {
    const d = roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536 }, '00B00000000000');
    expect(d.case).toBe(2);
    expect(d.extended).toBe(true);
    expect(d.encode().length).toBe(7);
    expect(roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 257 }, '00B00000000101').ne).toBe(257);
    roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65535 }, '00B0000000FFFF');
  });

  it('case 3E: 00 marker, two Lc bytes, data', () => {
    const data = seq(256);
    const d = roundTrip({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data }, '00D60000000100' + hex(data));
    expect(d.case).toBe(3);
    expect(d.extended).toBe(true);
    expect(d.nc).toBe(256);
  });

  it('case 4E: 00 marker, Lc, data, two Le bytes without marker; Le 0000 = 65536', () => {
    const data = seq(300);
    const d = roundTrip({ cla: 0x80, ins: 0xe2, p1: 0x80, p2: 0, data, ne: 65536 }, '80E28000' + '00012C' + hex(data) + '0000');
    expect(d.case).toBe(4);
    expect(d.ne).toBe(65536);
    roundTrip({ cla: 0, ins: 0x2a, p1: 0x9e, p2: 0x9a, data: fromHex('AB'), ne: 0x1234, extended: true }, '002A9E9A000001AB1234');
  });

  it('Nc 255 stays short, Nc 256 switches to extended', () => {
    const c255 = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: seq(255) });
    expect(c255.extended).toBe(false);
    expect(hex(c255.encode().subarray(0, 5))).toBe('00D60000FF');
    expect(c255.encode().length).toBe(5 + 255);
    const c256 = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: seq(256) });
    expect(c256.extended).toBe(true);
    expect(hex(c256.encode().subarray(0, 7))).toBe('00D60000000100');
    expect(c256.encode().length).toBe(7 + 256);
  });

  it('Ne 256 stays short (Le 00), Ne 257 switches to extended (Le 0101)', () => {
    expect(hex(apdu(0, 0xb0, 0, 0, undefined, 256).encode())).toBe('00B0000000');
    expect(hex(apdu(0, 0xb0, 0, 0, undefined, 257).encode())).toBe('00B00000000101');
    // With data: a short Lc and data force nothing; Ne 257 makes both fields extended.
    expect(hex(apdu(0, 0xa4, 4, 0, fromHex('A0'), 256).encode())).toBe('00A4040001A000');
    expect(hex(apdu(0, 0xa4, 4, 0, fromHex('A0'), 257).encode())).toBe('00A404000000' + '01A0' + '0101');
  });

  it('large data with a small Ne gives an extended Le of two bytes', () => {
    const c = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: seq(256), ne: 1 });
    const b = c.encode();
    expect(hex(b.subarray(b.length - 2))).toBe('0001');
    expect(b.length).toBe(4 + 3 + 256 + 2);
  });

  it('forced extended on small data, in every case that has a length field', () => {
    roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1, extended: true }, '00B00000000001');
    roundTrip({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256, extended: true }, '00B00000000100');
    roundTrip({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: fromHex('AA'), extended: true }, '00D60000000001AA');
    roundTrip({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: fromHex('AA'), ne: 256, extended: true }, '00A40400000001AA0100');
  });

  it('case 1 has no length field: extended requested reads false, encodes 4 bytes, round-trips', () => {
    const c = new CommandApdu({ cla: 0, ins: 0x70, p1: 0, p2: 0, extended: true });
    expect(c.extended).toBe(false);
    expect(hex(c.encode())).toBe('00700000');
    expect(CommandApdu.decode(c.encode())).toEqual(c);
    // ... but the request is remembered when a length field is added.
    expect(hex(c.with({ ne: 5 }).encode())).toBe('00700000000005');
  });

  it('the largest APDUs: Nc 65535 with Ne 65536', () => {
    const data = seq(65535, 7);
    const c = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data, ne: 65536 });
    const b = c.encode();
    expect(b.length).toBe(MAX_COMMAND_LENGTH);
    expect(hex(b.subarray(4, 7))).toBe('00FFFF');
    expect(hex(b.subarray(b.length - 2))).toBe('0000');
    const d = CommandApdu.decode(b);
    expect(d.nc).toBe(65535);
    expect(d.ne).toBe(65536);
    expect(hex(d.encode())).toBe(hex(b));
  });
});

describe('CommandApdu: validation', () => {
  it.each([
    ['CLA', { cla: 0x100, ins: 0, p1: 0, p2: 0 }],
    ['CLA', { cla: -1, ins: 0, p1: 0, p2: 0 }],
    ['CLA FF', { cla: 0xff, ins: 0, p1: 0, p2: 0 }],
    ['INS', { cla: 0, ins: 1.5, p1: 0, p2: 0 }],
    ['P1', { cla: 0, ins: 0, p1: 256, p2: 0 }],
    ['P2', { cla: 0, ins: 0, p1: 0, p2: Number.NaN }],
    ['Ne', { cla: 0, ins: 0, p1: 0, p2: 0, ne: 65537 }],
    ['Ne', { cla: 0, ins: 0, p1: 0, p2: 0, ne: -1 }],
    ['data', { cla: 0, ins: 0, p1: 0, p2: 0, data: new Uint8Array(65536) }],
    ['data', { cla: 0, ins: 0, p1: 0, p2: 0, data: [1, 2] as unknown as Uint8Array }],
  ])('refuses a bad %s with BadInputError', (_name, fields) => {
    expect(() => new CommandApdu(fields as CommandApduFields)).toThrow(BadInputError);
  });

  it('copies the data: a Buffer given in is neither shared nor kept as a Buffer', () => {
    const buf = Buffer.from([1, 2, 3]);
    const c = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: buf });
    buf[0] = 99;
    expect(Array.from(c.data)).toEqual([1, 2, 3]);
    expect(c.data.constructor).toBe(Uint8Array);
    expect(Buffer.isBuffer(c.data)).toBe(false);
  });

  it('decoding a Buffer or a view at an offset copies its bytes', () => {
    const backing = fromHex('FFFF00D6000002ABCDFFFF');
    const view = backing.subarray(2, 9);
    const d = CommandApdu.decode(view);
    backing[7] = 0;
    expect(hex(d.data)).toBe('ABCD');
    const fromBuf = CommandApdu.decode(Buffer.from('00D6000002ABCD', 'hex'));
    expect(fromBuf.data.constructor).toBe(Uint8Array);
  });

  it('is frozen', () => {
    const c = apdu(0, 0xa4, 4, 0);
    expect(Object.isFrozen(c)).toBe(true);
    expect(() => {
      (c as { ne: number }).ne = 5;
    }).toThrow(TypeError);
  });
});

describe('CommandApdu.with', () => {
  it('changes fields and validates again', () => {
    const c = apdu(0, 0xa4, 4, 0, fromHex('A000'), 256);
    expect(hex(c.with({ p2: 0x0c, ne: 0 }).encode())).toBe('00A4040C02A000');
    expect(() => c.with({ p1: 300 })).toThrow(BadInputError);
  });

  it('drops an extended form the sizes forced once the sizes no longer need it', () => {
    const big = apdu(0, 0xd6, 0, 0, seq(300));
    expect(big.extended).toBe(true);
    const small = big.with({ data: seq(3) });
    expect(small.extended).toBe(false);
    expect(hex(small.encode())).toBe('00D6000003000102');
  });

  it('keeps an extended form that was asked for (or decoded), unless told otherwise', () => {
    const forced = new CommandApdu({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 10, extended: true });
    expect(forced.with({ ne: 20 }).extended).toBe(true);
    expect(forced.with({ ne: 20, extended: false }).extended).toBe(false);
    const decoded = CommandApdu.decode(fromHex('00B0000000000A'));
    expect(hex(decoded.with({ p1: 1 }).encode())).toBe('00B0010000000A');
  });
});

describe('CommandApdu.decode refuses malformed input', () => {
  it.each(BAD_COMMAND_APDUS.map((b) => [b.name, b] as const))('%s', (_name, bad) => {
    let err: unknown;
    try {
      CommandApdu.decode(bad.bytes);
    } catch (e) {
      err = e;
    }
    expect(err, bad.why).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).code).toBe('APDU_MALFORMED');
    expect((err as DecodeError).offset).toBeGreaterThanOrEqual(0);
  });

  it.each(NOT_BYTES.map((b) => [b.name, b.value] as const))('not bytes: %s', (_name, value) => {
    expect(() => CommandApdu.decode(value as Uint8Array)).toThrow(DecodeError);
  });

  it('says where the problem is', () => {
    expect(() => CommandApdu.decode(fromHex('00A4040005A000'))).toThrow(/short Lc 5 .*at byte 4/);
    expect(() => CommandApdu.decode(fromHex('00DA0000000000AA'))).toThrow(/0000.*at byte 5/);
  });
});

describe('INS names', () => {
  it.each([
    [0x00, 0xa4, 'SELECT'],
    [0x00, 0xb0, 'READ BINARY'],
    [0x00, 0xb1, 'READ BINARY'],
    [0x00, 0xd6, 'UPDATE BINARY'],
    [0x00, 0xb2, 'READ RECORD(S)'],
    [0x00, 0xc0, 'GET RESPONSE'],
    [0x00, 0xca, 'GET DATA'],
    [0x00, 0xcb, 'GET DATA'],
    [0x00, 0xda, 'PUT DATA'],
    [0x00, 0x20, 'VERIFY'],
    [0x00, 0x88, 'INTERNAL AUTHENTICATE'],
    [0x00, 0x82, 'EXTERNAL AUTHENTICATE'],
    [0x00, 0x84, 'GET CHALLENGE'],
    [0x00, 0x70, 'MANAGE CHANNEL'],
    [0x00, 0xc2, 'ENVELOPE'],
    [0x01, 0xa4, 'SELECT'],
    [0x45, 0xb0, 'READ BINARY'],
    [0x80, 0x50, 'INITIALIZE UPDATE'],
    [0x84, 0x82, 'EXTERNAL AUTHENTICATE'],
    [0x80, 0xe6, 'INSTALL'],
    [0x80, 0xe8, 'LOAD'],
    [0x80, 0xe4, 'DELETE'],
    [0x80, 0xf2, 'GET STATUS'],
    [0x80, 0xf0, 'SET STATUS'],
    [0x80, 0xe2, 'STORE DATA'],
    [0x84, 0xd8, 'PUT KEY'],
    [0xe0, 0xe6, 'INSTALL'],
    [0x80, 0xa8, 'GET PROCESSING OPTIONS'],
    [0x80, 0xae, 'GENERATE APPLICATION CRYPTOGRAM'],
    [0x80, 0xca, 'GET DATA'],
  ])('CLA %i INS %i is %s', (cla, ins, name) => {
    expect(insName(cla, ins)).toBe(name);
  });

  it('the class decides: E2/E4/E6/E8 are file commands under 00 and card management under 80', () => {
    expect(insName(0x00, 0xe2)).toBe('APPEND RECORD');
    expect(insName(0x80, 0xe2)).toBe('STORE DATA');
    expect(insName(0x00, 0xe4)).toBe('DELETE FILE');
    expect(insName(0x80, 0xe4)).toBe('DELETE');
    expect(insName(0x00, 0xe6)).toBe('TERMINATE DF');
    expect(insName(0x00, 0xe8)).toBe('TERMINATE EF');
    expect(insName(0x00, 0x50)).toBeUndefined();
    expect(insName(0x80, 0xa4)).toBeUndefined();
    expect(insName(0x00, 0xa8)).toBeUndefined();
  });

  it('reports standards and class space', () => {
    expect(describeIns(0x80, 0xca)).toEqual({ ins: 0xca, name: 'GET DATA', standards: ['GlobalPlatform', 'EMV'], space: 'proprietary' });
    expect(describeIns(0x00, 0xa4)?.standards).toEqual(['ISO 7816-4']);
    expect(describeIns(0x20, 0xa4)).toBeUndefined(); // RFU class
    expect(describeIns(0xff, 0xa4)).toBeUndefined();
  });

  it('6X and 9X are the invalid INS values', () => {
    const invalid = Array.from({ length: 256 }, (_, i) => i).filter((i) => !isValidIns(i));
    expect(invalid).toEqual([...seq(16, 0x60), ...seq(16, 0x90)].map(Number));
  });
});

describe('describeCommand', () => {
  it('lays out every field of a case 4S SELECT', () => {
    const d = describeCommand(CommandApdu.decode(fromHex('00A4040007A000000003000000')));
    expect(d.case).toBe('4S');
    expect(d.cla).toMatchObject({ hex: '00', kind: 'interindustry', channel: 0, secureMessaging: 'none', chaining: false });
    expect(d.ins).toEqual({ value: 0xa4, hex: 'A4', name: 'SELECT', standards: ['ISO 7816-4'], valid: true });
    expect(d.p1.meaning).toBe('select by DF name (AID)');
    expect(d.p2.meaning).toBe('first or only occurrence, return FCI');
    expect(d).toMatchObject({ nc: 7, lc: '07', data: 'A0000000030000', ne: 256, le: '00', warnings: [] });
    expect(d.fields.map((f) => [f.field, f.offset, f.hex])).toEqual([
      ['CLA', 0, '00'],
      ['INS', 1, 'A4'],
      ['P1', 2, '04'],
      ['P2', 3, '00'],
      ['Lc', 4, '07'],
      ['data', 5, 'A0000000030000'],
      ['Le', 12, '00'],
    ]);
  });

  it('shows the extended marker with Lc in 4E and with Le in 2E', () => {
    const e4 = describeCommand(CommandApdu.decode(fromHex('80E2800000000201020000')));
    expect(e4.case).toBe('4E');
    expect(e4.lc).toBe('000002');
    expect(e4.le).toBe('0000');
    expect(e4.ne).toBe(65536);
    expect(e4.fields.map((f) => f.offset)).toEqual([0, 1, 2, 3, 4, 7, 9]);
    const e2 = describeCommand(CommandApdu.decode(fromHex('00B00000000100')));
    expect(e2.case).toBe('2E');
    expect(e2.lc).toBeNull();
    expect(e2.le).toBe('000100');
    const c1 = describeCommand(CommandApdu.decode(fromHex('00700001')));
    expect(c1.case).toBe('1');
    expect(c1.fields).toHaveLength(4);
  });

  it('the fields laid end to end are the encoding', () => {
    for (const h of ['00A4040007A000000003000000', '80E2800000000201020000', '00B00000000100', '84820000', '0CD6000003AABBCC']) {
      const d = describeCommand(CommandApdu.decode(fromHex(h)));
      expect(d.fields.map((f) => f.hex).join('')).toBe(h);
      for (const f of d.fields) expect(h.slice(f.offset * 2, f.offset * 2 + f.hex.length)).toBe(f.hex);
    }
  });

  it('names GlobalPlatform commands under their class, and warns about invalid INS and RFU classes', () => {
    const gp = describeCommand(CommandApdu.decode(fromHex('84823300081011121314151617')));
    expect(gp.ins.name).toBe('EXTERNAL AUTHENTICATE');
    expect(gp.p1.meaning).toMatch(/C-DECRYPTION, C-MAC, R-ENCRYPTION and R-MAC/);
    expect(gp.cla.secureMessaging).toBe('proprietary');
    const bad = describeCommand(CommandApdu.decode(fromHex('20610000')));
    expect(bad.ins.valid).toBe(false);
    expect(bad.warnings).toHaveLength(2);
    expect(bad.cla.kind).toBe('rfu');
  });
});
