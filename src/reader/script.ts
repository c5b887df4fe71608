/**
 * APDU scripts in the format of pcsc-tools' `scriptor`, parsed and run over any CardChannel.
 *
 * The format (what scriptor reads), one item per line:
 *
 *   00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47 00    an APDU in hex, bytes separated by spaces
 *   00A4040009F068696C74444941470                   ... or written without spaces
 *   80 14 00 00 05 01 02 \                          ... a line ending in \ continues on the next
 *   03 04 05
 *   reset                                           warm reset (scriptor: any line containing "reset")
 *   exit                                            stop here (any line containing "exit")
 *   # a comment                                     comment; blank lines are skipped too
 *
 * hilt additions, all written as comments so the same file still runs under scriptor:
 *
 *   # --expect 9000 61XX        from here on, every APDU must answer one of these status words
 *                               (four hex digits, X for any nibble); `# --expect any` turns it off
 *   # --expect-next 6A82        the next APDU only
 *   # --expect-response 6F XX .. 90 00   the next APDU's whole answer, byte for byte; XX is any byte
 *
 * and, not understood by scriptor: `reset cold` (power off and on), a `#` comment after an APDU, and
 * indented comments. The runner stops at the first answer that breaks an expectation and reports it
 * (`ok: false`, `failure`); transport errors (card removed, ...) are thrown as they are.
 *
 * Output (formatStep): like scriptor's, `> ` and the command, `< ` and the answer in hex, 16 bytes a
 * line, then ` : ` and the status word's meaning (hilt's status-word table, not scriptor's wording);
 * `> RESET` and `< OK: ` with the ATR for a reset.
 */
import type { CardChannel } from './channel.js';
import { describeSw, swMatches, type SwPattern } from '../apdu/sw.js';
import { BadInputError } from '../util/errors.js';
import { fromHex, hexByte, hexWord, toSpacedHex } from '../util/bytes.js';

/** What an APDU's answer must be. */
export type ScriptExpectation =
  | { kind: 'any' }
  | { kind: 'sw'; patterns: string[] }
  /** Whole response; null is a wildcard byte. */
  | { kind: 'response'; bytes: (number | null)[] };

export type ScriptStep =
  | { kind: 'apdu'; line: number; command: Uint8Array; expect?: ScriptExpectation }
  | { kind: 'reset'; line: number; cold: boolean }
  | { kind: 'exit'; line: number };

export interface ParsedScript {
  steps: ScriptStep[];
}

/** Longest script accepted, in lines; a bigger file is not an APDU script. */
export const MAX_SCRIPT_LINES = 1_000_000;

const DIRECTIVE = /^#\s*--(expect-next|expect-response|expect)\b(.*)$/i;

function lineError(line: number, message: string): BadInputError {
  return new BadInputError(line > 0 ? `script line ${line}: ${message}` : `--expect: ${message}`);
}

function parsePatterns(line: number, text: string): ScriptExpectation {
  const words = text.trim().split(/[\s,]+/).filter(Boolean);
  if (words.length === 0 || (words.length === 1 && words[0].toLowerCase() === 'any')) return { kind: 'any' };
  const patterns = words.map((w) => w.toUpperCase());
  for (const p of patterns) {
    try {
      swMatches(0x9000, p);
    } catch {
      throw lineError(line, `expected status words like 9000 or 61XX, got "${p}"`);
    }
  }
  return { kind: 'sw', patterns };
}

function parseResponsePattern(line: number, text: string): ScriptExpectation {
  const tokens = text
    .trim()
    .replace(/([0-9A-Fa-fXx]{2})(?=[0-9A-Fa-fXx])/g, '$1 ')
    .split(/\s+/)
    .filter(Boolean);
  if (tokens.length < 2) throw lineError(line, '--expect-response needs the whole answer, at least SW1 SW2');
  const bytes = tokens.map((t) => {
    if (/^xx$/i.test(t)) return null;
    if (!/^[0-9A-Fa-f]{2}$/.test(t)) throw lineError(line, `--expect-response: "${t}" is not a hex byte or XX`);
    return parseInt(t, 16);
  });
  return { kind: 'response', bytes };
}

/** Parses a whole script; every error names its line. Nothing is sent before the whole file parses. */
export function parseScript(text: string): ParsedScript {
  if (typeof text !== 'string') throw new BadInputError('script: expected text');
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_SCRIPT_LINES) throw new BadInputError(`script: ${lines.length} lines, more than ${MAX_SCRIPT_LINES}`);
  const steps: ScriptStep[] = [];
  let sticky: ScriptExpectation | undefined;
  let next: ScriptExpectation | undefined;
  let pending = '';
  let pendingLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i];
    const trimmed = raw.trim();
    // As scriptor: blank and comment lines are skipped, even between the parts of a continued APDU.
    if (pending !== '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (pending === '') {
      if (trimmed === '') continue;
      if (trimmed.startsWith('#')) {
        const d = DIRECTIVE.exec(trimmed);
        if (d) {
          const name = d[1].toLowerCase();
          if (name === 'expect') sticky = parsePatterns(n, d[2]);
          else if (name === 'expect-next') next = parsePatterns(n, d[2]);
          else next = parseResponsePattern(n, d[2]);
        }
        continue;
      }
      if (/exit/i.test(trimmed)) {
        steps.push({ kind: 'exit', line: n });
        break;
      }
      if (/reset/i.test(trimmed)) {
        steps.push({ kind: 'reset', line: n, cold: /\bcold\b/i.test(trimmed) });
        continue;
      }
      pendingLine = n;
    }
    const code = raw.replace(/#.*$/, '').trim();
    if (code.endsWith('\\')) {
      pending += `${code.slice(0, -1)} `;
      continue;
    }
    const hex = pending + code;
    pending = '';
    let command: Uint8Array;
    try {
      command = fromHex(hex);
    } catch (e) {
      throw lineError(pendingLine, `${(e as Error).message}; expected an APDU in hex, reset, exit or a # comment`);
    }
    if (command.length < 4) throw lineError(pendingLine, `an APDU has at least 4 bytes (CLA INS P1 P2), got ${command.length}`);
    const step: ScriptStep = { kind: 'apdu', line: pendingLine, command };
    const expect = next ?? sticky;
    if (expect) step.expect = expect;
    next = undefined;
    steps.push(step);
  }
  if (pending !== '') throw lineError(pendingLine, 'the script ends in the middle of an APDU (its last line ends in \\)');
  return { steps };
}

export type StepResult =
  | {
      kind: 'apdu';
      line: number;
      command: Uint8Array;
      response: Uint8Array;
      /** SW1 SW2, four hex digits. */
      sw: string;
      meaning: string;
      /** The answer met the expectation (true when there was none). */
      ok: boolean;
      /** The expectation, as text, when there was one. */
      expected?: string;
    }
  | { kind: 'reset'; line: number; cold: boolean; atr: Uint8Array }
  | { kind: 'exit'; line: number };

export interface ScriptRunResult {
  steps: StepResult[];
  /** No expectation was broken. */
  ok: boolean;
  /** The first broken expectation; the script stopped there. */
  failure?: { line: number; message: string };
}

export interface ScriptRunOptions {
  /** Status words every APDU without an expectation of its own must answer (the CLI's --expect). */
  expect?: SwPattern[];
  /** Called with each step as soon as it is done (to print as the script runs). */
  onStep?: (step: StepResult) => void;
}

function expectationText(e: ScriptExpectation): string {
  if (e.kind === 'any') return 'any';
  if (e.kind === 'sw') return e.patterns.join(' or ');
  return e.bytes.map((b) => (b === null ? 'XX' : hexByte(b))).join(' ');
}

function meets(e: ScriptExpectation, response: Uint8Array, sw: number): boolean {
  if (e.kind === 'any') return true;
  if (e.kind === 'sw') return e.patterns.some((p) => swMatches(sw, p));
  return e.bytes.length === response.length && e.bytes.every((b, i) => b === null || b === response[i]);
}

/** Runs the steps in order on `channel` (the caller decides the wrappers: raw, GET RESPONSE, trace). */
export async function runScript(script: ParsedScript, channel: CardChannel, options: ScriptRunOptions = {}): Promise<ScriptRunResult> {
  const given = (options.expect ?? []).map((p) => (typeof p === 'number' ? hexWord(p) : p));
  const fallback = given.length > 0 ? parsePatterns(0, given.join(' ')) : undefined;
  const steps: StepResult[] = [];
  const done = (s: StepResult): void => {
    steps.push(s);
    options.onStep?.(s);
  };
  for (const step of script.steps) {
    if (step.kind === 'exit') {
      done({ kind: 'exit', line: step.line });
      break;
    }
    if (step.kind === 'reset') {
      const atr = await channel.reset(step.cold);
      done({ kind: 'reset', line: step.line, cold: step.cold, atr });
      continue;
    }
    const response = await channel.transmit(step.command);
    const sw = (response[response.length - 2] << 8) | response[response.length - 1];
    const expectation = step.expect ?? fallback;
    const ok = expectation ? meets(expectation, response, sw) : true;
    const result: StepResult = { kind: 'apdu', line: step.line, command: step.command, response, sw: hexWord(sw), meaning: describeSw(sw).meaning, ok };
    if (expectation && expectation.kind !== 'any') result.expected = expectationText(expectation);
    done(result);
    if (!ok && expectation) {
      const what =
        expectation.kind === 'response'
          ? `answer ${toSpacedHex(response)} differs from the expected ${expectationText(expectation)}`
          : `status word ${hexWord(sw)} (${describeSw(sw).meaning}); expected ${expectationText(expectation)}`;
      return { steps, ok: false, failure: { line: step.line, message: `script line ${step.line}: ${what}` } };
    }
  }
  return { steps, ok: true };
}

/** Response bytes the way scriptor prints them: spaced hex, a line break after every 16 bytes. */
export function formatScriptorHex(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) lines.push(toSpacedHex(bytes.subarray(i, i + 16)));
  return lines.join(' \n');
}

/** The `>` / `<` lines of one step, scriptor style (no trailing newline). */
export function formatStep(step: StepResult): string {
  switch (step.kind) {
    case 'exit':
      return '';
    case 'reset':
      return `> RESET${step.cold ? ' (cold)' : ''}\n< OK: ${toSpacedHex(step.atr)}`;
    case 'apdu':
      return `> ${toSpacedHex(step.command)}\n< ${formatScriptorHex(step.response)} : ${step.meaning}`;
  }
}
