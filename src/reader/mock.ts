/**
 * Test channels shipped with the library, so every layer above the transport is testable without
 * hardware (node-serialport's mock binding is the model):
 *
 * - `ScriptedChannel` plays a script of expected command → response steps and fails loudly, with
 *   expected and actual hex, on the first command that departs from it.
 * - `HandlerChannel` answers with a function (a tiny card) and adds the controls a real reader
 *   has: take the card out, put it back, count what happened.
 *
 * Both keep the whole CardChannel contract (see channel.ts): answers arrive on a later tick, never
 * synchronously; calls are serialised; close() is idempotent and makes pending and later calls
 * reject with ChannelClosedError; a response is never shorter than SW1 SW2. Both copy the bytes
 * they are given and the bytes they return, so neither side can change the other's buffers.
 */
import type { CardChannel } from './channel.js';
import { SerialQueue } from './serialize.js';
import { CardRemovedError, ChannelClosedError, HiltError, ProtocolError, BadInputError } from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { bytesEqual, fromHex, toHex } from '../util/bytes.js';

/** Bytes, or hex as people paste it ("00 A4 04 00", "00a40400"). */
export type HexOrBytes = string | Uint8Array;

/** What a scripted card answers: fixed bytes, or a function of the command it received. */
export type ScriptResponse = HexOrBytes | ((command: Uint8Array) => HexOrBytes | Promise<HexOrBytes>);

export interface ScriptStep {
  /** The command the script expects next, compared byte for byte. */
  expect: HexOrBytes;
  /** The answer (SW included). Give exactly one of `respond` and `fail`. */
  respond?: ScriptResponse;
  /** The transmit rejects with this error instead, e.g. `new CardRemovedError()`. */
  fail?: Error;
  /** Answer after this many milliseconds instead of on the next tick. */
  delayMs?: number;
}

/** A step, or the short form `[expect, respond]`. */
export type ScriptEntry = ScriptStep | readonly [expect: HexOrBytes, respond: ScriptResponse];

/** One line of a mock channel's record of what happened, in order. */
export type ExchangeLogEntry =
  | { op: 'transmit'; command: Uint8Array; response?: Uint8Array; error?: unknown }
  | { op: 'reset'; cold: boolean; atr: Uint8Array };

/** A script was not followed: an unexpected command, or steps left over at assertDone(). */
export class ScriptError extends ProtocolError {}

/** The longest a scripted or handler delay may be: a test that waits longer is a mistake. */
export const MAX_MOCK_DELAY_MS = 600_000;

/** An ATR for tests: T=1, no historical bytes beyond the category indicator. */
export const DEFAULT_MOCK_ATR = '3B8001800000';

const MIN_RESPONSE = 2;

function _bytes(value: HexOrBytes, name: string): Uint8Array {
  if (typeof value === 'string') return fromHex(value);
  assertBytes(value, name);
  return value.slice();
}

function _response(value: HexOrBytes, name: string): Uint8Array {
  const r = _bytes(value, name);
  if (r.length < MIN_RESPONSE) {
    throw new ProtocolError(`${name}: a response needs SW1 SW2, got ${r.length} byte(s) "${toHex(r).toUpperCase()}"`);
  }
  return r;
}

/**
 * Waits that close() or a card removal can cut short. Each waiter is rejected with a fresh error
 * from `interrupt`, so no two callers share one error object.
 */
class _Interrupts {
  #cancels = new Set<(make: () => Error) => void>();

  /** Resolves after `ms` (0: on the next turn of the event loop, like an answer from hardware). */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.#cancels.delete(cancel);
        resolve();
      };
      const timer = ms > 0 ? setTimeout(done, ms) : undefined;
      const immediate = ms > 0 ? undefined : setImmediate(done);
      const cancel = (make: () => Error): void => {
        if (timer) clearTimeout(timer);
        if (immediate) clearImmediate(immediate);
        this.#cancels.delete(cancel);
        reject(make());
      };
      this.#cancels.add(cancel);
    });
  }

  /** Settles with `work`, unless interrupted first. */
  race<T>(work: () => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cancel = (make: () => Error): void => {
        this.#cancels.delete(cancel);
        reject(make());
      };
      this.#cancels.add(cancel);
      Promise.resolve()
        .then(work)
        .then(
          (v) => {
            if (!this.#cancels.delete(cancel)) return; // already interrupted: the result is dropped
            resolve(v);
          },
          (e: unknown) => {
            if (!this.#cancels.delete(cancel)) return;
            reject(e);
          },
        );
    });
  }

  interrupt(make: () => Error): void {
    for (const cancel of [...this.#cancels]) cancel(make);
  }
}

/**
 * A channel that plays a script. Each transmit must equal the next step's `expect`; it then answers
 * that step's response (after `delayMs`, or on the next tick), or rejects with its `fail` error. A
 * command that departs from the script rejects with a ScriptError whose message prints the expected
 * and the actual command in hex, the step is not consumed, and the failure is remembered so that
 * assertDone() reports it even if the code under test swallowed the rejection.
 *
 * reset() is not scripted: it answers the ATR and is recorded in `log`.
 */
export class ScriptedChannel implements CardChannel {
  readonly #steps: { expect: Uint8Array; respond?: ScriptResponse; fail?: Error; delayMs: number }[] = [];
  readonly #log: ExchangeLogEntry[] = [];
  readonly #failures: string[] = [];
  readonly #queue = new SerialQueue();
  readonly #interrupts = new _Interrupts();
  readonly #atr: Uint8Array;
  #next = 0;
  #closed = false;

  constructor(script: readonly ScriptEntry[] = [], options: { atr?: HexOrBytes } = {}) {
    this.#atr = _bytes(options.atr ?? DEFAULT_MOCK_ATR, 'atr');
    this.push(...script);
  }

  /** Appends steps to the script; each is checked now, so a typo fails where it was written. */
  push(...entries: ScriptEntry[]): this {
    for (const entry of entries) {
      const index = this.#steps.length;
      const step: ScriptStep = Array.isArray(entry) ? { expect: entry[0], respond: entry[1] } : (entry as ScriptStep);
      const name = `script step ${index + 1}`;
      const expect = _bytes(step.expect, `${name} expect`);
      if ((step.respond === undefined) === (step.fail === undefined)) {
        throw new BadInputError(`${name}: give exactly one of respond and fail`);
      }
      if (step.fail !== undefined && !(step.fail instanceof Error)) {
        throw new BadInputError(`${name}: fail must be an Error, got ${typeof step.fail}`);
      }
      const delayMs = step.delayMs ?? 0;
      assertInt(delayMs, `${name} delayMs`, 0, MAX_MOCK_DELAY_MS);
      let respond = step.respond;
      if (respond !== undefined && typeof respond !== 'function') respond = _response(respond, `${name} respond`);
      this.#steps.push({ expect, respond, fail: step.fail, delayMs });
    }
    return this;
  }

  /** Every transmit and reset so far, in order (copies). */
  get log(): readonly ExchangeLogEntry[] {
    return this.#log.slice();
  }

  /** Steps not yet played. */
  get remaining(): number {
    return this.#steps.length - this.#next;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Throws a ScriptError if a command departed from the script or steps remain unplayed. */
  assertDone(): void {
    const problems = [...this.#failures];
    if (this.remaining > 0) {
      const left = this.#steps.slice(this.#next).map((s, i) => `  step ${this.#next + i + 1}: ${toHex(s.expect).toUpperCase()}`);
      problems.push(`${this.remaining} scripted step(s) not played:\n${left.join('\n')}`);
    }
    if (problems.length > 0) throw new ScriptError(`ScriptedChannel: ${problems.join('\n')}`);
  }

  transmit(command: Uint8Array): Promise<Uint8Array> {
    if (!(command instanceof Uint8Array)) {
      return Promise.reject(new BadInputError(`command: expected Uint8Array, got ${command === null ? 'null' : typeof command}`));
    }
    const cmd = command.slice();
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    return this.#queue.run(() => this.#play(cmd));
  }

  async #play(cmd: Uint8Array): Promise<Uint8Array> {
    const entry: ExchangeLogEntry = { op: 'transmit', command: cmd.slice() };
    try {
      if (this.#closed) throw new ChannelClosedError();
      const index = this.#next;
      const step = this.#steps[index];
      await this.#interrupts.sleep(step && bytesEqual(step.expect, cmd) ? step.delayMs : 0);
      if (!step || !bytesEqual(step.expect, cmd)) {
        const message = _mismatch(index + 1, this.#steps.length, step?.expect, cmd);
        this.#failures.push(message);
        throw new ScriptError(`ScriptedChannel: ${message}`);
      }
      this.#next++;
      if (step.fail) throw step.fail;
      const respond = step.respond as ScriptResponse;
      const response =
        typeof respond === 'function'
          ? _response(await this.#interrupts.race(() => respond(cmd.slice())), `script step ${index + 1} respond()`)
          : respond;
      entry.response = _bytes(response, 'response');
      return entry.response.slice();
    } catch (e) {
      entry.error = e;
      throw e;
    } finally {
      this.#log.push(entry);
    }
  }

  reset(cold = false): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    return this.#queue.run(async () => {
      if (this.#closed) throw new ChannelClosedError();
      await this.#interrupts.sleep(0);
      this.#log.push({ op: 'reset', cold, atr: this.#atr.slice() });
      return this.#atr.slice();
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#interrupts.interrupt(() => new ChannelClosedError());
    return Promise.resolve();
  }
}

function _mismatch(stepNo: number, total: number, expected: Uint8Array | undefined, actual: Uint8Array): string {
  const act = toHex(actual).toUpperCase();
  if (!expected) {
    return `unexpected command after the last of ${total} scripted step(s)\n  expected: (end of script)\n  actual:   ${act}`;
  }
  const exp = toHex(expected).toUpperCase();
  let at = 0;
  while (at < expected.length && at < actual.length && expected[at] === actual[at]) at++;
  return (
    `step ${stepNo} of ${total}: unexpected command\n` +
    `  expected: ${exp}\n` +
    `  actual:   ${act}\n` +
    `            ${' '.repeat(at * 2)}^ first difference at byte ${at}` +
    (expected.length !== actual.length ? ` (expected ${expected.length} bytes, got ${actual.length})` : '')
  );
}

/** A card as a function: one C-APDU in, one R-APDU (SW included) out. */
export type CardHandler = (command: Uint8Array) => Uint8Array | Promise<Uint8Array>;

export interface HandlerChannelOptions {
  /** The ATR reset() answers. Default DEFAULT_MOCK_ATR. */
  atr?: HexOrBytes;
  /** Delay before every answer, in ms. Default 0: the answer comes on the next tick. */
  latencyMs?: number;
  /** Whether a card is in the reader (and powered) at the start. Default true. */
  present?: boolean;
  /** Called on every successful reset, so the simulated card can drop its volatile state. */
  onReset?: (cold: boolean) => void;
}

export interface HandlerCounters {
  /** Commands handed to the handler. */
  transmits: number;
  /** Successful resets, warm and cold. */
  resets: number;
  /** Of those, cold resets. */
  coldResets: number;
  /** removeCard() calls that took a card out. */
  removals: number;
  /** Transmits and resets that rejected with CardRemovedError or NO_CARD. */
  refused: number;
}

/**
 * A channel whose card is a function, with the controls of a real reader:
 *
 * - `removeCard()` takes the card out: the transmit in progress and any later one reject with
 *   CardRemovedError; reset() rejects with a HiltError of code NO_CARD while no card is in.
 * - `insertCard()` puts a card back, unpowered, as a reader does: transmits keep rejecting with
 *   CardRemovedError until reset() powers it (PC/SC likewise reports a removed card until the
 *   application reconnects).
 * - `counters` reports what happened.
 *
 * A handler that throws makes the transmit reject with that error (a broken transport); a handler
 * that answers fewer than two bytes makes it reject with ProtocolError.
 */
export class HandlerChannel implements CardChannel {
  readonly #handler: CardHandler;
  readonly #atr: Uint8Array;
  readonly #latencyMs: number;
  readonly #onReset: ((cold: boolean) => void) | undefined;
  readonly #queue = new SerialQueue();
  readonly #interrupts = new _Interrupts();
  readonly #counters: HandlerCounters = { transmits: 0, resets: 0, coldResets: 0, removals: 0, refused: 0 };
  #present: boolean;
  #powered: boolean;
  #closed = false;

  constructor(handler: CardHandler, options: HandlerChannelOptions = {}) {
    if (typeof handler !== 'function') throw new BadInputError(`handler: expected a function, got ${typeof handler}`);
    this.#handler = handler;
    this.#atr = _bytes(options.atr ?? DEFAULT_MOCK_ATR, 'atr');
    this.#latencyMs = options.latencyMs ?? 0;
    assertInt(this.#latencyMs, 'latencyMs', 0, MAX_MOCK_DELAY_MS);
    this.#onReset = options.onReset;
    this.#present = options.present ?? true;
    this.#powered = this.#present;
  }

  get counters(): Readonly<HandlerCounters> {
    return { ...this.#counters };
  }

  get present(): boolean {
    return this.#present;
  }

  get closed(): boolean {
    return this.#closed;
  }

  removeCard(): void {
    if (this.#present) this.#counters.removals++;
    this.#present = false;
    this.#powered = false;
    this.#interrupts.interrupt(() => new CardRemovedError('card removed during the exchange'));
  }

  insertCard(): void {
    this.#present = true;
  }

  transmit(command: Uint8Array): Promise<Uint8Array> {
    if (!(command instanceof Uint8Array)) {
      return Promise.reject(new BadInputError(`command: expected Uint8Array, got ${command === null ? 'null' : typeof command}`));
    }
    const cmd = command.slice();
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    return this.#queue.run(async () => {
      if (this.#closed) throw new ChannelClosedError();
      await this.#interrupts.sleep(this.#latencyMs);
      if (!this.#powered) {
        this.#counters.refused++;
        throw new CardRemovedError(this.#present ? 'card was removed since the last reset; reset() powers it up' : 'no card in the reader');
      }
      this.#counters.transmits++;
      const response = await this.#interrupts.race(() => this.#handler(cmd));
      return _response(response, 'handler');
    });
  }

  reset(cold = false): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    return this.#queue.run(async () => {
      if (this.#closed) throw new ChannelClosedError();
      await this.#interrupts.sleep(this.#latencyMs);
      if (!this.#present) {
        this.#counters.refused++;
        throw new HiltError('NO_CARD', 'no card in the reader');
      }
      this.#powered = true;
      this.#counters.resets++;
      if (cold) this.#counters.coldResets++;
      this.#onReset?.(cold);
      return this.#atr.slice();
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#interrupts.interrupt(() => new ChannelClosedError());
    return Promise.resolve();
  }
}
