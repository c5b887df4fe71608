/**
 * Serialisation, the CardChannel rule "a second transmit issued before the first resolved waits for
 * it", kept in one place so transports and wrappers do not each reinvent it.
 *
 * A wrapper that turns one transmit into several exchanges (GET RESPONSE, chaining, fallback) must
 * hold the inner channel for the whole sequence: the inner channel serialises single transmits, but
 * another caller's command slipped between a chain's links would break the chain. `serialChannel`
 * gives a wrapper that guarantee together with the close() rules of the contract.
 */
import type { CardChannel, Wrapper } from './channel.js';
import { ChannelClosedError } from '../util/errors.js';
import { assertBytes } from '../util/assert.js';

/** Runs tasks one at a time, in call order. A failing task does not stop the ones queued after it. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  /** Tasks started or waiting, the one running included. */
  get pending(): number {
    return this.#pending;
  }

  run<T>(task: () => T | Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(task);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tail = settled;
    void settled.then(() => {
      this.#pending--;
    });
    return result;
  }
}

/** What a wrapper does with one exchange; runs alone on the inner channel. */
export interface SerialBehaviour {
  transmit(command: Uint8Array): Promise<Uint8Array>;
  /** Defaults to `inner.reset(cold)`. Wrappers holding card state drop it here. */
  reset?(cold: boolean): Promise<Uint8Array>;
}

/**
 * A CardChannel over `inner` that runs `behaviour` one call at a time and keeps the close() rules:
 * close is idempotent and closes `inner` once; a transmit or reset issued after close, waiting in
 * the queue when close was called, or still running when close was called rejects with
 * ChannelClosedError (a result that arrives after close is dropped, as the contract asks).
 */
export function serialChannel(inner: CardChannel, behaviour: SerialBehaviour): CardChannel {
  const queue = new SerialQueue();
  let closed = false;
  let closing: Promise<void> | undefined;

  const guarded = <T>(work: () => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(new ChannelClosedError());
    return queue.run(async () => {
      if (closed) throw new ChannelClosedError();
      const result = await work();
      if (closed) throw new ChannelClosedError();
      return result;
    });
  };

  return {
    async transmit(command: Uint8Array): Promise<Uint8Array> {
      assertBytes(command, 'command'); // a rejection, not a synchronous throw: this function is async
      return guarded(() => behaviour.transmit(command));
    },
    reset(cold = false): Promise<Uint8Array> {
      return guarded(() => (behaviour.reset ? behaviour.reset(cold) : inner.reset(cold)));
    },
    close(): Promise<void> {
      closed = true;
      closing ??= inner.close();
      return closing;
    },
  };
}

/** Makes any channel keep the serialisation rule (for a transport that does not do it itself). */
export const serialized: Wrapper = (inner) => serialChannel(inner, { transmit: (command) => inner.transmit(command) });
