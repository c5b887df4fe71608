/**
 * The e-money purse as the terminal sees it: its AID, the commands the terminal sends, the status
 * words it may answer, and decoders for its answers (applets-spec/emoney-purse.md). The terminal
 * keeps its own copy of these layouts on purpose: card and terminal meet only at APDUs (DESIGN.md),
 * so neither imports the other's code. Field codecs shared with the issuer (currency, date-time) come
 * from src/crypto/purse-certificate.ts.
 *
 * Decoders throw ProtocolError (code PROTOCOL) for bytes that are not what the spec promises; they
 * never let a RangeError or TypeError escape.
 */
import { CommandApdu } from '../../apdu/command.js';
import { describeSw } from '../../apdu/sw.js';
import { ProtocolError } from '../../util/errors.js';
import { concatBytes, fromHex, hexByte, hexWord, toHex } from '../../util/bytes.js';
import {
  PURSE_FIELD_LENGTH as L,
  PURSE_TRANSACTION_TYPE,
  decodeCurrency,
  decodePurseDateTime,
  encodeCurrency,
  type PurseTransactionType,
} from '../../crypto/purse-certificate.js';

/** F0 + ASCII "hiltPURSE". */
export const PURSE_AID: Uint8Array = fromHex('F0 68 69 6C 74 50 55 52 53 45');

/** The purse's proprietary class before secure-channel wrapping. */
export const PURSE_CLA = 0x80;

export const PURSE_INS = { readStatus: 0xb4, readLog: 0xb2, debit: 0x54, load: 0x52 } as const;

export const PURSE_LIFE_CYCLE = { issuance: 0x07, active: 0x0f } as const;

/** Records the cyclic log keeps (READ STATUS says so too; this is the spec's value). */
export const PURSE_LOG_CAPACITY = 10;

/** Status words of the purse (emoney-purse.md "Status words"): what each means to a terminal. */
export const PURSE_SW: ReadonlyMap<number, string> = new Map([
  [0x9000, 'done'],
  [0x6581, "the purse's records are inconsistent (an altered card image)"],
  [0x6700, 'wrong data length'],
  [0x6982, 'security condition not satisfied (no secure channel, or a MAC that does not verify)'],
  [0x6985, 'not allowed in this life cycle state'],
  [0x6988, 'load cryptogram does not verify'],
  [0x6a80, 'a field out of its rules (amount 0, bad BCD)'],
  [0x6a83, 'no such log record'],
  [0x6a86, 'incorrect P1 P2'],
  [0x9401, 'amount above the balance'],
  [0x9402, "amount above the card's maximum per transaction"],
  [0x9403, 'the balance would exceed the maximum balance'],
  [0x9404, "currency is not the purse's"],
  [0x9405, 'card transaction counter exhausted'],
  [0x9406, 'terminal sequence number not above the last one logged for this terminal (replayed request)'],
]);

/** "9401 amount above the balance": the purse's meaning first, ISO 7816's otherwise. */
export function purseSwText(sw: number): string {
  return `${hexWord(sw)} ${PURSE_SW.get(sw) ?? describeSw(sw).meaning}`;
}

// ---------------------------------------------------------------------------------------------
// Commands

/** SELECT by AID, first occurrence, no FCI wanted (P2 0C): 00 A4 04 0C 0A F0 68 69 6C 74 50 55 52 53 45. */
export function selectPurse(): CommandApdu {
  return new CommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: PURSE_AID });
}

/** READ STATUS: 80 B4 00 00 00. */
export function readStatusCommand(): CommandApdu {
  return new CommandApdu({ cla: PURSE_CLA, ins: PURSE_INS.readStatus, p1: 0, p2: 0, ne: 256 });
}

/** READ LOG: record k (1 = newest .. 10), or 0 for every record, newest first. Le 00: longer answers come with 61xx. */
export function readLogCommand(record = 0): CommandApdu {
  return new CommandApdu({ cla: PURSE_CLA, ins: PURSE_INS.readLog, p1: record, p2: 0, ne: 256 });
}

export interface DebitFields {
  amount: number;
  /** ISO 4217 numeric. */
  currency: number;
  /** 8 bytes. */
  terminalId: Uint8Array;
  terminalSequence: number;
  /** 7 BCD bytes. */
  dateTime: Uint8Array;
}

function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/** DEBIT: 80 54 00 00 19 amount | currency | terminal id | terminal sequence | date-time, Le 00. */
export function debitCommand(f: DebitFields): CommandApdu {
  const data = concatBytes(u32(f.amount), encodeCurrency(f.currency), f.terminalId, u32(f.terminalSequence), f.dateTime);
  return new CommandApdu({ cla: PURSE_CLA, ins: PURSE_INS.debit, p1: 0, p2: 0, data, ne: 256 });
}

export interface LoadFields extends DebitFields {
  /** 12 bytes, the issuer's reference (0210 field 37, ASCII): the cryptogram covers it. */
  issuerReference: Uint8Array;
  /** 16 bytes, the issuer's load cryptogram. */
  cryptogram: Uint8Array;
}

/**
 * LOAD: 80 52 00 00 35 amount | currency | terminal id | terminal sequence | date-time | issuer
 * reference | load cryptogram, Le 00. The answer is DEBIT's (decodeDebitAnswer).
 */
export function loadCommand(f: LoadFields): CommandApdu {
  if (f.issuerReference.length !== L.issuerReference) throw new ProtocolError(`LOAD: issuer reference of ${f.issuerReference.length} bytes, expected ${L.issuerReference}`);
  if (f.cryptogram.length !== L.mac) throw new ProtocolError(`LOAD: load cryptogram of ${f.cryptogram.length} bytes, expected ${L.mac}`);
  const data = concatBytes(u32(f.amount), encodeCurrency(f.currency), f.terminalId, u32(f.terminalSequence), f.dateTime, f.issuerReference, f.cryptogram);
  return new CommandApdu({ cla: PURSE_CLA, ins: PURSE_INS.load, p1: 0, p2: 0, data, ne: 256 });
}

// ---------------------------------------------------------------------------------------------
// Answers

function readU32(b: Uint8Array, offset: number): number {
  return ((b[offset] << 24) | (b[offset + 1] << 16) | (b[offset + 2] << 8) | b[offset + 3]) >>> 0;
}

/** READ STATUS, decoded. */
export interface CardStatus {
  lifeCycle: number;
  active: boolean;
  counter: number;
  balance: number;
  /** ISO 4217 numeric; null before personalization. */
  currency: number | null;
  maxBalance: number;
  maxPerTransaction: number;
  logCapacity: number;
  logCount: number;
  serial: Uint8Array;
}

/** READ STATUS layout: offsets of its fields (serial last, n bytes after its length byte). */
const STATUS = { lifeCycle: 0, counter: 1, balance: 5, currency: 9, maxBalance: 11, maxPerTransaction: 15, logCapacity: 19, logCount: 20, serialLength: 21, serial: 22 } as const;

export function decodeCardStatus(b: Uint8Array): CardStatus {
  if (b.length < STATUS.serial + 1) throw new ProtocolError(`READ STATUS: ${b.length} bytes, expected at least ${STATUS.serial + 1}`);
  const n = b[STATUS.serialLength];
  if (n === 0 || b.length !== STATUS.serial + n) throw new ProtocolError(`READ STATUS: ${b.length} bytes for a serial of ${n}`);
  const lifeCycle = b[STATUS.lifeCycle];
  if (lifeCycle !== PURSE_LIFE_CYCLE.issuance && lifeCycle !== PURSE_LIFE_CYCLE.active) {
    throw new ProtocolError(`READ STATUS: unknown life cycle ${hexByte(lifeCycle)}`);
  }
  const rawCurrency = b.subarray(STATUS.currency, STATUS.currency + L.currency);
  const currency = decodeCurrency(rawCurrency);
  if (currency === null && (rawCurrency[0] !== 0 || rawCurrency[1] !== 0)) throw new ProtocolError(`READ STATUS: currency ${toHex(rawCurrency)} is not BCD`);
  const counter = readU32(b, STATUS.counter);
  const logCount = b[STATUS.logCount];
  if (logCount > b[STATUS.logCapacity] || logCount > counter) throw new ProtocolError(`READ STATUS: ${logCount} log records for counter ${counter}`);
  return {
    lifeCycle,
    active: lifeCycle === PURSE_LIFE_CYCLE.active,
    counter,
    balance: readU32(b, STATUS.balance),
    currency,
    maxBalance: readU32(b, STATUS.maxBalance),
    maxPerTransaction: readU32(b, STATUS.maxPerTransaction),
    logCapacity: b[STATUS.logCapacity],
    logCount,
    serial: b.slice(STATUS.serial),
  };
}

/** One record of the card's log. */
export interface CardLogEntry {
  counter: number;
  type: PurseTransactionType;
  amount: number;
  /** ISO 4217 numeric. */
  currency: number;
  terminalId: Uint8Array;
  terminalSequence: number;
  dateTime: Uint8Array;
  balanceAfter: number;
  certificate: Uint8Array;
}

const LOG = { counter: 0, type: 4, amount: 5, currency: 9, terminalId: 11, terminalSequence: 19, dateTime: 23, balanceAfter: 30, certificate: 34 } as const;
/** Bytes per log record (50). */
export const LOG_RECORD_LENGTH = LOG.certificate + L.mac;

const TYPE_BY_CODE = new Map<number, PurseTransactionType>(
  (Object.keys(PURSE_TRANSACTION_TYPE) as PurseTransactionType[]).map((t) => [PURSE_TRANSACTION_TYPE[t], t]),
);

function decodeLogRecord(b: Uint8Array, index: number): CardLogEntry {
  const type = TYPE_BY_CODE.get(b[LOG.type]);
  const currency = decodeCurrency(b.subarray(LOG.currency, LOG.currency + L.currency));
  const dateTime = b.slice(LOG.dateTime, LOG.dateTime + L.dateTime);
  if (type === undefined || currency === null || decodePurseDateTime(dateTime) === null) {
    throw new ProtocolError(`READ LOG: record ${index + 1} is not a log record (type, currency or date-time)`);
  }
  return {
    counter: readU32(b, LOG.counter),
    type,
    amount: readU32(b, LOG.amount),
    currency,
    terminalId: b.slice(LOG.terminalId, LOG.terminalId + L.terminalId),
    terminalSequence: readU32(b, LOG.terminalSequence),
    dateTime,
    balanceAfter: readU32(b, LOG.balanceAfter),
    certificate: b.slice(LOG.certificate, LOG.certificate + L.mac),
  };
}

/**
 * READ LOG data: 50-byte records, newest first. Their counters must run down by one from the first
 * (the card logs every transaction): anything else is a ProtocolError.
 */
export function decodeCardLog(b: Uint8Array): CardLogEntry[] {
  if (b.length % LOG_RECORD_LENGTH !== 0) throw new ProtocolError(`READ LOG: ${b.length} bytes is not a whole number of ${LOG_RECORD_LENGTH}-byte records`);
  const out: CardLogEntry[] = [];
  for (let i = 0; i * LOG_RECORD_LENGTH < b.length; i++) {
    const entry = decodeLogRecord(b.subarray(i * LOG_RECORD_LENGTH, (i + 1) * LOG_RECORD_LENGTH), i);
    if (i > 0 && entry.counter !== out[i - 1].counter - 1) {
      throw new ProtocolError(`READ LOG: record ${i + 1} has counter ${entry.counter} after ${out[i - 1].counter}`);
    }
    out.push(entry);
  }
  return out;
}

/** DEBIT (and LOAD) answer: counter | balance after | certificate, 24 bytes. */
export interface DebitAnswer {
  counter: number;
  balanceAfter: number;
  certificate: Uint8Array;
}

export const DEBIT_ANSWER_LENGTH = 4 + 4 + L.mac;

export function decodeDebitAnswer(b: Uint8Array): DebitAnswer {
  if (b.length !== DEBIT_ANSWER_LENGTH) throw new ProtocolError(`DEBIT answer: ${b.length} bytes, expected ${DEBIT_ANSWER_LENGTH}`);
  return { counter: readU32(b, 0), balanceAfter: readU32(b, 4), certificate: b.slice(8) };
}
