import { describe, expect, it } from 'vitest';
import { compose, type CardChannel, type Wrapper } from '../../src/reader/channel.js';
import { HandlerChannel, ScriptedChannel } from '../../src/reader/mock.js';
import { withGetResponse } from '../../src/reader/get-response.js';
import { withChaining } from '../../src/reader/chaining.js';
import { withExtendedFallback } from '../../src/reader/extended-fallback.js';
import { withTrace, type TraceRecord } from '../../src/reader/trace.js';
import * as reader from '../../src/reader/index.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { ChannelClosedError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const hex = (b: Uint8Array): string => toHex(b).toUpperCase();
const bytes = (n: number, seed = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 17 + seed) & 0xff);

/** A wrapper that notes when a call passes through it, going in and coming out. */
function marker(name: string, seen: string[]): Wrapper {
  return (inner) => ({
    async transmit(command) {
      seen.push(`${name}>`);
      const r = await inner.transmit(command);
      seen.push(`<${name}`);
      return r;
    },
    reset: (cold) => inner.reset(cold),
    close: () => inner.close(),
  });
}

const SELECT = '00A4040007A000000003101000';
const FCI = '6F1A8407A0000000031010A50F500A4D617374657243617264870101';

function t0Card(): ScriptedChannel {
  return new ScriptedChannel([
    [SELECT, '611C'],
    ['00C000001C', FCI + '9000'],
  ]);
}

describe('compose', () => {
  it('compose(t, a, b) = b(a(t)): the last wrapper is the outermost', async () => {
    const seen: string[] = [];
    const card = new ScriptedChannel([['00CA006600', '9000']]);
    const ch = compose(card, marker('a', seen), marker('b', seen));
    await ch.transmit(fromHex('00CA006600'));
    expect(seen).toEqual(['b>', 'a>', '<a', '<b']);
    expect(compose(card)).toBe(card);
  });

  it('a trace outside GET RESPONSE shows one exchange', async () => {
    const records: TraceRecord[] = [];
    const card = t0Card();
    const ch = compose(card, withGetResponse(), withTrace((r) => records.push(r)));
    expect(hex(await ch.transmit(fromHex(SELECT)))).toBe(FCI + '9000');
    expect(records.map((r) => r.dir)).toEqual(['>', '<']);
    expect(records[0]).toMatchObject({ hex: SELECT });
    expect(records[1]).toMatchObject({ hex: FCI + '9000', sw: '9000' });
    card.assertDone();
  });

  it('a trace inside GET RESPONSE shows each GET RESPONSE', async () => {
    const records: TraceRecord[] = [];
    const card = t0Card();
    const ch = compose(card, withTrace((r) => records.push(r)), withGetResponse());
    expect(hex(await ch.transmit(fromHex(SELECT)))).toBe(FCI + '9000');
    expect(records.map((r) => (r.dir === '>' || r.dir === '<' ? `${r.dir} ${r.hex}` : r.dir))).toEqual([
      `> ${SELECT}`,
      '< 611C',
      '> 00C000001C',
      `< ${FCI}9000`,
    ]);
    card.assertDone();
  });

  it('a full stack over a short-only T=0 card: one exchange for the application, every APDU on the wire', async () => {
    const out = bytes(1000, 5);
    let collected: Uint8Array[] = [];
    let sending = 0;
    const card = new HandlerChannel((cmd) => {
      const apdu = CommandApdu.decode(cmd);
      if (apdu.extended) return fromHex('6700');
      if (apdu.ins === 0xc0) {
        const part = out.subarray(sending, sending + apdu.ne);
        sending += part.length;
        const left = out.length - sending;
        return concatBytes(part, left === 0 ? fromHex('9000') : Uint8Array.of(0x61, Math.min(left, 256) & 0xff));
      }
      collected.push(apdu.data);
      if (apdu.cla & 0x10) return fromHex('9000');
      const total = concatBytes(...collected);
      collected = [];
      sending = 0;
      expect(hex(total)).toBe(hex(bytes(600, 1)));
      return fromHex('6100');
    });
    const wire: TraceRecord[] = [];
    const app: TraceRecord[] = [];
    const ch = compose(
      card,
      withTrace((r) => wire.push(r), { tag: 'wire' }),
      withGetResponse(),
      withExtendedFallback(),
      withTrace((r) => app.push(r), { tag: 'app' }),
    );
    const cmd = new CommandApdu({ cla: 0, ins: 0xda, p1: 0, p2: 0, data: bytes(600, 1), ne: 1000 }).encode();
    const r = await ch.transmit(cmd);
    expect(hex(r)).toBe(hex(out) + '9000');
    expect(app.map((x) => x.dir)).toEqual(['>', '<']);
    const wireCommands = wire.filter((x) => x.dir === '>').map((x) => (x.dir === '>' ? x.hex.slice(0, 10) : ''));
    expect(wireCommands).toEqual(['00DA000000', '10DA0000FF', '10DA0000FF', '00DA00005A', '00C0000000', '00C0000000', '00C0000000', '00C00000E8']);
    expect(card.counters.transmits).toBe(8);
  });

  it('close through a stack closes the transport once; every layer then refuses with ChannelClosedError', async () => {
    let closes = 0;
    const transport: CardChannel = {
      transmit: async () => fromHex('9000'),
      reset: async () => fromHex('3B00'),
      close: async () => {
        closes++;
      },
    };
    const ch = compose(transport, withGetResponse(), withChaining(), withExtendedFallback(), withTrace(() => undefined));
    await ch.close();
    await ch.close();
    expect(closes).toBe(1);
    await expect(ch.transmit(fromHex('00CA006600'))).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(ch.reset()).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('closing mid-sequence rejects the pending transmit with ChannelClosedError', async () => {
    const card = new ScriptedChannel([
      ['00B0000000', '6110'],
      { expect: '00C0000010', respond: concatBytes(bytes(16), fromHex('9000')), delayMs: 5000 },
    ]);
    const ch = compose(card, withGetResponse());
    const pending = ch.transmit(fromHex('00B0000000'));
    await new Promise((r) => setTimeout(r, 20));
    await ch.close();
    await expect(pending).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it('the reader index re-exports the layer', () => {
    for (const name of ['compose', 'serialChannel', 'SerialQueue', 'withGetResponse', 'withChaining', 'withExtendedFallback', 'withTrace', 'ScriptedChannel', 'HandlerChannel', 'parseTraceLine']) {
      expect(reader, name).toHaveProperty(name);
    }
  });
});
