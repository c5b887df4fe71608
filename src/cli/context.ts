/**
 * What every command gets: where to print, and for long-running commands (emulator, monitor, hosts)
 * a signal that stops them and the stream they read control lines from. Kept small so commands
 * stay testable in-process.
 */
import type { Readable } from 'node:stream';
import type { Output } from './output.js';

export interface CliContext {
  io: Output;
  /** Aborted when a long-running command must stop (SIGINT/SIGTERM in the real process). */
  signal?: AbortSignal;
  /** Control lines for interactive commands; the process's stdin by default. */
  input?: Readable;
}
