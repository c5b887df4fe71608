/**
 * THE TEAR TEST: power is cut at every persistent write of an update, in every way a write can be
 * torn, and the rebooted store must hold exactly the old state or exactly the new one.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toHex } from '../../../src/util/bytes.js';
import { FILE_STORE_FORMAT, FileStore } from '../../../emulator/store/file-store.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { PowerLostError, RamMedium, TearingMedium, type TearMode, type TearingOptions } from '../../../emulator/store/medium.js';
import { StoreError } from '../../../emulator/store/errors.js';
import type { PersistentStore } from '../../../emulator/store/types.js';

const CAPACITY = 2048;

type Snapshot = Record<string, string>;

/** Every record, values in hex: two snapshots are equal iff the stores hold exactly the same data. */
function snap(store: PersistentStore): Snapshot {
  const out: Snapshot = {};
  for (const k of store.keys()) out[k] = toHex(store.get(k) as Uint8Array);
  return out;
}

function reboot(image: Uint8Array | null): FileStore {
  return FileStore.open(RamMedium.from(image), { capacity: CAPACITY });
}

function u32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

function readU32(b: Uint8Array | undefined): number {
  if (!b) throw new Error('missing record');
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** A purse debit: balance, counter, a new log record, the oldest log record dropped, a last-op marker. */
function debit(store: PersistentStore, amount: number): void {
  store.begin();
  const balance = readU32(store.get('purse/balance'));
  const counter = readU32(store.get('purse/counter'));
  store.put('purse/balance', u32(balance - amount));
  store.put('purse/counter', u32(counter + 1));
  store.put(`log/${String(counter + 1).padStart(4, '0')}`, new Uint8Array([0xd1, ...u32(amount), ...u32(balance - amount)]));
  const logs = store.keys('log/');
  if (logs.length > 3) store.delete(logs[0]);
  store.put('purse/last', new TextEncoder().encode(`debit ${amount}`));
  store.commit();
}

function personalize(store: PersistentStore): void {
  store.begin();
  store.put('purse/balance', u32(10_000));
  store.put('purse/counter', u32(0));
  store.put('card/serial', new Uint8Array([0x12, 0x34, 0x56, 0x78]));
  store.put('card/pan', new TextEncoder().encode('5413330089010434'));
  store.commit();
}

/** Starting images: a blank card, and cards whose committed slot is A or B, with the other slot blank or valid. */
function bases(): Array<{ name: string; image: Uint8Array | null }> {
  const out: Array<{ name: string; image: Uint8Array | null }> = [];
  const ram = new RamMedium();
  out.push({ name: 'blank card', image: null });
  const s = FileStore.open(ram, { capacity: CAPACITY });
  personalize(s);
  out.push({ name: 'one commit (slot A; B blank)', image: ram.read() });
  debit(s, 100);
  out.push({ name: 'two commits (slot B)', image: ram.read() });
  debit(s, 200);
  debit(s, 300);
  debit(s, 400);
  out.push({ name: 'five commits (slot A; B valid)', image: ram.read() });
  expect(s.sequence).toBe(5);
  return out;
}

/** The ways a write is torn in these tests: every TearMode, and several cut positions inside a write. */
const VARIANTS: Array<{ name: string; opts: Pick<TearingOptions, 'mode' | 'tornLength'> }> = [
  { name: 'nothing written', opts: { mode: 'nothing' } },
  { name: 'prefix of 1 byte', opts: { mode: 'prefix', tornLength: 1 } },
  { name: 'prefix of half', opts: { mode: 'prefix' } },
  { name: 'all but the last byte', opts: { mode: 'prefix', tornLength: (n) => n - 1 } },
  { name: 'all garbage', opts: { mode: 'garbage', tornLength: 0 } },
  { name: 'half then garbage', opts: { mode: 'garbage' } },
  { name: 'last byte garbage', opts: { mode: 'garbage', tornLength: (n) => n - 1 } },
  { name: 'write cache reordered', opts: { mode: 'reorder' } },
  { name: 'write cache lost', opts: { mode: 'lost' } },
];

/**
 * The write (1-based within one commit) after which the new state is committed. With a write cache
 * that loses everything since the last sync ('lost'), only the final sync makes it so.
 */
function commitPoint(mode: TearMode | undefined): number {
  return mode === 'lost' ? FILE_STORE_FORMAT.writesPerCommit : FILE_STORE_FORMAT.commitPointWrite;
}

function expected(image: Uint8Array | null, update: (s: PersistentStore) => void): { old: Snapshot; next: Snapshot } {
  const mem = new MemoryStore();
  for (const [k, v] of Object.entries(snap(reboot(image)))) mem.put(k, Uint8Array.from(Buffer.from(v, 'hex')));
  const old = snap(mem);
  update(mem);
  return { old, next: snap(mem) };
}

/** Number of persistent writes `update` makes, measured on a counting medium. */
function measure(image: Uint8Array | null, update: (s: PersistentStore) => void): TearingMedium {
  const counting = new TearingMedium(RamMedium.from(image));
  const store = FileStore.open(counting, { capacity: CAPACITY });
  expect(counting.writes).toBe(0);
  update(store);
  return counting;
}

/**
 * Runs `update` on `image` with power cut at write `k` as `opts` says. Returns the surviving bytes
 * and whether the update itself was interrupted (false: the cut hit the follow-up write).
 */
function tear(
  image: Uint8Array | null,
  update: (s: PersistentStore) => void,
  k: number,
  opts: Pick<TearingOptions, 'mode' | 'tornLength'>,
): Uint8Array | null {
  const ram = RamMedium.from(image);
  const medium = new TearingMedium(ram, { ...opts, cutAfter: k, seed: 0x5eed + k });
  const store = FileStore.open(medium, { capacity: CAPACITY });
  let thrown: unknown;
  try {
    update(store);
    // Survived: the cut is at the first write of the next operation (durability of a returned commit).
    store.put('followup', new Uint8Array([1]));
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(PowerLostError);
  expect((thrown as StoreError).reason).toBe('POWER_LOST');
  expect(medium.writes).toBe(k);
  expect(medium.powerLost).toBe(true);
  // The card is dead until rebooted: every later call fails the same way.
  expect(() => store.get('purse/balance')).toThrow(StoreError);
  expect(() => store.put('x', new Uint8Array(1))).toThrow(/reopen/);
  expect(() => medium.read()).toThrow(PowerLostError);
  return ram.read();
}

/** Reboots on `image` through a medium that would tear its first write: recovery must write nothing. */
function rebootWritesNothing(image: Uint8Array | null): FileStore {
  const ram = RamMedium.from(image);
  const medium = new TearingMedium(ram, { cutAfter: 1, mode: 'garbage' });
  const store = FileStore.open(medium, { capacity: CAPACITY });
  expect(medium.writes).toBe(0);
  return store;
}

function exhaustive(name: string, update: (s: PersistentStore) => void, which: 'blank' | 'personalized'): void {
  describe(name, () => {
    for (const base of bases().filter((b) => (b.image === null) === (which === 'blank'))) {
      it(`${base.name}: a cut at every write, every way, gives exactly old or exactly new`, () => {
        const { old, next } = expected(base.image, update);
        expect(next).not.toEqual(old);
        const counting = measure(base.image, update);
        const W = counting.writes;
        expect(W).toBe(FILE_STORE_FORMAT.writesPerCommit);
        expect(counting.events.map((e) => e.kind)).toEqual(['write', 'sync', 'write', 'sync']);
        let runs = 0;
        for (const v of VARIANTS) {
          const newFrom: number[] = [];
          for (let k = 1; k <= W + 1; k++) {
            const survived = tear(base.image, update, k, v.opts);
            const after = snap(rebootWritesNothing(survived));
            const isNew = k > commitPoint(v.opts.mode);
            expect(after, `${v.name}, cut at write ${k} of ${W}`).toEqual(isNew ? next : old);
            if (isNew) newFrom.push(k);
            // The rebooted card keeps working: redoing the update (if it was lost) lands it.
            const again = reboot(survived);
            if (!isNew) update(again);
            expect(snap(reboot((again.medium as RamMedium).read()))).toEqual(next);
            runs++;
          }
          // The switch from old to new happens at exactly one write, and a returned commit is durable.
          expect(newFrom).toEqual(Array.from({ length: W + 1 - commitPoint(v.opts.mode) }, (_, i) => commitPoint(v.opts.mode) + 1 + i));
        }
        expect(runs).toBe(VARIANTS.length * (W + 1));
      });
    }

    it('double fault: a second cut in the update after a torn reboot still ends old or new', () => {
      const start = bases()[which === 'blank' ? 0 : 3].image;
      const W = measure(start, update).writes;
      const second = VARIANTS.filter((v) => ['nothing written', 'half then garbage', 'all but the last byte', 'write cache lost'].includes(v.name));
      let runs = 0;
      for (const v1 of VARIANTS) {
        for (let k = 1; k <= W; k++) {
          const afterFirst = tear(start, update, k, v1.opts);
          const s1 = snap(reboot(afterFirst));
          const { old, next } = expected(afterFirst, update);
          expect(old).toEqual(s1);
          if (JSON.stringify(next) === JSON.stringify(old)) {
            // The first run landed and repeating it changes nothing (a delete, personalization):
            // then it writes nothing, so there is nothing to cut.
            expect(measure(afterFirst, update).writes).toBe(0);
            continue;
          }
          for (const v2 of second) {
            for (let j = 1; j <= W; j++) {
              const afterSecond = tear(afterFirst, update, j, v2.opts);
              const s2 = snap(rebootWritesNothing(afterSecond));
              expect(s2, `${v1.name}@${k} then ${v2.name}@${j}`).toEqual(j > commitPoint(v2.opts.mode) ? next : old);
              runs++;
            }
          }
        }
      }
      // At least every first cut before the commit point is followed by every second cut.
      expect(runs).toBeGreaterThanOrEqual(VARIANTS.length * (FILE_STORE_FORMAT.commitPointWrite - 1) * second.length * W);
    });
  });
}

exhaustive('tear: multi-record transaction (balance, counter, log put, log delete, marker)', (s) => debit(s, 250), 'personalized');
exhaustive('tear: personalization, the first commit on a blank card', personalize, 'blank');
exhaustive('tear: a single put outside a transaction', (s) => s.put('purse/balance', u32(readU32(s.get('purse/balance')) + 1)), 'personalized');
exhaustive('tear: a single put on a blank card', (s) => s.put('purse/balance', u32(1)), 'blank');
exhaustive('tear: a single delete outside a transaction', (s) => s.delete('card/pan'), 'personalized');

describe('tear: random transaction sequences with random cuts (property)', () => {
  type Op = { key: string; value: Uint8Array | null };
  type Step = { kind: 'tx'; ops: Op[]; commit: boolean } | { kind: 'single'; op: Op };
  const KEYS = ['a', 'b', 'c', 'd/e', 'longer-key-name', 'é'];
  const op = fc.record({
    key: fc.constantFrom(...KEYS),
    value: fc.option(fc.uint8Array({ maxLength: 24 }), { nil: null, freq: 4 }),
  });
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('tx' as const), ops: fc.array(op, { minLength: 1, maxLength: 6 }), commit: fc.boolean() }),
    fc.record({ kind: fc.constant('single' as const), op }),
  );

  function apply(model: Map<string, string>, ops: Op[]): Map<string, string> {
    const m = new Map(model);
    for (const o of ops) {
      if (o.value === null) m.delete(o.key);
      else m.set(o.key, toHex(o.value));
    }
    return m;
  }

  function asSnapshot(m: Map<string, string>): Snapshot {
    return Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  function run(store: PersistentStore, s: Step, model: Map<string, string>): void {
    if (s.kind === 'single') {
      if (s.op.value === null) store.delete(s.op.key);
      else store.put(s.op.key, s.op.value);
      return;
    }
    store.begin();
    let seen = model;
    for (const o of s.ops) {
      if (o.value === null) store.delete(o.key);
      else store.put(o.key, o.value);
      seen = apply(seen, [o]);
      // Inside the transaction, reads see the new values.
      expect(snap(store)).toEqual(asSnapshot(seen));
    }
    if (s.commit) store.commit();
    else store.abort();
  }

  it('always ends in the state of a prefix of the committed transactions, and the rest still apply', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: 1, max: 45 }), { maxLength: 3 }),
        fc.constantFrom(...VARIANTS),
        fc.integer(),
        (steps, cuts, variant, seed) => {
          let image: Uint8Array | null = null;
          let model = new Map<string, string>();
          let i = 0;
          const pendingCuts = [...cuts];
          for (let boot = 0; boot <= cuts.length; boot++) {
            const ram = RamMedium.from(image);
            const medium = new TearingMedium(ram, { ...variant.opts, cutAfter: pendingCuts.shift(), seed });
            const store = FileStore.open(medium, { capacity: CAPACITY });
            expect(snap(store)).toEqual(asSnapshot(model));
            let stepStart = 0;
            let before = model;
            let after = model;
            try {
              for (; i < steps.length; i++) {
                const s = steps[i];
                before = model;
                after = s.kind === 'single' ? apply(model, [s.op]) : s.commit ? apply(model, s.ops) : model;
                stepStart = medium.writes;
                run(store, s, model);
                model = after;
              }
              image = ram.read();
              break;
            } catch (e) {
              if (!(e instanceof PowerLostError)) throw e;
              image = ram.read();
              const got = snap(reboot(image));
              const isNew = JSON.stringify(got) === JSON.stringify(asSnapshot(after));
              expect([asSnapshot(before), asSnapshot(after)]).toContainEqual(got);
              // Torn exactly as the commit point says, except a 'prefix' tear whose remaining bytes
              // happen to equal the old ones (it then landed whole in effect).
              if (variant.opts.mode !== 'prefix') {
                expect(isNew).toBe(medium.writes - stepStart > commitPoint(variant.opts.mode));
              }
              if (isNew) {
                model = after;
                i++;
              } else {
                model = before;
              }
            }
          }
          // Any steps left after the last cut run on a healthy card.
          const store = reboot(image);
          for (; i < steps.length; i++) {
            const s = steps[i];
            run(store, s, model);
            model = s.kind === 'single' ? apply(model, [s.op]) : s.commit ? apply(model, s.ops) : model;
          }
          expect(snap(reboot((store.medium as RamMedium).read()))).toEqual(asSnapshot(model));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('TearingMedium', () => {
  const OLD = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const NEW = new Uint8Array([11, 12, 13, 14, 15, 16, 17, 18]);

  function cutWrite(opts: TearingOptions): Uint8Array | null {
    const ram = RamMedium.from(OLD);
    const m = new TearingMedium(ram, { cutAfter: 2, ...opts });
    m.write(0, OLD); // event 1 completes
    expect(() => m.write(0, NEW)).toThrow(PowerLostError);
    return ram.read();
  }

  it('without cutAfter it only counts, and logs every event', () => {
    const ram = new RamMedium();
    const m = new TearingMedium(ram);
    m.write(4, NEW);
    m.sync();
    m.truncate(6);
    expect(m.writes).toBe(3);
    expect(m.events).toEqual([
      { index: 1, kind: 'write', offset: 4, length: 8, torn: false },
      { index: 2, kind: 'sync', offset: 0, length: 0, torn: false },
      { index: 3, kind: 'truncate', offset: 0, length: 6, torn: false },
    ]);
    expect([...(ram.read() as Uint8Array)]).toEqual([0, 0, 0, 0, 11, 12]);
  });

  it("'nothing' loses the torn write; 'prefix' lands a prefix, clamped below the whole", () => {
    expect(cutWrite({ mode: 'nothing' })).toEqual(OLD);
    expect([...(cutWrite({ mode: 'prefix', tornLength: 3 }) as Uint8Array)]).toEqual([11, 12, 13, 4, 5, 6, 7, 8]);
    expect([...(cutWrite({ mode: 'prefix' }) as Uint8Array)]).toEqual([11, 12, 13, 14, 5, 6, 7, 8]);
    expect([...(cutWrite({ mode: 'prefix', tornLength: 100 }) as Uint8Array)]).toEqual([11, 12, 13, 14, 15, 16, 17, 8]);
  });

  it("'garbage' lands a prefix and every byte after the cut differs from the one intended", () => {
    for (let seed = 1; seed < 50; seed++) {
      const got = cutWrite({ mode: 'garbage', tornLength: 2, seed }) as Uint8Array;
      expect([...got.subarray(0, 2)]).toEqual([11, 12]);
      for (let i = 2; i < 8; i++) expect(got[i]).not.toBe(NEW[i]);
    }
  });

  it("'reorder' keeps only the newest unsynced write; 'lost' keeps none; synced data survives both", () => {
    for (const mode of ['reorder', 'lost'] as const) {
      const ram = RamMedium.from(OLD);
      const m = new TearingMedium(ram, { cutAfter: 5, mode });
      m.write(0, new Uint8Array([9])); // 1
      m.sync(); // 2: [9,2,3,...] is durable
      m.write(1, new Uint8Array([21])); // 3
      m.write(2, new Uint8Array([22])); // 4
      expect(() => m.sync()).toThrow(PowerLostError); // 5
      expect([...(ram.read() as Uint8Array)]).toEqual(mode === 'reorder' ? [9, 2, 22, 4, 5, 6, 7, 8] : [9, 2, 3, 4, 5, 6, 7, 8]);
    }
  });

  it('an interrupted sync in the EEPROM modes leaves the writes in place', () => {
    const ram = RamMedium.from(OLD);
    const m = new TearingMedium(ram, { cutAfter: 2, mode: 'prefix' });
    m.write(0, NEW);
    expect(() => m.sync()).toThrow(/power lost during persistent write #2 \(sync/);
    expect(ram.read()).toEqual(NEW);
  });

  it('after the cut every call throws, and nothing more reaches the medium', () => {
    const ram = RamMedium.from(OLD);
    const m = new TearingMedium(ram, { cutAfter: 1, mode: 'nothing' });
    expect(() => m.truncate(0)).toThrow(PowerLostError);
    expect(() => m.write(0, NEW)).toThrow(PowerLostError);
    expect(() => m.sync()).toThrow(PowerLostError);
    expect(() => m.read()).toThrow(PowerLostError);
    expect(m.writes).toBe(1);
    expect(ram.read()).toEqual(OLD);
  });
});
