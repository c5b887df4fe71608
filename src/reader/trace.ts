/**
 * APDU trace as a wrapper: every command, response, reset and error that crosses it becomes a
 * record handed to a sink, with a wall-clock time in microseconds and the elapsed time of the
 * exchange measured with process.hrtime.bigint(). The text form is one line per record in the
 * stable format documented in docs/trace-format.md; the JSON-lines form is the records themselves.
 *
 * The trace never changes what it observes: the caller gets the inner channel's very bytes and
 * errors (an error is recorded, then re-thrown as it is). A sink that throws does not disturb the
 * exchange either: its error goes to `onSinkError` (default: a process warning).
 *
 * Where the trace sits decides what it shows: outermost, one exchange per application command;
 * next to the transport, every APDU on the wire (each GET RESPONSE, each chain link).
 */
import type { Wrapper } from './channel.js';
import { serialChannel } from './serialize.js';
import { describeSw } from '../apdu/sw.js';
import { BadInputError } from '../util/errors.js';
import { hexWord, toHex } from '../util/bytes.js';

interface _TraceBase {
  /** UTC wall-clock time, ISO 8601 with exactly six fraction digits: 2026-11-23T18:00:00.123456Z. */
  time: string;
  /** The channel's tag, when the trace was given one (several channels into one sink). */
  tag?: string;
}

/** `>` a command was sent. */
export interface TraceCommandRecord extends _TraceBase {
  dir: '>';
  /** The C-APDU, upper-case hex. */
  hex: string;
}

/** `<` the response to the command just before it. */
export interface TraceResponseRecord extends _TraceBase {
  dir: '<';
  /** The R-APDU, SW included, upper-case hex. */
  hex: string;
  /** SW1 SW2 as four hex digits ("" only if a broken channel answered fewer than two bytes). */
  sw: string;
  /** describeSw(sw).meaning. */
  meaning: string;
  /** Microseconds from sending the command to receiving the response. */
  elapsedUs: number;
}

/** `*` the card was reset. */
export interface TraceResetRecord extends _TraceBase {
  dir: '*';
  cold: boolean;
  /** The ATR, upper-case hex. */
  atr: string;
  elapsedUs: number;
}

/** `!` a transmit or reset failed; the error was re-thrown to the caller. */
export interface TraceErrorRecord extends _TraceBase {
  dir: '!';
  op: 'transmit' | 'reset';
  /** The error's `code` (HiltError codes, Node system codes); UNKNOWN when it has none. */
  code: string;
  message: string;
  elapsedUs: number;
}

export type TraceRecord = TraceCommandRecord | TraceResponseRecord | TraceResetRecord | TraceErrorRecord;

/** Where records go: a function, or an object with write(record). Called synchronously, in order. */
export type TraceSink = ((record: TraceRecord) => void) | { write(record: TraceRecord): void };

/** Where formatted lines go (a stream, an array's push, ...); each call gets one line ending in "\n". */
export type LineWriter = ((text: string) => unknown) | { write(text: string): unknown };

export interface TraceOptions {
  /** Marks every record of this channel; letters, digits and _ . : - only. */
  tag?: string;
  /**
   * Nanoseconds since the Unix epoch. Default: process.hrtime.bigint() anchored once to Date.now(),
   * so times are monotonic and microsecond-fine. Tests inject a fake clock here.
   */
  clock?: () => bigint;
  /** Receives an error thrown by the sink. Default: process.emitWarning. */
  onSinkError?: (error: unknown, record: TraceRecord) => void;
}

const TAG_RE = /^[A-Za-z0-9_.:-]+$/;

/** Matches every text trace line; groups: 1 time, 2 tag (optional), 3 direction, 4 body. */
export const TRACE_LINE_PATTERN = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z) (?:\[([A-Za-z0-9_.:-]+)\] )?([><*!]) (.*)$/;

/** The body of a line, per direction (group 4 of TRACE_LINE_PATTERN). */
export const TRACE_BODY_PATTERNS = {
  /** 1 command hex */
  '>': /^([0-9A-F]*)$/,
  /** 1 response hex (SW = last 4 digits), 2 meaning, 3 elapsed µs */
  '<': /^([0-9A-F]*) \((.*)\) (\d+)us$/,
  /** 1 warm|cold, 2 ATR hex, 3 elapsed µs */
  '*': /^(warm|cold) ([0-9A-F]*) (\d+)us$/,
  /** 1 operation, 2 error code, 3 elapsed µs, 4 message (optional) */
  '!': /^(transmit|reset) ([A-Z0-9_]+) (\d+)us(?: (.*))?$/,
} as const;

function _hex(bytes: Uint8Array): string {
  return toHex(bytes).toUpperCase();
}

/** One line of free text: line breaks would split a record across lines. */
function _oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

function _code(code: string): string {
  const c = code.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return c === '' ? 'UNKNOWN' : c;
}

/** ISO 8601 UTC with microseconds from nanoseconds since the epoch. */
export function formatTraceTime(epochNs: bigint): string {
  const us = epochNs < 0n ? 0n : epochNs / 1000n;
  const iso = new Date(Number(us / 1000n)).toISOString(); // 2026-11-23T18:00:00.123Z
  return `${iso.slice(0, 19)}.${(us % 1_000_000n).toString().padStart(6, '0')}Z`;
}

/** The text form of a record: one line, no line break at the end. */
export function formatTraceLine(record: TraceRecord): string {
  const head = `${record.time} ${record.tag !== undefined ? `[${record.tag}] ` : ''}${record.dir} `;
  switch (record.dir) {
    case '>':
      return head + record.hex;
    case '<':
      return `${head}${record.hex} (${_oneLine(record.meaning)}) ${record.elapsedUs}us`;
    case '*':
      return `${head}${record.cold ? 'cold' : 'warm'} ${record.atr} ${record.elapsedUs}us`;
    case '!': {
      const message = _oneLine(record.message);
      return `${head}${record.op} ${_code(record.code)} ${record.elapsedUs}us${message === '' ? '' : ` ${message}`}`;
    }
  }
}

/** The JSON-lines form of a record: one JSON object, no line break at the end. */
export function formatTraceJson(record: TraceRecord): string {
  return JSON.stringify(record);
}

/** Parses a line written by formatTraceLine back into its record. Throws BadInputError otherwise. */
export function parseTraceLine(line: string): TraceRecord {
  const m = TRACE_LINE_PATTERN.exec(line);
  const bad = (): BadInputError =>
    new BadInputError(`not a trace line: "${line.length > 80 ? `${line.slice(0, 80)}…` : line}"`);
  if (!m) throw bad();
  const base: _TraceBase = m[2] === undefined ? { time: m[1] } : { time: m[1], tag: m[2] };
  const body = m[4];
  switch (m[3]) {
    case '>': {
      const b = TRACE_BODY_PATTERNS['>'].exec(body);
      if (!b) throw bad();
      return { ...base, dir: '>', hex: b[1] };
    }
    case '<': {
      const b = TRACE_BODY_PATTERNS['<'].exec(body);
      if (!b) throw bad();
      return { ...base, dir: '<', hex: b[1], sw: b[1].length >= 4 ? b[1].slice(-4) : '', meaning: b[2], elapsedUs: Number(b[3]) };
    }
    case '*': {
      const b = TRACE_BODY_PATTERNS['*'].exec(body);
      if (!b) throw bad();
      return { ...base, dir: '*', cold: b[1] === 'cold', atr: b[2], elapsedUs: Number(b[3]) };
    }
    default: {
      const b = TRACE_BODY_PATTERNS['!'].exec(body);
      if (!b) throw bad();
      return { ...base, dir: '!', op: b[1] as 'transmit' | 'reset', code: b[2], message: b[4] ?? '', elapsedUs: Number(b[3]) };
    }
  }
}

function _writer(out: LineWriter): (text: string) => unknown {
  return typeof out === 'function' ? out : (text) => out.write(text);
}

/** A sink writing the text format, one line per record. */
export function textTraceSink(out: LineWriter): (record: TraceRecord) => void {
  const write = _writer(out);
  return (record) => {
    write(`${formatTraceLine(record)}\n`);
  };
}

/** A sink writing JSON lines, one object per record. */
export function jsonTraceSink(out: LineWriter): (record: TraceRecord) => void {
  const write = _writer(out);
  return (record) => {
    write(`${formatTraceJson(record)}\n`);
  };
}

function _errorFields(error: unknown): { code: string; message: string } {
  const code = typeof error === 'object' && error !== null && 'code' in error ? (error as { code: unknown }).code : undefined;
  return {
    code: typeof code === 'string' && code !== '' ? code : 'UNKNOWN',
    message: error instanceof Error ? error.message : String(error),
  };
}

function _defaultClock(): () => bigint {
  const anchor = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  return () => anchor + process.hrtime.bigint();
}

/** Wrapper: traces every exchange, reset and error of the channel it wraps into `sink`. */
export function withTrace(sink: TraceSink, options: TraceOptions = {}): Wrapper {
  if (typeof sink !== 'function' && (typeof sink !== 'object' || sink === null || typeof sink.write !== 'function')) {
    throw new BadInputError('sink: expected a function or an object with write(record)');
  }
  if (options.tag !== undefined && !TAG_RE.test(options.tag)) {
    throw new BadInputError(`tag: expected letters, digits and _ . : - only, got "${options.tag}"`);
  }
  const write = typeof sink === 'function' ? sink : (record: TraceRecord) => sink.write(record);
  const clock = options.clock ?? _defaultClock();
  const onSinkError =
    options.onSinkError ??
    ((error: unknown) => process.emitWarning(`trace sink failed: ${error instanceof Error ? error.message : String(error)}`, { code: 'HILT_TRACE_SINK' }));
  const tag = options.tag === undefined ? {} : { tag: options.tag };

  const emit = (record: TraceRecord): void => {
    Object.freeze(record);
    try {
      write(record);
    } catch (error) {
      try {
        onSinkError(error, record);
      } catch {
        // The sink and its error handler both failed; the exchange must still not be disturbed.
      }
    }
  };
  const elapsed = (start: bigint, end: bigint): number => (end > start ? Number((end - start) / 1000n) : 0);

  return (inner) =>
    serialChannel(inner, {
      async transmit(command) {
        const start = clock();
        emit({ time: formatTraceTime(start), ...tag, dir: '>', hex: _hex(command) });
        let response: Uint8Array;
        try {
          response = await inner.transmit(command);
        } catch (error) {
          const end = clock();
          emit({ time: formatTraceTime(end), ...tag, dir: '!', op: 'transmit', ..._errorFields(error), elapsedUs: elapsed(start, end) });
          throw error;
        }
        const end = clock();
        const n = response.length;
        const sw = n >= 2 ? (response[n - 2] << 8) | response[n - 1] : -1;
        emit({
          time: formatTraceTime(end),
          ...tag,
          dir: '<',
          hex: _hex(response),
          sw: sw < 0 ? '' : hexWord(sw),
          meaning: sw < 0 ? 'no status word' : describeSw(sw).meaning,
          elapsedUs: elapsed(start, end),
        });
        return response;
      },
      async reset(cold) {
        const start = clock();
        let atr: Uint8Array;
        try {
          atr = await inner.reset(cold);
        } catch (error) {
          const end = clock();
          emit({ time: formatTraceTime(end), ...tag, dir: '!', op: 'reset', ..._errorFields(error), elapsedUs: elapsed(start, end) });
          throw error;
        }
        const end = clock();
        emit({ time: formatTraceTime(end), ...tag, dir: '*', cold, atr: _hex(atr), elapsedUs: elapsed(start, end) });
        return atr;
      },
    });
}
