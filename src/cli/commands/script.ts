/**
 * `hilt script <file> [--reader R] [--get-response] [--expect SW...] [--trace] [--json]`: runs an APDU
 * script in pcsc-tools' scriptor format (src/reader/script.ts: hex APDUs, reset, exit, # comments,
 * and hilt's `# --expect ...` lines) and prints `>` / `<` lines like scriptor. "-" reads the script
 * from standard input.
 *
 * As scriptor, APDUs go to the card as written: no automatic GET RESPONSE unless --get-response.
 * The exit code is 1 at the first answer that breaks an expectation (a `# --expect` line in the
 * script, or --expect for every APDU without one of its own), after printing that answer.
 */
import { readFileSync } from 'node:fs';
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import { addCardOptions, describeSession, openCardSession, parseSwPatterns, type CardCommandOptions } from './send.js';
import { formatStep, parseScript, runScript, type ScriptRunResult, type StepResult } from '../../reader/script.js';
import { BadInputError, HiltError } from '../../util/errors.js';

interface ScriptOptions extends CardCommandOptions {
  getResponse?: boolean;
  expect?: string[];
}

/** A script stopped at a broken expectation. */
export class ScriptExpectationError extends HiltError {
  readonly line: number;
  constructor(line: number, message: string) {
    super('SW', message);
    this.line = line;
  }
}

async function readInput(ctx: CliContext): Promise<string> {
  const input = ctx.input ?? process.stdin;
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export const registerScript: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('script')
    .description('run an APDU script in scriptor format (hex APDUs, reset, exit, # comments, # --expect lines)')
    .argument('<file>', 'the script, or - for standard input');
  addCardOptions(cmd)
    .option('--get-response', 'fetch 61xx answers with GET RESPONSE and re-issue 6Cxx (scriptor does not)')
    .option('--expect <sw>', 'status words every APDU without its own # --expect must answer (repeatable)', parseSwPatterns)
    .option('--json', 'print one JSON document')
    .action(async (file: string, opts: ScriptOptions) => {
      let text: string;
      if (file === '-') text = await readInput(ctx);
      else {
        try {
          text = readFileSync(file, 'utf8');
        } catch (e) {
          throw new BadInputError(`cannot read script ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      const script = parseScript(text); // every line checked before the card is touched
      const session = await openCardSession(opts, ctx, Boolean(opts.getResponse));
      let result: ScriptRunResult;
      const done: StepResult[] = [];
      try {
        if (!opts.json) ctx.io.out(describeSession(session.reader));
        result = await runScript(script, session.channel, {
          expect: opts.expect,
          onStep: (step) => {
            done.push(step);
            if (!opts.json && step.kind !== 'exit') ctx.io.out(formatStep(step));
          },
        });
      } catch (e) {
        if (opts.json) {
          ctx.io.out(toJson({ reader: session.reader.name, transport: session.reader.transport, steps: done, ok: false, error: errorFields(e) }));
        }
        throw e;
      } finally {
        await session.close();
      }
      if (opts.json) {
        ctx.io.out(
          toJson({
            reader: session.reader.name,
            transport: session.reader.transport,
            protocol: session.reader.protocol,
            atr: session.reader.atr,
            steps: result.steps,
            ok: result.ok,
            failure: result.failure ?? null,
          }),
        );
      }
      if (result.failure) throw new ScriptExpectationError(result.failure.line, result.failure.message);
    });
};

function errorFields(e: unknown): { code: string; message: string } {
  return {
    code: e instanceof HiltError ? e.code : 'UNKNOWN',
    message: e instanceof Error ? e.message : String(e),
  };
}
