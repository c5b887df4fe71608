import { describe, it, expect } from 'vitest';
import { fromHex, toHex, bytesEqual } from '../../../src/util/bytes.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { SwError, type Applet, type AppletContext } from '../../../emulator/os/applet.js';
import { ScopedStore } from '../../../emulator/os/scoped-store.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { makeCard, tx } from './helpers.js';

const WRITER = fromHex('F0 00 00 00 03 01');
/** The reader's AID extends the writer's: prefix views must still keep them apart. */
const READER = fromHex('F0 00 00 00 03 01 01');
const PURSE = fromHex('F0 00 00 00 03 02');
const FRIEND = fromHex('F0 00 00 00 03 03');
const STRANGER = fromHex('F0 00 00 00 03 04');

/** An applet that hands its context to the test on every command. */
function capturing(into: AppletContext[], install?: (ctx: AppletContext) => void): Applet {
  return {
    install,
    process(ctx) {
      into.push(ctx);
      return ResponseApdu.status(0x9000);
    },
  };
}

interface BalanceView {
  balance(): number;
}

/** Shares a read-only balance view, computed from its own store, with FRIEND only, for param 1. */
const purse: Applet = {
  install(ctx) {
    ctx.store.put('balance', Uint8Array.of(0x01, 0xf4)); // 500
  },
  process() {
    throw new SwError(0x6d00);
  },
  getShareableInterface(ctx, clientAid, param) {
    if (!bytesEqual(clientAid, FRIEND) || param !== 1) return null;
    const view: BalanceView = {
      balance: () => {
        const b = ctx.store.get('balance') as Uint8Array;
        return (b[0] << 8) | b[1];
      },
    };
    return view;
  },
};

/** Asks the applet whose AID is the command data for its balance view (param P1). */
const client: Applet = {
  process(ctx, apdu) {
    const view = ctx.getShareable<BalanceView>(apdu.data, apdu.p1);
    if (!view) throw new SwError(0x6985);
    const v = view.balance();
    return new ResponseApdu(Uint8Array.of(v >> 8, v & 0xff), 0x9000);
  },
};

describe('applet firewall', () => {
  it('keeps each applet to its own records, even when one AID extends the other', async () => {
    const writerCtx: AppletContext[] = [];
    const readerCtx: AppletContext[] = [];
    const { card, store } = makeCard([
      { aid: WRITER, name: 'writer', applet: capturing(writerCtx, (ctx) => ctx.store.put('secret', fromHex('1122'))) },
      { aid: READER, name: 'reader', applet: capturing(readerCtx, (ctx) => ctx.store.put('mine', fromHex('33'))) },
    ]);
    await tx(card, `00 A4 04 0C 06 ${toHex(WRITER)}`);
    await tx(card, '80 10 00 00');
    await tx(card, `00 A4 04 0C 07 ${toHex(READER)}`);
    await tx(card, '80 10 00 00');
    const w = writerCtx[0];
    const r = readerCtx[0];
    expect(w.store.keys()).toEqual(['secret']);
    expect(r.store.keys()).toEqual(['mine']);
    expect(r.store.get('secret')).toBeUndefined();
    for (const sneaky of [`../${toHex(WRITER)}/secret`, `/../../app/${toHex(WRITER)}/secret`, '', 'secret/']) {
      expect(r.store.get(sneaky), sneaky).toBeUndefined();
    }
    // writes through the reader's view land under the reader's prefix only
    r.store.put('secret', fromHex('FF'));
    expect(toHex(w.store.get('secret') as Uint8Array)).toBe('1122');
    expect(store.keys('app/').sort()).toEqual([`app/${toHex(READER)}/mine`, `app/${toHex(READER)}/secret`, `app/${toHex(WRITER)}/secret`].sort());
  });

  it('gives each applet its own key slot, provisioned at install and apart from its records', async () => {
    const writerCtx: AppletContext[] = [];
    const readerCtx: AppletContext[] = [];
    const { card } = makeCard([
      { aid: WRITER, name: 'writer', applet: capturing(writerCtx), keys: { enc: fromHex('00112233445566778899AABBCCDDEEFF') } },
      { aid: READER, name: 'reader', applet: capturing(readerCtx) },
    ]);
    await tx(card, `00 A4 04 0C 06 ${toHex(WRITER)}`);
    await tx(card, '80 10 00 00');
    await tx(card, `00 A4 04 0C 07 ${toHex(READER)}`);
    await tx(card, '80 10 00 00');
    const w = writerCtx[0];
    const r = readerCtx[0];
    expect(toHex(w.keys.get('enc') as Uint8Array)).toBe('00112233445566778899aabbccddeeff');
    expect(w.keys.names()).toEqual(['enc']);
    expect(w.store.keys()).toEqual([]);
    expect(r.keys.get('enc')).toBeUndefined();
    expect(r.keys.names()).toEqual([]);
    r.keys.set('enc', fromHex('AA'));
    expect(toHex(w.keys.get('enc') as Uint8Array)).toBe('00112233445566778899aabbccddeeff');
    // keys are copied out: mutating a returned key changes nothing
    (w.keys.get('enc') as Uint8Array).fill(0);
    expect(toHex(w.keys.get('enc') as Uint8Array)).toBe('00112233445566778899aabbccddeeff');
  });

  it('exposes nothing in a context but the documented members', async () => {
    const got: AppletContext[] = [];
    const { card } = makeCard([{ aid: WRITER, name: 'writer', applet: capturing(got), default: true }]);
    await tx(card, '80 10 00 00');
    expect(Object.keys(got[0]).sort()).toEqual(['aid', 'getShareable', 'keys', 'logger', 'security', 'serial', 'store', 'transaction', 'transient'].sort());
    // the serial and AID handed out are copies
    got[0].serial.fill(0);
    got[0].aid.fill(0);
    await tx(card, '80 10 00 00');
    expect(toHex(got[1].serial)).toBe('0102030405060708');
    expect(toHex(got[1].aid)).toBe(toHex(WRITER));
  });

  it('shares through the server applet shareable interface only, and yields null when it refuses', async () => {
    const { card } = makeCard([
      { aid: PURSE, name: 'purse', applet: purse, selectable: false },
      { aid: FRIEND, name: 'friend', applet: client },
      { aid: STRANGER, name: 'stranger', applet: client },
      { aid: WRITER, name: 'plain', applet: capturing([]) },
    ]);
    await tx(card, `00 A4 04 0C 06 ${toHex(FRIEND)}`);
    expect(await tx(card, `80 20 01 00 06 ${toHex(PURSE)} 00`)).toBe('01F49000');
    expect(await tx(card, `80 20 02 00 06 ${toHex(PURSE)} 00`), 'server refuses this param').toBe('6985');
    expect(await tx(card, `80 20 01 00 06 ${toHex(WRITER)} 00`), 'no shareable interface').toBe('6985');
    expect(await tx(card, `80 20 01 00 06 F0 00 00 00 03 99 00`), 'no such applet').toBe('6985');
    expect(await tx(card, `80 20 01 00 05 ${toHex(PURSE.subarray(0, 5))} 00`), 'partial AIDs do not count').toBe('6985');
    await tx(card, `00 A4 04 0C 06 ${toHex(STRANGER)}`);
    expect(await tx(card, `80 20 01 00 06 ${toHex(PURSE)} 00`), 'server refuses this client').toBe('6985');
  });
});

describe('ScopedStore', () => {
  it('refuses a prefix that does not end in a slash', () => {
    expect(() => new ScopedStore(new MemoryStore(), 'app')).toThrow(/must end with/);
  });

  it('runs its guard before every operation', () => {
    let alive = true;
    const s = new ScopedStore(new MemoryStore(), 'x/', () => {
      if (!alive) throw new Error('dead');
    });
    s.put('a', Uint8Array.of(1));
    alive = false;
    for (const op of [() => s.get('a'), () => s.keys(), () => s.put('a', Uint8Array.of(2)), () => s.delete('a'), () => s.begin(), () => s.inTransaction]) {
      expect(op).toThrow('dead');
    }
  });
});
