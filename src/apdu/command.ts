/**
 * Command APDU (ISO/IEC 7816-4 §5.1): an immutable value, validated when built.
 *
 * Ne is the maximum number of response bytes expected: 0 means "no Le field"; 1..256 fit a short
 * Le (256 is encoded 00); up to 65536 needs an extended Le (65536 is encoded 0000). Nc is the data
 * length: up to 255 fits a short Lc, up to 65535 needs an extended Lc (00 marker then two bytes).
 *
 * The seven encodings the decoder accepts. B1..B4 = CLA INS P1 P2, L = total length, B5 the first
 * byte after the header:
 *
 *   case  | condition                                  | body
 *   ------|--------------------------------------------|----------------------------------------
 *   1     | L = 4                                      | (none)
 *   2S    | L = 5                                      | Le = B5        (00 → 256)
 *   3S    | L = 5 + B5, B5 ≠ 00                        | Lc = B5, data
 *   4S    | L = 6 + B5, B5 ≠ 00                        | Lc = B5, data, Le (00 → 256)
 *   2E    | L = 7, B5 = 00                             | Le = B6B7      (0000 → 65536)
 *   3E    | L = 7 + B6B7, B5 = 00, B6B7 ≠ 0000         | Lc = B6B7, data
 *   4E    | L = 9 + B6B7, B5 = 00, B6B7 ≠ 0000         | Lc = B6B7, data, Le = 2 bytes (0000 → 65536)
 *
 * Anything else is refused with a DecodeError('APDU_MALFORMED'). Encoding picks the short form when
 * both Nc ≤ 255 and Ne ≤ 256, unless `extended` is set; a decoded APDU remembers its form so that
 * encode(decode(x)) returns x byte for byte. Case 1 has no length field, so it is never extended
 * (`extended` reads false), but a requested extended form is kept by `with()` for the fields added.
 */
import { DecodeError, BadInputError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { toHex } from '../util/bytes.js';

export type ApduCase = 1 | 2 | 3 | 4;

export interface CommandApduFields {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  /** Command data (Nc = data.length); empty or absent for cases 1 and 2. */
  data?: Uint8Array;
  /** Maximum response length Ne: 0 = no Le field, 1..65536. */
  ne?: number;
  /** Force the extended-length encoding even if the short one would do. */
  extended?: boolean;
}

export const MAX_SHORT_NC = 255;
export const MAX_SHORT_NE = 256;
export const MAX_EXTENDED_NC = 65535;
export const MAX_EXTENDED_NE = 65536;
/** The longest valid encoding: case 4E with Nc = 65535. */
export const MAX_COMMAND_LENGTH = 4 + 3 + MAX_EXTENDED_NC + 2;

export class CommandApdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data: Uint8Array;
  readonly ne: number;
  /** True when this APDU is (or must be) encoded with extended Lc/Le fields. */
  readonly extended: boolean;
  /** The caller asked for the extended form (kept by `with()`, unlike the form the sizes force). */
  readonly #forcedExtended: boolean;

  constructor(fields: CommandApduFields) {
    assertInt(fields.cla, 'CLA', 0, 0xff);
    assertInt(fields.ins, 'INS', 0, 0xff);
    assertInt(fields.p1, 'P1', 0, 0xff);
    assertInt(fields.p2, 'P2', 0, 0xff);
    const data = fields.data ?? new Uint8Array(0);
    if (!(data instanceof Uint8Array)) throw new BadInputError(`data: expected Uint8Array, got ${typeof data}`);
    const ne = fields.ne ?? 0;
    assertInt(ne, 'Ne', 0, MAX_EXTENDED_NE);
    if (data.length > MAX_EXTENDED_NC) {
      throw new BadInputError(`data: at most ${MAX_EXTENDED_NC} bytes fit an APDU, got ${data.length}`);
    }
    if (fields.cla === 0xff) throw new BadInputError('CLA FF is invalid (reserved for PTS/PPS)');
    this.cla = fields.cla;
    this.ins = fields.ins;
    this.p1 = fields.p1;
    this.p2 = fields.p2;
    // A plain copy: `slice()` on a Buffer would share memory and keep the Buffer type.
    this.data = new Uint8Array(data);
    this.ne = ne;
    this.#forcedExtended = fields.extended === true;
    const hasLength = data.length > 0 || ne > 0;
    this.extended = (this.#forcedExtended && hasLength) || data.length > MAX_SHORT_NC || ne > MAX_SHORT_NE;
    Object.freeze(this);
  }

  /** ISO 7816-4 case: 1 no data no Le, 2 Le only, 3 data only, 4 data and Le. */
  get case(): ApduCase {
    const hasData = this.data.length > 0;
    const hasLe = this.ne > 0;
    return hasData ? (hasLe ? 4 : 3) : hasLe ? 2 : 1;
  }

  /** Nc, the number of command data bytes. */
  get nc(): number {
    return this.data.length;
  }

  /** A copy with some fields changed (validated again). */
  with(changes: Partial<CommandApduFields>): CommandApdu {
    return new CommandApdu({
      cla: this.cla,
      ins: this.ins,
      p1: this.p1,
      p2: this.p2,
      data: this.data,
      ne: this.ne,
      ...changes,
      extended: changes.extended ?? this.#forcedExtended,
    });
  }

  encode(): Uint8Array {
    const nc = this.data.length;
    const ne = this.ne;
    const header = [this.cla, this.ins, this.p1, this.p2];
    if (!this.extended) {
      const out = new Uint8Array(4 + (nc > 0 ? 1 + nc : 0) + (ne > 0 ? 1 : 0));
      out.set(header);
      let o = 4;
      if (nc > 0) {
        out[o++] = nc;
        out.set(this.data, o);
        o += nc;
      }
      if (ne > 0) out[o] = ne === 256 ? 0 : ne;
      return out;
    }
    // Extended: a single 00 marker precedes the first length field, whichever it is.
    if (nc === 0 && ne === 0) return Uint8Array.from(header); // case 1 has no length field to extend
    const out = new Uint8Array(4 + 1 + (nc > 0 ? 2 + nc : 0) + (ne > 0 ? 2 : 0));
    out.set(header);
    let o = 5; // out[4] = 00 marker
    if (nc > 0) {
      out[o++] = nc >> 8;
      out[o++] = nc & 0xff;
      out.set(this.data, o);
      o += nc;
    }
    if (ne > 0) {
      const le = ne === 65536 ? 0 : ne;
      out[o++] = le >> 8;
      out[o] = le & 0xff;
    }
    return out;
  }

  toString(): string {
    return toHex(this.encode());
  }

  /** Parses a command APDU by the table above; refuses anything else with a DecodeError. */
  static decode(bytes: Uint8Array): CommandApdu {
    if (!(bytes instanceof Uint8Array)) throw new DecodeError('APDU_MALFORMED', 'command APDU must be bytes', -1);
    const L = bytes.length;
    if (L < 4) throw new DecodeError('APDU_MALFORMED', `command APDU too short: ${L} bytes, the header alone is 4`, L);
    if (L > MAX_COMMAND_LENGTH) {
      throw new DecodeError('APDU_MALFORMED', `command APDU too long: ${L} bytes, at most ${MAX_COMMAND_LENGTH}`, MAX_COMMAND_LENGTH);
    }
    const [cla, ins, p1, p2] = bytes;
    if (cla === 0xff) throw new DecodeError('APDU_MALFORMED', 'CLA FF is invalid', 0);
    const head = { cla, ins, p1, p2 };
    if (L === 4) return new CommandApdu(head);
    const b5 = bytes[4];
    if (L === 5) return new CommandApdu({ ...head, ne: b5 === 0 ? 256 : b5 });
    if (b5 !== 0) {
      if (L === 5 + b5) return new CommandApdu({ ...head, data: bytes.subarray(5, 5 + b5) });
      if (L === 6 + b5) {
        const le = bytes[5 + b5];
        return new CommandApdu({ ...head, data: bytes.subarray(5, 5 + b5), ne: le === 0 ? 256 : le });
      }
      throw new DecodeError('APDU_MALFORMED', `short Lc ${b5} does not match the ${L - 5} bytes after it`, 4);
    }
    // B5 = 00: extended length.
    if (L < 7) throw new DecodeError('APDU_MALFORMED', `extended-length APDU truncated: ${L} bytes`, L);
    const n = (bytes[5] << 8) | bytes[6];
    if (L === 7) return new CommandApdu({ ...head, ne: n === 0 ? 65536 : n, extended: true });
    if (n === 0) throw new DecodeError('APDU_MALFORMED', 'extended Lc of 0000 followed by more bytes', 5);
    if (L === 7 + n) return new CommandApdu({ ...head, data: bytes.subarray(7, 7 + n), extended: true });
    if (L === 9 + n) {
      const le = (bytes[7 + n] << 8) | bytes[8 + n];
      return new CommandApdu({ ...head, data: bytes.subarray(7, 7 + n), ne: le === 0 ? 65536 : le, extended: true });
    }
    throw new DecodeError('APDU_MALFORMED', `extended Lc ${n} does not match the ${L - 7} bytes after it`, 5);
  }
}

/** Shorthand for building commands in code: apdu(0x00, 0xa4, 0x04, 0x00, aid, 256). */
export function apdu(cla: number, ins: number, p1: number, p2: number, data?: Uint8Array, ne?: number): CommandApdu {
  return new CommandApdu({ cla, ins, p1, p2, data, ne });
}
