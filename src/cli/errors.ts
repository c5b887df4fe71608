/**
 * The single error handler of the CLI: a HiltError (a user mistake or an expected failure) becomes
 * one line `hilt: <message>` and exit code 1 (2 for usage errors); anything else is a bug and is
 * printed with its stack, exit code 70 (EX_SOFTWARE).
 */
import { isHiltError } from '../util/errors.js';
import type { Output } from './output.js';

export function reportError(e: unknown, io: Output): number {
  if (isHiltError(e)) {
    io.err(`hilt: ${e.message}`);
    return e.code === 'BAD_INPUT' ? 2 : 1;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.err(`hilt: internal error: ${err.stack ?? err.message}`);
  return 70;
}
