import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FileStore } from '../../../emulator/store/file-store.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { RamMedium, TearingMedium } from '../../../emulator/store/medium.js';
import { StoreError } from '../../../emulator/store/errors.js';
import { SCOPE_SEPARATOR, scopeStore } from '../../../emulator/store/scoped.js';
import type { PersistentStore } from '../../../emulator/store/types.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

const BACKENDS: Array<[string, () => PersistentStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['FileStore', () => FileStore.open(new RamMedium())],
];

describe.each(BACKENDS)('scopeStore over %s', (_name, make) => {
  it('reads and writes only under prefix/, and lists keys without it', () => {
    const card = make();
    card.put('purse', enc('card-level'));
    card.put('purse/balance', enc('100'));
    const purse = scopeStore(card, 'purse');
    expect(dec(purse.get('balance'))).toBe('100');
    purse.put('counter', enc('1'));
    purse.put('log/1', enc('d'));
    expect(card.keys()).toEqual(['purse', 'purse/balance', 'purse/counter', 'purse/log/1']);
    expect(purse.keys()).toEqual(['balance', 'counter', 'log/1']);
    expect(purse.keys('log/')).toEqual(['log/1']);
    expect(purse.get('purse')).toBeUndefined(); // the bare "purse" key is outside the scope
    purse.delete('balance');
    expect(card.get('purse/balance')).toBeUndefined();
    expect(dec(card.get('purse'))).toBe('card-level');
  });

  it('keeps scopes whose names share a prefix apart', () => {
    const card = make();
    const a = scopeStore(card, 'app');
    const b = scopeStore(card, 'apple');
    a.put('k', enc('a'));
    b.put('k', enc('b'));
    expect(dec(a.get('k'))).toBe('a');
    expect(a.keys()).toEqual(['k']);
    expect(b.keys()).toEqual(['k']);
  });

  it('a key containing the separator or path tricks cannot reach another scope', () => {
    const card = make();
    const victim = scopeStore(card, 'victim');
    victim.put('balance', enc('1000'));
    const attacker = scopeStore(card, 'attacker');
    for (const k of ['../victim/balance', '/victim/balance', 'victim/balance', `${SCOPE_SEPARATOR}..${SCOPE_SEPARATOR}victim${SCOPE_SEPARATOR}balance`, '\u0000victim/balance']) {
      expect(attacker.get(k)).toBeUndefined();
      attacker.put(k, enc('0'));
      attacker.delete(k);
    }
    expect(dec(victim.get('balance'))).toBe('1000');
    expect(card.keys().filter((k) => !k.startsWith('attacker/'))).toEqual(['victim/balance']);
    expect(victim.keys()).toEqual(['balance']);
  });

  it('refuses an empty prefix or one containing the separator (it could alias a nested key)', () => {
    const card = make();
    expect(() => scopeStore(card, '')).toThrow(/non-empty/);
    expect(() => scopeStore(card, 'a/b')).toThrow(/separator/);
  });

  it('nested scopes narrow: the inner one lives inside the outer one', () => {
    const card = make();
    const sd = scopeStore(card, 'sd');
    const applet = scopeStore(sd, 'applet');
    applet.put('k', enc('v'));
    expect(card.keys()).toEqual(['sd/applet/k']);
    expect(sd.keys()).toEqual(['applet/k']);
    expect(applet.keys()).toEqual(['k']);
  });

  it('transactions are the card-wide one, shared by every scope', () => {
    const card = make();
    const a = scopeStore(card, 'a');
    const b = scopeStore(card, 'b');
    a.put('x', enc('0'));
    a.begin();
    expect(card.inTransaction).toBe(true);
    expect(b.inTransaction).toBe(true);
    expect(() => b.begin()).toThrow(StoreError);
    a.put('x', enc('1'));
    b.put('y', enc('2'));
    expect(dec(card.get('a/x'))).toBe('1');
    b.abort();
    expect(card.inTransaction).toBe(false);
    expect(dec(a.get('x'))).toBe('0');
    expect(b.get('y')).toBeUndefined();
    b.begin();
    a.put('x', enc('3'));
    b.put('y', enc('4'));
    a.commit();
    expect(card.keys()).toEqual(['a/x', 'b/y']);
    expect(dec(a.get('x'))).toBe('3');
  });

  it('behaves like a plain store on its namespace (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 8 }), fc.option(fc.uint8Array({ maxLength: 4 }), { nil: null }), fc.boolean()), { maxLength: 30 }),
        (ops) => {
          const card = make();
          const scoped = scopeStore(card, 'me');
          const other = scopeStore(card, 'other');
          other.put('keep', enc('x'));
          const model = new MemoryStore();
          for (const [k, v, viaScope] of ops) {
            if (!viaScope) continue;
            if (v === null) {
              scoped.delete(k);
              model.delete(k);
            } else {
              scoped.put(k, v);
              model.put(k, v);
            }
          }
          expect(scoped.keys()).toEqual(model.keys());
          for (const k of model.keys()) expect(scoped.get(k)).toEqual(model.get(k));
          expect(other.keys()).toEqual(['keep']);
          expect(card.keys().every((k) => k.startsWith('me/') || k === 'other/keep')).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('scopeStore over a FileStore: a transaction across two applets is atomic under a tear', () => {
  it('a cut at every write leaves both applets old or both new', () => {
    const base = new RamMedium();
    const seed = FileStore.open(base, { capacity: 1024 });
    scopeStore(seed, 'purse').put('balance', enc('100'));
    scopeStore(seed, 'loyalty').put('points', enc('0'));
    const start = base.read();
    const transfer = (card: PersistentStore): void => {
      card.begin();
      scopeStore(card, 'purse').put('balance', enc('60'));
      scopeStore(card, 'loyalty').put('points', enc('40'));
      card.commit();
    };
    for (let k = 1; k <= 4; k++) {
      const ram = RamMedium.from(start);
      const card = FileStore.open(new TearingMedium(ram, { cutAfter: k, mode: 'garbage' }), { capacity: 1024 });
      expect(() => transfer(card)).toThrow(StoreError);
      const after = FileStore.open(RamMedium.from(ram.read()));
      const pair = [dec(scopeStore(after, 'purse').get('balance')), dec(scopeStore(after, 'loyalty').get('points'))];
      expect(pair).toEqual(k > 3 ? ['60', '40'] : ['100', '0']);
    }
  });
});
