/**
 * `hilt apdu <hex> [--command|--response] [--json]`: decodes one APDU and explains every field.
 *
 * Auto mode (the default) reads the bytes as a command APDU when they decode as one and, when the last
 * two bytes are a status word the dictionary knows, also shows the response reading, labelled as the
 * alternative. Bytes that are not a command but end in a known status word are read as a response.
 * `--command` / `--response` force one reading. Malformed input is one error line and a non-zero exit.
 */
import type { RegisterCommand } from './types.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { BadInputError, DecodeError } from '../../util/errors.js';
import { CommandApdu } from '../../apdu/command.js';
import { ResponseApdu } from '../../apdu/response.js';
import { isKnownSw } from '../../apdu/sw.js';
import {
  describeCommand,
  describeResponse,
  type ApduField,
  type CommandDescription,
  type ResponseDescription,
} from '../../apdu/describe.js';
import { table, toJson } from '../output.js';

export type ApduMode = 'auto' | 'command' | 'response';

/** What `--json` prints: both readings, `primary` naming the one shown first. */
export interface ApduReport {
  input: string;
  mode: ApduMode;
  primary: 'command' | 'response';
  command: CommandDescription | null;
  response: ResponseDescription | null;
}

/** Data hex longer than this is shortened in the human table (never in --json). */
const MAX_TABLE_HEX = 64;

interface ApduOptions {
  command?: boolean;
  response?: boolean;
  json?: boolean;
}

function endsInKnownSw(bytes: Uint8Array): boolean {
  const n = bytes.length;
  return n >= 2 && isKnownSw((bytes[n - 2] << 8) | bytes[n - 1]);
}

/** Decodes `bytes` the way `mode` asks; throws a HiltError when no reading applies. */
export function analyseApdu(bytes: Uint8Array, mode: ApduMode): ApduReport {
  const input = toHex(bytes).toUpperCase();
  if (mode === 'command') {
    return { input, mode, primary: 'command', command: describeCommand(CommandApdu.decode(bytes)), response: null };
  }
  if (mode === 'response') {
    return { input, mode, primary: 'response', command: null, response: describeResponse(ResponseApdu.decode(bytes)) };
  }
  let command: CommandDescription | null = null;
  let commandWhy = '';
  try {
    command = describeCommand(CommandApdu.decode(bytes));
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    commandWhy = e.message;
  }
  let response: ResponseDescription | null = null;
  let responseWhy = bytes.length < 2 ? 'shorter than SW1 SW2' : `${input.slice(-4)} is not a known status word (use --response to force)`;
  if (endsInKnownSw(bytes)) {
    try {
      response = describeResponse(ResponseApdu.decode(bytes));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      responseWhy = e.message;
    }
  }
  if (command) return { input, mode, primary: 'command', command, response };
  if (response) return { input, mode, primary: 'response', command: null, response };
  throw new DecodeError('APDU_MALFORMED', `not an APDU: as a command, ${commandWhy}; as a response, ${responseWhy}`, -1);
}

function shorten(hex: string): string {
  return hex.length <= MAX_TABLE_HEX ? hex : `${hex.slice(0, MAX_TABLE_HEX)}…`;
}

function fieldTable(fields: readonly ApduField[]): string {
  return table(
    ['field', 'hex', 'meaning'],
    fields.map((f) => [f.field, shorten(f.hex), f.meaning]),
  );
}

function commandText(d: CommandDescription): string {
  const form = d.case === '1' ? 'no length fields' : d.extended ? 'extended length' : 'short length';
  const lines = [`command APDU: case ${d.case} (${form}), ${d.length} bytes`, fieldTable(d.fields)];
  for (const w of d.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

function responseText(d: ResponseDescription): string {
  return [`response APDU: ${d.nr} data bytes, status ${d.sw.hex} (${d.sw.category})`, fieldTable(d.fields)].join('\n');
}

export function formatApduReport(r: ApduReport): string {
  const parts: string[] = [];
  if (r.primary === 'command' && r.command) {
    parts.push(commandText(r.command));
    if (r.response) {
      parts.push(`alternative reading: the last two bytes are a known status word, so this may be a response APDU\n${responseText(r.response)}`);
    }
  } else if (r.response) {
    parts.push(responseText(r.response));
  }
  return parts.join('\n\n');
}

export const registerApdu: RegisterCommand = (program, ctx) => {
  program
    .command('apdu')
    .description('decode a command or response APDU given in hex and explain every field')
    .argument('<hex...>', 'the APDU bytes in hex (spaces, colons and dashes between bytes are fine)')
    .option('--command', 'read the bytes as a command APDU only')
    .option('--response', 'read the bytes as a response APDU only')
    .option('--json', 'print one JSON document')
    .action((hexParts: string[], opts: ApduOptions) => {
      if (opts.command && opts.response) throw new BadInputError('--command and --response cannot be used together');
      const bytes = fromHex(hexParts.join(' '));
      const mode: ApduMode = opts.command ? 'command' : opts.response ? 'response' : 'auto';
      const report = analyseApdu(bytes, mode);
      ctx.io.out(opts.json ? toJson(report) : formatApduReport(report));
    });
};
