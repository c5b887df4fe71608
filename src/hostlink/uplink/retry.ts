/**
 * What the uplink's retry loops (forwarder.ts for the outbox, reversal.ts for reversals) share: an
 * abortable wait between attempts and the error text kept with a deferred record.
 */
import { HiltError } from '../../util/errors.js';

/** Longest error text kept with a deferred record. */
export const MAX_ERROR_TEXT = 500;

/** Waits `ms`, or less when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One line for the store: the code of a hilt error and its message, cut to MAX_ERROR_TEXT. */
export function errorText(e: unknown): string {
  const text = e instanceof HiltError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT - 1)}…` : text;
}
