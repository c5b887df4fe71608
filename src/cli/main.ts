/**
 * The CLI entry: wires one file per command into commander and runs it. Every command resolves to
 * an exit code; errors go through the one handler in errors.ts.
 */
import { Command, CommanderError } from 'commander';
import { processOutput, type Output } from './output.js';
import { reportError } from './errors.js';
import type { CliContext } from './context.js';
import { commands } from './commands/index.js';

export const VERSION = '0.1.0';

export function buildProgram(ctx: CliContext, setExit: (code: number) => void): Command {
  const program = new Command('hilt')
    .description('hardware-in-the-loop terminal and smart-card stack: APDUs over PC/SC or an emulated card')
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.out(s),
      writeErr: (s) => ctx.io.err(s),
      // Usage mistakes (unknown command or option, missing argument) are one line, like every other error.
      outputError: (s, write) => write(`hilt: ${s.replace(/^error: /, '').trim()} (see hilt --help)\n`),
    });
  for (const register of commands) register(program, ctx, setExit);
  return program;
}

/** Runs the CLI on argv (as process.argv: node, script, args...) and returns the exit code. */
export async function run(argv: string[], io: Output = processOutput, extra: Omit<CliContext, 'io'> = {}): Promise<number> {
  let code = 0;
  const program = buildProgram({ io, ...extra }, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message (help, version, or a usage error).
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, io);
  }
}
