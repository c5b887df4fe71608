import { describe, expect, it } from 'vitest';
import { HandlerChannel, ScriptedChannel, ScriptError } from '../../src/reader/mock.js';
import { CardRemovedError, ChannelClosedError, HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const SELECT = '00A4040007A0000000031010';
const OTHER = '00A4040007A0000000041010';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('ScriptedChannel', () => {
  it('plays the script and records every exchange', async () => {
    const ch = new ScriptedChannel([
      [SELECT, '6F009000'],
      { expect: '00 B0 00 00 02', respond: (cmd) => Uint8Array.of(cmd[4], 0x11, 0x90, 0x00) },
    ]);
    expect(toHex(await ch.transmit(fromHex(SELECT)))).toBe('6f009000');
    expect(toHex(await ch.transmit(fromHex('00B0000002')))).toBe('02119000');
    expect(ch.remaining).toBe(0);
    ch.assertDone();
    const log = ch.log;
    expect(log).toHaveLength(2);
    expect(log[0]).toMatchObject({ op: 'transmit' });
    expect(log[1].op === 'transmit' && toHex(log[1].command)).toBe('00b0000002');
    expect(log[1].op === 'transmit' && log[1].response && toHex(log[1].response)).toBe('02119000');
  });

  it('prints expected and actual hex when a command departs from the script', async () => {
    const ch = new ScriptedChannel([[SELECT, '9000']]);
    const err = await rejection(ch.transmit(fromHex(OTHER)));
    expect(err).toBeInstanceOf(ScriptError);
    const message = (err as Error).message;
    expect(message).toContain(`expected: ${SELECT}`);
    expect(message).toContain(`actual:   ${OTHER}`);
    expect(message).toContain('first difference at byte 9');
    expect((err as HiltError).code).toBe('PROTOCOL');
    // the step is not consumed, and assertDone reports the failure even if the caller swallowed it
    expect(ch.remaining).toBe(1);
    expect(() => ch.assertDone()).toThrow(/actual: {3}00A4040007A0000000041010/);
  });

  it('reports a command after the end of the script', async () => {
    const ch = new ScriptedChannel([]);
    const err = await rejection(ch.transmit(fromHex('80CA9F7F00')));
    expect((err as Error).message).toMatch(/expected: \(end of script\)\n {2}actual: {3}80CA9F7F00/);
  });

  it('assertDone lists the steps not played', async () => {
    const ch = new ScriptedChannel([
      [SELECT, '9000'],
      ['00B0000000', '9000'],
    ]);
    await ch.transmit(fromHex(SELECT));
    expect(() => ch.assertDone()).toThrow(/1 scripted step\(s\) not played:\n {2}step 2: 00B0000000/);
  });

  it('rejects with a scripted error such as CardRemovedError', async () => {
    const ch = new ScriptedChannel([{ expect: SELECT, fail: new CardRemovedError() }]);
    const err = await rejection(ch.transmit(fromHex(SELECT)));
    expect(err).toBeInstanceOf(CardRemovedError);
    expect(ch.log[0]).toMatchObject({ op: 'transmit', error: err });
    ch.assertDone();
  });

  it('answers on a later tick, and after delayMs when given', async () => {
    const ch = new ScriptedChannel([
      [SELECT, '9000'],
      { expect: SELECT, respond: '9000', delayMs: 30 },
    ]);
    let answered = false;
    const p = ch.transmit(fromHex(SELECT)).then(() => (answered = true));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(answered).toBe(false);
    await p;
    expect(answered).toBe(true);
    const t0 = performance.now();
    await ch.transmit(fromHex(SELECT));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });

  it('serialises: a second transmit waits for the first', async () => {
    const order: string[] = [];
    const ch = new ScriptedChannel([
      { expect: '00010000', respond: () => (order.push('first'), '9000'), delayMs: 20 },
      { expect: '00020000', respond: () => (order.push('second'), '9000') },
    ]);
    await Promise.all([ch.transmit(fromHex('00010000')), ch.transmit(fromHex('00020000'))]);
    expect(order).toEqual(['first', 'second']);
  });

  it('close is idempotent and rejects pending and later transmits with ChannelClosedError', async () => {
    const ch = new ScriptedChannel([{ expect: SELECT, respond: '9000', delayMs: 5000 }]);
    const pending = ch.transmit(fromHex(SELECT));
    await ch.close();
    await ch.close();
    expect(await rejection(pending)).toBeInstanceOf(ChannelClosedError);
    expect(await rejection(ch.transmit(fromHex(SELECT)))).toBeInstanceOf(ChannelClosedError);
    expect(await rejection(ch.reset())).toBeInstanceOf(ChannelClosedError);
  });

  it('reset answers the ATR and is logged with its kind', async () => {
    const ch = new ScriptedChannel([], { atr: '3B 02 14 50' });
    expect(toHex(await ch.reset(true))).toBe('3b021450');
    expect(toHex(await ch.reset())).toBe('3b021450');
    expect(ch.log.map((e) => e.op === 'reset' && e.cold)).toEqual([true, false]);
  });

  it('refuses malformed scripts where they are written', () => {
    expect(() => new ScriptedChannel([{ expect: 'zz', respond: '9000' }])).toThrow(/not hex/);
    expect(() => new ScriptedChannel([{ expect: SELECT }])).toThrow(/exactly one of respond and fail/);
    expect(() => new ScriptedChannel([[SELECT, '90']])).toThrow(/needs SW1 SW2, got 1 byte/);
  });

  it('rejects a respond() that answers fewer than two bytes', async () => {
    const ch = new ScriptedChannel([{ expect: SELECT, respond: () => new Uint8Array(1) }]);
    expect(await rejection(ch.transmit(fromHex(SELECT)))).toMatchObject({ code: 'PROTOCOL' });
  });

  it('copies bytes both ways', async () => {
    const ch = new ScriptedChannel([[SELECT, '9000']]);
    const cmd = fromHex(SELECT);
    const p = ch.transmit(cmd);
    cmd[0] = 0xff; // changing the caller's buffer after the call does not change what was sent
    const r = await p;
    r[0] = 0;
    ch.assertDone();
    expect(ch.log[0].op === 'transmit' && ch.log[0].response && toHex(ch.log[0].response)).toBe('9000');
  });
});

describe('HandlerChannel', () => {
  const echo = (cmd: Uint8Array): Uint8Array => Uint8Array.of(...cmd.subarray(1, 2), 0x90, 0x00);

  it('answers from the handler and counts', async () => {
    const ch = new HandlerChannel(echo, { atr: '3B00' });
    expect(toHex(await ch.transmit(fromHex('00CA0000')))).toBe('ca9000');
    expect(toHex(await ch.reset(true))).toBe('3b00');
    await ch.reset();
    expect(ch.counters).toEqual({ transmits: 1, resets: 2, coldResets: 1, removals: 0, refused: 0 });
  });

  it('answers on a later tick', async () => {
    const ch = new HandlerChannel(echo);
    let answered = false;
    const p = ch.transmit(fromHex('00CA0000')).then(() => (answered = true));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(answered).toBe(false);
    await p;
  });

  it('removeCard rejects the pending and later transmits; insertCard + reset brings the card back', async () => {
    let release: () => void = () => {};
    const slow = (cmd: Uint8Array): Promise<Uint8Array> =>
      new Promise((resolve) => {
        release = () => resolve(echo(cmd));
      });
    const ch = new HandlerChannel(slow);
    const pending = ch.transmit(fromHex('00CA0000'));
    await new Promise((r) => setTimeout(r, 5));
    ch.removeCard();
    release();
    expect(await rejection(pending)).toBeInstanceOf(CardRemovedError);
    expect(await rejection(ch.transmit(fromHex('00CA0000')))).toBeInstanceOf(CardRemovedError);
    expect(await rejection(ch.reset())).toMatchObject({ code: 'NO_CARD' });
    ch.insertCard();
    expect(await rejection(ch.transmit(fromHex('00CA0000')))).toBeInstanceOf(CardRemovedError);
    await ch.reset();
    const again = ch.transmit(fromHex('00CA0000'));
    await new Promise((r) => setTimeout(r, 5));
    release();
    expect(toHex(await again)).toBe('ca9000');
    expect(ch.counters).toMatchObject({ removals: 1, refused: 3, transmits: 2, resets: 1 });
  });

  it('close is idempotent; pending and later transmits reject with ChannelClosedError', async () => {
    const ch = new HandlerChannel(echo, { latencyMs: 5000 });
    const pending = ch.transmit(fromHex('00CA0000'));
    await Promise.all([ch.close(), ch.close()]);
    expect(await rejection(pending)).toBeInstanceOf(ChannelClosedError);
    expect(await rejection(ch.transmit(fromHex('00CA0000')))).toBeInstanceOf(ChannelClosedError);
    expect(await rejection(ch.reset(true))).toBeInstanceOf(ChannelClosedError);
  });

  it('reset calls onReset with its kind; a card may start absent', async () => {
    const kinds: boolean[] = [];
    const ch = new HandlerChannel(echo, { present: false, onReset: (cold) => kinds.push(cold) });
    expect(await rejection(ch.transmit(fromHex('00CA0000')))).toBeInstanceOf(CardRemovedError);
    ch.insertCard();
    await ch.reset(true);
    await ch.reset(false);
    expect(kinds).toEqual([true, false]);
  });

  it('passes handler errors through and refuses short answers', async () => {
    const boom = new Error('reader unplugged');
    const ch = new HandlerChannel((cmd) => {
      if (cmd[1] === 1) throw boom;
      return new Uint8Array(1);
    });
    expect(await rejection(ch.transmit(fromHex('00010000')))).toBe(boom);
    expect(await rejection(ch.transmit(fromHex('00020000')))).toMatchObject({ code: 'PROTOCOL' });
  });

  it('serialises calls', async () => {
    let active = 0;
    let most = 0;
    const ch = new HandlerChannel(async (cmd) => {
      active++;
      most = Math.max(most, active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
      return echo(cmd);
    });
    await Promise.all([1, 2, 3, 4].map((i) => ch.transmit(Uint8Array.of(0, i, 0, 0))));
    expect(most).toBe(1);
  });
});
