/**
 * hilt's host-link messages: constructors and parsers for each message pair, over the ISO 8583 model
 * (iso8583/message.ts). Constructors return unsigned messages (the channel MACs them); parsers take a
 * received message, check it against MESSAGE_SPECS and the content rules below, and return plain
 * typed data, throwing Iso8583Error (code PROTOCOL, with the field) on anything else, so a host can
 * answer 30 (format error).
 *
 * Every message carries 7 (transmission date-time, UTC), 11 (STAN = the reader sequence number),
 * 41 (terminal id), 42 (reader id) and 53 (the version of the key that MACs it), and its MAC in 64,
 * or 128 when it has a secondary bitmap (reconciliation). A response copies 11, 41, 42 and 53 from
 * its request, and is matched to it by them (channel.ts).
 *
 *   0800/0810  network management: sign-on 001, sign-off 002, echo 301, key change 161 (70).
 *              0810 of an approved key change: 48 {DF20 new key version, DF21 wrapped key, DF22 KCV},
 *              the new MAC key wrapped under the terminal's key-encryption key (mac.ts). The 0810
 *              itself is MACed with the old key. Optional 62 {DF40 challenge, DF41 signature}: reader
 *              authentication at sign-on.
 *   0200/0210  load authorization: 2 serial, 3 210000, 4+49 amount, 12/13 local time/date,
 *              48 {DF04 date-time}, 55 {DF52 card counter before the load}. Approved 0210: 37 issuer
 *              reference (12 characters, which the load cryptogram covers), 38 authorization id,
 *              55 {DF5B load cryptogram}.
 *   0220/0230  advice of a transaction the terminal journaled (0221 = repeat, same STAN): 2, 3, 4+49,
 *              12/13, 48 {DF02 outcome, DF04 date-time, DF03 note?}; 55 the purse transaction and its
 *              certificate (DF51..DF5A) when value moved, else at most {DF52 counter the card showed};
 *              37 the authorization's reference for a load. 0230 is the acknowledgement.
 *   0400/0410  reversal (0401 = repeat): 2, 3, 4+49, 90 original data elements; 0410 echoes 90.
 *   0300/0310  negative-list update: 48 {DF10 terminal's version, DF12 chunk wanted}; 0310 48 {DF10
 *              from, DF11 to, DF12 chunk, DF13 chunk count, DF14 delta/snapshot}, 63 the chunk's
 *              changes: E1 {DF51 serial, DF5D reason} adds, E2 {DF51 serial} removes.
 *   0500/0510  reconciliation of one currency: 48 {DF30 first, DF31 last reader sequence covered},
 *              49, 74..77 and 81 counts, 86..89 amounts; 0510 carries the host's totals (39 = 00 when
 *              they agree, 95 when they do not).
 *   0620/0630  administrative advice: an anomaly the terminal detected (0621 = repeat, same STAN).
 *              STAN = the terminal's anomaly sequence (its journal's anomaly id), the key the host
 *              applies once; 2 card serial, 12/13 local time, 48 {DF60 kind, DF04 date-time, DF61 last
 *              counter the terminal saw?, DF62 reader sequence of the transaction?, DF63 details, compact
 *              JSON object}, 55 {DF52 card counter the card showed} when read. 0630 = acknowledgement.
 */
import { Iso8583Error, type Iso8583Reason } from './iso8583/errors.js';
import { IsoMessage, fromDigits, toDigits, type Money } from './iso8583/message.js';
import { macFieldFor, WRAPPED_KEY_MAX, type WrappedKey } from './iso8583/mac.js';
import { PREFIX_MAX } from './iso8583/fields.js';
import { Tlv, encodeTlv, parseTlv, tagHex } from '../apdu/tlv.js';
import {
  PURSE_TRANSACTION_TYPE,
  decodeCurrency,
  decodePurseDateTime,
  encodeCurrency,
  encodePurseDateTime,
  type PurseCertificateFields,
  type PurseDateTime,
  type PurseTransactionType,
} from '../crypto/purse-certificate.js';
import { bytesEqual } from '../util/bytes.js';
import { CURRENCIES, findCurrency } from '../util/iso4217.js';

type Code = 'PROTOCOL' | 'BAD_INPUT';

// ---------------------------------------------------------------------------------------------
// Tables

/** Response codes (field 39) hilt uses, by name. */
export const RC = {
  approved: '00',
  doNotHonour: '05',
  invalidTransaction: '12',
  invalidAmount: '13',
  invalidCard: '14',
  recordNotFound: '25',
  formatError: '30',
  notSupported: '40',
  exceedsLimit: '61',
  securityViolation: '63',
  issuerUnavailable: '91',
  duplicate: '94',
  reconcileError: '95',
  systemMalfunction: '96',
  // Reader authentication (reader-auth.ts), in ISO 8583:1987's private-use range 76..89.
  readerNotSignedOn: '76',
  badEnrolmentCode: '77',
  badReaderSignature: '78',
  unknownReader: '79',
  blockedReader: '80',
  badChallenge: '81',
} as const;
export type ResponseCode = (typeof RC)[keyof typeof RC];

export interface ResponseCodeInfo {
  readonly code: ResponseCode;
  readonly meaning: string;
  /** approved: done; duplicate: done before (an advice answered 94 is delivered); declined: a decision; error: the message or the host failed. */
  readonly kind: 'approved' | 'duplicate' | 'declined' | 'error';
  /** Worth sending the same message again later (store-and-forward keeps it). */
  readonly retry: boolean;
}

// prettier-ignore
export const RESPONSE_CODE_TABLE: readonly ResponseCodeInfo[] = Object.freeze([
  { code: RC.approved,           meaning: 'Approved',                                                        kind: 'approved',  retry: false },
  { code: RC.doNotHonour,        meaning: 'Do not honour',                                                   kind: 'declined',  retry: false },
  { code: RC.invalidTransaction, meaning: 'Invalid transaction',                                             kind: 'declined',  retry: false },
  { code: RC.invalidAmount,      meaning: 'Invalid amount',                                                  kind: 'declined',  retry: false },
  { code: RC.invalidCard,        meaning: 'Invalid card number: the card is blocked or unknown',             kind: 'declined',  retry: false },
  { code: RC.recordNotFound,     meaning: 'Unable to locate record: negative-list version unknown, ask for a snapshot', kind: 'declined', retry: false },
  { code: RC.formatError,        meaning: 'Format error',                                                    kind: 'error',     retry: false },
  { code: RC.notSupported,       meaning: 'Requested function not supported',                                kind: 'error',     retry: false },
  { code: RC.exceedsLimit,       meaning: 'Exceeds amount limit',                                            kind: 'declined',  retry: false },
  { code: RC.securityViolation,  meaning: 'Security violation: the MAC does not verify',                     kind: 'error',     retry: false },
  { code: RC.issuerUnavailable,  meaning: 'Issuer unavailable',                                              kind: 'error',     retry: true },
  { code: RC.duplicate,          meaning: 'Duplicate transmission: already received, nothing done twice',    kind: 'duplicate', retry: false },
  { code: RC.reconcileError,     meaning: 'Reconcile error: the totals differ',                              kind: 'declined',  retry: false },
  { code: RC.systemMalfunction,  meaning: 'System malfunction',                                              kind: 'error',     retry: true },
  { code: RC.readerNotSignedOn,  meaning: 'Reader not signed on, or its session expired: sign on, then send again', kind: 'error', retry: true },
  { code: RC.badEnrolmentCode,   meaning: 'Enrolment code unknown, already used, expired or issued for another reader', kind: 'declined', retry: false },
  { code: RC.badReaderSignature, meaning: "Reader signature does not verify under the reader's public key",   kind: 'error',     retry: false },
  { code: RC.unknownReader,      meaning: 'Unknown reader: not enrolled for this terminal',                  kind: 'declined',  retry: false },
  { code: RC.blockedReader,      meaning: 'Reader on the negative reader list (lost or stolen)',             kind: 'declined',  retry: false },
  { code: RC.badChallenge,       meaning: 'Sign-on challenge unknown, already used or expired: ask for a new one', kind: 'error', retry: false },
].map((r) => Object.freeze(r as ResponseCodeInfo)));

export const RESPONSE_CODES: ReadonlyMap<string, ResponseCodeInfo> = new Map(RESPONSE_CODE_TABLE.map((r) => [r.code, r]));

/** Network management information codes (field 70). */
export const NETWORK_CODES = { signOn: '001', signOff: '002', keyChange: '161', echo: '301' } as const;
export type NetworkCode = keyof typeof NETWORK_CODES;

/** Processing codes (field 3): transaction type, from-account 00, to-account 00. */
export const PROCESSING_CODES = { purchase: '000000', refund: '200000', load: '210000' } as const;
export type TransactionKind = keyof typeof PROCESSING_CODES;

/** The purse transaction type each kind shows in its certificate (a refund credits the purse: a load). */
export const PURSE_TYPE_OF_KIND: Readonly<Record<TransactionKind, PurseTransactionType>> = { purchase: 'debit', refund: 'load', load: 'load' };

/** How the journaled transaction an advice reports ended (48 DF02). */
export const ADVICE_OUTCOMES = { complete: 0x01, recovered: 0x02, failed: 0x03, 'never-happened': 0x04 } as const;
export type AdviceOutcome = keyof typeof ADVICE_OUTCOMES;
/** Outcomes in which value moved on the card: the advice carries the purse record and its certificate. */
export const VALUE_MOVED_OUTCOMES: readonly AdviceOutcome[] = ['complete', 'recovered'];

/** Anomalies a terminal reports in an 0620 (48 DF60): the terminal journal's kinds. */
export const ANOMALY_REPORT_KINDS = { rollback: 0x01, repeat: 0x02, clone: 0x03, gap: 0x04, 'blocked-card': 0x05, other: 0x06 } as const;
export type AnomalyReportKind = keyof typeof ANOMALY_REPORT_KINDS;
/** Largest 48 DF63 (the details' compact JSON), so 48 stays within its 999 bytes with every other tag. */
export const ANOMALY_DETAILS_MAX = 900;

/** Negative-list update kinds (48 DF14). */
export const NEGATIVE_LIST_KINDS = { delta: 0x01, snapshot: 0x02 } as const;
export type NegativeListKind = keyof typeof NEGATIVE_LIST_KINDS;

/** "JPY" or "392" → "392" (field 49); the alphabetic codes are src/util/iso4217.ts's. */
export function currencyNumeric(code: string): string {
  if (typeof code === 'string' && /^[0-9]{3}$/.test(code) && code !== '000') return code;
  const c = typeof code === 'string' ? findCurrency(code) : undefined;
  if (c === undefined) throw new Iso8583Error('BAD_INPUT', 'bad-value', `currency: ${JSON.stringify(code)} is neither 3 digits nor one of ${CURRENCIES.map((x) => x.alpha).join(', ')}`, 49);
  return String(c.numeric).padStart(3, '0');
}

/** The hilt tags of the TLV fields. */
export const TAG = {
  outcome: 0xdf02,
  note: 0xdf03,
  dateTime: 0xdf04,
  listVersion: 0xdf10,
  listTargetVersion: 0xdf11,
  chunk: 0xdf12,
  chunkCount: 0xdf13,
  listKind: 0xdf14,
  newKeyVersion: 0xdf20,
  wrappedKey: 0xdf21,
  keyCheckValue: 0xdf22,
  firstSequence: 0xdf30,
  lastSequence: 0xdf31,
  challenge: 0xdf40,
  anomalyKind: 0xdf60,
  lastCounter: 0xdf61,
  anomalyReaderSequence: 0xdf62,
  anomalyDetails: 0xdf63,
  signature: 0xdf41,
  enrolmentCode: 0xdf42,
  readerPublicKey: 0xdf43,
  serial: 0xdf51,
  cardCounter: 0xdf52,
  purseType: 0xdf53,
  purseAmount: 0xdf54,
  purseCurrency: 0xdf55,
  purseTerminalId: 0xdf56,
  terminalSequence: 0xdf57,
  purseDateTime: 0xdf58,
  balanceAfter: 0xdf59,
  certificate: 0xdf5a,
  loadCryptogram: 0xdf5b,
  reason: 0xdf5d,
  addEntry: 0xe1,
  removeEntry: 0xe2,
} as const;

export interface TagDef {
  readonly tag: number;
  readonly name: string;
  /** The fields it appears in. */
  readonly fields: readonly number[];
  /** Value length bounds in bytes (constructed templates: of their encoded children). */
  readonly min: number;
  readonly max: number;
}

// prettier-ignore
/** Every hilt tag: where it goes and how long its value is. Integers are unsigned big-endian. */
export const TAG_TABLE: readonly TagDef[] = Object.freeze([
  { tag: TAG.outcome,           name: 'advice outcome: 01 complete, 02 recovered, 03 failed, 04 never-happened', fields: [48], min: 1, max: 1 },
  { tag: TAG.note,              name: 'note (UTF-8), why a transaction failed',                fields: [48], min: 1, max: 99 },
  { tag: TAG.dateTime,          name: 'transaction date-time, BCD YYYYMMDDhhmmss (local)',     fields: [48], min: 7, max: 7 },
  { tag: TAG.listVersion,       name: "negative-list version (the terminal's; from)",          fields: [48], min: 4, max: 4 },
  { tag: TAG.listTargetVersion, name: 'negative-list version after this update (to)',          fields: [48], min: 4, max: 4 },
  { tag: TAG.chunk,             name: 'chunk index, from 0',                                   fields: [48], min: 2, max: 2 },
  { tag: TAG.chunkCount,        name: 'chunk count',                                           fields: [48], min: 2, max: 2 },
  { tag: TAG.listKind,          name: 'update kind: 01 delta, 02 snapshot',                    fields: [48], min: 1, max: 1 },
  { tag: TAG.newKeyVersion,     name: 'new MAC key version',                                   fields: [48], min: 1, max: 1 },
  { tag: TAG.wrappedKey,        name: 'new MAC key, wrapped (mac.ts wrapKey)',                 fields: [48], min: 32, max: WRAPPED_KEY_MAX },
  { tag: TAG.keyCheckValue,     name: 'key check value of the new MAC key',                    fields: [48], min: 3, max: 3 },
  { tag: TAG.firstSequence,     name: 'first reader sequence number covered',                  fields: [48], min: 4, max: 4 },
  { tag: TAG.lastSequence,      name: 'last reader sequence number covered',                   fields: [48], min: 4, max: 4 },
  { tag: TAG.anomalyKind,       name: 'anomaly kind: 01 rollback, 02 repeat, 03 clone, 04 gap, 05 blocked-card, 06 other', fields: [48], min: 1, max: 1 },
  { tag: TAG.lastCounter,       name: 'last card counter the terminal saw',                    fields: [48], min: 4, max: 4 },
  { tag: TAG.anomalyReaderSequence, name: 'reader sequence of the transaction the anomaly concerns', fields: [48], min: 4, max: 4 },
  { tag: TAG.anomalyDetails,    name: 'anomaly details: a compact JSON object (UTF-8)',        fields: [48], min: 2, max: ANOMALY_DETAILS_MAX },
  { tag: TAG.challenge,         name: 'reader authentication challenge',                       fields: [62], min: 8, max: 64 },
  { tag: TAG.signature,         name: 'reader authentication signature',                       fields: [62], min: 1, max: 512 },
  { tag: TAG.enrolmentCode,     name: 'one-time enrolment code (ASCII), reader-auth.ts',       fields: [62], min: 8, max: 32 },
  { tag: TAG.readerPublicKey,   name: 'reader public key, P-256 uncompressed (04 X Y)',        fields: [62], min: 65, max: 65 },
  { tag: TAG.serial,            name: 'card serial',                                           fields: [55, 63], min: 1, max: 32 },
  { tag: TAG.cardCounter,       name: 'card transaction counter',                              fields: [55], min: 4, max: 4 },
  { tag: TAG.purseType,         name: 'purse transaction type: 01 debit, 02 load',             fields: [55], min: 1, max: 1 },
  { tag: TAG.purseAmount,       name: 'amount, minor units',                                   fields: [55], min: 4, max: 4 },
  { tag: TAG.purseCurrency,     name: 'currency, ISO 4217 numeric as BCD',                     fields: [55], min: 2, max: 2 },
  { tag: TAG.purseTerminalId,   name: 'terminal id as the card recorded it',                   fields: [55], min: 8, max: 8 },
  { tag: TAG.terminalSequence,  name: 'terminal sequence number',                              fields: [55], min: 4, max: 4 },
  { tag: TAG.purseDateTime,     name: 'date-time as the card recorded it, BCD YYYYMMDDhhmmss', fields: [55], min: 7, max: 7 },
  { tag: TAG.balanceAfter,      name: 'balance after the transaction',                         fields: [55], min: 4, max: 4 },
  { tag: TAG.certificate,       name: 'transaction certificate (purse-certificate.ts)',        fields: [55], min: 16, max: 16 },
  { tag: TAG.loadCryptogram,    name: 'load cryptogram (purse-certificate.ts)',                fields: [55], min: 16, max: 16 },
  { tag: TAG.reason,            name: 'negative-list reason (UTF-8)',                          fields: [63], min: 1, max: 255 },
  { tag: TAG.addEntry,          name: 'negative-list change: add {DF51, DF5D}',                fields: [63], min: 7, max: 300 },
  { tag: TAG.removeEntry,       name: 'negative-list change: remove {DF51}',                   fields: [63], min: 4, max: 35 },
].map((t) => Object.freeze(t)));

export const TAGS: ReadonlyMap<number, TagDef> = new Map(TAG_TABLE.map((t) => [t.tag, t]));

export interface MessageSpec {
  readonly mti: string;
  readonly mandatory: readonly number[];
  readonly optional: readonly number[];
}

const RESPONSE_BASE = [7, 11, 39, 41, 42, 53] as const;

// prettier-ignore
/**
 * The fields of each message, besides its MAC (64, or 128 with a secondary bitmap). Responses need
 * only the base (so any request can be refused); what an approval must carry is checked by its parser.
 */
export const MESSAGE_SPECS: ReadonlyMap<string, MessageSpec> = new Map(([
  { mti: '0800', mandatory: [7, 11, 41, 42, 53, 70],                                  optional: [24, 62] },
  { mti: '0810', mandatory: RESPONSE_BASE,                                            optional: [48, 62, 70] },
  { mti: '0200', mandatory: [2, 3, 4, 7, 11, 12, 13, 41, 42, 48, 49, 53, 55],         optional: [24, 32] },
  { mti: '0210', mandatory: RESPONSE_BASE,                                            optional: [2, 3, 4, 37, 38, 49, 55] },
  { mti: '0220', mandatory: [2, 3, 4, 7, 11, 12, 13, 41, 42, 48, 49, 53],             optional: [24, 32, 37, 55] },
  { mti: '0221', mandatory: [2, 3, 4, 7, 11, 12, 13, 41, 42, 48, 49, 53],             optional: [24, 32, 37, 55] },
  { mti: '0230', mandatory: RESPONSE_BASE,                                            optional: [] },
  { mti: '0300', mandatory: [7, 11, 41, 42, 48, 53],                                  optional: [24] },
  { mti: '0310', mandatory: RESPONSE_BASE,                                            optional: [48, 63] },
  { mti: '0400', mandatory: [2, 3, 4, 7, 11, 41, 42, 49, 53, 90],                     optional: [24, 32] },
  { mti: '0401', mandatory: [2, 3, 4, 7, 11, 41, 42, 49, 53, 90],                     optional: [24, 32] },
  { mti: '0410', mandatory: RESPONSE_BASE,                                            optional: [90] },
  { mti: '0500', mandatory: [7, 11, 41, 42, 48, 49, 53, 74, 75, 76, 77, 81, 86, 87, 88, 89], optional: [24] },
  { mti: '0510', mandatory: RESPONSE_BASE,                                            optional: [49, 74, 75, 76, 77, 81, 86, 87, 88, 89] },
  { mti: '0620', mandatory: [2, 7, 11, 12, 13, 41, 42, 48, 53],                       optional: [24, 55] },
  { mti: '0621', mandatory: [2, 7, 11, 12, 13, 41, 42, 48, 53],                       optional: [24, 55] },
  { mti: '0630', mandatory: RESPONSE_BASE,                                            optional: [] },
] as MessageSpec[]).map((s) => [s.mti, Object.freeze(s)]));

// ---------------------------------------------------------------------------------------------
// Small helpers

function err(code: Code, reason: Iso8583Reason, text: string, field: number | null): Iso8583Error {
  return new Iso8583Error(code, reason, text, field);
}

const U32_MAX = 0xffff_ffff;

function u32(v: number, name: string, field: number | null): Uint8Array {
  if (!Number.isInteger(v) || v < 0 || v > U32_MAX) throw err('BAD_INPUT', 'bad-value', `${name}: expected an integer from 0 to ${U32_MAX}, got ${String(v)}`, field);
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function u16(v: number, name: string, field: number | null): Uint8Array {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw err('BAD_INPUT', 'bad-value', `${name}: expected an integer from 0 to 65535, got ${String(v)}`, field);
  return Uint8Array.of(v >> 8, v & 0xff);
}

function readUint(b: Uint8Array): number {
  let v = 0;
  for (const x of b) v = v * 256 + x;
  return v;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function text(bytes: Uint8Array, name: string, field: number): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw err('PROTOCOL', 'bad-value', `${name} is not UTF-8`, field);
  }
}

function primitive(tag: number, value: Uint8Array): Tlv {
  const def = TAGS.get(tag) as TagDef;
  if (value.length < def.min || value.length > def.max) {
    throw err('BAD_INPUT', 'bad-value', `${def.name} (${tagHex(tag)}): expected ${def.min === def.max ? def.min : `${def.min} to ${def.max}`} bytes, got ${value.length}`, def.fields[0]);
  }
  return Tlv.primitive(tag, value);
}

/** Checks one received object against TAG_TABLE and the tags allowed where it is. */
function checkTag(t: Tlv, allowed: readonly number[], field: number, where: string): void {
  const def = TAGS.get(t.tag);
  if (def === undefined || !allowed.includes(t.tag) || !def.fields.includes(field)) {
    throw err('PROTOCOL', 'bad-value', `tag ${tagHex(t.tag)} is not allowed in ${where}`, field);
  }
  if (t.length < def.min || t.length > def.max) {
    throw err('PROTOCOL', 'bad-value', `${def.name} (${tagHex(t.tag)}): ${t.length} bytes, expected ${def.min === def.max ? def.min : `${def.min} to ${def.max}`}`, field);
  }
}

/** The primitive objects of a TLV list by tag: only `allowed` tags, each at most once, lengths checked. */
function tagsOf(list: readonly Tlv[], allowed: readonly number[], field: number, where: string): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (const t of list) {
    checkTag(t, allowed, field, where);
    if (out.has(t.tag)) throw err('PROTOCOL', 'bad-value', `tag ${tagHex(t.tag)} appears twice in ${where}`, field);
    out.set(t.tag, t.value);
  }
  return out;
}

/** The TLV field of a received message, by tag. */
function tlvField(msg: IsoMessage, field: number, allowed: readonly number[]): Map<number, Uint8Array> {
  const bytes = msg.bytes(field);
  if (bytes === undefined) throw err('PROTOCOL', 'missing-field', `${msg.mti} needs field ${field}`, field);
  return tagsOf(parseTlv(bytes), allowed, field, `field ${field} of ${msg.mti}`);
}

function need(tags: Map<number, Uint8Array>, tag: number, field: number): Uint8Array {
  const v = tags.get(tag);
  if (v === undefined) throw err('PROTOCOL', 'missing-field', `${(TAGS.get(tag) as TagDef).name} (${tagHex(tag)}) is missing`, field);
  return v;
}

function needField(msg: IsoMessage, n: number): string {
  const v = msg.text(n);
  if (v === undefined) throw err('PROTOCOL', 'missing-field', `${msg.mti} needs field ${n}`, n);
  return v;
}

function lookup<K extends string>(table: Readonly<Record<K, number | string>>, value: number | string, name: string, field: number): K {
  const key = (Object.keys(table) as K[]).find((k) => table[k] === value);
  if (key === undefined) throw err('PROTOCOL', 'bad-value', `${name} ${JSON.stringify(value)} is not one of ${Object.values(table).join(', ')}`, field);
  return key;
}

function checkSerial(serial: Uint8Array, code: Code): void {
  if (!(serial instanceof Uint8Array) || serial.length < 1 || serial.length > 32) {
    throw err(code, 'bad-value', `card serial: expected 1 to 32 bytes, got ${serial instanceof Uint8Array ? serial.length : typeof serial}`, 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Field checks against the spec table

/** Refuses a message lacking a mandatory field or carrying one its type does not allow (code PROTOCOL). */
export function checkMessageFields(msg: IsoMessage): void {
  const spec = MESSAGE_SPECS.get(msg.mti);
  if (spec === undefined) throw err('PROTOCOL', 'unknown-mti', `no message spec for ${msg.mti}`, 0);
  for (const n of spec.mandatory) if (!msg.has(n)) throw err('PROTOCOL', 'missing-field', `${msg.mti} needs field ${n}`, n);
  const allowed = new Set([...spec.mandatory, ...spec.optional, macFieldFor(msg)]);
  for (const n of msg.numbers()) if (!allowed.has(n)) throw err('PROTOCOL', 'unexpected-field', `${msg.mti} does not carry field ${n}`, n);
}

// ---------------------------------------------------------------------------------------------
// Headers

/** What every request carries besides its own fields. */
export interface RequestHeader {
  /** Field 41: 1..8 characters (the purse records field 41's 8 bytes, padding included). */
  terminalId: string;
  /** Field 42: 1..15 characters. */
  readerId: string;
  /** Field 11: the reader sequence number; at most 4294967295 where a purse records it. */
  stan: number;
  /** Field 7, sent as UTC MMDDhhmmss. */
  at: Date;
  /** Field 53: version of the terminal's MAC key. */
  keyVersion: number;
  /** Field 24: the destination host the gateway routes to, 0..999. */
  nii?: number;
}

export interface ParsedHeader {
  mti: string;
  terminalId: string;
  readerId: string;
  stan: number;
  /** Field 7 as sent: MMDDhhmmss, UTC. */
  transmitted: string;
  keyVersion: number;
  nii?: number;
}

/** A response's own fields. */
export interface ResponseOptions {
  responseCode: ResponseCode;
  /** Field 7 of the response. */
  at: Date;
}

/** Field 7: UTC MMDDhhmmss. */
export function transmissionDateTime(at: Date): string {
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw err('BAD_INPUT', 'bad-value', 'transmission date-time: expected a valid Date', 7);
  const two = (v: number) => String(v).padStart(2, '0');
  return two(at.getUTCMonth() + 1) + two(at.getUTCDate()) + two(at.getUTCHours()) + two(at.getUTCMinutes()) + two(at.getUTCSeconds());
}

function checkTransmitted(s: string, field: number): void {
  const month = Number(s.slice(0, 2));
  const day = Number(s.slice(2, 4));
  const ok = month >= 1 && month <= 12 && day >= 1 && day <= 31 && Number(s.slice(4, 6)) <= 23 && Number(s.slice(6, 8)) <= 59 && Number(s.slice(8, 10)) <= 59;
  if (!ok) throw err('PROTOCOL', 'bad-value', `date-time ${s} is not MMDDhhmmss`, field);
}

function requestBase(mti: string, h: RequestHeader): IsoMessage {
  if (typeof h !== 'object' || h === null) throw err('BAD_INPUT', 'bad-value', 'header: expected { terminalId, readerId, stan, at, keyVersion }', null);
  let m = new IsoMessage(mti)
    .with(7, transmissionDateTime(h.at))
    .withStan(h.stan)
    .withTerminalId(h.terminalId)
    .withReaderId(h.readerId)
    .withKeyVersion(h.keyVersion);
  if (h.nii !== undefined) m = m.with(24, toDigits(h.nii, 3, 'NII'));
  return m;
}

function responseBase(request: IsoMessage, o: ResponseOptions): IsoMessage {
  if (!(request instanceof IsoMessage)) throw err('BAD_INPUT', 'bad-type', 'expected the request IsoMessage', null);
  if (typeof o !== 'object' || o === null || !RESPONSE_CODES.has(o.responseCode)) {
    throw err('BAD_INPUT', 'bad-value', `response code: ${JSON.stringify(o?.responseCode)} is not in RESPONSE_CODE_TABLE`, 39);
  }
  let m = new IsoMessage(request.responseMti()).with(7, transmissionDateTime(o.at)).with(39, o.responseCode);
  for (const n of [11, 41, 42, 53]) {
    const v = request.get(n);
    if (v === undefined) throw err('BAD_INPUT', 'missing-field', `the request has no field ${n} to answer with`, n);
    m = m.with(n, v);
  }
  return m;
}

/**
 * The shortest answer to any request: 7, 11, 39, 41, 42, 53 (and 70 / 90 echoed when the request
 * has them). For refusals: 30 format error, 63 security violation, 40 not supported, 96 ...
 */
export function refusal(request: IsoMessage, o: ResponseOptions): IsoMessage {
  let m = responseBase(request, o);
  for (const n of [70, 90]) {
    const v = request.get(n);
    if (v !== undefined && MESSAGE_SPECS.get(m.mti)?.optional.includes(n)) m = m.with(n, v);
  }
  return m;
}

/** The common fields of any hilt message (checks them; code PROTOCOL). */
export function parseHeader(msg: IsoMessage): ParsedHeader {
  checkMessageFields(msg);
  const transmitted = needField(msg, 7);
  checkTransmitted(transmitted, 7);
  const h: ParsedHeader = {
    mti: msg.mti,
    terminalId: msg.terminalId() as string,
    readerId: msg.readerId() as string,
    stan: msg.stan() as number,
    transmitted,
    keyVersion: msg.keyVersion() as number,
  };
  if (h.terminalId === '' || h.terminalId.startsWith(' ')) throw err('PROTOCOL', 'bad-value', 'terminal id is blank or starts with a space', 41);
  if (h.readerId === '' || h.readerId.startsWith(' ')) throw err('PROTOCOL', 'bad-value', 'reader id is blank or starts with a space', 42);
  const nii = msg.text(24);
  if (nii !== undefined) h.nii = fromDigits(nii, 24);
  return h;
}

function parseResponseCode(msg: IsoMessage): ResponseCode {
  const rc = needField(msg, 39);
  if (!RESPONSE_CODES.has(rc)) throw err('PROTOCOL', 'bad-value', `response code ${JSON.stringify(rc)} is not one hilt uses`, 39);
  return rc as ResponseCode;
}

function expectMti(msg: IsoMessage, mtis: readonly string[]): void {
  if (!(msg instanceof IsoMessage)) throw err('BAD_INPUT', 'bad-type', 'expected an IsoMessage', null);
  if (!mtis.includes(msg.mti)) throw err('PROTOCOL', 'unexpected-field', `expected MTI ${mtis.join(' or ')}, got ${msg.mti}`, 0);
}

// ---------------------------------------------------------------------------------------------
// Local date-time (12, 13 and 48 DF04)

function withLocalDateTime(m: IsoMessage, dt: PurseDateTime): IsoMessage {
  const two = (v: number) => String(v).padStart(2, '0');
  encodePurseDateTime(dt); // validates the ranges
  return m.with(12, two(dt.hour) + two(dt.minute) + two(dt.second)).with(13, two(dt.month) + two(dt.day));
}

/** 48 DF04 decoded and checked against 12 and 13. */
function parseLocalDateTime(msg: IsoMessage, tags48: Map<number, Uint8Array>): PurseDateTime {
  const dt = decodePurseDateTime(need(tags48, TAG.dateTime, 48));
  if (dt === null) throw err('PROTOCOL', 'bad-value', 'date-time (DF04) is not BCD YYYYMMDDhhmmss in range', 48);
  const two = (v: number) => String(v).padStart(2, '0');
  if (needField(msg, 12) !== two(dt.hour) + two(dt.minute) + two(dt.second)) throw err('PROTOCOL', 'bad-value', 'field 12 differs from the time in DF04', 12);
  if (needField(msg, 13) !== two(dt.month) + two(dt.day)) throw err('PROTOCOL', 'bad-value', 'field 13 differs from the date in DF04', 13);
  return dt;
}

function withTlv48(m: IsoMessage, objects: Tlv[]): IsoMessage {
  return m.with(48, encodeTlv(objects));
}

function dateTimeTlv(dt: PurseDateTime): Tlv {
  return primitive(TAG.dateTime, encodePurseDateTime(dt));
}

function parseAmount(msg: IsoMessage): Money {
  const money = msg.amount();
  if (money === undefined) throw err('PROTOCOL', 'missing-field', `${msg.mti} needs field 4`, 4);
  if (money.currency === '000') throw err('PROTOCOL', 'bad-value', 'currency 000 is not a currency', 49);
  return money;
}

function checkMoney(money: Money): Money {
  if (typeof money !== 'object' || money === null) throw err('BAD_INPUT', 'bad-value', 'amount: expected { minor, currency }', 4);
  return { minor: money.minor, currency: currencyNumeric(money.currency) };
}

function kindOf(msg: IsoMessage, allowed: readonly TransactionKind[]): TransactionKind {
  const kind = lookup(PROCESSING_CODES, needField(msg, 3), 'processing code', 3);
  if (!allowed.includes(kind)) throw err('PROTOCOL', 'bad-value', `processing code ${PROCESSING_CODES[kind]} (${kind}) is not allowed in ${msg.mti}`, 3);
  return kind;
}

function acquirerOf(msg: IsoMessage): { acquirer?: string } {
  const a = msg.text(32);
  return a === undefined ? {} : { acquirer: a };
}

function withAcquirer(m: IsoMessage, acquirer: string | undefined): IsoMessage {
  return acquirer === undefined ? m : m.with(32, acquirer);
}

// ---------------------------------------------------------------------------------------------
// 0800 / 0810 network management

export interface ReaderAuth {
  challenge?: Uint8Array;
  signature?: Uint8Array;
  /** Enrolment (reader-auth.ts): the operator-issued one-time code, ASCII. */
  enrolmentCode?: Uint8Array;
  /** Enrolment: the reader's public key. */
  publicKey?: Uint8Array;
}

export interface KeyChange {
  newKeyVersion: number;
  key: WrappedKey;
}

function readerAuthField(ra: ReaderAuth): Uint8Array {
  const objects: Tlv[] = [];
  if (ra.challenge !== undefined) objects.push(primitive(TAG.challenge, ra.challenge));
  if (ra.signature !== undefined) objects.push(primitive(TAG.signature, ra.signature));
  if (ra.enrolmentCode !== undefined) objects.push(primitive(TAG.enrolmentCode, ra.enrolmentCode));
  if (ra.publicKey !== undefined) objects.push(primitive(TAG.readerPublicKey, ra.publicKey));
  if (objects.length === 0) throw err('BAD_INPUT', 'bad-value', 'reader authentication: give a challenge, a signature or both', 62);
  return encodeTlv(objects);
}

function parseReaderAuth(msg: IsoMessage): { readerAuth?: ReaderAuth } {
  if (!msg.has(62)) return {};
  const tags = tlvField(msg, 62, [TAG.challenge, TAG.signature, TAG.enrolmentCode, TAG.readerPublicKey]);
  if (tags.size === 0) throw err('PROTOCOL', 'bad-value', 'field 62 is empty', 62);
  const ra: ReaderAuth = {};
  const c = tags.get(TAG.challenge);
  const s = tags.get(TAG.signature);
  if (c !== undefined) ra.challenge = c;
  if (s !== undefined) ra.signature = s;
  const code = tags.get(TAG.enrolmentCode);
  const key = tags.get(TAG.readerPublicKey);
  if (code !== undefined) ra.enrolmentCode = code;
  if (key !== undefined) ra.publicKey = key;
  return { readerAuth: ra };
}

/** 0800: 7, 11, 41, 42, 53, 70 = the code; 24 and 62 (reader authentication) optional. */
export function networkRequest(h: RequestHeader, code: NetworkCode, readerAuth?: ReaderAuth): IsoMessage {
  if (!(code in NETWORK_CODES)) throw err('BAD_INPUT', 'bad-value', `network code: expected one of ${Object.keys(NETWORK_CODES).join(', ')}, got ${String(code)}`, 70);
  let m = requestBase('0800', h).with(70, NETWORK_CODES[code]);
  if (readerAuth !== undefined) m = m.with(62, readerAuthField(readerAuth));
  return m;
}

export const signOnRequest = (h: RequestHeader, readerAuth?: ReaderAuth): IsoMessage => networkRequest(h, 'signOn', readerAuth);
export const signOffRequest = (h: RequestHeader): IsoMessage => networkRequest(h, 'signOff');
export const echoRequest = (h: RequestHeader): IsoMessage => networkRequest(h, 'echo');
export const keyChangeRequest = (h: RequestHeader): IsoMessage => networkRequest(h, 'keyChange');

export interface NetworkResponseOptions extends ResponseOptions {
  /** An approved key change: the new key, wrapped under the terminal's key-encryption key. */
  keyChange?: KeyChange;
  readerAuth?: ReaderAuth;
}

/** 0810: the response base and 70 echoed; 48 {DF20, DF21, DF22} for an approved key change. */
export function networkResponse(request: IsoMessage, o: NetworkResponseOptions): IsoMessage {
  expectMti(request, ['0800']);
  const code = request.text(70);
  let m = responseBase(request, o);
  if (code !== undefined) m = m.with(70, code);
  if (o.keyChange !== undefined) {
    if (code !== NETWORK_CODES.keyChange || o.responseCode !== RC.approved) {
      throw err('BAD_INPUT', 'bad-value', 'a new key goes only in the approved answer to a key change (161)', 48);
    }
    const { newKeyVersion, key } = o.keyChange;
    if (!Number.isInteger(newKeyVersion) || newKeyVersion < 1 || newKeyVersion > 255) throw err('BAD_INPUT', 'bad-value', `new key version: expected 1..255, got ${String(newKeyVersion)}`, 48);
    m = withTlv48(m, [primitive(TAG.newKeyVersion, Uint8Array.of(newKeyVersion)), primitive(TAG.wrappedKey, key.wrapped), primitive(TAG.keyCheckValue, key.kcv)]);
  } else if (code === NETWORK_CODES.keyChange && o.responseCode === RC.approved) {
    throw err('BAD_INPUT', 'missing-field', 'an approved key change must carry the new key', 48);
  }
  if (o.readerAuth !== undefined) m = m.with(62, readerAuthField(o.readerAuth));
  return m;
}

export interface NetworkRequest {
  header: ParsedHeader;
  code: NetworkCode;
  readerAuth?: ReaderAuth;
}

export function parseNetworkRequest(msg: IsoMessage): NetworkRequest {
  expectMti(msg, ['0800']);
  const header = parseHeader(msg);
  const code = lookup(NETWORK_CODES, needField(msg, 70), 'network management code', 70);
  return { header, code, ...parseReaderAuth(msg) };
}

export interface NetworkResponse {
  header: ParsedHeader;
  responseCode: ResponseCode;
  code?: NetworkCode;
  keyChange?: KeyChange;
  readerAuth?: ReaderAuth;
}

export function parseNetworkResponse(msg: IsoMessage): NetworkResponse {
  expectMti(msg, ['0810']);
  const header = parseHeader(msg);
  const responseCode = parseResponseCode(msg);
  const out: NetworkResponse = { header, responseCode, ...parseReaderAuth(msg) };
  const c = msg.text(70);
  if (c !== undefined) out.code = lookup(NETWORK_CODES, c, 'network management code', 70);
  const keyChangeApproved = out.code === 'keyChange' && responseCode === RC.approved;
  if (msg.has(48) !== keyChangeApproved) {
    throw err('PROTOCOL', keyChangeApproved ? 'missing-field' : 'unexpected-field', 'field 48 (the new key) comes with, and only with, an approved key change', 48);
  }
  if (keyChangeApproved) {
    const tags = tlvField(msg, 48, [TAG.newKeyVersion, TAG.wrappedKey, TAG.keyCheckValue]);
    const wrapped = need(tags, TAG.wrappedKey, 48);
    if (wrapped.length % 16 !== 0) throw err('PROTOCOL', 'bad-value', `wrapped key of ${wrapped.length} bytes is not whole AES blocks`, 48);
    const newKeyVersion = need(tags, TAG.newKeyVersion, 48)[0];
    if (newKeyVersion === 0) throw err('PROTOCOL', 'bad-value', 'new key version 0', 48);
    out.keyChange = { newKeyVersion, key: { wrapped, kcv: need(tags, TAG.keyCheckValue, 48) } };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 0200 / 0210 load authorization

export interface LoadAuthorizationInput {
  /** The card serial (field 2). */
  serial: Uint8Array;
  amount: Money;
  /** The card transaction counter BEFORE the load, as READ STATUS reported it (55 DF52). */
  cardCounter: number;
  /** The date-time the LOAD will carry (12, 13, 48 DF04). */
  dateTime: PurseDateTime;
  /** Field 32, digits. */
  acquirer?: string;
}

/** 0200: 2, 3 = 210000, 4+49, 12/13, 48 {DF04}, 55 {DF52}; 24, 32 optional. */
export function loadAuthorizationRequest(h: RequestHeader, i: LoadAuthorizationInput): IsoMessage {
  checkSerial(i.serial, 'BAD_INPUT');
  let m = requestBase('0200', h).with(2, i.serial).with(3, PROCESSING_CODES.load).withAmount(checkMoney(i.amount));
  m = withLocalDateTime(m, i.dateTime);
  m = withTlv48(m, [dateTimeTlv(i.dateTime)]);
  m = m.with(55, encodeTlv([primitive(TAG.cardCounter, u32(i.cardCounter, 'card counter', 55))]));
  return withAcquirer(m, i.acquirer);
}

export interface LoadAuthorizationRequest extends LoadAuthorizationInput {
  header: ParsedHeader;
}

export function parseLoadAuthorizationRequest(msg: IsoMessage): LoadAuthorizationRequest {
  expectMti(msg, ['0200']);
  const header = parseHeader(msg);
  kindOf(msg, ['load']);
  const serial = msg.bytes(2) as Uint8Array;
  checkSerial(serial, 'PROTOCOL');
  const tags48 = tlvField(msg, 48, [TAG.dateTime]);
  const dateTime = parseLocalDateTime(msg, tags48);
  const tags55 = tlvField(msg, 55, [TAG.cardCounter]);
  return { header, serial, amount: parseAmount(msg), cardCounter: readUint(need(tags55, TAG.cardCounter, 55)), dateTime, ...acquirerOf(msg) };
}

export interface LoadAuthorizationResponseOptions extends ResponseOptions {
  /** Approved: field 37, 12 characters (an): the issuer reference the load cryptogram covers. */
  issuerReference?: string;
  /** Approved: field 38, 6 characters (an). */
  authorizationId?: string;
  /** Approved: 55 DF5B, 16 bytes. */
  loadCryptogram?: Uint8Array;
}

/** 0210: the response base, 2, 3, 4, 49 echoed; approved: 37, 38, 55 {DF5B}. */
export function loadAuthorizationResponse(request: IsoMessage, o: LoadAuthorizationResponseOptions): IsoMessage {
  expectMti(request, ['0200']);
  let m = responseBase(request, o);
  for (const n of [2, 3, 4, 49]) {
    const v = request.get(n);
    if (v !== undefined) m = m.with(n, v);
  }
  const approved = o.responseCode === RC.approved;
  const given = [o.issuerReference, o.authorizationId, o.loadCryptogram].filter((x) => x !== undefined).length;
  if (approved ? given !== 3 : given !== 0) {
    throw err('BAD_INPUT', approved ? 'missing-field' : 'unexpected-field', 'an approval carries issuer reference, authorization id and load cryptogram; a refusal none of them', 55);
  }
  if (approved) {
    m = m
      .with(37, o.issuerReference as string)
      .with(38, o.authorizationId as string)
      .with(55, encodeTlv([primitive(TAG.loadCryptogram, o.loadCryptogram as Uint8Array)]));
  }
  return m;
}

export interface LoadAuthorizationResponse {
  header: ParsedHeader;
  responseCode: ResponseCode;
  issuerReference?: string;
  authorizationId?: string;
  loadCryptogram?: Uint8Array;
}

export function parseLoadAuthorizationResponse(msg: IsoMessage): LoadAuthorizationResponse {
  expectMti(msg, ['0210']);
  const header = parseHeader(msg);
  const responseCode = parseResponseCode(msg);
  const approved = responseCode === RC.approved;
  for (const n of [37, 38, 55]) {
    if (msg.has(n) !== approved) throw err('PROTOCOL', approved ? 'missing-field' : 'unexpected-field', `field ${n} comes with, and only with, an approval`, n);
  }
  if (msg.has(4)) parseAmount(msg);
  if (msg.has(3)) kindOf(msg, ['load']);
  if (!approved) return { header, responseCode };
  const tags = tlvField(msg, 55, [TAG.loadCryptogram]);
  return {
    header,
    responseCode,
    issuerReference: msg.text(37) as string,
    authorizationId: msg.text(38) as string,
    loadCryptogram: need(tags, TAG.loadCryptogram, 55),
  };
}

// ---------------------------------------------------------------------------------------------
// 0220 / 0221 / 0230 advice

/** A purse transaction as the card certified it (purse-certificate.ts), with the certificate. */
export interface PurseRecord extends PurseCertificateFields {
  certificate: Uint8Array;
}

export interface AdviceInput {
  kind: TransactionKind;
  outcome: AdviceOutcome;
  serial: Uint8Array;
  amount: Money;
  /** The transaction's local date-time (12, 13, 48 DF04). */
  dateTime: PurseDateTime;
  /** complete / recovered: the card's record and certificate (55); failed / never-happened: none. */
  purse?: PurseRecord;
  /** failed / never-happened: the counter the card showed (55 DF52), when it was read. */
  cardCounter?: number;
  /** 48 DF03: why it failed, 1..99 UTF-8 bytes. */
  note?: string;
  /** Field 37: the authorization's issuer reference (loads). */
  retrievalReference?: string;
  /** Field 32. */
  acquirer?: string;
}

function purseRecordTlvs(p: PurseRecord, code: Code): Tlv[] {
  const type = PURSE_TRANSACTION_TYPE[p.type];
  if (type === undefined) throw err(code, 'bad-value', `purse transaction type ${String(p.type)}`, 55);
  return [
    primitive(TAG.serial, p.serial),
    primitive(TAG.cardCounter, u32(p.counter, 'card counter', 55)),
    primitive(TAG.purseType, Uint8Array.of(type)),
    primitive(TAG.purseAmount, u32(p.amount, 'purse amount', 55)),
    primitive(TAG.purseCurrency, encodeCurrency(p.currency)),
    primitive(TAG.purseTerminalId, p.terminalId),
    primitive(TAG.terminalSequence, u32(p.terminalSequence, 'terminal sequence', 55)),
    primitive(TAG.purseDateTime, p.dateTime),
    primitive(TAG.balanceAfter, u32(p.balanceAfter, 'balance after', 55)),
    primitive(TAG.certificate, p.certificate),
  ];
}

/** The purse record must describe the same transaction as the advice's fields. */
function checkPurseAgainstAdvice(m: IsoMessage, kind: TransactionKind, p: PurseRecord, dateTime: PurseDateTime, code: Code): void {
  const field41 = Uint8Array.from(m.text(41) as string, (c) => c.charCodeAt(0));
  const money = m.amount() as Money;
  const checks: Array<[boolean, string, number]> = [
    [bytesEqual(p.serial, m.bytes(2) as Uint8Array), 'the purse serial differs from field 2', 2],
    [p.amount === money.minor, 'the purse amount differs from field 4', 4],
    [p.currency === Number(money.currency), 'the purse currency differs from field 49', 49],
    [bytesEqual(p.terminalId, field41), "the purse's terminal id differs from field 41", 41],
    [p.terminalSequence === m.stan(), "the purse's terminal sequence differs from the STAN (field 11)", 11],
    [PURSE_TYPE_OF_KIND[kind] === p.type, `a ${kind} is a purse ${PURSE_TYPE_OF_KIND[kind]}, not a ${p.type}`, 3],
    [bytesEqual(p.dateTime, encodePurseDateTime(dateTime)), "the purse's date-time differs from the transaction date-time", 55],
  ];
  for (const [ok, why, field] of checks) if (!ok) throw err(code, 'bad-value', why, field);
}

function adviceFields(m: IsoMessage, a: AdviceInput, code: Code): void {
  const moved = VALUE_MOVED_OUTCOMES.includes(a.outcome);
  if (moved !== (a.purse !== undefined)) {
    throw err(code, moved ? 'missing-field' : 'unexpected-field', `an advice of a ${a.outcome} transaction ${moved ? 'needs' : 'has no'} purse record`, 55);
  }
  if (moved && a.cardCounter !== undefined) throw err(code, 'unexpected-field', 'the card counter of a completed transaction is in its purse record', 55);
  if (a.purse !== undefined) checkPurseAgainstAdvice(m, a.kind, a.purse, a.dateTime, code);
}

/** 0220 (0221 when `repeat`): see the top of this file. */
export function adviceRequest(h: RequestHeader, a: AdviceInput & { repeat?: boolean }): IsoMessage {
  if (!(a.kind in PROCESSING_CODES)) throw err('BAD_INPUT', 'bad-value', `kind: expected ${Object.keys(PROCESSING_CODES).join(', ')}, got ${String(a.kind)}`, 3);
  if (!(a.outcome in ADVICE_OUTCOMES)) throw err('BAD_INPUT', 'bad-value', `outcome: expected ${Object.keys(ADVICE_OUTCOMES).join(', ')}, got ${String(a.outcome)}`, 48);
  checkSerial(a.serial, 'BAD_INPUT');
  let m = requestBase(a.repeat === true ? '0221' : '0220', h).with(2, a.serial).with(3, PROCESSING_CODES[a.kind]).withAmount(checkMoney(a.amount));
  m = withLocalDateTime(m, a.dateTime);
  const t48 = [primitive(TAG.outcome, Uint8Array.of(ADVICE_OUTCOMES[a.outcome])), dateTimeTlv(a.dateTime)];
  if (a.note !== undefined) t48.push(primitive(TAG.note, utf8.encode(a.note)));
  m = withTlv48(m, t48);
  if (a.retrievalReference !== undefined) m = m.with(37, a.retrievalReference);
  m = withAcquirer(m, a.acquirer);
  adviceFields(m, a, 'BAD_INPUT');
  if (a.purse !== undefined) m = m.with(55, encodeTlv(purseRecordTlvs(a.purse, 'BAD_INPUT')));
  else if (a.cardCounter !== undefined) m = m.with(55, encodeTlv([primitive(TAG.cardCounter, u32(a.cardCounter, 'card counter', 55))]));
  return m;
}

export interface AdviceRequest extends AdviceInput {
  header: ParsedHeader;
  repeat: boolean;
}

const PURSE_RECORD_TAGS = [
  TAG.serial,
  TAG.cardCounter,
  TAG.purseType,
  TAG.purseAmount,
  TAG.purseCurrency,
  TAG.purseTerminalId,
  TAG.terminalSequence,
  TAG.purseDateTime,
  TAG.balanceAfter,
  TAG.certificate,
] as const;

function parsePurseRecord(tags: Map<number, Uint8Array>): PurseRecord {
  for (const t of PURSE_RECORD_TAGS) need(tags, t, 55);
  const typeCode = need(tags, TAG.purseType, 55)[0];
  const type = lookup(PURSE_TRANSACTION_TYPE, typeCode, 'purse transaction type', 55);
  const currency = decodeCurrency(need(tags, TAG.purseCurrency, 55));
  if (currency === null) throw err('PROTOCOL', 'bad-value', 'purse currency is not BCD 001..999', 55);
  const dateTime = need(tags, TAG.purseDateTime, 55);
  if (decodePurseDateTime(dateTime) === null) throw err('PROTOCOL', 'bad-value', 'purse date-time is not BCD YYYYMMDDhhmmss in range', 55);
  return {
    serial: need(tags, TAG.serial, 55),
    counter: readUint(need(tags, TAG.cardCounter, 55)),
    type,
    amount: readUint(need(tags, TAG.purseAmount, 55)),
    currency,
    terminalId: need(tags, TAG.purseTerminalId, 55),
    terminalSequence: readUint(need(tags, TAG.terminalSequence, 55)),
    dateTime,
    balanceAfter: readUint(need(tags, TAG.balanceAfter, 55)),
    certificate: need(tags, TAG.certificate, 55),
  };
}

export function parseAdviceRequest(msg: IsoMessage): AdviceRequest {
  expectMti(msg, ['0220', '0221']);
  const header = parseHeader(msg);
  const kind = kindOf(msg, ['purchase', 'refund', 'load']);
  const serial = msg.bytes(2) as Uint8Array;
  checkSerial(serial, 'PROTOCOL');
  const tags48 = tlvField(msg, 48, [TAG.outcome, TAG.dateTime, TAG.note]);
  const outcome = lookup(ADVICE_OUTCOMES, need(tags48, TAG.outcome, 48)[0], 'advice outcome', 48);
  const dateTime = parseLocalDateTime(msg, tags48);
  const out: AdviceRequest = { header, repeat: msg.mti === '0221', kind, outcome, serial, amount: parseAmount(msg), dateTime };
  const note = tags48.get(TAG.note);
  if (note !== undefined) out.note = text(note, 'note', 48);
  const rrn = msg.text(37);
  if (rrn !== undefined) out.retrievalReference = rrn;
  Object.assign(out, acquirerOf(msg));
  if (msg.has(55)) {
    const tags55 = tlvField(msg, 55, PURSE_RECORD_TAGS);
    if (tags55.has(TAG.certificate)) out.purse = parsePurseRecord(tags55);
    else if (tags55.size === 1 && tags55.has(TAG.cardCounter)) out.cardCounter = readUint(tags55.get(TAG.cardCounter) as Uint8Array);
    else throw err('PROTOCOL', 'bad-value', 'field 55 of an advice holds a whole purse record or only the card counter', 55);
  }
  adviceFields(msg, out, 'PROTOCOL');
  return out;
}

/** 0230: the response base. */
export function adviceResponse(request: IsoMessage, o: ResponseOptions): IsoMessage {
  expectMti(request, ['0220', '0221']);
  return responseBase(request, o);
}

export interface SimpleResponse {
  header: ParsedHeader;
  responseCode: ResponseCode;
}

export function parseAdviceResponse(msg: IsoMessage): SimpleResponse {
  expectMti(msg, ['0230']);
  return { header: parseHeader(msg), responseCode: parseResponseCode(msg) };
}

// ---------------------------------------------------------------------------------------------
// 0400 / 0401 / 0410 reversal

/** Field 90 in hilt's layout: MTI (4), STAN (10), transmission date-time (10), acquirer (11), 0 × 7. */
export interface OriginalData {
  mti: string;
  stan: number;
  /** MMDDhhmmss, field 7 of the original. */
  transmitted: string;
  /** Field 32 of the original, digits; "" when it had none. */
  acquirer: string;
}

/** Requests a reversal may refer to. */
export const REVERSIBLE_MTIS: readonly string[] = ['0200', '0220', '0221'];

export function encodeOriginalData(o: OriginalData): string {
  if (typeof o !== 'object' || o === null || !REVERSIBLE_MTIS.includes(o.mti)) {
    throw err('BAD_INPUT', 'bad-value', `original MTI: expected one of ${REVERSIBLE_MTIS.join(', ')}, got ${JSON.stringify(o?.mti)}`, 90);
  }
  if (typeof o.transmitted !== 'string' || !/^[0-9]{10}$/.test(o.transmitted)) throw err('BAD_INPUT', 'bad-value', 'original transmission date-time: expected 10 digits', 90);
  if (typeof o.acquirer !== 'string' || !/^[0-9]{0,11}$/.test(o.acquirer)) throw err('BAD_INPUT', 'bad-value', 'original acquirer: expected 0 to 11 digits', 90);
  return o.mti + toDigits(o.stan, 10, 'original STAN') + o.transmitted + o.acquirer.padStart(11, '0') + '0000000';
}

/** Field 90 decoded; the acquirer comes back as 11 digits (its zero fill cannot be told apart). */
export function decodeOriginalData(s: string): OriginalData {
  const o: OriginalData = { mti: s.slice(0, 4), stan: Number(s.slice(4, 14)), transmitted: s.slice(14, 24), acquirer: s.slice(24, 35) };
  if (!REVERSIBLE_MTIS.includes(o.mti)) throw err('PROTOCOL', 'bad-value', `original MTI ${o.mti} cannot be reversed`, 90);
  checkTransmitted(o.transmitted, 90);
  if (s.slice(35) !== '0000000') throw err('PROTOCOL', 'bad-value', 'the last 7 digits of field 90 must be 0', 90);
  return o;
}

export interface ReversalInput {
  kind: TransactionKind;
  serial: Uint8Array;
  amount: Money;
  original: OriginalData;
  acquirer?: string;
}

/** 0400 (0401 when `repeat`): 2, 3, 4+49, 90. */
export function reversalRequest(h: RequestHeader, r: ReversalInput & { repeat?: boolean }): IsoMessage {
  if (!(r.kind in PROCESSING_CODES)) throw err('BAD_INPUT', 'bad-value', `kind: expected ${Object.keys(PROCESSING_CODES).join(', ')}, got ${String(r.kind)}`, 3);
  checkSerial(r.serial, 'BAD_INPUT');
  const m = requestBase(r.repeat === true ? '0401' : '0400', h)
    .with(2, r.serial)
    .with(3, PROCESSING_CODES[r.kind])
    .withAmount(checkMoney(r.amount))
    .with(90, encodeOriginalData(r.original));
  return withAcquirer(m, r.acquirer);
}

export interface ReversalRequest extends ReversalInput {
  header: ParsedHeader;
  repeat: boolean;
}

export function parseReversalRequest(msg: IsoMessage): ReversalRequest {
  expectMti(msg, ['0400', '0401']);
  const header = parseHeader(msg);
  const kind = kindOf(msg, ['purchase', 'refund', 'load']);
  const serial = msg.bytes(2) as Uint8Array;
  checkSerial(serial, 'PROTOCOL');
  return { header, repeat: msg.mti === '0401', kind, serial, amount: parseAmount(msg), original: decodeOriginalData(needField(msg, 90)), ...acquirerOf(msg) };
}

/** 0410: the response base and 90 echoed. */
export function reversalResponse(request: IsoMessage, o: ResponseOptions): IsoMessage {
  expectMti(request, ['0400', '0401']);
  return responseBase(request, o).with(90, needField(request, 90));
}

export interface ReversalResponse extends SimpleResponse {
  original?: OriginalData;
}

export function parseReversalResponse(msg: IsoMessage): ReversalResponse {
  expectMti(msg, ['0410']);
  const out: ReversalResponse = { header: parseHeader(msg), responseCode: parseResponseCode(msg) };
  const o = msg.text(90);
  if (o !== undefined) out.original = decodeOriginalData(o);
  return out;
}

// ---------------------------------------------------------------------------------------------
// 0300 / 0310 negative list

export type NegativeListChange = { action: 'add'; serial: Uint8Array; reason: string } | { action: 'remove'; serial: Uint8Array };

/** Field 63: one E1 {DF51 serial, DF5D reason} per add, one E2 {DF51 serial} per remove, in order. */
export function encodeNegativeListChanges(changes: readonly NegativeListChange[]): Uint8Array {
  if (!Array.isArray(changes)) throw err('BAD_INPUT', 'bad-value', 'negative-list changes: expected an array', 63);
  return encodeTlv(changes.map(changeTlv));
}

function changeTlv(c: NegativeListChange): Tlv {
  if (typeof c !== 'object' || c === null) throw err('BAD_INPUT', 'bad-value', 'negative-list change: expected { action, serial }', 63);
  if (!(c.serial instanceof Uint8Array) || c.serial.length < 1 || c.serial.length > 32) throw err('BAD_INPUT', 'bad-value', 'negative-list serial: expected 1 to 32 bytes', 63);
  if (c.action === 'add') {
    if (typeof c.reason !== 'string') throw err('BAD_INPUT', 'bad-value', 'negative-list reason: expected a string', 63);
    return Tlv.constructed(TAG.addEntry, [primitive(TAG.serial, c.serial), primitive(TAG.reason, utf8.encode(c.reason))]);
  }
  if (c.action === 'remove') return Tlv.constructed(TAG.removeEntry, [primitive(TAG.serial, c.serial)]);
  throw err('BAD_INPUT', 'bad-value', `negative-list action: expected 'add' or 'remove', got ${String((c as { action: unknown }).action)}`, 63);
}

export function decodeNegativeListChanges(bytes: Uint8Array): NegativeListChange[] {
  const out: NegativeListChange[] = [];
  for (const t of parseTlv(bytes)) {
    checkTag(t, [TAG.addEntry, TAG.removeEntry], 63, 'field 63');
    if (t.tag === TAG.addEntry) {
      const tags = tagsOf(t.children ?? [], [TAG.serial, TAG.reason], 63, 'an add entry (E1)');
      out.push({ action: 'add', serial: need(tags, TAG.serial, 63), reason: text(need(tags, TAG.reason, 63), 'reason', 63) });
    } else {
      const tags = tagsOf(t.children ?? [], [TAG.serial], 63, 'a remove entry (E2)');
      out.push({ action: 'remove', serial: need(tags, TAG.serial, 63) });
    }
  }
  return out;
}

/** The changes cut into chunks whose field 63 fits `maxBytes` (default: the field's 999), order kept. */
export function chunkNegativeListChanges(changes: readonly NegativeListChange[], maxBytes = PREFIX_MAX.LLLVAR): NegativeListChange[][] {
  const chunks: NegativeListChange[][] = [];
  let current: NegativeListChange[] = [];
  let size = 0;
  for (const c of changes) {
    const n = changeTlv(c).encode().length;
    if (n > maxBytes) throw err('BAD_INPUT', 'bad-value', `one negative-list change takes ${n} bytes, more than ${maxBytes}`, 63);
    if (size + n > maxBytes) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(c);
    size += n;
  }
  if (current.length > 0 || chunks.length === 0) chunks.push(current);
  return chunks;
}

export interface NegativeListRequestInput {
  /** The terminal's negative-list version (0: none yet). */
  version: number;
  /** The chunk wanted, from 0. */
  chunk: number;
}

/** 0300: 48 {DF10 version, DF12 chunk}. */
export function negativeListRequest(h: RequestHeader, r: NegativeListRequestInput): IsoMessage {
  return withTlv48(requestBase('0300', h), [primitive(TAG.listVersion, u32(r.version, 'negative-list version', 48)), primitive(TAG.chunk, u16(r.chunk, 'chunk', 48))]);
}

export interface NegativeListRequest extends NegativeListRequestInput {
  header: ParsedHeader;
}

export function parseNegativeListRequest(msg: IsoMessage): NegativeListRequest {
  expectMti(msg, ['0300']);
  const header = parseHeader(msg);
  const tags = tlvField(msg, 48, [TAG.listVersion, TAG.chunk]);
  return { header, version: readUint(need(tags, TAG.listVersion, 48)), chunk: readUint(need(tags, TAG.chunk, 48)) };
}

export interface NegativeListUpdate {
  kind: NegativeListKind;
  /** delta: the version it applies to; snapshot: the terminal's version (echoed). */
  fromVersion: number;
  toVersion: number;
  chunk: number;
  chunkCount: number;
  changes: NegativeListChange[];
}

function checkUpdate(u: NegativeListUpdate, code: Code): void {
  const fail = (why: string) => {
    throw err(code, 'bad-value', `negative-list update: ${why}`, 48);
  };
  if (!(u.kind in NEGATIVE_LIST_KINDS)) fail(`kind ${String(u.kind)}`);
  if (!Number.isInteger(u.chunkCount) || u.chunkCount < 1) fail('chunk count must be at least 1');
  if (!Number.isInteger(u.chunk) || u.chunk >= u.chunkCount) fail(`chunk ${u.chunk} is not below the chunk count ${u.chunkCount}`);
  if (u.toVersion < u.fromVersion) fail(`version ${u.fromVersion} → ${u.toVersion} goes backwards`);
  if (u.kind === 'delta' && u.toVersion === u.fromVersion && (u.changes.length > 0 || u.chunkCount !== 1)) fail('an up-to-date answer (from = to) has one chunk and no changes');
  if (u.kind === 'snapshot' && u.changes.some((c) => c.action !== 'add')) fail('a snapshot only adds');
  if (u.kind === 'snapshot' && u.toVersion < 1) fail('a snapshot has a version of at least 1');
}

export interface NegativeListResponseOptions extends ResponseOptions {
  /** With an approval: the chunk. */
  update?: NegativeListUpdate;
}

/** 0310: the response base; approved: 48 {DF10, DF11, DF12, DF13, DF14} and 63 when there are changes. */
export function negativeListResponse(request: IsoMessage, o: NegativeListResponseOptions): IsoMessage {
  expectMti(request, ['0300']);
  let m = responseBase(request, o);
  const approved = o.responseCode === RC.approved;
  if (approved !== (o.update !== undefined)) throw err('BAD_INPUT', approved ? 'missing-field' : 'unexpected-field', 'an approval carries the update, a refusal none', 48);
  if (o.update === undefined) return m;
  const u = o.update;
  checkUpdate(u, 'BAD_INPUT');
  m = withTlv48(m, [
    primitive(TAG.listVersion, u32(u.fromVersion, 'from version', 48)),
    primitive(TAG.listTargetVersion, u32(u.toVersion, 'to version', 48)),
    primitive(TAG.chunk, u16(u.chunk, 'chunk', 48)),
    primitive(TAG.chunkCount, u16(u.chunkCount, 'chunk count', 48)),
    primitive(TAG.listKind, Uint8Array.of(NEGATIVE_LIST_KINDS[u.kind])),
  ]);
  if (u.changes.length > 0) m = m.with(63, encodeNegativeListChanges(u.changes));
  return m;
}

export interface NegativeListResponse extends SimpleResponse {
  update?: NegativeListUpdate;
}

export function parseNegativeListResponse(msg: IsoMessage): NegativeListResponse {
  expectMti(msg, ['0310']);
  const header = parseHeader(msg);
  const responseCode = parseResponseCode(msg);
  const approved = responseCode === RC.approved;
  if (msg.has(48) !== approved) throw err('PROTOCOL', approved ? 'missing-field' : 'unexpected-field', 'field 48 comes with, and only with, an approval', 48);
  if (!approved) {
    if (msg.has(63)) throw err('PROTOCOL', 'unexpected-field', 'a refusal carries no changes', 63);
    return { header, responseCode };
  }
  const tags = tlvField(msg, 48, [TAG.listVersion, TAG.listTargetVersion, TAG.chunk, TAG.chunkCount, TAG.listKind]);
  const update: NegativeListUpdate = {
    kind: lookup(NEGATIVE_LIST_KINDS, need(tags, TAG.listKind, 48)[0], 'negative-list kind', 48),
    fromVersion: readUint(need(tags, TAG.listVersion, 48)),
    toVersion: readUint(need(tags, TAG.listTargetVersion, 48)),
    chunk: readUint(need(tags, TAG.chunk, 48)),
    chunkCount: readUint(need(tags, TAG.chunkCount, 48)),
    changes: msg.has(63) ? decodeNegativeListChanges(msg.bytes(63) as Uint8Array) : [],
  };
  if (msg.has(63) && update.changes.length === 0) throw err('PROTOCOL', 'bad-value', 'field 63 is present but empty', 63);
  checkUpdate(update, 'PROTOCOL');
  return { header, responseCode, update };
}

// ---------------------------------------------------------------------------------------------
// 0500 / 0510 reconciliation

export interface Tally {
  count: number;
  /** Minor units. */
  amount: number;
}

export interface ReconciliationTotals {
  /** 74 / 86. */
  loads: Tally;
  /** 75 / 87. */
  loadReversals: Tally;
  /** 76 / 88. */
  purchases: Tally;
  /** 77 / 89. */
  purchaseReversals: Tally;
  /** 81: load authorizations asked for. */
  authorizations: number;
}

// prettier-ignore
/** Where each total goes: [count field, amount field]. */
export const TOTALS_FIELDS: Readonly<Record<Exclude<keyof ReconciliationTotals, 'authorizations'>, readonly [number, number]>> = Object.freeze({
  loads:             [74, 86],
  loadReversals:     [75, 87],
  purchases:         [76, 88],
  purchaseReversals: [77, 89],
});
export const AUTHORIZATIONS_FIELD = 81;

function withTotals(m: IsoMessage, t: ReconciliationTotals): IsoMessage {
  if (typeof t !== 'object' || t === null) throw err('BAD_INPUT', 'bad-value', 'totals: expected an object', 74);
  for (const [name, [countField, amountField]] of Object.entries(TOTALS_FIELDS)) {
    const tally = t[name as keyof typeof TOTALS_FIELDS];
    if (typeof tally !== 'object' || tally === null) throw err('BAD_INPUT', 'bad-value', `totals.${name}: expected { count, amount }`, countField);
    m = m.with(countField, toDigits(tally.count, 10, `${name} count`)).with(amountField, toDigits(tally.amount, 16, `${name} amount`));
  }
  return m.with(AUTHORIZATIONS_FIELD, toDigits(t.authorizations, 10, 'authorizations'));
}

function totalsOf(msg: IsoMessage): ReconciliationTotals {
  const tally = ([c, a]: readonly [number, number]): Tally => ({ count: fromDigits(needField(msg, c), c), amount: fromDigits(needField(msg, a), a) });
  return {
    loads: tally(TOTALS_FIELDS.loads),
    loadReversals: tally(TOTALS_FIELDS.loadReversals),
    purchases: tally(TOTALS_FIELDS.purchases),
    purchaseReversals: tally(TOTALS_FIELDS.purchaseReversals),
    authorizations: fromDigits(needField(msg, AUTHORIZATIONS_FIELD), AUTHORIZATIONS_FIELD),
  };
}

export interface ReconciliationInput {
  /** ISO 4217 numeric (or an alphabetic code of src/util/iso4217.ts). */
  currency: string;
  firstSequence: number;
  lastSequence: number;
  totals: ReconciliationTotals;
}

/** 0500: 48 {DF30, DF31}, 49, 74..77, 81, 86..89 (a secondary bitmap: MAC in 128). */
export function reconciliationRequest(h: RequestHeader, r: ReconciliationInput): IsoMessage {
  if (!(r.lastSequence >= r.firstSequence)) throw err('BAD_INPUT', 'bad-value', `sequence range ${r.firstSequence}..${r.lastSequence} is empty`, 48);
  let m = withTlv48(requestBase('0500', h), [
    primitive(TAG.firstSequence, u32(r.firstSequence, 'first sequence', 48)),
    primitive(TAG.lastSequence, u32(r.lastSequence, 'last sequence', 48)),
  ]).with(49, currencyNumeric(r.currency));
  m = withTotals(m, r.totals);
  return m;
}

export interface ReconciliationRequest extends ReconciliationInput {
  header: ParsedHeader;
}

export function parseReconciliationRequest(msg: IsoMessage): ReconciliationRequest {
  expectMti(msg, ['0500']);
  const header = parseHeader(msg);
  const tags = tlvField(msg, 48, [TAG.firstSequence, TAG.lastSequence]);
  const firstSequence = readUint(need(tags, TAG.firstSequence, 48));
  const lastSequence = readUint(need(tags, TAG.lastSequence, 48));
  if (lastSequence < firstSequence) throw err('PROTOCOL', 'bad-value', `sequence range ${firstSequence}..${lastSequence} is empty`, 48);
  const currency = needField(msg, 49);
  if (currency === '000') throw err('PROTOCOL', 'bad-value', 'currency 000', 49);
  return { header, currency, firstSequence, lastSequence, totals: totalsOf(msg) };
}

export interface ReconciliationResponseOptions extends ResponseOptions {
  /** The host's totals: required with 00 (they agree) and 95 (they differ). */
  totals?: ReconciliationTotals;
}

const TOTALS_CODES: readonly string[] = [RC.approved, RC.reconcileError];

/** 0510: the response base; 00 or 95: 49 and the host's totals. */
export function reconciliationResponse(request: IsoMessage, o: ReconciliationResponseOptions): IsoMessage {
  expectMti(request, ['0500']);
  const m = responseBase(request, o);
  const withTotalsCode = TOTALS_CODES.includes(o.responseCode);
  if (withTotalsCode !== (o.totals !== undefined)) throw err('BAD_INPUT', withTotalsCode ? 'missing-field' : 'unexpected-field', 'totals come with, and only with, 00 and 95', 74);
  if (o.totals === undefined) return m;
  return withTotals(m.with(49, needField(request, 49)), o.totals);
}

export interface ReconciliationResponse extends SimpleResponse {
  currency?: string;
  totals?: ReconciliationTotals;
}

export function parseReconciliationResponse(msg: IsoMessage): ReconciliationResponse {
  expectMti(msg, ['0510']);
  const header = parseHeader(msg);
  const responseCode = parseResponseCode(msg);
  const withTotalsCode = TOTALS_CODES.includes(responseCode);
  for (const n of [49, AUTHORIZATIONS_FIELD, ...Object.values(TOTALS_FIELDS).flat()]) {
    if (msg.has(n) !== withTotalsCode) throw err('PROTOCOL', withTotalsCode ? 'missing-field' : 'unexpected-field', `field ${n} comes with, and only with, 00 and 95`, n);
  }
  if (!withTotalsCode) return { header, responseCode };
  return { header, responseCode, currency: needField(msg, 49), totals: totalsOf(msg) };
}

// ---------------------------------------------------------------------------------------------
// 0620 / 0621 / 0630 administrative advice: an anomaly the terminal detected

/** Values of an anomaly's details: what a compact JSON object of scalars holds. */
export type AnomalyDetailValue = string | number | boolean | null;

export interface AnomalyReportInput {
  kind: AnomalyReportKind;
  /** The card serial (field 2). */
  serial: Uint8Array;
  /** When the terminal recorded it, local time (12, 13, 48 DF04). */
  dateTime: PurseDateTime;
  /** 55 DF52: the counter the card showed, when it was read. */
  cardCounter?: number;
  /** 48 DF61: the last counter the terminal saw for the card. */
  lastCounter?: number;
  /** 48 DF62: the reader sequence of the transaction the anomaly concerns. */
  readerSequence?: number;
  /** 48 DF63: compact JSON of at most ANOMALY_DETAILS_MAX bytes; scalar values only. */
  details: Readonly<Record<string, AnomalyDetailValue>>;
}

const SCALAR_TYPES: readonly string[] = ['string', 'number', 'boolean'];

/** The details as 48 DF63 carries them: compact JSON (JSON.stringify), UTF-8. */
export function encodeAnomalyDetails(details: Readonly<Record<string, AnomalyDetailValue>>): Uint8Array {
  if (typeof details !== 'object' || details === null || Array.isArray(details)) throw err('BAD_INPUT', 'bad-value', 'anomaly details: expected an object', 48);
  for (const [k, v] of Object.entries(details)) {
    if (v !== null && !SCALAR_TYPES.includes(typeof v)) throw err('BAD_INPUT', 'bad-value', `anomaly details: "${k}" must be a string, number, boolean or null`, 48);
    if (typeof v === 'number' && !Number.isFinite(v)) throw err('BAD_INPUT', 'bad-value', `anomaly details: "${k}" is not a finite number`, 48);
  }
  const bytes = utf8.encode(JSON.stringify(details));
  if (bytes.length > ANOMALY_DETAILS_MAX) throw err('BAD_INPUT', 'bad-value', `anomaly details: ${bytes.length} bytes of JSON, at most ${ANOMALY_DETAILS_MAX}`, 48);
  return bytes;
}

/** 48 DF63 decoded: a JSON object of scalars in its compact form (one encoding per value), else PROTOCOL. */
export function decodeAnomalyDetails(bytes: Uint8Array): Record<string, AnomalyDetailValue> {
  const json = text(bytes, 'anomaly details', 48);
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw err('PROTOCOL', 'bad-value', 'anomaly details (DF63) are not JSON', 48);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw err('PROTOCOL', 'bad-value', 'anomaly details (DF63) are not a JSON object', 48);
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && !SCALAR_TYPES.includes(typeof v)) throw err('PROTOCOL', 'bad-value', `anomaly details (DF63): "${k}" is not a string, number, boolean or null`, 48);
  }
  if (JSON.stringify(value) !== json) throw err('PROTOCOL', 'bad-value', 'anomaly details (DF63) are not compact JSON (one encoding per value)', 48);
  return value as Record<string, AnomalyDetailValue>;
}

/** 0620 (0621 when `repeat`): 2, 12/13, 48 {DF60, DF04, DF61?, DF62?, DF63}, 55 {DF52}?; STAN = the anomaly sequence. */
export function anomalyReportRequest(h: RequestHeader, a: AnomalyReportInput & { repeat?: boolean }): IsoMessage {
  if (typeof a !== 'object' || a === null || !(a.kind in ANOMALY_REPORT_KINDS)) {
    throw err('BAD_INPUT', 'bad-value', `anomaly kind: expected ${Object.keys(ANOMALY_REPORT_KINDS).join(', ')}, got ${String(a?.kind)}`, 48);
  }
  checkSerial(a.serial, 'BAD_INPUT');
  let m = withLocalDateTime(requestBase(a.repeat === true ? '0621' : '0620', h).with(2, a.serial), a.dateTime);
  const t48 = [primitive(TAG.anomalyKind, Uint8Array.of(ANOMALY_REPORT_KINDS[a.kind])), dateTimeTlv(a.dateTime)];
  if (a.lastCounter !== undefined) t48.push(primitive(TAG.lastCounter, u32(a.lastCounter, 'last counter', 48)));
  if (a.readerSequence !== undefined) t48.push(primitive(TAG.anomalyReaderSequence, u32(a.readerSequence, 'reader sequence', 48)));
  t48.push(primitive(TAG.anomalyDetails, encodeAnomalyDetails(a.details)));
  m = withTlv48(m, t48);
  if (a.cardCounter !== undefined) m = m.with(55, encodeTlv([primitive(TAG.cardCounter, u32(a.cardCounter, 'card counter', 55))]));
  return m;
}

export interface AnomalyReportRequest extends AnomalyReportInput {
  header: ParsedHeader;
  repeat: boolean;
}

export function parseAnomalyReportRequest(msg: IsoMessage): AnomalyReportRequest {
  expectMti(msg, ['0620', '0621']);
  const header = parseHeader(msg);
  const serial = msg.bytes(2) as Uint8Array;
  checkSerial(serial, 'PROTOCOL');
  const tags48 = tlvField(msg, 48, [TAG.anomalyKind, TAG.dateTime, TAG.lastCounter, TAG.anomalyReaderSequence, TAG.anomalyDetails]);
  const kind = lookup(ANOMALY_REPORT_KINDS, need(tags48, TAG.anomalyKind, 48)[0], 'anomaly kind', 48);
  const dateTime = parseLocalDateTime(msg, tags48);
  const details = decodeAnomalyDetails(need(tags48, TAG.anomalyDetails, 48));
  const out: AnomalyReportRequest = { header, repeat: msg.mti === '0621', kind, serial, dateTime, details };
  const last = tags48.get(TAG.lastCounter);
  if (last !== undefined) out.lastCounter = readUint(last);
  const seq = tags48.get(TAG.anomalyReaderSequence);
  if (seq !== undefined) out.readerSequence = readUint(seq);
  if (msg.has(55)) out.cardCounter = readUint(need(tlvField(msg, 55, [TAG.cardCounter]), TAG.cardCounter, 55));
  return out;
}

/** 0630: the response base. */
export function anomalyReportResponse(request: IsoMessage, o: ResponseOptions): IsoMessage {
  expectMti(request, ['0620', '0621']);
  return responseBase(request, o);
}

export function parseAnomalyReportResponse(msg: IsoMessage): SimpleResponse {
  expectMti(msg, ['0630']);
  return { header: parseHeader(msg), responseCode: parseResponseCode(msg) };
}

// ---------------------------------------------------------------------------------------------
// Any message

export type HiltMessage =
  | { kind: 'network'; data: NetworkRequest }
  | { kind: 'network-response'; data: NetworkResponse }
  | { kind: 'load-authorization'; data: LoadAuthorizationRequest }
  | { kind: 'load-authorization-response'; data: LoadAuthorizationResponse }
  | { kind: 'advice'; data: AdviceRequest }
  | { kind: 'advice-response'; data: SimpleResponse }
  | { kind: 'reversal'; data: ReversalRequest }
  | { kind: 'reversal-response'; data: ReversalResponse }
  | { kind: 'negative-list'; data: NegativeListRequest }
  | { kind: 'negative-list-response'; data: NegativeListResponse }
  | { kind: 'reconciliation'; data: ReconciliationRequest }
  | { kind: 'reconciliation-response'; data: ReconciliationResponse }
  | { kind: 'anomaly-report'; data: AnomalyReportRequest }
  | { kind: 'anomaly-report-response'; data: SimpleResponse };

/** Parses any hilt message by its MTI (code PROTOCOL on anything the parsers refuse). */
export function parseHiltMessage(msg: IsoMessage): HiltMessage {
  switch (msg.mti) {
    case '0800':
      return { kind: 'network', data: parseNetworkRequest(msg) };
    case '0810':
      return { kind: 'network-response', data: parseNetworkResponse(msg) };
    case '0200':
      return { kind: 'load-authorization', data: parseLoadAuthorizationRequest(msg) };
    case '0210':
      return { kind: 'load-authorization-response', data: parseLoadAuthorizationResponse(msg) };
    case '0220':
    case '0221':
      return { kind: 'advice', data: parseAdviceRequest(msg) };
    case '0230':
      return { kind: 'advice-response', data: parseAdviceResponse(msg) };
    case '0400':
    case '0401':
      return { kind: 'reversal', data: parseReversalRequest(msg) };
    case '0410':
      return { kind: 'reversal-response', data: parseReversalResponse(msg) };
    case '0300':
      return { kind: 'negative-list', data: parseNegativeListRequest(msg) };
    case '0310':
      return { kind: 'negative-list-response', data: parseNegativeListResponse(msg) };
    case '0500':
      return { kind: 'reconciliation', data: parseReconciliationRequest(msg) };
    case '0510':
      return { kind: 'reconciliation-response', data: parseReconciliationResponse(msg) };
    case '0620':
    case '0621':
      return { kind: 'anomaly-report', data: parseAnomalyReportRequest(msg) };
    case '0630':
      return { kind: 'anomaly-report-response', data: parseAnomalyReportResponse(msg) };
    default:
      throw err('PROTOCOL', 'unknown-mti', `no parser for ${msg.mti}`, 0);
  }
}
