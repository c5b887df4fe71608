/**
 * Status-word dictionary (SW1 SW2 → category and meaning), kept as data.
 *
 * Sources: ISO/IEC 7816-4 (interindustry status words, §5.6), the GlobalPlatform Card Specification
 * (status words of its commands), Java Card (ISO7816 interface constants). ISO 7816-4 allows SW1 = 6X
 * (except 60) and 9X; 9000 and 61XX are normal processing, 62XX/63XX warnings, 64XX..66XX execution
 * errors, 67XX..6FXX checking errors, other 9XXX are proprietary.
 *
 * Lookup order: an exact row ("6A82"), then the most specific family row ("63CX" before "63XX"), then a
 * range row ("6202-6280"); a word no row matches gets the SW1 group's category and a generic meaning,
 * and `source` is left out (that is what "unknown" means for `isKnownSw`).
 */
import { hexByte, hexWord } from '../util/bytes.js';
import { BadInputError, HiltError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

export type SwCategory = 'normal' | 'warning' | 'execution-error' | 'checking-error' | 'unknown';

export type SwSource = 'ISO 7816-4' | 'GlobalPlatform' | 'Java Card';

export interface SwInfo {
  sw: number;
  /** "9000" */
  hex: string;
  category: SwCategory;
  /** Short human meaning, e.g. "file or application not found". */
  meaning: string;
  /** Where the meaning is defined; absent when no table row matched (the word is unknown). */
  source?: SwSource;
  /**
   * The value a family carries: bytes still available (61XX, 6100 = 256), exact Le (6CXX, 6C00 =
   * 256), retries left (63CX), the SW2 of a range row.
   */
  param?: number;
}

/**
 * One dictionary row. `sw` is four hex digits: exact ("6A82"), with X for any nibble ("61XX",
 * "63CX"), or an SW2 range ("6202-6280"). In `meaning`, {n} is the parameter in decimal, {h} the
 * parameter as two hex digits, {n:one|many} the parameter followed by the singular or plural word.
 * `category` defaults to the SW1 group's.
 */
interface SwRow {
  readonly sw: string;
  readonly meaning: string;
  readonly source: SwSource;
  readonly category?: SwCategory;
  /** How the X nibbles (or the range's SW2) become the parameter: 'count' maps 00 to 256. */
  readonly param?: 'value' | 'count';
}

const ISO = 'ISO 7816-4' as const;
const GP = 'GlobalPlatform' as const;
const JC = 'Java Card' as const;

const SW_ROWS: readonly SwRow[] = [
  // Normal processing
  { sw: '9000', meaning: 'success', source: ISO },
  { sw: '6100', meaning: '256 or more bytes available, use GET RESPONSE with Le 00', source: ISO, param: 'count' },
  { sw: '61XX', meaning: '{n:more byte|more bytes} available (0x{h}), use GET RESPONSE', source: ISO, param: 'count' },
  // Warnings, non-volatile memory unchanged
  { sw: '6200', meaning: 'warning: no information given (non-volatile memory unchanged)', source: ISO },
  { sw: '6202-6280', meaning: 'warning: triggering by the card (query 0x{h})', source: ISO, param: 'value' },
  { sw: '6281', meaning: 'part of returned data may be corrupted', source: ISO },
  { sw: '6282', meaning: 'end of file or record reached before reading Ne bytes', source: ISO },
  { sw: '6283', meaning: 'selected file or application deactivated (GlobalPlatform: card locked)', source: ISO },
  { sw: '6284', meaning: 'file control information not formatted according to ISO 7816-4', source: ISO },
  { sw: '6285', meaning: 'selected file in termination state', source: ISO },
  { sw: '6286', meaning: 'no input data available from a sensor on the card', source: ISO },
  { sw: '6287', meaning: 'at least one of the referenced records is deactivated', source: ISO },
  // Warnings, non-volatile memory changed
  { sw: '6300', meaning: 'warning: no information given (non-volatile memory changed); GlobalPlatform: authentication failed', source: ISO },
  { sw: '6310', meaning: 'more data available (GlobalPlatform GET STATUS: send it again for the next part)', source: GP },
  { sw: '6381', meaning: 'file filled up by the last write', source: ISO },
  { sw: '63CX', meaning: 'verification failed, {n:retry|retries} left (counter {n})', source: ISO, param: 'value' },
  // Execution errors
  { sw: '6400', meaning: 'execution error, no information given (non-volatile memory unchanged)', source: ISO },
  { sw: '6401', meaning: 'immediate response required by the card', source: ISO },
  { sw: '6402-6480', meaning: 'execution error: triggering by the card (query 0x{h})', source: ISO, param: 'value' },
  { sw: '6438', meaning: 'imported package not available (GlobalPlatform LOAD / INSTALL)', source: GP },
  { sw: '6500', meaning: 'execution error, no information given (non-volatile memory changed)', source: ISO },
  { sw: '6581', meaning: 'memory failure', source: ISO },
  { sw: '6600', meaning: 'security-related issue, no information given', source: ISO },
  // Checking errors
  { sw: '6700', meaning: 'wrong length', source: ISO },
  { sw: '6800', meaning: 'functions in CLA not supported', source: ISO },
  { sw: '6881', meaning: 'logical channel not supported', source: ISO },
  { sw: '6882', meaning: 'secure messaging not supported', source: ISO },
  { sw: '6883', meaning: 'last command of the chain expected', source: ISO },
  { sw: '6884', meaning: 'command chaining not supported', source: ISO },
  { sw: '6900', meaning: 'command not allowed', source: ISO },
  { sw: '6981', meaning: 'command incompatible with file structure', source: ISO },
  { sw: '6982', meaning: 'security status not satisfied', source: ISO },
  { sw: '6983', meaning: 'authentication method blocked', source: ISO },
  { sw: '6984', meaning: 'reference data not usable', source: ISO },
  { sw: '6985', meaning: 'conditions of use not satisfied', source: ISO },
  { sw: '6986', meaning: 'command not allowed (no current EF)', source: ISO },
  { sw: '6987', meaning: 'expected secure messaging data objects missing', source: ISO },
  { sw: '6988', meaning: 'incorrect secure messaging data objects', source: ISO },
  { sw: '6999', meaning: 'applet selection failed', source: JC },
  { sw: '6A00', meaning: 'wrong parameters P1-P2', source: ISO },
  { sw: '6A80', meaning: 'incorrect parameters in the command data field', source: ISO },
  { sw: '6A81', meaning: 'function not supported', source: ISO },
  { sw: '6A82', meaning: 'file or application not found', source: ISO },
  { sw: '6A83', meaning: 'record not found', source: ISO },
  { sw: '6A84', meaning: 'not enough memory space', source: ISO },
  { sw: '6A85', meaning: 'Nc inconsistent with TLV structure', source: ISO },
  { sw: '6A86', meaning: 'incorrect parameters P1-P2', source: ISO },
  { sw: '6A87', meaning: 'Nc inconsistent with parameters P1-P2', source: ISO },
  { sw: '6A88', meaning: 'referenced data not found', source: ISO },
  { sw: '6A89', meaning: 'file already exists', source: ISO },
  { sw: '6A8A', meaning: 'DF name already exists', source: ISO },
  { sw: '6B00', meaning: 'wrong parameters P1-P2', source: ISO },
  { sw: '6C00', meaning: 'wrong Le: exact length is 256, re-issue with Le 00', source: ISO, param: 'count' },
  { sw: '6CXX', meaning: 'wrong Le: exact length is {n} (0x{h}), re-issue with Le {h}', source: ISO, param: 'count' },
  { sw: '6D00', meaning: 'instruction code not supported or invalid', source: ISO },
  { sw: '6E00', meaning: 'class not supported', source: ISO },
  { sw: '6F00', meaning: 'no precise diagnosis', source: ISO },
  // GlobalPlatform proprietary words
  { sw: '9484', meaning: 'algorithm not supported', source: GP, category: 'checking-error' },
  { sw: '9485', meaning: 'invalid key check value', source: GP, category: 'checking-error' },
];

/** What an SW1 says on its own, for words no row matches. Rows are SW1 ranges [first, last]. */
interface Sw1Group {
  readonly first: number;
  readonly last: number;
  readonly category: SwCategory;
  readonly meaning: string;
}

const SW1_GROUPS: readonly Sw1Group[] = [
  { first: 0x61, last: 0x61, category: 'normal', meaning: 'normal processing' },
  { first: 0x62, last: 0x62, category: 'warning', meaning: 'warning, non-volatile memory unchanged' },
  { first: 0x63, last: 0x63, category: 'warning', meaning: 'warning, non-volatile memory changed' },
  { first: 0x64, last: 0x64, category: 'execution-error', meaning: 'execution error, non-volatile memory unchanged' },
  { first: 0x65, last: 0x65, category: 'execution-error', meaning: 'execution error, non-volatile memory changed' },
  { first: 0x66, last: 0x66, category: 'execution-error', meaning: 'execution error, security-related' },
  { first: 0x67, last: 0x67, category: 'checking-error', meaning: 'wrong length' },
  { first: 0x68, last: 0x68, category: 'checking-error', meaning: 'functions in CLA not supported' },
  { first: 0x69, last: 0x69, category: 'checking-error', meaning: 'command not allowed' },
  { first: 0x6a, last: 0x6a, category: 'checking-error', meaning: 'wrong parameters P1-P2' },
  { first: 0x6b, last: 0x6f, category: 'checking-error', meaning: 'checking error' },
  { first: 0x90, last: 0x90, category: 'normal', meaning: 'normal processing (proprietary qualifier)' },
  { first: 0x91, last: 0x9f, category: 'unknown', meaning: 'proprietary status' },
];

interface CompiledRow {
  readonly row: SwRow;
  readonly lo: number;
  readonly hi: number;
  /** 0 for exact rows; the X nibble mask for family rows; 0xff for range rows. */
  readonly paramMask: number;
  /** Lower sorts first: exact, then families with fewer wildcards, then ranges. */
  readonly rank: number;
}

function compileRow(row: SwRow): CompiledRow {
  const range = /^([0-9A-F]{4})-([0-9A-F]{4})$/.exec(row.sw);
  if (range) {
    const lo = parseInt(range[1], 16);
    const hi = parseInt(range[2], 16);
    if (lo >> 8 !== hi >> 8 || lo > hi) throw new Error(`status-word row ${row.sw}: a range stays within one SW1`);
    return { row, lo, hi, paramMask: 0xff, rank: 100 };
  }
  if (!/^[0-9A-FX]{4}$/.test(row.sw)) throw new Error(`status-word row ${row.sw}: expected four hex digits or X`);
  let mask = 0;
  let wild = 0;
  for (let i = 0; i < 4; i++) {
    if (row.sw[i] === 'X') {
      mask |= 0xf << ((3 - i) * 4);
      wild++;
    }
  }
  const lo = parseInt(row.sw.replace(/X/g, '0'), 16);
  return { row, lo, hi: lo | mask, paramMask: mask, rank: wild };
}

/** Compiled once; a constant table, not mutable state. */
const COMPILED: readonly CompiledRow[] = SW_ROWS.map(compileRow).sort((a, b) => a.rank - b.rank);

function findRow(sw: number): CompiledRow | undefined {
  for (const c of COMPILED) {
    if (c.paramMask === 0xff ? sw >= c.lo && sw <= c.hi : (sw & ~c.paramMask) === c.lo) return c;
  }
  return undefined;
}

function categoryOfSw1(sw1: number): Sw1Group | undefined {
  return SW1_GROUPS.find((g) => sw1 >= g.first && sw1 <= g.last);
}

function render(template: string, n: number): string {
  return template
    .replace(/\{n:([^|}]*)\|([^}]*)\}/g, (_m, one: string, many: string) => `${n} ${n === 1 ? one : many}`)
    .replace(/\{n\}/g, String(n))
    .replace(/\{h\}/g, hexByte(n & 0xff));
}

export function describeSw(sw: number): SwInfo {
  assertInt(sw, 'SW', 0, 0xffff);
  const hex = hexWord(sw);
  const sw1 = sw >> 8;
  const group = categoryOfSw1(sw1);
  const hit = findRow(sw);
  if (hit) {
    const { row } = hit;
    const info: SwInfo = { sw, hex, category: row.category ?? group?.category ?? 'unknown', meaning: row.meaning, source: row.source };
    if (row.param) {
      const raw = sw & (hit.paramMask || 0xff);
      const n = row.param === 'count' && raw === 0 ? 256 : raw;
      info.param = n;
      info.meaning = render(row.meaning, n);
    }
    return info;
  }
  if (group) return { sw, hex, category: group.category, meaning: `${group.meaning} (SW2 ${hexByte(sw & 0xff)} not defined)` };
  return { sw, hex, category: 'unknown', meaning: `not a valid status word (SW1 must be 61..6F or 90..9F, got ${hexByte(sw1)})` };
}

/** True when a dictionary row (ISO, GlobalPlatform, Java Card) defines this word. */
export function isKnownSw(sw: number): boolean {
  return describeSw(sw).source !== undefined;
}

/** True for the ISO "normal processing" words 9000 and 61XX, the same rule as `ResponseApdu.ok`. */
export function isSuccess(sw: number | { readonly sw: number }): boolean {
  const w = typeof sw === 'number' ? sw : sw.sw;
  return w === 0x9000 || w >> 8 === 0x61;
}

/** An allowed status word: a number (0x9000), or four hex digits with X wildcards ("61XX", "63CX"). */
export type SwPattern = number | string;

/** Matches `sw` against one pattern; refuses malformed patterns with a BadInputError. */
export function swMatches(sw: number, pattern: SwPattern): boolean {
  if (typeof pattern === 'number') {
    assertInt(pattern, 'SW pattern', 0, 0xffff);
    return sw === pattern;
  }
  const p = String(pattern).toUpperCase();
  if (!/^[0-9A-FX]{4}$/.test(p)) throw new BadInputError(`SW pattern: expected four hex digits or X, got "${pattern}"`);
  const mask = parseInt(p.replace(/[0-9A-F]/g, 'F').replace(/X/g, '0'), 16);
  return (sw & mask) === (parseInt(p.replace(/X/g, '0'), 16) & mask);
}

function patternText(p: SwPattern): string {
  return typeof p === 'number' ? hexWord(p) : p.toUpperCase();
}

/** The card answered with a status word the caller did not allow. */
export class StatusWordError extends HiltError {
  readonly sw: number;
  readonly info: SwInfo;
  /** The patterns that were allowed, as text ("9000", "61XX"); empty when not given. */
  readonly expected: readonly string[];

  constructor(sw: number, options: { expected?: readonly SwPattern[]; context?: string } = {}) {
    const info = describeSw(sw);
    const expected = (options.expected ?? []).map(patternText);
    const prefix = options.context ? `${options.context}: ` : '';
    const tail = expected.length > 0 ? `; expected ${expected.join(' or ')}` : '';
    super('SW', `${prefix}status word ${info.hex}: ${info.meaning} (${info.category})${tail}`);
    this.sw = sw;
    this.info = info;
    this.expected = expected;
  }

  get sw1(): number {
    return this.sw >> 8;
  }

  get sw2(): number {
    return this.sw & 0xff;
  }
}

/**
 * Returns `resp` when its status word matches one of `allowed` (9000 when none is given); otherwise
 * throws a StatusWordError naming the word, its meaning and what was expected.
 */
export function expectSw<R extends { readonly sw: number }>(resp: R, ...allowed: SwPattern[]): R {
  const patterns: readonly SwPattern[] = allowed.length > 0 ? allowed : [0x9000];
  for (const p of patterns) if (swMatches(resp.sw, p)) return resp;
  throw new StatusWordError(resp.sw, { expected: patterns });
}
