/**
 * Reader events, one model for every source: the PC/SC monitor (pcsc-monitor.ts) and hilt's own
 * vpcd server (vpcd-server.ts) both produce `ReaderEvent`s, so `hilt monitor` and any other consumer
 * treat a USB reader, a pcscd vpcd slot and a direct vpcd socket alike.
 *
 *   reader-attached   a reader appeared (for vpcd: the server is listening)
 *   reader-detached   a reader went away (unplugged; every reader when the PC/SC daemon stops)
 *   card-inserted     a card is in the reader and answered to reset; carries its ATR
 *                     (for vpcd: a card side connected and sent its ATR)
 *   card-removed      the card left (for vpcd: the card side disconnected)
 *   service-lost      the PC/SC daemon stopped answering; the monitor keeps retrying
 *   service-restored  the daemon answers again; attach/insert events for what it now sees follow
 *
 * Events are produced as an async iterable (`for await (const e of monitor)`), the only API: no
 * callbacks or emitters beside it. Events that describe the state found when monitoring started
 * carry `initial: true`, so a consumer can tell "was already there" from "just happened".
 */
import type { VpcdServer } from './vpcd-server.js';
import { ProtocolError } from '../util/errors.js';

export type ReaderEventType = 'reader-attached' | 'reader-detached' | 'card-inserted' | 'card-removed';
export type ServiceEventType = 'service-lost' | 'service-restored';
export type MonitorEventType = ReaderEventType | ServiceEventType;

/** Where an event comes from. */
export type EventSource = 'pcsc' | 'vpcd';

interface EventBase {
  /** UTC wall-clock time the change was seen, ISO 8601 with milliseconds. */
  time: string;
  source: EventSource;
}

export interface ReaderAttachedEvent extends EventBase {
  type: 'reader-attached';
  reader: string;
  initial?: true;
}

export interface ReaderDetachedEvent extends EventBase {
  type: 'reader-detached';
  reader: string;
}

export interface CardInsertedEvent extends EventBase {
  type: 'card-inserted';
  reader: string;
  /** The card's ATR (empty for a mute card that gave none). */
  atr: Uint8Array;
  initial?: true;
}

export interface CardRemovedEvent extends EventBase {
  type: 'card-removed';
  reader: string;
  /** Why, when the source knows (vpcd: "card disconnected"; pcsc: "PC/SC service lost"). */
  reason?: string;
}

export interface ServiceLostEvent extends EventBase {
  type: 'service-lost';
  /** The error that showed the daemon gone, one line. */
  reason: string;
}

export interface ServiceRestoredEvent extends EventBase {
  type: 'service-restored';
}

export type ReaderEvent = ReaderAttachedEvent | ReaderDetachedEvent | CardInsertedEvent | CardRemovedEvent;
export type ServiceEvent = ServiceLostEvent | ServiceRestoredEvent;
export type MonitorEvent = ReaderEvent | ServiceEvent;

/** The time field of an event. */
export function eventTime(clock: () => number = Date.now): string {
  return new Date(clock()).toISOString();
}

/** Events not yet taken by the consumer; a consumer that stops reading must not grow memory forever. */
export const MAX_QUEUED_EVENTS = 10_000;

/**
 * A bounded queue that turns pushed events into an async iterator. Producers push; one consumer
 * iterates. `end()` finishes the iteration after the queued events; `fail(e)` makes the consumer's
 * next read reject. Pushing more than MAX_QUEUED_EVENTS unread events fails the queue with a
 * ProtocolError rather than dropping events silently.
 */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  readonly #items: T[] = [];
  #waiter: { resolve(r: IteratorResult<T>): void; reject(e: unknown): void } | null = null;
  #ended = false;
  #error: unknown = undefined;
  #onReturn: (() => void) | undefined;

  /** `onReturn` runs once when the consumer stops early (break / return()). */
  constructor(onReturn?: () => void) {
    this.#onReturn = onReturn;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(item: T): void {
    if (this.#ended) return;
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      w.resolve({ value: item, done: false });
      return;
    }
    if (this.#items.length >= MAX_QUEUED_EVENTS) {
      this.fail(new ProtocolError(`more than ${MAX_QUEUED_EVENTS} events were not read; the consumer stalled`));
      return;
    }
    this.#items.push(item);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.resolve({ value: undefined, done: true });
  }

  fail(error: unknown): void {
    if (this.#ended) return;
    this.#error = error;
    this.#ended = true;
    this.#items.length = 0;
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(error);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) return Promise.resolve({ value: this.#items.shift() as T, done: false });
    if (this.#error !== undefined) {
      const e = this.#error;
      this.#error = undefined;
      return Promise.reject(e);
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.#items.length = 0;
    this.end();
    const cb = this.#onReturn;
    this.#onReturn = undefined;
    cb?.();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The part of VpcdServer the adapter needs (kept structural so tests can pass a fake). */
export type VpcdEventSource = Pick<VpcdServer, 'on' | 'off' | 'cardPresent' | 'atr'>;

export interface VpcdEventOptions {
  /** The name events carry, e.g. "vpcd://127.0.0.1:35963". */
  reader: string;
  /** Stops the iteration (it then ends normally). */
  signal?: AbortSignal;
  clock?: () => number;
}

/**
 * The events of a vpcd server as ReaderEvents: reader-attached (initial) at once, card-inserted
 * (initial) if a card is already connected, then card-inserted / card-removed as card sides connect
 * and leave. Ends when `signal` aborts or the consumer stops; the server itself is not closed.
 */
export function vpcdServerEvents(server: VpcdEventSource, options: VpcdEventOptions): AsyncIterableIterator<ReaderEvent> {
  const clock = options.clock ?? Date.now;
  const reader = options.reader;
  const onInserted = (atr: Uint8Array): void => {
    queue.push({ type: 'card-inserted', time: eventTime(clock), source: 'vpcd', reader, atr: atr.slice() });
  };
  const onRemoved = (reason: string): void => {
    queue.push({ type: 'card-removed', time: eventTime(clock), source: 'vpcd', reader, reason });
  };
  const detach = (): void => {
    server.off('card-inserted', onInserted);
    server.off('card-removed', onRemoved);
    options.signal?.removeEventListener('abort', stop);
  };
  const stop = (): void => {
    detach();
    queue.end();
  };
  const queue = new EventQueue<ReaderEvent>(detach);
  queue.push({ type: 'reader-attached', time: eventTime(clock), source: 'vpcd', reader, initial: true });
  const atr = server.cardPresent ? server.atr : undefined;
  if (atr) queue.push({ type: 'card-inserted', time: eventTime(clock), source: 'vpcd', reader, atr, initial: true });
  server.on('card-inserted', onInserted);
  server.on('card-removed', onRemoved);
  if (options.signal?.aborted) stop();
  else options.signal?.addEventListener('abort', stop, { once: true });
  return queue;
}
