/** What every command gets: where to print. Kept small so commands stay testable in-process. */
import type { Output } from './output.js';

export interface CliContext {
  io: Output;
}
