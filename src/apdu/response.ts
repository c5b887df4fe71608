/**
 * Response APDU (ISO/IEC 7816-4 §5.1): response data followed by the two status bytes SW1 SW2.
 * Immutable and validated when built; decode refuses anything shorter than the two status bytes.
 */
import { DecodeError, BadInputError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { concatBytes, toHex, hexWord } from '../util/bytes.js';

/** At most 65536 response data bytes (an extended Le of 0000). */
export const MAX_RESPONSE_DATA = 65536;

export class ResponseApdu {
  readonly data: Uint8Array;
  /** SW1 << 8 | SW2. */
  readonly sw: number;

  constructor(data: Uint8Array, sw: number) {
    assertInt(sw, 'SW', 0, 0xffff);
    if (!(data instanceof Uint8Array)) throw new BadInputError(`data: expected Uint8Array, got ${data === null ? 'null' : typeof data}`);
    if (data.length > MAX_RESPONSE_DATA) {
      throw new BadInputError(`data: at most ${MAX_RESPONSE_DATA} bytes fit a response APDU, got ${data.length}`);
    }
    // A plain copy: `slice()` on a Buffer would share memory and keep the Buffer type.
    this.data = new Uint8Array(data);
    this.sw = sw;
    Object.freeze(this);
  }

  get sw1(): number {
    return this.sw >> 8;
  }

  get sw2(): number {
    return this.sw & 0xff;
  }

  /** True for 9000 and the other "normal processing" words 61xx. */
  get ok(): boolean {
    return this.sw === 0x9000 || this.sw1 === 0x61;
  }

  /** Status word as four upper-case hex digits, e.g. "6A82". */
  get swHex(): string {
    return hexWord(this.sw);
  }

  encode(): Uint8Array {
    return concatBytes(this.data, Uint8Array.of(this.sw >> 8, this.sw & 0xff));
  }

  toString(): string {
    return toHex(this.encode());
  }

  static decode(bytes: Uint8Array): ResponseApdu {
    if (!(bytes instanceof Uint8Array)) throw new DecodeError('APDU_MALFORMED', 'response APDU must be bytes', -1);
    if (bytes.length < 2) {
      throw new DecodeError('APDU_MALFORMED', `response APDU too short: ${bytes.length} bytes, SW1 SW2 alone are 2`, bytes.length);
    }
    if (bytes.length > MAX_RESPONSE_DATA + 2) {
      throw new DecodeError('APDU_MALFORMED', `response APDU too long: ${bytes.length} bytes, at most ${MAX_RESPONSE_DATA} data bytes + SW`, MAX_RESPONSE_DATA + 2);
    }
    const n = bytes.length - 2;
    return new ResponseApdu(bytes.subarray(0, n), (bytes[n] << 8) | bytes[n + 1]);
  }

  /** A response with only a status word. */
  static status(sw: number): ResponseApdu {
    return new ResponseApdu(new Uint8Array(0), sw);
  }
}
