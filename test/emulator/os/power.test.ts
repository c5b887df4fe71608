import { describe, it, expect } from 'vitest';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { HiltError } from '../../../src/util/errors.js';
import type { Applet } from '../../../emulator/os/applet.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { StoreError } from '../../../emulator/store/errors.js';
import { makeCard, tx, testApplet, nameHex, type CallLog } from './helpers.js';

const FIRST = fromHex('F0 00 00 00 08 01');
const SECOND = fromHex('F0 00 00 00 08 02');

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('power and reset', () => {
  it('starts powered with the default applet selected, and answers its ATR', async () => {
    const { card } = makeCard([{ aid: FIRST, name: 'first', applet: testApplet('first', { calls: [] }), default: true }]);
    expect(toHex(card.atr)).toBe('3b80800101');
    card.atr.fill(0);
    expect(toHex(card.atr)).toBe('3b80800101');
    expect(await tx(card, '80 01 00 00 00')).toBe(nameHex('first') + '9000');
  });

  it('clears channels, selections, pending responses and RAM at a power cycle, and keeps the store', async () => {
    const ram: Applet = {
      multiSelectable: true,
      process(ctx, apdu) {
        if (apdu.ins === 0x10) ctx.transient.set('x', apdu.data);
        if (apdu.ins === 0x11) ctx.store.put('x', apdu.data);
        const t = ctx.transient.get('x') ?? new Uint8Array(0);
        const p = ctx.store.get('x') ?? new Uint8Array(0);
        return new ResponseApdu(Uint8Array.of(t.length, ...t, p.length, ...p), 0x9000);
      },
    };
    const { card } = makeCard([
      { aid: FIRST, name: 'first', applet: testApplet('first', { calls: [] }), default: true },
      { aid: SECOND, name: 'ram', applet: ram },
    ]);
    expect(await tx(card, '00 70 00 00 01')).toBe('019000');
    expect(await tx(card, `01 A4 04 0C 06 ${toHex(SECOND)}`)).toBe('9000');
    expect(await tx(card, '81 10 00 00 01 AA 00')).toBe('01AA009000');
    expect(await tx(card, '81 11 00 00 01 BB 00')).toBe('01AA01BB9000');
    expect(await tx(card, `00 A4 04 0C 06 ${toHex(SECOND)}`)).toBe('9000');
    expect(await tx(card, '80 12 00 00')).toBe('6104');

    card.powerOff();
    card.powerOn();

    expect(await tx(card, '00 C0 00 00 05'), 'pending response dropped').toBe('6985');
    expect(await tx(card, '81 12 00 00 00'), 'channel 1 closed').toBe('6881');
    expect(await tx(card, '80 01 00 00 00'), 'default applet back on channel 0').toBe(nameHex('first') + '9000');
    expect(await tx(card, `00 A4 04 0C 06 ${toHex(SECOND)}`)).toBe('9000');
    expect(await tx(card, '80 12 00 00 00'), 'RAM cleared, store kept').toBe('0001BB9000');
  });

  it('rejects commands while unpowered, and those queued before a power cut', async () => {
    const gate = deferred();
    const slow: Applet = {
      async process() {
        await gate.promise;
        return ResponseApdu.status(0x9000);
      },
    };
    const { card } = makeCard([{ aid: FIRST, name: 'slow', applet: slow, default: true }]);
    const inFlight = card.process(fromHex('80 10 00 00'));
    const queued = card.process(fromHex('80 10 00 00'));
    card.powerOff();
    await expect(card.process(fromHex('80 10 00 00'))).rejects.toMatchObject({ code: 'PROTOCOL' });
    gate.resolve();
    await expect(inFlight).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    await expect(queued).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    card.powerOn();
    expect(await tx(card, '80 10 00 00')).toBe('9000');
  });

  it('aborts the open transaction at a power cut, and the interrupted applet can no longer write', async () => {
    const gate = deferred();
    let lateWrite: unknown = null;
    const tearing: Applet = {
      async process(ctx, apdu) {
        ctx.transaction.begin();
        ctx.store.put('balance', Uint8Array.of(apdu.p1));
        await gate.promise;
        try {
          ctx.store.put('balance', Uint8Array.of(0xee));
          ctx.transaction.commit();
        } catch (e) {
          lateWrite = e;
          throw e;
        }
        return ResponseApdu.status(0x9000);
      },
    };
    const { card, store } = makeCard([{ aid: FIRST, name: 'tearing', applet: tearing, default: true }]);
    const key = `app/${toHex(FIRST)}/balance`;
    const torn = card.process(fromHex('80 10 07 00'));
    await new Promise((r) => setTimeout(r, 5));
    expect(store.inTransaction).toBe(true);
    card.reset();
    expect(store.inTransaction).toBe(false);
    expect(store.get(key)).toBeUndefined();
    // a new transaction of the new power session must survive the old command's wake-up
    store.begin();
    store.put('other', Uint8Array.of(1));
    gate.resolve();
    await expect(torn).rejects.toMatchObject({ code: 'CARD_REMOVED' });
    expect(lateWrite).toBeInstanceOf(StoreError);
    expect((lateWrite as StoreError).reason).toBe('POWER_LOST');
    expect(store.inTransaction).toBe(true);
    store.commit();
    expect(store.get(key)).toBeUndefined();
  });

  it('does not make new commands wait for a command cut by a reset', async () => {
    const gate = deferred();
    const log: CallLog = { calls: [] };
    const stuck: Applet = {
      ...testApplet('stuck', log),
      async process(ctx, apdu, ch) {
        if (apdu.ins === 0x30) await gate.promise;
        return testApplet('stuck', log).process(ctx, apdu, ch);
      },
    };
    const { card } = makeCard([{ aid: FIRST, name: 'stuck', applet: stuck, default: true }]);
    const cut = card.process(fromHex('80 30 00 00'));
    card.reset();
    expect(await tx(card, '80 01 00 00 00')).toBe(nameHex('stuck') + '9000');
    gate.resolve();
    await expect(cut).rejects.toBeInstanceOf(HiltError);
  });

  it('rejects the command and powers off when the store itself loses power', async () => {
    class DyingStore extends MemoryStore {
      dead = false;
      override put(key: string, value: Uint8Array): void {
        if (this.dead) throw new StoreError('POWER_LOST', 'simulated cut');
        super.put(key, value);
      }
    }
    const store = new DyingStore();
    const writer: Applet = {
      process(ctx) {
        ctx.store.put('x', Uint8Array.of(1));
        return ResponseApdu.status(0x9000);
      },
    };
    const { card } = makeCard([{ aid: FIRST, name: 'writer', applet: writer, default: true }], { store });
    expect(await tx(card, '80 10 00 00')).toBe('9000');
    store.dead = true;
    await expect(card.process(fromHex('80 10 00 00'))).rejects.toMatchObject({ reason: 'POWER_LOST' });
    await expect(card.process(fromHex('80 10 00 00'))).rejects.toMatchObject({ code: 'PROTOCOL' });
    store.dead = false;
    card.powerOn();
    expect(await tx(card, '80 10 00 00')).toBe('9000');
  });

  it('answers 6A84 when the store is full', async () => {
    class FullStore extends MemoryStore {
      override put(key: string, value: Uint8Array): void {
        if (key.startsWith('app/')) throw new StoreError('FULL', 'no room');
        super.put(key, value);
      }
    }
    const writer: Applet = {
      process(ctx) {
        ctx.store.put('x', Uint8Array.of(1));
        return ResponseApdu.status(0x9000);
      },
    };
    const { card } = makeCard([{ aid: FIRST, name: 'writer', applet: writer, default: true }], { store: new FullStore() });
    expect(await tx(card, '80 10 00 00')).toBe('6A84');
  });
});

describe('install', () => {
  it('runs once in the life of a store, with the provisioned keys, atomically with its marker', async () => {
    const installs: string[] = [];
    const counting: Applet = {
      install(ctx) {
        installs.push(toHex(ctx.aid));
        ctx.store.put('init', Uint8Array.of(1));
      },
      process: (ctx) => new ResponseApdu(ctx.store.get('init') ?? new Uint8Array(0), 0x9000),
    };
    const store = new MemoryStore();
    makeCard([{ aid: FIRST, name: 'c', applet: counting }], { store });
    const { card } = makeCard([{ aid: FIRST, name: 'c', applet: counting, default: true }], { store });
    expect(installs).toEqual([toHex(FIRST)]);
    expect(await tx(card, '80 10 00 00 00')).toBe('019000');
  });

  it('leaves nothing behind when install fails, and refuses to build the card', () => {
    const store = new MemoryStore();
    const failing: Applet = {
      install(ctx) {
        ctx.store.put('half', Uint8Array.of(1));
        throw new Error('install broke');
      },
      process: () => ResponseApdu.status(0x9000),
    };
    expect(() => makeCard([{ aid: FIRST, name: 'failing', applet: failing, keys: { k: fromHex('01') } }], { store })).toThrow(
      /applet failing: install failed: Error: install broke/,
    );
    expect(store.keys()).toEqual([]);
    expect(store.inTransaction).toBe(false);
  });
});
