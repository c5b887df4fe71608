/**
 * The ISO 8583 message model: an immutable `IsoMessage` holding an MTI and field values, validated
 * against the field table (fields.ts) when built. It knows nothing about bytes on the wire (that is
 * packager.ts) nor about sockets (channel.ts).
 *
 * Values are what the field table's type says, exactly as they travel (no implicit padding):
 *   n, an, ans, z  a string of the field's characters; a fixed field has exactly its length
 *                  (amount 100 is "000000000100", terminal "T1" is "T1      ")
 *   b              a Uint8Array (copied in and out: a message never shares bytes with its caller)
 * The typed helpers (amount(), withStan(), withTerminalId(), ...) convert integers and ids to and
 * from those forms. Money is always an integer number of minor units, never a float.
 *
 * Rules checked at construction, each an Iso8583Error with code BAD_INPUT:
 * - the MTI is 4 digits, version 0 (ISO 8583:1987), and one hilt speaks (MTI_TABLE);
 * - every field number has a line in the field table; each value has the field's type, charset and
 *   length; TLV fields (48, 55, 62, 63) hold well-formed BER-TLV;
 * - field 64 (the MAC of a primary-bitmap message) is not combined with fields 65..128: a message
 *   with a secondary bitmap carries its MAC in field 128.
 */
import { Iso8583Error } from './errors.js';
import { FIELDS, MAC_FIELD_PRIMARY, fieldValueProblem } from './fields.js';
import { parseTlv } from '../../apdu/tlv.js';
import { DecodeError } from '../../util/errors.js';
import { toHex } from '../../util/bytes.js';

export type FieldValue = string | Uint8Array;
type Code = 'PROTOCOL' | 'BAD_INPUT';

// ---------------------------------------------------------------------------------------------
// Message type indicators

export interface MtiInfo {
  readonly mti: string;
  readonly name: string;
  /** For a request or an advice: the MTI of its answer. */
  readonly response?: string;
}

// prettier-ignore
/** The message types hilt speaks (ISO 8583:1987 numbering). Any other MTI is refused. */
export const MTI_TABLE: readonly MtiInfo[] = Object.freeze([
  { mti: '0200', name: 'Financial transaction request',           response: '0210' },
  { mti: '0210', name: 'Financial transaction response' },
  { mti: '0220', name: 'Financial transaction advice',            response: '0230' },
  { mti: '0221', name: 'Financial transaction advice, repeat',    response: '0230' },
  { mti: '0230', name: 'Financial transaction advice response' },
  { mti: '0300', name: 'File update request',                     response: '0310' },
  { mti: '0310', name: 'File update response' },
  { mti: '0400', name: 'Reversal request',                        response: '0410' },
  { mti: '0401', name: 'Reversal request, repeat',                response: '0410' },
  { mti: '0410', name: 'Reversal response' },
  { mti: '0500', name: 'Reconciliation request',                  response: '0510' },
  { mti: '0510', name: 'Reconciliation response' },
  { mti: '0620', name: 'Administrative advice',                   response: '0630' },
  { mti: '0621', name: 'Administrative advice, repeat',           response: '0630' },
  { mti: '0630', name: 'Administrative advice response' },
  { mti: '0800', name: 'Network management request',              response: '0810' },
  { mti: '0810', name: 'Network management response' },
].map((m) => Object.freeze(m)));

export const MTIS: ReadonlyMap<string, MtiInfo> = new Map(MTI_TABLE.map((m) => [m.mti, m]));

/** 1987 message classes (second digit), for messages about MTIs hilt does not speak. */
const MTI_CLASS: Readonly<Record<string, string>> = {
  '1': 'authorization',
  '2': 'financial',
  '3': 'file action',
  '4': 'reversal',
  '5': 'reconciliation',
  '6': 'administrative',
  '7': 'fee collection',
  '8': 'network management',
};

/** Checks an MTI: 4 digits, version 0, in MTI_TABLE. */
export function checkMti(mti: unknown, code: Code = 'BAD_INPUT', offset = -1): asserts mti is string {
  if (typeof mti !== 'string' || !/^[0-9]{4}$/.test(mti)) {
    throw new Iso8583Error(code, 'bad-mti', `MTI must be 4 digits, got ${typeof mti === 'string' ? JSON.stringify(mti) : typeof mti}`, 0, offset);
  }
  if (mti[0] !== '0') throw new Iso8583Error(code, 'bad-mti', `MTI ${mti}: version ${mti[0]} is not ISO 8583:1987 (0)`, 0, offset);
  if (!MTIS.has(mti)) {
    const cls = MTI_CLASS[mti[1]];
    throw new Iso8583Error(code, 'unknown-mti', `MTI ${mti} (${cls === undefined ? 'no 1987 class' : `class ${cls}`}) is not a message hilt speaks`, 0, offset);
  }
}

/** The MTI answering `mti` (0200 → 0210, 0221 → 0230, 0800 → 0810). */
export function responseMti(mti: string): string {
  checkMti(mti);
  const response = MTIS.get(mti)?.response;
  if (response === undefined) throw new Iso8583Error('BAD_INPUT', 'not-a-request', `MTI ${mti} is a response: it has no response`, 0);
  return response;
}

/** True for requests and advices (they have a response MTI). */
export function isRequestMti(mti: string): boolean {
  return MTIS.get(mti)?.response !== undefined;
}

// ---------------------------------------------------------------------------------------------
// Field checks (shared with the packager, which passes code PROTOCOL and offsets)

/** Checks one field number and value against the table. */
export function checkField(n: unknown, value: unknown, code: Code = 'BAD_INPUT', offset = -1): asserts value is FieldValue {
  const def = typeof n === 'number' ? FIELDS.get(n) : undefined;
  if (def === undefined) throw new Iso8583Error(code, 'undefined-field', `field ${String(n)} is not in hilt's field table`, typeof n === 'number' ? n : null, offset);
  const problem = fieldValueProblem(def, value);
  if (problem !== undefined) throw new Iso8583Error(code, problem[0], problem[1], def.n, offset);
  if (def.tlv) {
    try {
      parseTlv(value as Uint8Array);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      throw new Iso8583Error(code, 'bad-tlv', `${def.name}: ${e.message}`, def.n, offset);
    }
  }
}

/** Field 64 may not be combined with fields 65..128 (the MAC then goes in 128). */
export function checkMacPosition(numbers: Iterable<number>, code: Code = 'BAD_INPUT', offset = -1): void {
  let has64 = false;
  let secondary = false;
  for (const n of numbers) {
    if (n === MAC_FIELD_PRIMARY) has64 = true;
    if (n > 64) secondary = true;
  }
  if (has64 && secondary) {
    throw new Iso8583Error(code, 'mac-position', 'field 64 together with fields 65..128: a message with a secondary bitmap carries its MAC in field 128', MAC_FIELD_PRIMARY, offset);
  }
}

// ---------------------------------------------------------------------------------------------
// Number helpers: integers only

/** `value` as exactly `width` digits, zero-filled on the left. */
export function toDigits(value: number, width: number, name = 'value'): string {
  const max = 10 ** width - 1;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new Iso8583Error('BAD_INPUT', 'bad-value', `${name}: expected an integer from 0 to ${max}, got ${String(value)}`);
  }
  return String(value).padStart(width, '0');
}

/** Digits back to an integer; refuses non-digits and values above Number.MAX_SAFE_INTEGER. */
export function fromDigits(digits: string, field: number | null = null): number {
  if (!/^[0-9]+$/.test(digits)) throw new Iso8583Error('PROTOCOL', 'bad-digit', `expected digits, got ${JSON.stringify(digits)}`, field);
  const value = Number(digits);
  if (!Number.isSafeInteger(value)) throw new Iso8583Error('PROTOCOL', 'bad-value', `${digits} is above ${Number.MAX_SAFE_INTEGER}`, field);
  return value;
}

/** An amount: integer minor units of an ISO 4217 currency (numeric code, 3 digits: "392"). */
export interface Money {
  readonly minor: number;
  readonly currency: string;
}

/** Largest amount field 4 (n 12) carries. */
export const MAX_AMOUNT = 999_999_999_999;
/** Largest STAN (field 11, n 10 in hilt's profile). */
export const MAX_STAN = 9_999_999_999;
/** Key versions (field 53) are key version numbers, 1..255. */
export const MAX_KEY_VERSION = 255;

// ---------------------------------------------------------------------------------------------
// The message

type FieldInput = Iterable<readonly [number, FieldValue]> | Readonly<Record<number, FieldValue>>;

function entriesOf(fields: FieldInput): Array<readonly [number, unknown]> {
  if (typeof fields !== 'object' || fields === null) {
    throw new Iso8583Error('BAD_INPUT', 'bad-type', `fields: expected a Map, entries or an object, got ${fields === null ? 'null' : typeof fields}`);
  }
  if (Symbol.iterator in fields) {
    const out: Array<readonly [number, unknown]> = [];
    for (const e of fields as Iterable<readonly [number, FieldValue]>) {
      if (!Array.isArray(e) || e.length !== 2) throw new Iso8583Error('BAD_INPUT', 'bad-type', 'fields: expected [number, value] entries');
      out.push([e[0], e[1]]);
    }
    return out;
  }
  return Object.entries(fields).map(([k, v]) => [/^[0-9]+$/.test(k) ? Number(k) : NaN, v] as const);
}

function copyValue(v: FieldValue): FieldValue {
  return typeof v === 'string' ? v : v.slice();
}

/**
 * One ISO 8583 message, immutable. Build with `new IsoMessage(mti, { 3: '000000', ... })` or
 * `new IsoMessage(mti).with(3, '000000')...`; every `with`/`without` returns a new message.
 */
export class IsoMessage {
  readonly mti: string;
  private readonly values: ReadonlyMap<number, FieldValue>;

  constructor(mti: string, fields: FieldInput = []) {
    checkMti(mti);
    const map = new Map<number, FieldValue>();
    for (const [n, v] of entriesOf(fields)) {
      checkField(n, v);
      if (map.has(n)) throw new Iso8583Error('BAD_INPUT', 'bad-value', `field ${n} given twice`, n);
      map.set(n, copyValue(v));
    }
    checkMacPosition(map.keys());
    this.mti = mti;
    this.values = new Map([...map.entries()].sort((a, b) => a[0] - b[0]));
    Object.freeze(this);
  }

  /** A copy of the fields, in field-number order (bytes copied too). */
  get fields(): ReadonlyMap<number, FieldValue> {
    return new Map([...this.values].map(([n, v]) => [n, copyValue(v)]));
  }

  /** Field numbers present, ascending. */
  numbers(): number[] {
    return [...this.values.keys()];
  }

  has(n: number): boolean {
    return this.values.has(n);
  }

  /** The value of field n (bytes copied), or undefined. */
  get(n: number): FieldValue | undefined {
    const v = this.values.get(n);
    return v === undefined ? undefined : copyValue(v);
  }

  /** Field n of a character type; undefined when absent. */
  text(n: number): string | undefined {
    const v = this.values.get(n);
    if (v !== undefined && typeof v !== 'string') throw new Iso8583Error('BAD_INPUT', 'bad-type', `field ${n} is binary, not text`, n);
    return v;
  }

  /** Field n of type b (a copy); undefined when absent. */
  bytes(n: number): Uint8Array | undefined {
    const v = this.values.get(n);
    if (v !== undefined && typeof v === 'string') throw new Iso8583Error('BAD_INPUT', 'bad-type', `field ${n} is text, not binary`, n);
    return v === undefined ? undefined : v.slice();
  }

  with(n: number, value: FieldValue): IsoMessage {
    checkField(n, value);
    const map = new Map(this.values);
    map.set(n, copyValue(value));
    checkMacPosition(map.keys());
    return _trustedMessage(this.mti, map);
  }

  without(...ns: number[]): IsoMessage {
    const map = new Map(this.values);
    for (const n of ns) map.delete(n);
    return _trustedMessage(this.mti, map);
  }

  /** The same fields under another MTI (for building an answer from a request). */
  withMti(mti: string): IsoMessage {
    checkMti(mti);
    return _trustedMessage(mti, new Map(this.values));
  }

  /** True for requests and advices, false for responses. */
  get isRequest(): boolean {
    return isRequestMti(this.mti);
  }

  /** The MTI answering this message. */
  responseMti(): string {
    return responseMti(this.mti);
  }

  equals(other: IsoMessage): boolean {
    if (!(other instanceof IsoMessage) || other.mti !== this.mti || other.values.size !== this.values.size) return false;
    for (const [n, v] of this.values) {
      const w = other.values.get(n);
      if (w === undefined) return false;
      if (typeof v === 'string' || typeof w === 'string') {
        if (v !== w) return false;
      } else if (v.length !== w.length || v.some((b, i) => b !== w[i])) return false;
    }
    return true;
  }

  /** One line: "0200 2=48494c54 3=000000 4=000000000100 ..." (binary fields in hex). */
  toString(): string {
    return [this.mti, ...[...this.values].map(([n, v]) => `${n}=${typeof v === 'string' ? JSON.stringify(v) : toHex(v)}`)].join(' ');
  }

  // -------------------------------------------------------------------------------------------
  // Typed helpers for the common fields

  /** Fields 4 and 49 as Money; undefined when field 4 is absent. */
  amount(): Money | undefined {
    const amount = this.text(4);
    if (amount === undefined) return undefined;
    const currency = this.text(49);
    if (currency === undefined) throw new Iso8583Error('PROTOCOL', 'missing-field', 'an amount (field 4) without its currency (field 49)', 49);
    return { minor: fromDigits(amount, 4), currency };
  }

  withAmount(money: Money): IsoMessage {
    if (typeof money !== 'object' || money === null) throw new Iso8583Error('BAD_INPUT', 'bad-value', 'amount: expected { minor, currency }', 4);
    if (typeof money.currency !== 'string' || !/^[0-9]{3}$/.test(money.currency)) {
      throw new Iso8583Error('BAD_INPUT', 'bad-value', `currency: expected an ISO 4217 numeric code of 3 digits, got ${String(money.currency)}`, 49);
    }
    return this.with(4, toDigits(money.minor, 12, 'amount (minor units)')).with(49, money.currency);
  }

  /** Field 11, the reader sequence number. */
  stan(): number | undefined {
    const s = this.text(11);
    return s === undefined ? undefined : fromDigits(s, 11);
  }

  withStan(stan: number): IsoMessage {
    return this.with(11, toDigits(stan, 10, 'STAN'));
  }

  /** Field 41 without its padding. */
  terminalId(): string | undefined {
    return this.text(41)?.replace(/ +$/, '');
  }

  withTerminalId(id: string): IsoMessage {
    return this.with(41, padId(id, 8, 'terminal id', 41));
  }

  /** Field 42 without its padding. */
  readerId(): string | undefined {
    return this.text(42)?.replace(/ +$/, '');
  }

  withReaderId(id: string): IsoMessage {
    return this.with(42, padId(id, 15, 'reader id', 42));
  }

  /** Field 39. */
  responseCode(): string | undefined {
    return this.text(39);
  }

  /** Field 53: the version of the key that MACs this message. */
  keyVersion(): number | undefined {
    const s = this.text(53);
    if (s === undefined) return undefined;
    const v = fromDigits(s, 53);
    if (v < 1 || v > MAX_KEY_VERSION) throw new Iso8583Error('PROTOCOL', 'bad-value', `key version ${v} is not 1..${MAX_KEY_VERSION}`, 53);
    return v;
  }

  withKeyVersion(version: number): IsoMessage {
    if (!Number.isInteger(version) || version < 1 || version > MAX_KEY_VERSION) {
      throw new Iso8583Error('BAD_INPUT', 'bad-value', `key version: expected 1..${MAX_KEY_VERSION}, got ${String(version)}`, 53);
    }
    return this.with(53, toDigits(version, 16));
  }
}

/**
 * A message from parts already checked by the caller (the packager checks each field with code
 * PROTOCOL as it decodes; with() checks the one field it adds): skips re-validating every field.
 * `values` must be owned by the new message (no one else keeps a reference).
 */
export function _trustedMessage(mti: string, values: Map<number, FieldValue>): IsoMessage {
  const m = Object.create(IsoMessage.prototype) as { mti: string; values: ReadonlyMap<number, FieldValue> };
  m.mti = mti;
  m.values = new Map([...values.entries()].sort((a, b) => a[0] - b[0]));
  return Object.freeze(m) as unknown as IsoMessage;
}

/** An id right-padded with spaces to `width`; 1..width printable characters, no space at either end. */
export function padId(id: string, width: number, name: string, field: number): string {
  if (typeof id !== 'string' || id.length < 1 || id.length > width || !/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(id)) {
    throw new Iso8583Error('BAD_INPUT', 'bad-value', `${name}: expected 1 to ${width} printable characters without surrounding spaces, got ${JSON.stringify(id)}`, field);
  }
  return id.padEnd(width, ' ');
}
