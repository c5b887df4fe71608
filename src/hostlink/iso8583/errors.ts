/**
 * The one error of the ISO 8583 codec. Two codes, one class:
 *
 * - code 'PROTOCOL': bytes from a peer (unpack) or a message received from one (the message-level
 *   checks of messages.ts) break the profile. A host answers with response code 30 (format error)
 *   when it can still read the MTI, STAN and terminal id, and disconnects otherwise.
 * - code 'BAD_INPUT': a caller built a message the profile does not allow (IsoMessage, with(), the
 *   constructors of messages.ts). Same reasons, so tests can share tables.
 *
 * Callers branch on `code` and `reason`, never on the message text. `field` is the field number the
 * problem is in (0 = MTI, 1 = bitmaps), or null when it concerns no single field; `offset` is the
 * byte offset in the unpacked input (-1 when not unpacking).
 */
import { HiltError } from '../../util/errors.js';

export type Iso8583Reason =
  | 'not-bytes' // unpack was given something that is not a Uint8Array
  | 'truncated' // the input ends inside the MTI, a bitmap, a length prefix or a field
  | 'bad-mti' // not 4 digits, or a version other than 0 (ISO 8583:1987)
  | 'unknown-mti' // a well-formed 1987 MTI that hilt does not speak
  | 'not-a-request' // a response MTI asked for the response MTI
  | 'undefined-field' // a bitmap bit or a field number with no line in the field table
  | 'empty-secondary' // the secondary bitmap is announced but has no bit set
  | 'bad-digit' // a BCD nibble that is not a digit (or a non-zero pad nibble)
  | 'bad-length' // a fixed field of the wrong length, a length prefix over the field's maximum
  | 'bad-charset' // a character outside the field type's set
  | 'bad-type' // a string for a binary field, bytes for a character field
  | 'bad-tlv' // a TLV field whose value is not well-formed BER-TLV
  | 'mac-position' // field 64 together with a secondary bitmap (the MAC then goes in 128)
  | 'trailing-bytes' // bytes after the message when a whole frame was expected
  | 'missing-field' // a message lacks a field its type requires (messages.ts)
  | 'unexpected-field' // a message carries a field its type does not allow (messages.ts)
  | 'bad-value'; // a field that decodes but whose content hilt refuses (messages.ts)

export class Iso8583Error extends HiltError {
  readonly reason: Iso8583Reason;
  readonly field: number | null;
  readonly offset: number;
  constructor(code: 'PROTOCOL' | 'BAD_INPUT', reason: Iso8583Reason, message: string, field: number | null = null, offset = -1) {
    const where = [field !== null ? `field ${field}` : '', offset >= 0 ? `at byte ${offset}` : ''].filter((s) => s !== '').join(', ');
    super(code, where === '' ? `ISO 8583: ${message}` : `ISO 8583: ${message} (${where})`);
    this.reason = reason;
    this.field = field;
    this.offset = offset;
  }
}
