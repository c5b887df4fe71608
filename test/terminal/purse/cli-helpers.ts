/**
 * Shared by the purse CLI tests: `hilt` run in-process through the CLI entry (src/cli/main.ts) with
 * its output captured, a free loopback port, and `hilt emulator ...` running until stopped.
 */
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { run } from '../../../src/cli/main.js';
import type { CliContext } from '../../../src/cli/context.js';
import type { Output } from '../../../src/cli/output.js';

export interface Result {
  code: number;
  out: string;
  err: string[];
}

export async function hilt(argv: string[], extra: Omit<CliContext, 'io'> = {}, onOut?: (t: string) => void): Promise<Result> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Output = {
    out: (t) => {
      out.push(t);
      onOut?.(t);
    },
    err: (t) => err.push(t),
  };
  const code = await run(['node', 'hilt', ...argv], io, extra);
  return { code, out: out.join('\n'), err };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** `hilt emulator ...` running until stopped; resolves once it printed its ready line. */
export async function startEmulator(args: string[]): Promise<{ stop(): Promise<Result>; lines: string[] }> {
  const stop = new AbortController();
  const lines: string[] = [];
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((r) => (ready = r));
  const running = hilt(['emulator', ...args], { signal: stop.signal, input: new PassThrough() }, (t) => {
    lines.push(t);
    if (t.startsWith('plugging into vpcd')) ready();
  });
  await Promise.race([isReady, running.then((r) => Promise.reject(new Error(`emulator ended: ${r.code} ${r.err.join(' ')}`)))]);
  return {
    lines,
    stop: async () => {
      stop.abort();
      return running;
    },
  };
}
