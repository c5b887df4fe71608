/**
 * The PC/SC transport and monitor against a fake binding with pcsc-lite's semantics (status-change
 * waits that block until something changes, event counters, the PnP pseudo-reader, a daemon that
 * can stop and start, cards that can vanish mid-exchange). Runs everywhere, no pcscd: it proves the
 * logic the real-stack tests in test/pcsc/ exercise end to end, including what is hard to provoke
 * there (reader hot-plug, a fast card swap, a daemon that stays down).
 */
import { describe, expect, it } from 'vitest';
import { monitorPcsc } from '../../src/reader/pcsc-monitor.js';
import { PcscChannel, listPcscReaders, parseProtocolPreference, parseShareMode } from '../../src/reader/pcsc.js';
import {
  PCSC_ERROR_TABLE,
  PNP_NOTIFICATION_READER,
  PcscError,
  isServiceLost,
  loadPcscBinding,
  mapPcscError,
  type NativeCard,
  type NativeContext,
  type NativeReader,
  type NativeReaderState,
  type NativeStateQuery,
  type PcscBinding,
} from '../../src/reader/pcsc-binding.js';
import type { MonitorEvent } from '../../src/reader/events.js';
import { BadInputError, CardRemovedError, ChannelClosedError, HiltError, MissingDependencyError, TimeoutError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

/** pcsc-lite's values. */
const C = {
  SCARD_SHARE_SHARED: 2,
  SCARD_SHARE_EXCLUSIVE: 1,
  SCARD_PROTOCOL_T0: 1,
  SCARD_PROTOCOL_T1: 2,
  SCARD_PROTOCOL_RAW: 4,
  SCARD_LEAVE_CARD: 0,
  SCARD_RESET_CARD: 1,
  SCARD_UNPOWER_CARD: 2,
  SCARD_STATE_UNAWARE: 0,
  SCARD_STATE_IGNORE: 1,
  SCARD_STATE_CHANGED: 2,
  SCARD_STATE_UNKNOWN: 4,
  SCARD_STATE_UNAVAILABLE: 8,
  SCARD_STATE_EMPTY: 0x10,
  SCARD_STATE_PRESENT: 0x20,
  SCARD_STATE_ATRMATCH: 0x40,
  SCARD_STATE_EXCLUSIVE: 0x80,
  SCARD_STATE_INUSE: 0x100,
  SCARD_STATE_MUTE: 0x200,
} as const;

const ATR_A = fromHex('3B8A80018073C001F35468696C7487');
const ATR_B = fromHex('3B80800101');

/** What a fake card answers; may throw a binding-style Error (message = pcsc-lite text). */
type Answer = (command: Uint8Array) => Uint8Array | Promise<Uint8Array>;

interface FakeReader {
  counter: number;
  atr: Uint8Array | null;
  inUse: number;
  answer: Answer;
}

const echo9000: Answer = (c) => Uint8Array.from([...c.subarray(0, 2), 0x90, 0x00]);

/** A pcscd in memory. */
class FakePcsc {
  readonly readers = new Map<string, FakeReader>();
  up = true;
  /** Bumped on every daemon restart: contexts of an older generation are dead. */
  generation = 0;
  waitCalls = 0;
  contextsOpened = 0;
  contextsClosed = 0;
  cancels = 0;
  /**
   * How long a status-change wait takes to really block in the daemon after the call (the binding's
   * worker thread starting): a cancel before that finds nothing to cancel and is lost, as with pcsc-lite.
   */
  waitEntryDelayMs = 0;
  readonly reconnects: number[] = [];
  #notify = new Set<() => void>();

  binding(): PcscBinding {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const fake = this;
    class Context implements NativeContext {
      readonly #generation = fake.generation;
      #open = true;
      #cancel: (() => void) | null = null;
      constructor() {
        if (!fake.up) throw new Error('PC/SC service not running');
        fake.contextsOpened++;
      }
      get isValid(): boolean {
        return this.#open && fake.up && this.#generation === fake.generation;
      }
      #check(): void {
        if (!this.#open) throw new Error('Context is not valid');
        if (!fake.up || this.#generation !== fake.generation) throw new Error('Communication error');
      }
      listReaders(): NativeReader[] {
        this.#check();
        return [...fake.readers.keys()].map((name) => fake.reader(name));
      }
      waitForChange(query: NativeStateQuery[] = [], timeoutMs?: number): Promise<NativeReaderState[] | null> {
        fake.waitCalls++;
        return new Promise((resolve, reject) => {
          const count = fake.readers.size;
          let timer: NodeJS.Timeout | undefined;
          const done = (): void => {
            fake.#notify.delete(evaluate);
            if (timer) clearTimeout(timer);
            this.#cancel = null;
          };
          const evaluate = (): void => {
            try {
              this.#check();
            } catch (e) {
              done();
              reject(e);
              return;
            }
            for (const q of query) {
              if (q.name !== PNP_NOTIFICATION_READER && !fake.readers.has(q.name)) {
                done();
                reject(new Error('Unknown reader'));
                return;
              }
            }
            const states = query.map((q) => fake.stateOf(q, count));
            if (states.some((s) => s.changed)) {
              done();
              resolve(states);
            } else if (timeoutMs === 0) {
              done();
              resolve([]);
            }
          };
          const enter = (): void => {
            this.#cancel = () => {
              done();
              resolve(null);
            };
            if (timeoutMs !== undefined && timeoutMs > 0) {
              timer = setTimeout(() => {
                done();
                resolve([]);
              }, timeoutMs);
            }
            fake.#notify.add(evaluate);
            evaluate();
          };
          if (fake.waitEntryDelayMs > 0) setTimeout(enter, fake.waitEntryDelayMs);
          else enter();
        });
      }
      cancel(): void {
        fake.cancels++;
        this.#cancel?.();
      }
      close(): void {
        if (this.#open) fake.contextsClosed++;
        this.#open = false;
        this.#cancel?.();
      }
    }
    return { Context, ...C };
  }

  state(name: string): number {
    const r = this.readers.get(name);
    if (!r) return C.SCARD_STATE_UNKNOWN;
    const base = r.atr ? C.SCARD_STATE_PRESENT | (r.inUse > 0 ? C.SCARD_STATE_INUSE : 0) : C.SCARD_STATE_EMPTY;
    return ((r.counter & 0xffff) << 16) | base;
  }

  stateOf(q: NativeStateQuery, countAtStart: number): NativeReaderState {
    if (q.name === PNP_NOTIFICATION_READER) {
      const changed = this.readers.size !== countAtStart;
      return { name: q.name, state: changed ? C.SCARD_STATE_CHANGED : 0, changed, atr: null };
    }
    const now = this.state(q.name);
    const flags = (s: number): number => s & 0xffff & ~C.SCARD_STATE_CHANGED;
    const counterMoved = q.state >>> 16 !== 0 && q.state >>> 16 !== now >>> 16;
    const changed = q.state === C.SCARD_STATE_UNAWARE || flags(q.state) !== flags(now) || counterMoved;
    const r = this.readers.get(q.name);
    return { name: q.name, state: changed ? now | C.SCARD_STATE_CHANGED : now, changed, atr: r?.atr ? Buffer.from(r.atr) : null };
  }

  reader(name: string): NativeReader {
    const fake = this;
    return {
      name,
      state: this.state(name),
      atr: this.readers.get(name)?.atr ?? null,
      async connect(share = C.SCARD_SHARE_SHARED, protocols = 3): Promise<NativeCard> {
        const r = fake.readers.get(name);
        if (!fake.up) throw new Error('PC/SC service not running');
        if (!r) throw new Error('Unknown reader');
        if (!r.atr) throw new Error('No smart card present');
        if ((protocols & C.SCARD_PROTOCOL_T1) === 0) throw new Error('Protocol mismatch');
        void share;
        return fake.card(name, r.counter);
      },
    };
  }

  card(name: string, counterAtConnect: number): NativeCard {
    const fake = this;
    let counter = counterAtConnect;
    let connected = true;
    const r0 = this.readers.get(name);
    if (r0) r0.inUse++;
    const alive = (): FakeReader => {
      const r = fake.readers.get(name);
      if (!connected) throw new Error('Card is not connected');
      if (!fake.up) throw new Error('Communication error');
      if (!r || !r.atr || r.counter !== counter) throw new Error('Card was removed');
      return r;
    };
    return {
      protocol: C.SCARD_PROTOCOL_T1,
      get connected() {
        return connected;
      },
      async transmit(command: Uint8Array): Promise<Uint8Array> {
        const r = alive();
        return Buffer.from(await r.answer(Uint8Array.from(command)));
      },
      getStatus() {
        const r = alive();
        return { state: 0x34, protocol: C.SCARD_PROTOCOL_T1, atr: Buffer.from(r.atr ?? []) };
      },
      disconnect(): void {
        if (!connected) return;
        connected = false;
        const r = fake.readers.get(name);
        if (r && r.inUse > 0) r.inUse--;
      },
      async reconnect(_share?: number, _protocols?: number, init?: number): Promise<number> {
        if (!connected) throw new Error('Card is not connected');
        if (!fake.up) throw new Error('Communication error');
        const r = fake.readers.get(name);
        if (!r || !r.atr) throw new Error('No smart card present');
        if (r.counter !== counter) throw new Error('Card was removed');
        fake.reconnects.push(init ?? -1);
        counter = r.counter;
        return C.SCARD_PROTOCOL_T1;
      },
    };
  }

  notify(): void {
    for (const n of [...this.#notify]) n();
  }

  attach(name: string, atr: Uint8Array | null = null, answer: Answer = echo9000): void {
    this.readers.set(name, { counter: atr ? 1 : 0, atr, inUse: 0, answer });
    this.notify();
  }
  detach(name: string): void {
    this.readers.delete(name);
    this.notify();
  }
  insert(name: string, atr: Uint8Array): void {
    const r = this.readers.get(name)!;
    r.atr = atr;
    r.counter++;
    this.notify();
  }
  remove(name: string): void {
    const r = this.readers.get(name)!;
    r.atr = null;
    r.counter++;
    r.inUse = 0;
    this.notify();
  }
  /** Out and in again before anyone looks. */
  swap(name: string, atr: Uint8Array): void {
    const r = this.readers.get(name)!;
    r.counter += 2;
    r.atr = atr;
    this.notify();
  }
  stopDaemon(): void {
    this.up = false;
    this.notify();
  }
  startDaemon(): void {
    this.up = true;
    this.generation++;
    for (const r of this.readers.values()) r.inUse = 0;
    this.notify();
  }
}

/** Reads events from a monitor with a bound per event. */
class Reader {
  readonly seen: MonitorEvent[] = [];
  constructor(private readonly it: AsyncIterator<MonitorEvent>) {}
  async take(n: number, boundMs = 2_000): Promise<MonitorEvent[]> {
    const out: MonitorEvent[] = [];
    for (let i = 0; i < n; i++) {
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        this.it.next(),
        new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error(`event ${i + 1} of ${n} not seen within ${boundMs} ms; so far ${JSON.stringify(out.map(short))}`)), boundMs);
        }),
      ]).finally(() => clearTimeout(timer));
      if (r.done) throw new Error('monitor ended');
      out.push(r.value);
      this.seen.push(r.value);
    }
    return out;
  }
}

function short(e: MonitorEvent): string {
  return 'reader' in e ? `${e.type} ${e.reader}${'initial' in e && e.initial ? ' initial' : ''}` : e.type;
}

/** Lets pending promise callbacks and timers of 0 ms run (a polling loop would show up in the counters). */
async function settle(ms = 30): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

describe('loading the binding', () => {
  it('a missing module is MissingDependencyError saying what to install and how to start pcscd', () => {
    const missing = () => {
      throw Object.assign(new Error("Cannot find module 'smartcard'"), { code: 'MODULE_NOT_FOUND' });
    };
    let err: unknown;
    try {
      loadPcscBinding(missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MissingDependencyError);
    expect((err as HiltError).code).toBe('MISSING_DEPENDENCY');
    expect((err as Error).message).toBe(
      "PC/SC support is unavailable: the optional module 'smartcard' could not be loaded (it is not installed); " +
        'install the PC/SC library and daemon with `apt-get install libpcsclite-dev pcscd`, then run `npm install` ' +
        '(or `npm rebuild smartcard`), and start the daemon with `pcscd` (or `systemctl start pcscd`)',
    );
    expect((err as Error).message).not.toContain('\n');
  });

  it('a native part that cannot load says why, on one line', async () => {
    const broken = () => {
      throw new Error('libpcsclite.so.1: cannot open shared object file: No such file or directory\nRequire stack: ...');
    };
    await expect(listPcscReaders({ binding: broken })).rejects.toThrow(/^PC\/SC support is unavailable: .*\(libpcsclite\.so\.1: cannot open shared object file: No such file or directory\); install /);
    expect(() => monitorPcsc({ binding: broken })).toThrow(MissingDependencyError);
    await expect(PcscChannel.open('X', { binding: broken })).rejects.toBeInstanceOf(MissingDependencyError);
    expect(() => loadPcscBinding(() => ({ Context: 1 }))).toThrow(/does not offer the expected API/);
  });

  it('the real binding, where installed, has the API hilt uses', () => {
    let binding: PcscBinding | undefined;
    try {
      binding = loadPcscBinding();
    } catch (e) {
      expect(e).toBeInstanceOf(MissingDependencyError);
      return;
    }
    expect(typeof binding.Context).toBe('function');
    expect(binding.SCARD_PROTOCOL_T1).toBe(2);
  });
});

describe('PC/SC error mapping', () => {
  it('removed and reset cards are CardRemovedError, timeouts TimeoutError, the rest typed PcscErrors', () => {
    expect(mapPcscError(new Error('Card was removed'), 'R')).toBeInstanceOf(CardRemovedError);
    expect(mapPcscError(new Error('Card was reset'), 'R')).toBeInstanceOf(CardRemovedError);
    expect(mapPcscError(new Error('Operation timed out'), 'R')).toBeInstanceOf(TimeoutError);
    const noCard = mapPcscError(new Error('No smart card present'), 'Reader 1');
    expect(noCard).toBeInstanceOf(PcscError);
    expect(noCard).toMatchObject({ code: 'NO_CARD', pcsc: 'SCARD_E_NO_SMARTCARD', message: 'Reader 1: no card in the reader (SCARD_E_NO_SMARTCARD)' });
    const down = mapPcscError(new Error('PC/SC service not running'), 'PC/SC');
    expect(down).toMatchObject({ code: 'READER_UNAVAILABLE' });
    expect(down.message).toBe('PC/SC: the PC/SC daemon (pcscd) is not running; start it with `pcscd` (or `systemctl start pcscd`) (SCARD_E_NO_SERVICE)');
    expect(isServiceLost(down)).toBe(true);
    expect(isServiceLost(mapPcscError(new Error('Communication error'), 'PC/SC'))).toBe(true);
    expect(isServiceLost(mapPcscError(new Error('Sharing violation'), 'R'))).toBe(false);
    const unknown = mapPcscError(new Error('something new'), 'R');
    expect(unknown).toMatchObject({ code: 'READER_UNAVAILABLE', pcsc: 'UNKNOWN' });
    const own = new BadInputError('x');
    expect(mapPcscError(own, 'R')).toBe(own);
  });

  it('every table row maps to exactly its kind, and only CardRemovedError means a removal', () => {
    for (const row of PCSC_ERROR_TABLE) {
      const e = mapPcscError(new Error(row.message), 'R');
      expect(e instanceof CardRemovedError, row.name).toBe(row.kind === 'removed');
      expect(e instanceof TimeoutError, row.name).toBe(row.kind === 'timeout');
      if (row.kind !== 'removed' && row.kind !== 'timeout') expect((e as HiltError).code, row.name).toBe(row.kind);
      expect(e.message).toContain(row.name);
    }
  });

  it('a stopped daemon is one READER_UNAVAILABLE line for listing and connecting', async () => {
    const fake = new FakePcsc();
    fake.up = false;
    const err = await listPcscReaders({ binding: fake.binding() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'READER_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/^PC\/SC: the PC\/SC daemon \(pcscd\) is not running; start it with `pcscd`/);
    await expect(PcscChannel.open('A', { binding: fake.binding() })).rejects.toMatchObject({ code: 'READER_UNAVAILABLE' });
  });

  it('parses protocol and share options', () => {
    expect(['T0', 't=0', '0'].map(parseProtocolPreference)).toEqual(['T=0', 'T=0', 'T=0']);
    expect(['T1', 'T=1'].map(parseProtocolPreference)).toEqual(['T=1', 'T=1']);
    expect(['any', 'either', 'T0|T1'].map(parseProtocolPreference)).toEqual(['any', 'any', 'any']);
    expect(() => parseProtocolPreference('T=2')).toThrow(BadInputError);
    expect(parseShareMode('Exclusive')).toBe('exclusive');
    expect(() => parseShareMode('direct')).toThrow(BadInputError);
  });
});

describe('PcscChannel over the fake', () => {
  it('lists readers with their state', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.attach('B');
    const list = await listPcscReaders({ binding: fake.binding() });
    expect(list.map((r) => [r.name, r.cardPresent, r.atr ? toHex(r.atr) : null])).toEqual([
      ['A', true, toHex(ATR_A)],
      ['B', false, null],
    ]);
    expect(list[0].atr).not.toBeInstanceOf(Buffer);
    expect(list[1].flags).toEqual(['empty']);
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });

  it('transmits plain Uint8Arrays, serialises calls, and closes idempotently', async () => {
    const fake = new FakePcsc();
    const order: string[] = [];
    fake.attach('A', ATR_A, async (c) => {
      order.push(`start ${toHex(c)}`);
      await settle(5);
      order.push(`end ${toHex(c)}`);
      return fromHex('9000');
    });
    const ch = await PcscChannel.open('A', { binding: fake.binding() });
    expect(ch.protocol).toBe('T=1');
    expect(toHex(ch.atr)).toBe(toHex(ATR_A));
    const [a, b] = await Promise.all([ch.transmit(fromHex('00010000')), ch.transmit(fromHex('00020000'))]);
    expect(order).toEqual(['start 00010000', 'end 00010000', 'start 00020000', 'end 00020000']);
    expect(a).not.toBeInstanceOf(Buffer);
    expect(toHex(b)).toBe('9000');
    await expect(ch.transmit(fromHex('00'))).rejects.toBeInstanceOf(BadInputError);
    await Promise.all([ch.close(), ch.close()]);
    await expect(ch.transmit(fromHex('00010000'))).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(ch.reset()).rejects.toBeInstanceOf(ChannelClosedError);
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
    expect(fake.readers.get('A')!.inUse).toBe(0);
  });

  it('a card gone mid-exchange is CardRemovedError, even when pcsc-lite answers with no bytes', async () => {
    const fake = new FakePcsc();
    let pulls = 0;
    fake.attach('A', ATR_A, async (c) => {
      if (pulls++ > 0) return echo9000(c);
      fake.remove('A');
      return new Uint8Array(0); // what pcsc-lite gives for a vpcd card that vanished mid-command
    });
    const ch = await PcscChannel.open('A', { binding: fake.binding() });
    const err = await ch.transmit(fromHex('80300100')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CardRemovedError);
    expect((err as Error).message).toBe('A: card removed during the exchange');
    await expect(ch.transmit(fromHex('80100000'))).rejects.toBeInstanceOf(CardRemovedError);
    fake.insert('A', ATR_B);
    await expect(ch.transmit(fromHex('80100000'))).rejects.toBeInstanceOf(CardRemovedError);
    expect(toHex(await ch.reset())).toBe(toHex(ATR_B)); // a new session with the card now present
    expect(toHex(await ch.transmit(fromHex('80100000')))).toBe('80109000');
    await ch.close();
  });

  it('a failed exchange with the card still there stays a PC/SC error after a bounded check', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A, () => {
      throw new Error('Transaction failed');
    });
    const ch = await PcscChannel.open('A', { binding: fake.binding(), removalCheckMs: 20 });
    const err = await ch.transmit(fromHex('80100000')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PcscError);
    expect(err).toMatchObject({ code: 'PROTOCOL', pcsc: 'SCARD_E_NOT_TRANSACTED' });
    await ch.close();
  });

  it('reset(false) is SCARD_RESET_CARD, reset(true) SCARD_UNPOWER_CARD; a restarted daemon gets a new context', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    const ch = await PcscChannel.open('A', { binding: fake.binding() });
    await ch.reset();
    await ch.reset(true);
    expect(fake.reconnects).toEqual([C.SCARD_RESET_CARD, C.SCARD_UNPOWER_CARD]);
    fake.stopDaemon();
    const down = await ch.transmit(fromHex('80100000')).catch((e: unknown) => e);
    expect(isServiceLost(down)).toBe(true);
    fake.startDaemon();
    expect(toHex(await ch.reset())).toBe(toHex(ATR_A));
    expect(toHex(await ch.transmit(fromHex('80100000')))).toBe('80109000');
    await ch.close();
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });

  it('open() refuses unknown readers (naming the real ones), empty readers and protocols the reader lacks', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.attach('B');
    await expect(PcscChannel.open('C', { binding: fake.binding() })).rejects.toThrow('no PC/SC reader named "C" (readers: "A", "B")');
    await expect(PcscChannel.open('B', { binding: fake.binding() })).rejects.toMatchObject({ code: 'NO_CARD' });
    await expect(PcscChannel.open('A', { binding: fake.binding(), protocol: 'T=0' })).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });
});

describe('monitorPcsc over the fake', () => {
  function start(fake: FakePcsc, extra: { retryInitialDelayMs?: number; retryMaxDelayMs?: number } = {}) {
    const stop = new AbortController();
    const it = monitorPcsc({ binding: fake.binding(), signal: stop.signal, retryInitialDelayMs: 5, retryMaxDelayMs: 20, ...extra });
    return { stop, it, r: new Reader(it) };
  }

  it('reports what is there at start, then insertions, removals and a fast swap', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.attach('B');
    const { stop, it, r } = start(fake);
    expect((await r.take(3)).map(short)).toEqual(['reader-attached A initial', 'card-inserted A initial', 'reader-attached B initial']);
    fake.insert('B', ATR_B);
    const [ins] = await r.take(1);
    expect(ins).toMatchObject({ type: 'card-inserted', reader: 'B', atr: ATR_B, source: 'pcsc' });
    expect((ins as { atr: Uint8Array }).atr).not.toBeInstanceOf(Buffer);
    fake.remove('A');
    expect((await r.take(1)).map(short)).toEqual(['card-removed A']);
    fake.swap('B', ATR_A);
    expect((await r.take(2)).map(short)).toEqual(['card-removed B', 'card-inserted B']);
    stop.abort();
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });

  it('blocks between events: no wait call is made while nothing changes, and a flag-only change emits nothing', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    const { stop, r } = start(fake);
    await r.take(2);
    await settle();
    const calls = fake.waitCalls;
    await settle(100);
    expect(fake.waitCalls).toBe(calls); // a polling loop would have called again
    // Another application connecting sets INUSE: one wake-up, no event, then blocked again.
    fake.readers.get('A')!.inUse++;
    fake.notify();
    await settle();
    expect(fake.waitCalls).toBe(calls + 1);
    await settle(100);
    expect(fake.waitCalls).toBe(calls + 1);
    fake.remove('A');
    expect((await r.take(1)).map(short)).toEqual(['card-removed A']);
    stop.abort();
  });

  it('follows readers attached and detached (PnP), and a reader gone before the wait starts', async () => {
    const fake = new FakePcsc();
    fake.attach('A');
    const { stop, r } = start(fake);
    expect((await r.take(1)).map(short)).toEqual(['reader-attached A initial']);
    fake.attach('USB 1', ATR_B);
    expect((await r.take(2)).map(short)).toEqual(['reader-attached USB 1', 'card-inserted USB 1']);
    fake.detach('USB 1');
    expect((await r.take(2)).map(short)).toEqual(['card-removed USB 1', 'reader-detached USB 1']);
    expect(r.seen.some((e) => e.type === 'service-lost')).toBe(false);
    stop.abort();
  });

  it('survives the daemon stopping and starting again: service-lost, everything gone, service-restored, everything back', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.attach('B');
    const { stop, r } = start(fake);
    await r.take(3);
    fake.stopDaemon();
    const outage = await r.take(4);
    expect(outage.map(short)).toEqual(['service-lost', 'card-removed A', 'reader-detached A', 'reader-detached B']);
    expect(outage[0]).toMatchObject({ reason: 'PC/SC: lost the connection to the PC/SC daemon (pcscd stopped or restarted) (SCARD_F_COMM_ERROR)' });
    await settle(60); // several failed attempts while down: still one service-lost
    fake.startDaemon();
    expect((await r.take(4)).map(short)).toEqual(['service-restored', 'reader-attached A', 'card-inserted A', 'reader-attached B']);
    fake.remove('A');
    expect((await r.take(1)).map(short)).toEqual(['card-removed A']);
    stop.abort();
    await settle();
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });

  it('starts without a daemon: service-lost first, then the readers once it runs', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.up = false;
    const { stop, r } = start(fake);
    const [lost] = await r.take(1);
    expect(lost).toMatchObject({ type: 'service-lost' });
    expect((lost as { reason: string }).reason).toContain('is not running; start it with `pcscd`');
    fake.startDaemon();
    expect((await r.take(3)).map(short)).toEqual(['service-restored', 'reader-attached A', 'card-inserted A']);
    stop.abort();
  });

  it('stopping cancels the blocked wait at once (SCardCancel); the consumer breaking out does too', async () => {
    const fake = new FakePcsc();
    fake.attach('A');
    const { stop, it, r } = start(fake);
    await r.take(1);
    await settle();
    stop.abort();
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(fake.cancels).toBeGreaterThanOrEqual(1);

    const fake2 = new FakePcsc();
    fake2.attach('A', ATR_A);
    const events: string[] = [];
    for await (const e of monitorPcsc({ binding: fake2.binding() })) {
      events.push(short(e));
      if (events.length === 2) break;
    }
    await settle();
    expect(events).toEqual(['reader-attached A initial', 'card-inserted A initial']);
    expect(fake2.cancels).toBe(1);
    expect(fake2.contextsClosed).toBe(fake2.contextsOpened);
  });

  it('a stop that lands before the wait really blocks (its cancel lost) still ends the monitor', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    fake.waitEntryDelayMs = 30;
    const stop = new AbortController();
    const it = monitorPcsc({ binding: fake.binding(), signal: stop.signal });
    expect((await it.next()).value).toMatchObject({ type: 'reader-attached' });
    expect((await it.next()).value).toMatchObject({ type: 'card-inserted' });
    // The monitor has just called waitForChange, which is not blocking yet: this cancel finds nothing.
    stop.abort();
    const cancelsAtStop = fake.cancels;
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(fake.cancels).toBeGreaterThan(cancelsAtStop);
    expect(fake.contextsClosed).toBe(fake.contextsOpened);
  });
});

describe('monitorPcsc options', () => {
  it('initial: false reports only what changes after the start', async () => {
    const fake = new FakePcsc();
    fake.attach('A', ATR_A);
    const stop = new AbortController();
    const r = new Reader(monitorPcsc({ binding: fake.binding(), signal: stop.signal, initial: false }));
    await settle();
    fake.remove('A');
    expect((await r.take(1)).map(short)).toEqual(['card-removed A']);
    stop.abort();
  });
});
