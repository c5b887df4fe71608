/**
 * PC/SC reader and card events (events.ts model) that survive pcscd restarts and reader hot-plug.
 *
 * No polling: the monitor blocks in SCardGetStatusChange with an INFINITE timeout (on a libuv worker
 * thread, through the binding's Context.waitForChange) over every known reader plus the
 * "\\?PnP?\Notification" pseudo-reader, and passes each reader's last dwEventState back as its
 * dwCurrentState, so the call returns only when something really changed: a card came or went (the
 * event counter in the upper 16 bits also catches a remove + insert between two calls), a reader was
 * added or removed, or the daemon went away. Stopping calls SCardCancel, which ends the wait at once.
 *
 * Recovery (where pyscard's and node-pcsclite's monitors die): when the context fails (pcscd stopped,
 * restarted, crashed: SCARD_E_NO_SERVICE, SCARD_F_COMM_ERROR, an invalid handle, ...) the monitor
 * reports `service-lost`, then card-removed / reader-detached for everything it knew, releases the
 * context and tries to establish a new one after RETRY_INITIAL_DELAY_MS, doubling up to
 * RETRY_MAX_DELAY_MS between attempts. This loop has no attempt limit by design (a monitor outlives
 * the daemon); each attempt is one connect() to the daemon's socket, and the wait is bounded. When a
 * context works again: `service-restored`, then reader-attached / card-inserted for what is there.
 * A reader that disappears between listing and waiting (SCARD_E_UNKNOWN_READER) just makes the monitor
 * list the readers again.
 *
 * Resource note: the blocked wait holds one libuv threadpool thread (4 by default) for as long as the
 * monitor runs.
 */
import {
  PNP_NOTIFICATION_READER,
  eventCounter,
  loadPcscBinding,
  mapPcscError,
  pcscErrorName,
  type NativeContext,
  type NativeReaderState,
  type PcscBinding,
  type PcscBindingSource,
} from './pcsc-binding.js';
import { EventQueue, eventTime, type MonitorEvent } from './events.js';
import { assertInt } from '../util/assert.js';

/** First wait before re-establishing a context after the daemon went away. */
export const RETRY_INITIAL_DELAY_MS = 100;
/** The wait between attempts never grows beyond this. */
export const RETRY_MAX_DELAY_MS = 2_000;

export interface PcscMonitorOptions {
  /** Stops the monitor; the iteration then ends normally. */
  signal?: AbortSignal;
  binding?: PcscBindingSource;
  /** Backoff bounds while the daemon is away. */
  retryInitialDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Report the readers and cards present at start (with `initial: true`). Default true. */
  initial?: boolean;
  /** Milliseconds since the epoch, for event times. */
  clock?: () => number;
}

interface Known {
  /** Last dwEventState, CHANGED bit cleared: what is passed back as dwCurrentState. */
  state: number;
  present: boolean;
}

/**
 * Starts monitoring at once and returns the events as an async iterator. The binding is loaded
 * eagerly: a missing module throws MissingDependencyError here, not at the first read. A daemon
 * that is not running is not an error: the first event is then `service-lost` and the monitor waits
 * for it to start.
 */
export function monitorPcsc(options: PcscMonitorOptions = {}): AsyncIterableIterator<MonitorEvent> {
  const binding = loadPcscBinding(options.binding);
  const initialDelay = options.retryInitialDelayMs ?? RETRY_INITIAL_DELAY_MS;
  const maxDelay = options.retryMaxDelayMs ?? RETRY_MAX_DELAY_MS;
  assertInt(initialDelay, 'retryInitialDelayMs', 1, 3_600_000);
  assertInt(maxDelay, 'retryMaxDelayMs', initialDelay, 3_600_000);
  const runner = new MonitorRun(binding, {
    initialDelay,
    maxDelay,
    initial: options.initial ?? true,
    clock: options.clock ?? Date.now,
  });
  const queue = new EventQueue<MonitorEvent>(() => runner.stop());
  runner.start(queue);
  if (options.signal) {
    const signal = options.signal;
    const onAbort = (): void => {
      runner.stop();
    };
    if (signal.aborted) runner.stop();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      void runner.done.then(() => signal.removeEventListener('abort', onAbort));
    }
  }
  return queue;
}

interface RunOptions {
  initialDelay: number;
  maxDelay: number;
  initial: boolean;
  clock: () => number;
}

/** How often stop() repeats its cancel until the wait it interrupts has returned. */
const CANCEL_RETRY_MS = 50;

/** One monitor's loop and state; nothing is shared between monitors. */
class MonitorRun {
  readonly #b: PcscBinding;
  readonly #opts: RunOptions;
  readonly #known = new Map<string, Known>();
  #pnpState = 0;
  #context: NativeContext | null = null;
  #stopped = false;
  #wake: (() => void) | null = null;
  #first = true;
  #serviceDown = false;
  #queue: EventQueue<MonitorEvent> | null = null;
  done: Promise<void> = Promise.resolve();

  constructor(binding: PcscBinding, opts: RunOptions) {
    this.#b = binding;
    this.#opts = opts;
  }

  start(queue: EventQueue<MonitorEvent>): void {
    this.#queue = queue;
    this.done = this.#loop().then(
      () => queue.end(),
      (e: unknown) => queue.fail(e),
    );
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cancelWait();
    // SCardCancel only ends a wait that is already blocking in pcscd: a stop that lands between the
    // binding's call and the daemon's wait is lost, and the wait would block until the next event.
    // Cancel again until the loop has left.
    const again = setInterval(() => this.#cancelWait(), CANCEL_RETRY_MS);
    void this.done.finally(() => clearInterval(again));
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #cancelWait(): void {
    try {
      this.#context?.cancel();
    } catch {
      // A dead context has nothing to cancel.
    }
  }

  #emit(event: MonitorEvent): void {
    this.#queue?.push(event);
  }

  #time(): string {
    return eventTime(this.#opts.clock);
  }

  async #loop(): Promise<void> {
    let delay = this.#opts.initialDelay;
    while (!this.#stopped) {
      let context: NativeContext;
      try {
        context = new this.#b.Context();
      } catch (e) {
        this.#lost(e);
        await this.#sleep(delay);
        delay = Math.min(delay * 2, this.#opts.maxDelay);
        continue;
      }
      this.#context = context;
      try {
        if (this.#stopped) return;
        if (this.#serviceDown) {
          this.#serviceDown = false;
          this.#emit({ type: 'service-restored', time: this.#time(), source: 'pcsc' });
        }
        delay = this.#opts.initialDelay;
        await this.#watch(context);
      } catch (e) {
        if (this.#stopped) return;
        this.#lost(e);
        await this.#sleep(delay);
        delay = Math.min(delay * 2, this.#opts.maxDelay);
      } finally {
        this.#context = null;
        try {
          context.close();
        } catch {
          // Releasing a context of a dead daemon may fail; it is gone either way.
        }
      }
    }
  }

  /** Reports the daemon gone (once per outage) and everything it knew as removed and detached. */
  #lost(error: unknown): void {
    if (this.#stopped) return;
    if (!this.#serviceDown) {
      this.#serviceDown = true;
      const mapped = mapPcscError(error, 'PC/SC');
      this.#emit({ type: 'service-lost', time: this.#time(), source: 'pcsc', reason: mapped.message });
    }
    for (const [reader, k] of this.#known) {
      if (k.present) this.#emit({ type: 'card-removed', time: this.#time(), source: 'pcsc', reader, reason: 'PC/SC service lost' });
      this.#emit({ type: 'reader-detached', time: this.#time(), source: 'pcsc', reader });
    }
    this.#known.clear();
    this.#pnpState = 0;
    this.#first = false;
  }

  /** Waits `ms`, or less if stopped. */
  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Watches with one context until stopped (returns) or the context fails (throws). */
  async #watch(context: NativeContext): Promise<void> {
    const b = this.#b;
    while (!this.#stopped) {
      const names = context.listReaders().map((r) => r.name);
      const first = this.#first;
      this.#first = false;

      for (const [reader, k] of [...this.#known]) {
        if (names.includes(reader)) continue;
        if (k.present) this.#emit({ type: 'card-removed', time: this.#time(), source: 'pcsc', reader, reason: 'reader detached' });
        this.#emit({ type: 'reader-detached', time: this.#time(), source: 'pcsc', reader });
        this.#known.delete(reader);
      }
      const added = names.filter((n) => !this.#known.has(n));
      if (added.length > 0) {
        let snapshot: NativeReaderState[] | null;
        try {
          snapshot = await context.waitForChange(added.map((name) => ({ name, state: b.SCARD_STATE_UNAWARE })), 0);
        } catch (e) {
          if (pcscErrorName(e) === 'SCARD_E_UNKNOWN_READER') continue; // gone again already: list anew
          throw e;
        }
        if (snapshot === null) return;
        for (const s of snapshot) this.#attach(s, first);
      }

      const query = [...this.#known].map(([name, k]) => ({ name, state: k.state }));
      query.push({ name: PNP_NOTIFICATION_READER, state: this.#pnpState });
      let changes: NativeReaderState[] | null;
      try {
        changes = await context.waitForChange(query);
      } catch (e) {
        if (pcscErrorName(e) === 'SCARD_E_UNKNOWN_READER') continue; // a reader left before the wait began
        throw e; // the context is unusable: #loop reports the service lost and rebuilds it
      }
      if (changes === null) {
        if (this.#stopped) return;
        continue; // cancelled by someone else: wait again
      }
      for (const c of changes) this.#apply(c);
    }
  }

  /** A reader seen for the first time; `first`: found when monitoring started. */
  #attach(s: NativeReaderState, first: boolean): void {
    const b = this.#b;
    const present = (s.state & b.SCARD_STATE_PRESENT) !== 0;
    this.#known.set(s.name, { state: s.state & ~b.SCARD_STATE_CHANGED, present });
    if (first && !this.#opts.initial) return;
    const flag = first ? { initial: true as const } : {};
    this.#emit({ type: 'reader-attached', time: this.#time(), source: 'pcsc', reader: s.name, ...flag });
    if (present) {
      this.#emit({ type: 'card-inserted', time: this.#time(), source: 'pcsc', reader: s.name, atr: atrOf(s), ...flag });
    }
  }

  #apply(c: NativeReaderState): void {
    const b = this.#b;
    if (c.name === PNP_NOTIFICATION_READER) {
      this.#pnpState = c.state & ~b.SCARD_STATE_CHANGED;
      return; // the reader list is compared on the next turn
    }
    const k = this.#known.get(c.name);
    if (!k || (c.state & b.SCARD_STATE_CHANGED) === 0) return;
    if ((c.state & b.SCARD_STATE_UNKNOWN) !== 0) return; // reader gone: the next listing reports it
    const present = (c.state & b.SCARD_STATE_PRESENT) !== 0;
    const swapped = k.present && present && eventCounter(c.state) !== eventCounter(k.state) && eventCounter(k.state) !== 0;
    const reader = c.name;
    if (k.present && (!present || swapped)) this.#emit({ type: 'card-removed', time: this.#time(), source: 'pcsc', reader });
    if (present && (!k.present || swapped)) this.#emit({ type: 'card-inserted', time: this.#time(), source: 'pcsc', reader, atr: atrOf(c) });
    this.#known.set(reader, { state: c.state & ~b.SCARD_STATE_CHANGED, present });
  }
}

function atrOf(s: NativeReaderState): Uint8Array {
  if (!s.atr) return new Uint8Array(0);
  const out = new Uint8Array(s.atr.length);
  out.set(s.atr);
  return out;
}
