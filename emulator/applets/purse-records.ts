/**
 * The e-money purse's tables and byte layouts, card side: AID, life cycle, instructions, status
 * words, the persistent records and the data fields of every command and answer
 * (applets-spec/emoney-purse.md). Fixed-width fields, integers unsigned big-endian.
 *
 * Decoders here read the card's own records and the terminal's command data. Record decoders answer
 * null for bytes that are not a record (the applet turns that into 6581: its memory is not what it
 * wrote); command-data decoders answer null for a field out of its rules (6A80). Neither throws on
 * any input.
 */
import { fromHex, concatBytes } from '../../src/util/bytes.js';
import {
  PURSE_FIELD_LENGTH as L,
  PURSE_TRANSACTION_TYPE,
  decodeCurrency,
  decodePurseDateTime,
  encodeCurrency,
  type PurseTransactionType,
} from '../../src/crypto/purse-certificate.js';

/** F0 (proprietary, unregistered RID prefix) + ASCII "hiltPURSE". */
export const PURSE_AID = fromHex('F0 68 69 6C 74 50 55 52 53 45');
export const PURSE_NAME = 'hiltPURSE';

/** Transactions the cyclic log keeps. */
export const PURSE_LOG_SIZE = 10;

/** Life cycle (GlobalPlatform application life cycle codes). */
export const PURSE_LIFE_CYCLE = {
  /** Installed, being personalized: PERSONALIZE and LOCK allowed, no value command. */
  ISSUANCE: 0x07,
  /** Personalized and locked: value commands allowed, personalization refused. */
  ACTIVE: 0x0f,
} as const;
export type PurseLifeCycle = (typeof PURSE_LIFE_CYCLE)[keyof typeof PURSE_LIFE_CYCLE];

/** Instructions (proprietary class 80; 84 on the wire inside an SCP03 session). */
export const PURSE_INS = {
  READ_STATUS: 0xb4,
  READ_LOG: 0xb2,
  DEBIT: 0x54,
  LOAD: 0x52,
  PERSONALIZE: 0xda,
  LOCK: 0xdc,
} as const;

/** PERSONALIZE P2: which data object the command carries. */
export const PERSONALIZE_OBJECT = { PARAMETERS: 0x01, PURSE_KEY: 0x02 } as const;

/** The status words the purse answers with, one meaning each (see the spec for the conditions). */
export const PURSE_SW = {
  OK: 0x9000,
  MEMORY_FAILURE: 0x6581,
  WRONG_LENGTH: 0x6700,
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  /** The load cryptogram does not verify (forged, altered, or already used). */
  CRYPTOGRAM_INVALID: 0x6988,
  WRONG_DATA: 0x6a80,
  RECORD_NOT_FOUND: 0x6a83,
  INCORRECT_P1P2: 0x6a86,
  /** LOCK before both personalization objects were written. */
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  // Purse-specific (ISO 7816-4: 9XXX other than 9000 is proprietary).
  INSUFFICIENT_BALANCE: 0x9401,
  ABOVE_TRANSACTION_MAXIMUM: 0x9402,
  ABOVE_MAXIMUM_BALANCE: 0x9403,
  CURRENCY_MISMATCH: 0x9404,
  COUNTER_EXHAUSTED: 0x9405,
  TERMINAL_SEQUENCE_NOT_INCREASING: 0x9406,
} as const;

/** Names of the applet's persistent records and its key (local to the applet's store and key slot). */
export const PURSE_RECORD = {
  state: 'state',
  parameters: 'parameters',
  log: (slot: number): string => `log/${String(slot).padStart(2, '0')}`,
  logPrefix: 'log/',
  key: 'purse-key',
} as const;

// ---------------------------------------------------------------------------------------------
// Integers

function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

export function readU32(b: Uint8Array, offset: number): number {
  return ((b[offset] << 24) | (b[offset + 1] << 16) | (b[offset + 2] << 8) | b[offset + 3]) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Persistent records

/** Record "state", 9 bytes: life cycle (1) | counter (4) | balance (4). */
export interface PurseState {
  lifeCycle: PurseLifeCycle;
  counter: number;
  balance: number;
}
export const STATE_LENGTH = 9;

export function encodeState(s: PurseState): Uint8Array {
  return concatBytes(Uint8Array.of(s.lifeCycle), u32(s.counter), u32(s.balance));
}

export function decodeState(b: Uint8Array | undefined): PurseState | null {
  if (!b || b.length !== STATE_LENGTH) return null;
  const lifeCycle = b[0];
  if (lifeCycle !== PURSE_LIFE_CYCLE.ISSUANCE && lifeCycle !== PURSE_LIFE_CYCLE.ACTIVE) return null;
  return { lifeCycle, counter: readU32(b, 1), balance: readU32(b, 5) };
}

/** Record "parameters", 10 bytes, also the data of PERSONALIZE 01: currency (2, BCD) | max balance (4) | max per transaction (4). */
export interface PurseParameters {
  currency: number;
  maxBalance: number;
  maxPerTransaction: number;
}
export const PARAMETERS_LENGTH = L.currency + 4 + 4;

export function encodeParameters(p: PurseParameters): Uint8Array {
  return concatBytes(encodeCurrency(p.currency), u32(p.maxBalance), u32(p.maxPerTransaction));
}

/** Null unless the currency is valid BCD and 1 ≤ max per transaction ≤ max balance. */
export function decodeParameters(b: Uint8Array | undefined): PurseParameters | null {
  if (!b || b.length !== PARAMETERS_LENGTH) return null;
  const currency = decodeCurrency(b.subarray(0, 2));
  const maxBalance = readU32(b, 2);
  const maxPerTransaction = readU32(b, 6);
  if (currency === null || maxPerTransaction < 1 || maxPerTransaction > maxBalance) return null;
  return { currency, maxBalance, maxPerTransaction };
}

/**
 * One transaction as the log keeps it and READ LOG answers it, 50 bytes:
 * counter (4) | type (1) | amount (4) | currency (2) | terminal id (8) | terminal sequence (4) |
 * date-time (7) | balance after (4) | certificate (16).
 */
export interface PurseLogRecord {
  counter: number;
  type: PurseTransactionType;
  amount: number;
  currency: number;
  terminalId: Uint8Array;
  terminalSequence: number;
  dateTime: Uint8Array;
  balanceAfter: number;
  certificate: Uint8Array;
}

export const LOG_RECORD_OFFSET = {
  counter: 0,
  type: 4,
  amount: 5,
  currency: 9,
  terminalId: 11,
  terminalSequence: 19,
  dateTime: 23,
  balanceAfter: 30,
  certificate: 34,
} as const;
export const LOG_RECORD_LENGTH = LOG_RECORD_OFFSET.certificate + L.mac;

const TYPE_BY_CODE = new Map<number, PurseTransactionType>(
  (Object.keys(PURSE_TRANSACTION_TYPE) as PurseTransactionType[]).map((t) => [PURSE_TRANSACTION_TYPE[t], t]),
);

export function encodeLogRecord(r: PurseLogRecord): Uint8Array {
  return concatBytes(
    u32(r.counter),
    Uint8Array.of(PURSE_TRANSACTION_TYPE[r.type]),
    u32(r.amount),
    encodeCurrency(r.currency),
    r.terminalId,
    u32(r.terminalSequence),
    r.dateTime,
    u32(r.balanceAfter),
    r.certificate,
  );
}

export function decodeLogRecord(b: Uint8Array | undefined): PurseLogRecord | null {
  if (!b || b.length !== LOG_RECORD_LENGTH) return null;
  const o = LOG_RECORD_OFFSET;
  const type = TYPE_BY_CODE.get(b[o.type]);
  const currency = decodeCurrency(b.subarray(o.currency, o.currency + L.currency));
  const dateTime = b.slice(o.dateTime, o.dateTime + L.dateTime);
  if (type === undefined || currency === null || decodePurseDateTime(dateTime) === null) return null;
  return {
    counter: readU32(b, o.counter),
    type,
    amount: readU32(b, o.amount),
    currency,
    terminalId: b.slice(o.terminalId, o.terminalId + L.terminalId),
    terminalSequence: readU32(b, o.terminalSequence),
    dateTime,
    balanceAfter: readU32(b, o.balanceAfter),
    certificate: b.slice(o.certificate, o.certificate + L.mac),
  };
}

/** The log slot of the transaction numbered `counter` (1, 2, ...). */
export function logSlot(counter: number): number {
  return counter % PURSE_LOG_SIZE;
}

// ---------------------------------------------------------------------------------------------
// Command data

/** What DEBIT and LOAD both carry first, 25 bytes: amount (4) | currency (2) | terminal id (8) | terminal sequence (4) | date-time (7). */
export interface PurseTransactionRequest {
  amount: number;
  currency: number;
  terminalId: Uint8Array;
  terminalSequence: number;
  dateTime: Uint8Array;
}

export const REQUEST_OFFSET = { amount: 0, currency: 4, terminalId: 6, terminalSequence: 14, dateTime: 18 } as const;
export const DEBIT_DATA_LENGTH = REQUEST_OFFSET.dateTime + L.dateTime;
/** LOAD: the 25 bytes of a request | issuer reference (12) | load cryptogram (16). */
export const LOAD_OFFSET = { issuerReference: DEBIT_DATA_LENGTH, cryptogram: DEBIT_DATA_LENGTH + L.issuerReference } as const;
export const LOAD_DATA_LENGTH = LOAD_OFFSET.cryptogram + L.mac;
/** DEBIT and LOAD answer: counter (4) | balance after (4) | certificate (16). */
export const TRANSACTION_RESPONSE_LENGTH = 4 + 4 + L.mac;

/** Null when the currency or the date-time is not valid BCD, or the amount is 0. */
export function decodeRequest(data: Uint8Array): PurseTransactionRequest | null {
  if (data.length < DEBIT_DATA_LENGTH) return null;
  const o = REQUEST_OFFSET;
  const amount = readU32(data, o.amount);
  const currency = decodeCurrency(data.subarray(o.currency, o.currency + L.currency));
  const dateTime = data.slice(o.dateTime, o.dateTime + L.dateTime);
  if (amount === 0 || currency === null || decodePurseDateTime(dateTime) === null) return null;
  return {
    amount,
    currency,
    terminalId: data.slice(o.terminalId, o.terminalId + L.terminalId),
    terminalSequence: readU32(data, o.terminalSequence),
    dateTime,
  };
}

export function encodeRequest(r: PurseTransactionRequest): Uint8Array {
  return concatBytes(u32(r.amount), encodeCurrency(r.currency), r.terminalId, u32(r.terminalSequence), r.dateTime);
}

export function encodeTransactionResponse(counter: number, balanceAfter: number, certificate: Uint8Array): Uint8Array {
  return concatBytes(u32(counter), u32(balanceAfter), certificate);
}

/**
 * READ STATUS answer, 22 + n bytes: life cycle (1) | counter (4) | balance (4) | currency (2) |
 * max balance (4) | max per transaction (4) | log capacity (1) | log records (1) | n (1) | serial (n).
 * Before PERSONALIZE 01 the currency and limits read as zeros.
 */
export const STATUS_OFFSET = {
  lifeCycle: 0,
  counter: 1,
  balance: 5,
  currency: 9,
  maxBalance: 11,
  maxPerTransaction: 15,
  logCapacity: 19,
  logCount: 20,
  serialLength: 21,
  serial: 22,
} as const;

export function encodeStatus(state: PurseState, params: PurseParameters | null, serial: Uint8Array): Uint8Array {
  return concatBytes(
    Uint8Array.of(state.lifeCycle),
    u32(state.counter),
    u32(state.balance),
    params ? encodeCurrency(params.currency) : new Uint8Array(L.currency),
    u32(params?.maxBalance ?? 0),
    u32(params?.maxPerTransaction ?? 0),
    Uint8Array.of(PURSE_LOG_SIZE, Math.min(state.counter, PURSE_LOG_SIZE), serial.length),
    serial,
  );
}

/** READ STATUS, decoded. `currency` is null before PERSONALIZE 01 (zeros on the wire). */
export interface PurseStatus {
  lifeCycle: PurseLifeCycle;
  counter: number;
  balance: number;
  currency: number | null;
  maxBalance: number;
  maxPerTransaction: number;
  logCapacity: number;
  logCount: number;
  serial: Uint8Array;
}

/** Null for anything that is not a READ STATUS answer. */
export function decodeStatus(b: Uint8Array): PurseStatus | null {
  const o = STATUS_OFFSET;
  if (!(b instanceof Uint8Array) || b.length < o.serial + 1 || b.length !== o.serial + b[o.serialLength]) return null;
  const lifeCycle = b[o.lifeCycle];
  if (lifeCycle !== PURSE_LIFE_CYCLE.ISSUANCE && lifeCycle !== PURSE_LIFE_CYCLE.ACTIVE) return null;
  const rawCurrency = b.subarray(o.currency, o.currency + L.currency);
  const currency = decodeCurrency(rawCurrency);
  if (currency === null && (rawCurrency[0] !== 0 || rawCurrency[1] !== 0)) return null;
  return {
    lifeCycle,
    counter: readU32(b, o.counter),
    balance: readU32(b, o.balance),
    currency,
    maxBalance: readU32(b, o.maxBalance),
    maxPerTransaction: readU32(b, o.maxPerTransaction),
    logCapacity: b[o.logCapacity],
    logCount: b[o.logCount],
    serial: b.slice(o.serial),
  };
}
