import { describe, expect, it } from 'vitest';
import { HandlerChannel, ScriptedChannel } from '../../src/reader/mock.js';
import { withExtendedFallback } from '../../src/reader/extended-fallback.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { CardRemovedError, HiltError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const hex = (b: Uint8Array): string => toHex(b).toUpperCase();
const bytes = (n: number, seed = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
const data600 = bytes(600, 1);
const put600 = new CommandApdu({ cla: 0x00, ins: 0xda, p1: 0x01, p2: 0x02, data: data600 }).encode(); // case 3E
const read = (ne: number): Uint8Array => new CommandApdu({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne, extended: true }).encode();
const shortChain600 = [
  [concatBytes(fromHex('10DA0102FF'), data600.subarray(0, 255)), '9000'],
  [concatBytes(fromHex('10DA0102FF'), data600.subarray(255, 510)), '9000'],
  [concatBytes(fromHex('00DA01025A'), data600.subarray(510)), '9000'],
] as const;

/**
 * A card with no extended length behind a reader that says so: extended APDUs make the transport
 * reject with NOT_SUPPORTED; chained short commands are collected; the last answers the total
 * length received as two bytes.
 */
function shortOnlyReader() {
  let received = 0;
  return new HandlerChannel((cmd) => {
    const apdu = CommandApdu.decode(cmd);
    if (apdu.extended) throw new HiltError('NOT_SUPPORTED', 'reader cannot send extended-length APDUs');
    received += apdu.nc;
    if (apdu.cla & 0x10) return fromHex('9000');
    const total = received;
    received = 0;
    return Uint8Array.of(total >> 8, total & 0xff, 0x90, 0x00);
  });
}

describe('withExtendedFallback', () => {
  it('resends a 6700-refused extended command as a short chain and remembers the card has none', async () => {
    const card = new ScriptedChannel([
      [put600, '6700'],
      ...shortChain600,
      // the second time, no extended attempt: straight to the short chain
      ...shortChain600,
    ]);
    const ch = withExtendedFallback()(card);
    expect(ch.extendedLength).toBe('unknown');
    expect(hex(await ch.transmit(put600))).toBe('9000');
    expect(ch.extendedLength).toBe('unsupported');
    expect(hex(await ch.transmit(put600))).toBe('9000');
    card.assertDone();
  });

  it('fetches a large Ne with short Le 00 and GET RESPONSE', async () => {
    const out = bytes(1000, 4);
    const card = new ScriptedChannel([
      [read(1000), '6700'],
      ['00B0000000', concatBytes(out.subarray(0, 256), fromHex('6100'))],
      ['00C0000000', concatBytes(out.subarray(256, 512), fromHex('6100'))],
      ['00C0000000', concatBytes(out.subarray(512, 768), fromHex('61E8'))],
      ['00C00000E8', concatBytes(out.subarray(768), fromHex('9000'))],
    ]);
    const r = await withExtendedFallback()(card).transmit(read(1000));
    expect(hex(r)).toBe(hex(out) + '9000');
    card.assertDone();
  });

  it('stops fetching at Ne bytes and keeps the 61xx that says more is available', async () => {
    const card = new ScriptedChannel([
      ['00B0000000', concatBytes(bytes(256), fromHex('6100'))],
      ['00C000002C', concatBytes(bytes(44, 9), fromHex('6190'))],
    ]);
    const r = await withExtendedFallback({ extendedLength: 'unsupported' })(card).transmit(read(300));
    expect(r.length).toBe(302);
    expect(hex(r.subarray(300))).toBe('6190');
    card.assertDone();
  });

  it('falls back when the transport says it does not support extended length', async () => {
    const reader = shortOnlyReader();
    const ch = withExtendedFallback()(reader);
    expect(hex(await ch.transmit(put600))).toBe('02589000'); // 600 bytes arrived, in a chain
    expect(ch.extendedLength).toBe('unsupported');
    expect(reader.counters.transmits).toBe(4); // one refused extended attempt + 3 links
    expect(hex(await ch.transmit(put600))).toBe('02589000');
    expect(reader.counters.transmits).toBe(7);
  });

  it('keeps the knowledge per channel', async () => {
    const wrap = withExtendedFallback();
    const a = wrap(shortOnlyReader());
    const b = wrap(new ScriptedChannel([[put600, '9000']]));
    await a.transmit(put600);
    expect(a.extendedLength).toBe('unsupported');
    expect(b.extendedLength).toBe('unknown');
    expect(hex(await b.transmit(put600))).toBe('9000');
    expect(b.extendedLength).toBe('supported');
  });

  it('returns a later 6700 as it is once the card has shown extended support', async () => {
    const card = new ScriptedChannel([
      [read(1000), concatBytes(bytes(1000), fromHex('9000'))],
      [put600, '6700'],
    ]);
    const ch = withExtendedFallback()(card);
    await ch.transmit(read(1000));
    expect(hex(await ch.transmit(put600))).toBe('6700');
    card.assertDone();
  });

  it('returns an early non-9000 link answer of the short chain', async () => {
    const card = new ScriptedChannel([shortChain600[0], [shortChain600[1][0], '6A84']]);
    const ch = withExtendedFallback({ extendedLength: 'unsupported' })(card);
    expect(hex(await ch.transmit(put600))).toBe('6A84');
    card.assertDone();
  });

  it('forgets what it learned when the card is removed', async () => {
    const reader = shortOnlyReader();
    const ch = withExtendedFallback()(reader);
    await ch.transmit(put600);
    expect(ch.extendedLength).toBe('unsupported');
    reader.removeCard();
    await expect(ch.transmit(put600)).rejects.toBeInstanceOf(CardRemovedError);
    expect(ch.extendedLength).toBe('unknown');
  });

  it('passes short commands and non-APDUs through untouched, and refuses bad options', async () => {
    const card = new ScriptedChannel([
      ['00B0000000', '6700'],
      ['00B0', '6700'],
    ]);
    const ch = withExtendedFallback()(card);
    expect(hex(await ch.transmit(fromHex('00B0000000')))).toBe('6700');
    expect(hex(await ch.transmit(fromHex('00B0')))).toBe('6700');
    expect(ch.extendedLength).toBe('unknown');
    card.assertDone();
    expect(() => withExtendedFallback({ maxGetResponses: 0 })).toThrow(/maxGetResponses/);
    // @ts-expect-error: a value outside the literal union
    expect(() => withExtendedFallback({ extendedLength: 'maybe' })).toThrow(/extendedLength: expected unknown, supported, unsupported/);
  });
});
