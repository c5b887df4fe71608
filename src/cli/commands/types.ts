import type { Command } from 'commander';
import type { CliContext } from '../context.js';

/** Each command file exports one of these: it adds its subcommand to the program. */
export type RegisterCommand = (program: Command, ctx: CliContext, setExit: (code: number) => void) => void;
