/**
 * Journal records as host-link messages: a transaction record (journal.ts, frozen when it was queued)
 * becomes the AdviceInput of its 0220 / 0221, an anomaly record the AnomalyReportInput of its
 * 0620 / 0621 (messages.ts). Pure functions.
 *
 * What goes where:
 *   field 2 / DF51   the card serial (the journal keeps upper-case hex)
 *   field 3          purchase 000000, refund 200000, load 210000 (the journal's type)
 *   field 4 + 49     amount, currency: the journal's ISO 4217 letters as the numeric code
 *   field 11 / DF57  the reader sequence number (the journal's readerSeq)
 *   12, 13, DF04/58  the row's createdAt in the terminal's local time: the date-time the card
 *                    recorded (the purse flow writes exactly that into DEBIT and LOAD)
 *   48 DF02          complete → complete, recovered → recovered, failed, never-happened
 *   55               value moved: the purse record (counter after, type, amount, currency, terminal
 *                    id as field 41's 8 bytes, sequence, date-time, balance after, certificate);
 *                    otherwise the counter the card showed, when the journal has it
 *   48 DF03          a failure's text, cut to the tag's 99 bytes
 *   field 37         a load's issuer reference, when its authorization was recorded (store.ts)
 *
 * An anomaly record's 0620: STAN = its anomaly id (the journal's anomaly sequence, the outbox key
 * `anomaly/<terminal>/<id>`), field 2 the card serial, 12/13 + DF04 its createdAt in local time, DF60
 * the journal's kind (same names), 55 DF52 the counter the card showed, DF61 the last counter the
 * terminal saw, DF62 the reader sequence of its transaction, DF63 the details as compact JSON, cut
 * to ANOMALY_DETAILS_MAX bytes when they are longer (`fitAnomalyDetails`).
 */
import {
  ADVICE_OUTCOMES,
  ANOMALY_DETAILS_MAX,
  ANOMALY_REPORT_KINDS,
  PURSE_TYPE_OF_KIND,
  TAG_TABLE,
  TAG,
  currencyNumeric,
  type AdviceInput,
  type AdviceOutcome,
  type AnomalyDetailValue,
  type AnomalyReportInput,
  type PurseRecord,
} from '../messages.js';
import { encodePurseDateTime, type PurseDateTime } from '../../crypto/purse-certificate.js';
import { fromHex } from '../../util/bytes.js';
import { UplinkError } from './errors.js';
import type { AnomalyRecord, TransactionRecord } from './contract.js';

/** Which advice outcome each final journal status is. */
export const OUTCOME_OF_STATUS: Readonly<Record<TransactionRecord['status'], AdviceOutcome>> = Object.freeze({
  complete: 'complete',
  recovered: 'recovered',
  failed: 'failed',
  'never-happened': 'never-happened',
});

/** Bytes 48 DF03 may hold. */
const NOTE_MAX_BYTES = TAG_TABLE.find((t) => t.tag === TAG.note)?.max ?? 99;
const MINUTE_MS = 60_000;

/** The local date-time of an instant at `utcOffsetMinutes` from UTC. */
export function localDateTime(ms: number, utcOffsetMinutes: number): PurseDateTime {
  const d = new Date(ms + utcOffsetMinutes * MINUTE_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
}

/** The terminal id as field 41 and the card's purse record carry it: ASCII, space-padded to 8 bytes. */
export function field41Bytes(terminalId: string): Uint8Array {
  return Uint8Array.from(terminalId.padEnd(8, ' '), (c) => c.charCodeAt(0));
}

/** `text` cut to at most `max` UTF-8 bytes, at a character boundary. */
export function cutUtf8(text: string, max: number): string {
  const enc = new TextEncoder();
  if (enc.encode(text).length <= max) return text;
  let out = '';
  let size = 0;
  for (const ch of text) {
    const n = enc.encode(ch).length;
    if (size + n > max) break;
    out += ch;
    size += n;
  }
  return out;
}

export interface AdviceContext {
  /** The uplink's terminal id (field 41); the record must carry the same. */
  terminalId: string;
  /** The terminal's local time offset, minutes from UTC (the journal's dayOffsetMinutes). */
  utcOffsetMinutes: number;
  /** A load's issuer reference (0210 field 37), when known. */
  issuerReference?: string;
}

function unsendable(record: TransactionRecord, why: string, cause?: unknown): UplinkError {
  return new UplinkError('unsendable', `journal record of reader sequence ${record.readerSeq} cannot go to the host: ${why}`, cause === undefined ? undefined : { cause });
}

/**
 * The advice of a transaction record. UplinkError 'unsendable' when the record cannot be expressed
 * (another terminal's, a currency without a numeric code here, a value-moving row without its
 * certificate); the advice builder (messages.ts) checks the rest when the message is made.
 */
export function adviceInputOf(record: TransactionRecord, ctx: AdviceContext): AdviceInput {
  if (record.terminalId !== ctx.terminalId) throw unsendable(record, `it belongs to terminal ${record.terminalId}, not ${ctx.terminalId}`);
  const outcome = OUTCOME_OF_STATUS[record.status];
  if (outcome === undefined || !(outcome in ADVICE_OUTCOMES)) throw unsendable(record, `status ${String(record.status)}`);
  let currency: string;
  let serial: Uint8Array;
  try {
    currency = currencyNumeric(record.currency);
    serial = fromHex(record.cardSerial);
  } catch (e) {
    throw unsendable(record, (e as Error).message, e);
  }
  const dateTime = localDateTime(record.createdAt, ctx.utcOffsetMinutes);
  const input: AdviceInput = { kind: record.type, outcome, serial, amount: { minor: record.amount, currency }, dateTime };
  if (outcome === 'complete' || outcome === 'recovered') {
    if (record.certificate === null || record.counterAfter === null || record.balanceAfter === null) {
      throw unsendable(record, `a ${record.status} row without its certificate, counter or balance`);
    }
    const purse: PurseRecord = {
      serial,
      counter: record.counterAfter,
      type: PURSE_TYPE_OF_KIND[record.type],
      amount: record.amount,
      currency: Number(currency),
      terminalId: field41Bytes(ctx.terminalId),
      terminalSequence: record.readerSeq,
      dateTime: encodePurseDateTime(dateTime),
      balanceAfter: record.balanceAfter,
      certificate: fromHex(record.certificate),
    };
    input.purse = purse;
  } else {
    if (record.counterAfter !== null) input.cardCounter = record.counterAfter;
    if (record.error !== null && record.error.length > 0) input.note = cutUtf8(record.error, NOTE_MAX_BYTES);
  }
  if (ctx.issuerReference !== undefined) input.retrievalReference = ctx.issuerReference;
  return input;
}

/** Key of the details that says how many entries were left out to fit 48 DF63. */
export const DETAILS_CUT_KEY = 'cut';

/**
 * The details as they fit 48 DF63 (at most `maxBytes` of compact JSON): unchanged when they fit,
 * else the entries in order while they fit, then `cut`: the number of entries left out.
 */
export function fitAnomalyDetails(details: Readonly<Record<string, AnomalyDetailValue>>, maxBytes = ANOMALY_DETAILS_MAX): Record<string, AnomalyDetailValue> {
  const size = (o: object) => new TextEncoder().encode(JSON.stringify(o)).length;
  const all = { ...details };
  if (size(all) <= maxBytes) return all;
  const entries = Object.entries(details);
  const out: Record<string, AnomalyDetailValue> = {};
  let kept = 0;
  for (const [k, v] of entries) {
    if (k === DETAILS_CUT_KEY) continue;
    if (size({ ...out, [k]: v, [DETAILS_CUT_KEY]: entries.length }) > maxBytes) continue;
    out[k] = v;
    kept++;
  }
  out[DETAILS_CUT_KEY] = entries.length - kept;
  return out;
}

/**
 * The 0620 of an anomaly record. UplinkError 'unsendable' when it cannot be expressed (another
 * terminal's, a kind or serial the message set has no room for); the builder checks the rest.
 */
export function anomalyReportInputOf(record: AnomalyRecord, ctx: Pick<AdviceContext, 'terminalId' | 'utcOffsetMinutes'>): AnomalyReportInput {
  const fail = (why: string, cause?: unknown) =>
    new UplinkError('unsendable', `journal anomaly ${record.anomalyId} cannot go to the host: ${why}`, cause === undefined ? undefined : { cause });
  if (record.terminalId !== ctx.terminalId) throw fail(`it belongs to terminal ${record.terminalId}, not ${ctx.terminalId}`);
  if (!(record.anomaly in ANOMALY_REPORT_KINDS)) throw fail(`kind ${String(record.anomaly)}`);
  let serial: Uint8Array;
  try {
    serial = fromHex(record.cardSerial);
  } catch (e) {
    throw fail((e as Error).message, e);
  }
  const input: AnomalyReportInput = {
    kind: record.anomaly,
    serial,
    dateTime: localDateTime(record.createdAt, ctx.utcOffsetMinutes),
    details: fitAnomalyDetails(record.details),
  };
  if (record.counter !== null) input.cardCounter = record.counter;
  if (record.lastCounter !== null) input.lastCounter = record.lastCounter;
  if (record.readerSeq !== null) input.readerSequence = record.readerSeq;
  return input;
}
