/**
 * The purse terminal's configuration, validated once at the edge into a typed, frozen object:
 * who the terminal is (terminal id on every card record, reader id in the journal), which provider's
 * key domain serves the purse, the currency it sells in, its limits, and its clock.
 *
 * Time: one source, `clock` (ms since the epoch). Open the journal with the same clock and offset
 * (openPurseJournal does): a purchase's date-time on the card is its journal row's `createdAt` in
 * the terminal's local time (`utcOffsetMinutes`), so the issuer can rebuild the certificate input
 * from the uplinked record alone, and limits count business days in the same local time.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BadInputError } from '../../util/errors.js';
import { assertInt } from '../../util/assert.js';
import { encodePurseDateTime, PURSE_FIELD_LENGTH, PURSE_U32_MAX } from '../../crypto/purse-certificate.js';
import { JOURNAL_ID_PATTERN, Journal, type JournalOptions } from '../journal/index.js';
import { currencyByAlpha, type CurrencyInfo } from './currency.js';

/** Limits in minor units of the terminal's currency. */
export interface PurseLimits {
  perTransaction: number;
  perCardPerDay: number;
  perReaderPerDay: number;
}

export const DEFAULT_PURSE_LIMITS: Readonly<PurseLimits> = Object.freeze({ perTransaction: 50_000, perCardPerDay: 100_000, perReaderPerDay: 10_000_000 });

/**
 * The terminal's limits on loads (value onto cards), summed over completed and recovered loads; the
 * same shape as the purchase limits. The card's maximum balance and the issuer's own limits apply
 * on top of these.
 */
export const DEFAULT_PURSE_LOAD_LIMITS: Readonly<PurseLimits> = Object.freeze({ perTransaction: 50_000, perCardPerDay: 200_000, perReaderPerDay: 10_000_000 });

/** Largest limit accepted (the journal sums in safe integers; the card counts in 4 bytes). */
export const MAX_LIMIT = Number.MAX_SAFE_INTEGER;

export const DEFAULT_PURSE_PROVIDER = 'emoney';

/** Value-moving commands run at C-MAC + C-DECRYPTION + R-MAC + R-ENCRYPTION (security.md §2). */
export const PURSE_SECURITY_LEVEL = 0x33;

/** Terminal ids fit the card's 8-byte field: 1 to 8 of the journal's id characters. */
export const TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,7}$/;

export type PurseEventKind = 'refused' | 'anomaly' | 'card-refused' | 'interrupted' | 'complete' | 'recovered' | 'never-happened' | 'declined' | 'host-unavailable' | 'reversal';

/** One line of the terminal's log: every refusal, anomaly, tear and resolution. */
export interface PurseEvent {
  level: 'info' | 'warn';
  kind: PurseEventKind;
  message: string;
  /** The error code or refusal reason, when there is one. */
  code?: string;
  cardSerial?: string;
  journalId?: number;
  readerSeq?: number;
}

export interface PurseTerminalConfigInput {
  terminalId: string;
  readerId: string;
  /** Key-store provider whose domain opens the purse's secure channel; default 'emoney'. */
  provider?: string;
  /** ISO 4217 alphabetic code. */
  currency: string;
  limits?: Partial<PurseLimits>;
  /** Limits on loads; default DEFAULT_PURSE_LOAD_LIMITS. */
  loadLimits?: Partial<PurseLimits>;
  /** Local time of receipts, card date-times and business days, minutes from UTC (-840..840); default 0. */
  utcOffsetMinutes?: number;
  clock?: () => number;
  log?: (event: PurseEvent) => void;
}

export interface PurseTerminalConfig {
  readonly terminalId: string;
  readonly readerId: string;
  readonly provider: string;
  readonly currency: CurrencyInfo;
  readonly limits: Readonly<PurseLimits>;
  readonly loadLimits: Readonly<PurseLimits>;
  readonly utcOffsetMinutes: number;
  readonly clock: () => number;
  readonly log: (event: PurseEvent) => void;
}

const KNOWN_KEYS = ['terminalId', 'readerId', 'provider', 'currency', 'limits', 'loadLimits', 'utcOffsetMinutes'] as const;
const LIMIT_KEYS: readonly (keyof PurseLimits)[] = ['perTransaction', 'perCardPerDay', 'perReaderPerDay'];

function shown(v: unknown): string {
  return typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"` : String(v);
}

/** `given` over `defaults`, each field checked; `name` is the field's name in messages. */
function limitsOf(given: Partial<PurseLimits> | undefined, defaults: Readonly<PurseLimits>, name: string): PurseLimits {
  const limits: PurseLimits = { ...defaults };
  if (given === undefined) return limits;
  if (typeof given !== 'object' || given === null) throw new BadInputError(`${name}: expected an object`);
  for (const k of Object.keys(given)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(k)) throw new BadInputError(`${name}: unknown field "${k}" (known: ${LIMIT_KEYS.join(', ')})`);
  }
  for (const k of LIMIT_KEYS) {
    const v = given[k];
    if (v === undefined) continue;
    assertInt(v, `${name}.${k}`, 1, MAX_LIMIT);
    limits[k] = v;
  }
  return limits;
}

/** Checks `input` and fills the defaults. Throws BadInputError naming the field. */
export function purseTerminalConfig(input: PurseTerminalConfigInput): PurseTerminalConfig {
  if (typeof input !== 'object' || input === null) throw new BadInputError('terminal configuration: expected an object');
  if (typeof input.terminalId !== 'string' || !TERMINAL_ID_PATTERN.test(input.terminalId)) {
    throw new BadInputError(`terminalId: expected 1 to 8 letters, digits, '.', '_', ':' or '-' (it goes on the card in 8 bytes), got ${shown(input.terminalId)}`);
  }
  if (typeof input.readerId !== 'string' || !JOURNAL_ID_PATTERN.test(input.readerId)) {
    throw new BadInputError(`readerId: expected 1 to 64 letters, digits, '.', '_', ':' or '-', got ${shown(input.readerId)}`);
  }
  const provider = input.provider ?? DEFAULT_PURSE_PROVIDER;
  if (typeof provider !== 'string' || !JOURNAL_ID_PATTERN.test(provider)) throw new BadInputError(`provider: expected a provider id, got ${shown(provider)}`);
  const currency = currencyByAlpha(input.currency);
  const limits = limitsOf(input.limits, DEFAULT_PURSE_LIMITS, 'limits');
  const loadLimits = limitsOf(input.loadLimits, DEFAULT_PURSE_LOAD_LIMITS, 'loadLimits');
  const utcOffsetMinutes = input.utcOffsetMinutes ?? 0;
  assertInt(utcOffsetMinutes, 'utcOffsetMinutes', -840, 840);
  const clock = input.clock ?? Date.now;
  if (typeof clock !== 'function') throw new BadInputError('clock: expected a function returning milliseconds');
  const log = input.log ?? (() => undefined);
  if (typeof log !== 'function') throw new BadInputError('log: expected a function');
  return Object.freeze({
    terminalId: input.terminalId,
    readerId: input.readerId,
    provider,
    currency,
    limits: Object.freeze(limits),
    loadLimits: Object.freeze(loadLimits),
    utcOffsetMinutes,
    clock,
    log,
  });
}

/**
 * A configuration file (JSON) as a config input: the fields of PurseTerminalConfigInput except the
 * clock and the log. Unknown fields are refused, so a typo is not silently ignored.
 */
export function parsePurseTerminalConfig(text: string, origin = 'terminal configuration'): PurseTerminalConfigInput {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`${origin}: not JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadInputError(`${origin}: expected a JSON object`);
  for (const k of Object.keys(value)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(k)) throw new BadInputError(`${origin}: unknown field "${k}" (known: ${KNOWN_KEYS.join(', ')})`);
  }
  const input = value as PurseTerminalConfigInput;
  try {
    purseTerminalConfig(input);
  } catch (e) {
    if (e instanceof BadInputError) throw new BadInputError(`${origin}: ${e.message}`);
    throw e;
  }
  return input;
}

/** Reads and checks a configuration file. */
export function readPurseTerminalConfig(path: string): PurseTerminalConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BadInputError(`cannot read the terminal configuration ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parsePurseTerminalConfig(text, path);
}

/** The terminal id as the card stores it: ASCII, right-padded with spaces to 8 bytes. */
export function terminalIdBytes(terminalId: string): Uint8Array {
  if (!TERMINAL_ID_PATTERN.test(terminalId)) throw new BadInputError(`terminal id: expected 1 to 8 id characters, got ${shown(terminalId)}`);
  const out = new Uint8Array(PURSE_FIELD_LENGTH.terminalId).fill(0x20);
  for (let i = 0; i < terminalId.length; i++) out[i] = terminalId.charCodeAt(i);
  return out;
}

/** Local date-time fields of an instant at a UTC offset. */
function localParts(ms: number, utcOffsetMinutes: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
  const d = new Date(ms + utcOffsetMinutes * 60_000);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
}

/** The card's 7-byte BCD date-time (YYYY MM DD hh mm ss) of an instant in the terminal's local time. */
export function purseDateTime(ms: number, utcOffsetMinutes: number): Uint8Array {
  return encodePurseDateTime(localParts(ms, utcOffsetMinutes));
}

/** "2025-03-14 09:30:15 +09:00": the instant in the terminal's local time, offset shown. */
export function formatLocalTime(ms: number, utcOffsetMinutes: number): string {
  const p = localParts(ms, utcOffsetMinutes);
  const two = (n: number): string => String(n).padStart(2, '0');
  const sign = utcOffsetMinutes < 0 ? '-' : '+';
  const off = Math.abs(utcOffsetMinutes);
  return `${String(p.year).padStart(4, '0')}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)}:${two(p.second)} ${sign}${two(Math.floor(off / 60))}:${two(off % 60)}`;
}

/** "2025-03-14 09:30:15" from the card's BCD date-time. */
export function formatPurseDateTime(bcd: Uint8Array): string {
  const h = Array.from(bcd, (b) => b.toString(16).padStart(2, '0'));
  return h.length === 7 ? `${h[0]}${h[1]}-${h[2]}-${h[3]} ${h[4]}:${h[5]}:${h[6]}` : h.join('');
}

/** The largest reader sequence number a card can carry. */
export const MAX_CARD_SEQUENCE = PURSE_U32_MAX;

/**
 * Opens (creates) the terminal's journal for this configuration: its identity (terminal id, reader
 * id), its clock and its business-day offset. Creates the folder of `path` if needed.
 */
export function openPurseJournal(path: string, config: PurseTerminalConfig, options: Omit<JournalOptions, 'identity' | 'clock' | 'dayOffsetMinutes' | 'readonly'> = {}): Journal {
  mkdirSync(dirname(path), { recursive: true });
  return Journal.open(path, {
    ...options,
    identity: { terminalId: config.terminalId, readerId: config.readerId },
    clock: config.clock,
    dayOffsetMinutes: config.utcOffsetMinutes,
  });
}
