import { describe, it, expect } from 'vitest';
import { ResponseApdu, MAX_RESPONSE_DATA } from '../../src/apdu/response.js';
import { describeResponse } from '../../src/apdu/describe.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { BadInputError, DecodeError } from '../../src/util/errors.js';
import { BAD_RESPONSE_APDUS, NOT_BYTES } from './bad-inputs.js';

const hex = (b: Uint8Array) => toHex(b).toUpperCase();

describe('ResponseApdu', () => {
  it('decodes data and SW1 SW2', () => {
    const r = ResponseApdu.decode(fromHex('6F108408A000000003000000A5049F6501FF9000'));
    expect(hex(r.data)).toBe('6F108408A000000003000000A5049F6501FF');
    expect(r.sw).toBe(0x9000);
    expect(r.sw1).toBe(0x90);
    expect(r.sw2).toBe(0x00);
    expect(r.swHex).toBe('9000');
    expect(r.ok).toBe(true);
  });

  it('a status word alone', () => {
    const r = ResponseApdu.decode(fromHex('6A82'));
    expect(r.data.length).toBe(0);
    expect(r.sw).toBe(0x6a82);
    expect(r.ok).toBe(false);
    expect(hex(ResponseApdu.status(0x6a82).encode())).toBe('6A82');
  });

  it('ok is 9000 and 61XX only', () => {
    const ok = Array.from({ length: 0x10000 }, (_, sw) => sw).filter((sw) => ResponseApdu.status(sw).ok);
    expect(ok.length).toBe(257);
    expect(ok).toContain(0x9000);
    expect(ok).toContain(0x6100);
    expect(ok).toContain(0x61ff);
    expect(ok).not.toContain(0x9001);
  });

  it('encodes data then SW, and round-trips', () => {
    const r = new ResponseApdu(fromHex('0102'), 0x6310);
    expect(hex(r.encode())).toBe('01026310');
    expect(r.toString()).toBe('01026310');
    expect(ResponseApdu.decode(r.encode())).toEqual(r);
  });

  it('the largest response: 65536 data bytes', () => {
    const b = new Uint8Array(MAX_RESPONSE_DATA + 2).fill(0xab);
    b[b.length - 2] = 0x90;
    b[b.length - 1] = 0x00;
    const r = ResponseApdu.decode(b);
    expect(r.data.length).toBe(65536);
    expect(hex(r.encode())).toBe(hex(b));
  });

  it('validates what it is built from', () => {
    expect(() => new ResponseApdu(new Uint8Array(0), 0x10000)).toThrow(BadInputError);
    expect(() => new ResponseApdu(new Uint8Array(0), -1)).toThrow(BadInputError);
    expect(() => new ResponseApdu(new Uint8Array(0), 1.5)).toThrow(BadInputError);
    expect(() => new ResponseApdu(new Uint8Array(MAX_RESPONSE_DATA + 1), 0x9000)).toThrow(BadInputError);
    expect(() => new ResponseApdu('0102' as unknown as Uint8Array, 0x9000)).toThrow(BadInputError);
    expect(() => new ResponseApdu(null as unknown as Uint8Array, 0x9000)).toThrow(BadInputError);
  });

  it('copies its data: a Buffer given in is neither shared nor kept as a Buffer', () => {
    const buf = Buffer.from([1, 2, 3]);
    const r = new ResponseApdu(buf, 0x9000);
    buf[0] = 0xee;
    expect(Array.from(r.data)).toEqual([1, 2, 3]);
    expect(r.data.constructor).toBe(Uint8Array);
    const view = fromHex('EEEE01029000').subarray(2);
    const d = ResponseApdu.decode(view);
    view[0] = 0;
    expect(hex(d.data)).toBe('0102');
  });

  it('is frozen', () => {
    const r = ResponseApdu.status(0x9000);
    expect(Object.isFrozen(r)).toBe(true);
  });

  it.each(BAD_RESPONSE_APDUS.map((b) => [b.name, b] as const))('refuses %s', (_name, bad) => {
    let err: unknown;
    try {
      ResponseApdu.decode(bad.bytes);
    } catch (e) {
      err = e;
    }
    expect(err, bad.why).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).code).toBe('APDU_MALFORMED');
  });

  it.each(NOT_BYTES.map((b) => [b.name, b.value] as const))('refuses non-bytes: %s', (_name, value) => {
    expect(() => ResponseApdu.decode(value as Uint8Array)).toThrow(DecodeError);
  });
});

describe('describeResponse', () => {
  it('data row then SW row with category and meaning', () => {
    const d = describeResponse(ResponseApdu.decode(fromHex('AABB6C1A')));
    expect(d).toMatchObject({ kind: 'response', hex: 'AABB6C1A', length: 4, nr: 2, data: 'AABB' });
    expect(d.sw).toMatchObject({ sw: 0x6c1a, category: 'checking-error', param: 26 });
    expect(d.fields).toEqual([
      { field: 'data', offset: 0, hex: 'AABB', meaning: '2 bytes' },
      { field: 'SW1 SW2', offset: 2, hex: '6C1A', meaning: `checking-error: ${d.sw.meaning}` },
    ]);
  });

  it('no data row for a bare status word', () => {
    const d = describeResponse(ResponseApdu.status(0x6982));
    expect(d.fields.map((f) => f.field)).toEqual(['SW1 SW2']);
    expect(d.fields[0].meaning).toBe('checking-error: security status not satisfied');
  });
});
