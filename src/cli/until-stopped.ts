/**
 * How the CLI's long-running commands (hilt emulator, hilt hosts) wait: until SIGINT, SIGTERM, the
 * context's abort signal or their own stop(), with optional extra signal handlers (the emulator's
 * SIGUSR1/SIGUSR2), every listener removed afterwards.
 */
import type { CliContext } from './context.js';

export interface Stopper {
  /** Ends the wait (idempotent). */
  stop: () => void;
  /** Resolves once stopped; the listeners are gone by then. */
  stopped: Promise<void>;
}

export function untilStopped(ctx: CliContext, extra: Partial<Record<NodeJS.Signals, () => void>> = {}): Stopper {
  let resolve: () => void = () => undefined;
  const signalled = new Promise<void>((r) => (resolve = r));
  const stop = (): void => resolve();
  const handlers: [NodeJS.Signals, () => void][] = [['SIGINT', stop], ['SIGTERM', stop], ...(Object.entries(extra) as [NodeJS.Signals, () => void][])];
  for (const [sig, fn] of handlers) process.on(sig, fn);
  ctx.signal?.addEventListener('abort', stop, { once: true });
  if (ctx.signal?.aborted) stop();
  const stopped = signalled.then(() => {
    for (const [sig, fn] of handlers) process.off(sig, fn);
    ctx.signal?.removeEventListener('abort', stop);
  });
  return { stop, stopped };
}
