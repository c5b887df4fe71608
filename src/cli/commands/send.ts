/**
 * `hilt send <apdu>... [--reader R] [--raw] [--chain N] [--expect SW...] [--reset|--cold] [--trace] [--json]`:
 * sends APDUs to the card in a reader, like `opensc-tool --send-apdu`, with GET RESPONSE (61xx) and
 * wrong-Le re-issue (6Cxx) done automatically (unless --raw), and each status word explained.
 *
 * Each argument is one APDU in hex ("00A4040000", or quoted with spaces "00 A4 04 00 00"). Exit code
 * 0 whatever the card answered, unless --expect is given and an answer's status word is not one of
 * the patterns (exit 1 after printing that answer).
 *
 * Also home of the options every card command shares (reader selection, share mode, protocol,
 * trace), used by `hilt script` too.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Command } from 'commander';
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { parseIntOption } from '../options.js';
import { toJson } from '../output.js';
import { openReader, parseReaderSelection, stackChannel, DEFAULT_VPCD_WAIT_MS, type OpenedReader, type ReaderSelection } from '../../reader/select.js';
import { parseProtocolPreference, parseShareMode, type PcscProtocolPreference, type PcscShareMode } from '../../reader/pcsc.js';
import { jsonTraceSink, textTraceSink, type TraceRecord } from '../../reader/trace.js';
import type { CardChannel } from '../../reader/channel.js';
import { MAX_EXTENDED_NC } from '../../apdu/command.js';
import { describeSw, swMatches, StatusWordError } from '../../apdu/sw.js';
import { BadInputError } from '../../util/errors.js';
import { fromHex, hexWord, toSpacedHex } from '../../util/bytes.js';
import { warningsTo } from '../../util/logger.js';

/** The options of every command that talks to a card. */
export interface CardCommandOptions {
  reader?: ReaderSelection;
  share: PcscShareMode;
  protocol: PcscProtocolPreference;
  wait: number;
  trace?: boolean;
  traceFile?: string;
  traceJson?: boolean;
  traceWire?: boolean;
  chain?: number;
  json?: boolean;
}

/** Bytes per line when a long response is printed for people. */
const HEX_LINE_BYTES = 32;

export function parseSwPatterns(value: string, previous: string[] | undefined): string[] {
  const out = [...(previous ?? [])];
  for (const w of value.split(/[\s,]+/).filter(Boolean)) {
    const p = w.toUpperCase();
    try {
      swMatches(0x9000, p);
    } catch {
      throw new BadInputError(`--expect: expected status words like 9000 or 61XX, got "${w}"`);
    }
    out.push(p);
  }
  return out;
}

/** --reader: the selection syntax of select.ts. */
export function addReaderOption(cmd: Command): Command {
  return cmd.option('--reader <reader>', 'index, name substring, pcsc:NAME or vpcd://host:port (default: first reader with a card)', (v: string) =>
    parseReaderSelection(v),
  );
}

/** The options of commands that exchange APDUs. */
export function addCardOptions(cmd: Command): Command {
  return addReaderOption(cmd)
    .option('--share <mode>', 'PC/SC share mode: shared or exclusive', (v: string) => parseShareMode(v), 'shared' as PcscShareMode)
    .option('--protocol <p>', 'PC/SC protocol: T=0, T=1 or any', (v: string) => parseProtocolPreference(v), 'any' as PcscProtocolPreference)
    .option('--wait <ms>', 'vpcd://: how long to wait for a card to connect', parseIntOption('--wait', 1, 3_600_000), DEFAULT_VPCD_WAIT_MS)
    .option('--chain <n>', 'send commands with more than n data bytes as a command chain', parseIntOption('--chain', 1, MAX_EXTENDED_NC))
    .option('--trace', 'write an APDU trace (docs/trace-format.md) to stderr')
    .option('--trace-file <path>', 'write the APDU trace to a file (appends)')
    .option('--trace-json', 'write the trace as JSON lines')
    .option('--trace-wire', 'trace every APDU on the wire (each GET RESPONSE, each chain link)');
}

/** An opened reader with the CLI's channel stack over it. */
export interface CardSession {
  reader: OpenedReader;
  channel: CardChannel;
  close(): Promise<void>;
}

/** Opens the selected reader and stacks trace / GET RESPONSE / chaining as the options say. */
export async function openCardSession(opts: CardCommandOptions, ctx: CliContext, getResponse: boolean): Promise<CardSession> {
  let traceFd: number | undefined;
  let sink: ((record: TraceRecord) => void) | undefined;
  if (opts.trace || opts.traceFile) {
    let write: (text: string) => void;
    if (opts.traceFile) {
      try {
        traceFd = openSync(opts.traceFile, 'a');
      } catch (e) {
        throw new BadInputError(`--trace-file: cannot open ${opts.traceFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      const fd = traceFd;
      write = (text) => {
        writeSync(fd, text);
      };
    } else {
      write = (text) => ctx.io.err(text);
    }
    sink = opts.traceJson ? jsonTraceSink(write) : textTraceSink(write);
  }
  const closeTrace = (): void => {
    if (traceFd !== undefined) closeSync(traceFd);
    traceFd = undefined;
  };
  let reader: OpenedReader;
  try {
    reader = await openReader(opts.reader, {
      share: opts.share,
      protocol: opts.protocol,
      waitMs: opts.wait,
      vpcdLogger: warningsTo((line) => ctx.io.err(line), 'hilt: vpcd'),
    });
  } catch (e) {
    closeTrace();
    throw e;
  }
  const channel = stackChannel(reader.channel, {
    getResponse,
    chaining: opts.chain !== undefined ? { maxCommandData: opts.chain } : false,
    trace: sink ? { sink, wire: opts.traceWire } : undefined,
  });
  return {
    reader,
    channel,
    close: async () => {
      try {
        await channel.close();
      } finally {
        closeTrace();
      }
    },
  };
}

/** "Virtual PCD 00 01 (pcsc, T=1), ATR 3B 8A ..." */
export function describeSession(r: OpenedReader): string {
  const how = r.protocol ? `${r.transport}, ${r.protocol}` : r.transport;
  return `reader ${r.name} (${how}), ATR ${toSpacedHex(r.atr)}`;
}

/** Hex for people: 32 bytes a line, continuation lines indented. */
export function wrapHex(bytes: Uint8Array, indent = '  '): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += HEX_LINE_BYTES) lines.push(toSpacedHex(bytes.subarray(i, i + HEX_LINE_BYTES)));
  return lines.join(`\n${indent}`);
}

interface SendOptions extends CardCommandOptions {
  raw?: boolean;
  expect?: string[];
  reset?: boolean;
  cold?: boolean;
}

export interface Exchange {
  command: Uint8Array;
  response: Uint8Array;
  data: Uint8Array;
  sw: string;
  meaning: string;
  category: string;
}

function parseApduArg(text: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fromHex(text);
  } catch (e) {
    throw new BadInputError(`APDU "${text}": ${(e as Error).message}`);
  }
  if (bytes.length < 4) {
    throw new BadInputError(`APDU "${text}": ${bytes.length} byte(s), an APDU has at least 4 (CLA INS P1 P2); quote an APDU written with spaces`);
  }
  return bytes;
}

export const registerSend: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('send')
    .description('send APDUs to the card in a reader (automatic GET RESPONSE, status words explained)')
    .argument('<apdu...>', 'APDUs in hex, one per argument ("00A4040000" or "00 A4 04 00 00")');
  addCardOptions(cmd)
    .option('--raw', 'no automatic GET RESPONSE (61xx) or Le correction (6Cxx): show what the card answers')
    .option('--expect <sw>', 'exit 1 at the first status word not matching (repeatable: 9000, 61XX, "9000 6282")', parseSwPatterns)
    .option('--reset', 'warm-reset the card before sending')
    .option('--cold', 'cold-reset (power off and on) the card before sending')
    .option('--json', 'print one JSON document')
    .action(async (apdus: string[], opts: SendOptions) => {
      const commands = apdus.map(parseApduArg); // all checked before touching the card
      const session = await openCardSession(opts, ctx, !opts.raw);
      const exchanges: Exchange[] = [];
      let atr = session.reader.atr;
      let failure: StatusWordError | undefined;
      try {
        if (!opts.json) ctx.io.out(describeSession(session.reader));
        if (opts.reset || opts.cold) {
          atr = await session.channel.reset(Boolean(opts.cold));
          if (!opts.json) ctx.io.out(`${opts.cold ? 'cold' : 'warm'} reset, ATR ${toSpacedHex(atr)}`);
        }
        for (const command of commands) {
          const response = await session.channel.transmit(command);
          const sw = (response[response.length - 2] << 8) | response[response.length - 1];
          const info = describeSw(sw);
          const x: Exchange = {
            command,
            response,
            data: response.subarray(0, response.length - 2),
            sw: hexWord(sw),
            meaning: info.meaning,
            category: info.category,
          };
          exchanges.push(x);
          if (!opts.json) ctx.io.out(`> ${wrapHex(command)}\n< ${wrapHex(response)}\nSW ${x.sw}: ${x.meaning}`);
          if (opts.expect && opts.expect.length > 0 && !opts.expect.some((p) => swMatches(sw, p))) {
            failure = new StatusWordError(sw, { expected: opts.expect, context: `APDU ${exchanges.length}` });
            break;
          }
        }
      } finally {
        await session.close();
      }
      if (opts.json) {
        ctx.io.out(
          toJson({
            reader: session.reader.name,
            transport: session.reader.transport,
            protocol: session.reader.protocol,
            atr,
            exchanges,
            ok: failure === undefined,
          }),
        );
      }
      if (failure) throw failure;
    });
};
