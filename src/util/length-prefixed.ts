/**
 * Length-prefixed framing of a byte stream: every frame is a header announcing the payload length,
 * then that many payload bytes. The header's form is a small pluggable piece (`LengthHeader`): a
 * 2-byte big-endian binary length (vpcd, ISO 8583 over TCP), 4 ASCII decimal digits, ... The decoder
 * logic is the same for all of them, so it lives here once.
 *
 * `LengthPrefixedDecoder.push` takes chunks as they arrive (a frame may be split anywhere, a chunk may
 * hold several frames) and returns the payloads it completed, in order, each a fresh copy. Work and
 * memory are linear in the input: a payload is allocated once its length is known (and only after
 * that length has been checked against the maximum) and filled in place.
 *
 * After a LengthPrefixError the stream is out of step (there is no way to find the next frame
 * boundary), so the decoder refuses every later push with reason 'after-error' until `reset()`. The
 * payloads completed in the same chunk before the bad frame are lost with it: a peer that sent a bad
 * frame is disconnected, so nothing it sent is acted upon.
 */
import { BadInputError, ProtocolError } from './errors.js';
import { assertBytes, assertInt } from './assert.js';

/** How a frame's header says the payload length. */
export interface LengthHeader {
  /** Short name for messages: "2-byte binary", "4 ASCII digits". */
  readonly name: string;
  /** Bytes of the header. */
  readonly size: number;
  /** The largest payload length the header can express. */
  readonly maxLength: number;
  /** The header for `length` (0..maxLength; the caller has checked the range). */
  encode(length: number): Uint8Array;
  /** The announced length, or a string saying why these `size` bytes are not a length. */
  decode(header: Uint8Array): number | string;
}

/** 2-byte unsigned big-endian binary length, 0..65535. */
export const BIG_ENDIAN_U16: LengthHeader = Object.freeze({
  name: '2-byte binary',
  size: 2,
  maxLength: 0xffff,
  encode(length: number): Uint8Array {
    return Uint8Array.of(length >> 8, length & 0xff);
  },
  decode(header: Uint8Array): number {
    return (header[0] << 8) | header[1];
  },
});

/** Why a frame was refused. */
export type LengthPrefixErrorReason =
  | 'empty' // a zero length where the protocol has no empty frames
  | 'too-long' // a length above the decoder's maximum
  | 'bad-header' // header bytes that are not a length at all (e.g. non-digits in an ASCII header)
  | 'after-error'; // any push after an earlier error, until reset()

/**
 * The peer sent a frame the protocol does not allow. `offset` is the stream position (bytes pushed
 * since the decoder was created or reset) of the frame's header; `length` is the announced payload
 * length (-1 when the header was not a length).
 */
export class LengthPrefixError extends ProtocolError {
  readonly reason: LengthPrefixErrorReason;
  readonly offset: number;
  readonly length: number;
  constructor(reason: LengthPrefixErrorReason, message: string, offset: number, length: number) {
    super(`${message} (at stream byte ${offset})`);
    this.reason = reason;
    this.offset = offset;
    this.length = length;
  }
}

export interface LengthPrefixedOptions {
  header: LengthHeader;
  /** Longest payload accepted, 1..header.maxLength; default header.maxLength. */
  maxFrameLength?: number;
  /** Whether a zero-length frame is a frame (true) or refused with reason 'empty' (default false). */
  allowEmpty?: boolean;
  /** Names the protocol in messages ("vpcd", "ISO 8583"); default "frame". */
  name?: string;
}

interface ResolvedOptions {
  header: LengthHeader;
  maxFrameLength: number;
  allowEmpty: boolean;
  name: string;
}

function resolve(options: LengthPrefixedOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new BadInputError('length-prefixed options: expected an object');
  const { header } = options;
  if (typeof header !== 'object' || header === null || typeof header.encode !== 'function' || typeof header.decode !== 'function') {
    throw new BadInputError('length-prefixed options: header must be a LengthHeader');
  }
  assertInt(header.size, 'header size', 1, 8);
  assertInt(header.maxLength, 'header maxLength', 1, Number.MAX_SAFE_INTEGER);
  const maxFrameLength = options.maxFrameLength ?? header.maxLength;
  assertInt(maxFrameLength, 'maxFrameLength', 1, header.maxLength);
  return { header, maxFrameLength, allowEmpty: options.allowEmpty === true, name: options.name ?? 'frame' };
}

/** Header and payload in one buffer, so a sender can hand a whole frame to one write. */
export function encodeLengthPrefixed(payload: Uint8Array, options: LengthPrefixedOptions): Uint8Array {
  const o = resolve(options);
  assertBytes(payload, `${o.name} payload`);
  if (payload.length === 0 && !o.allowEmpty) throw new BadInputError(`${o.name} payload: a frame cannot be empty`);
  if (payload.length > o.maxFrameLength) {
    throw new BadInputError(`${o.name} payload: ${payload.length} bytes, at most ${o.maxFrameLength} fit in one frame`);
  }
  const out = new Uint8Array(o.header.size + payload.length);
  out.set(o.header.encode(payload.length), 0);
  out.set(payload, o.header.size);
  return out;
}

/** Incremental decoder of a length-prefixed byte stream (see the top of this file). */
export class LengthPrefixedDecoder {
  readonly header: LengthHeader;
  readonly maxFrameLength: number;
  readonly allowEmpty: boolean;
  readonly name: string;
  /** Bytes consumed since creation or reset; stream offset of the next byte pushed. */
  private position = 0;
  /** Header bytes of the frame in progress. */
  private readonly headerBytes: Uint8Array;
  private headerFill = 0;
  /** Payload of the frame in progress, allocated once its length is known. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private frameStart = 0;
  private error: LengthPrefixError | null = null;

  constructor(options: LengthPrefixedOptions) {
    const o = resolve(options);
    this.header = o.header;
    this.maxFrameLength = o.maxFrameLength;
    this.allowEmpty = o.allowEmpty;
    this.name = o.name;
    this.headerBytes = new Uint8Array(o.header.size);
  }

  /** Bytes held of a frame not yet complete (header bytes included). */
  get pending(): number {
    return this.headerFill + this.bodyFill;
  }

  /** True after a LengthPrefixError, until reset(). */
  get failed(): boolean {
    return this.error !== null;
  }

  /** Drops any partial frame and a previous error; stream offsets start again at 0. */
  reset(): void {
    this.position = 0;
    this.headerFill = 0;
    this.body = null;
    this.bodyFill = 0;
    this.frameStart = 0;
    this.error = null;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    assertBytes(chunk, `${this.name} chunk`);
    if (this.error) {
      throw new LengthPrefixError('after-error', `${this.name} stream refused after an earlier error: ${this.error.message}`, this.error.offset, this.error.length);
    }
    const out: Uint8Array[] = [];
    const size = this.header.size;
    let i = 0;
    while (i < chunk.length) {
      if (this.body === null) {
        if (this.headerFill === 0) this.frameStart = this.position + i;
        const take = Math.min(size - this.headerFill, chunk.length - i);
        this.headerBytes.set(chunk.subarray(i, i + take), this.headerFill);
        this.headerFill += take;
        i += take;
        if (this.headerFill < size) break;
        const length = this.header.decode(this.headerBytes);
        if (typeof length === 'string') throw this.fail('bad-header', `${this.name} header: ${length}`, -1);
        if (length === 0 && !this.allowEmpty) throw this.fail('empty', `${this.name} frame with length 0`, 0);
        if (length > this.maxFrameLength) {
          throw this.fail('too-long', `${this.name} frame of ${length} bytes exceeds the maximum of ${this.maxFrameLength}`, length);
        }
        if (length === 0) {
          out.push(new Uint8Array(0));
          this.headerFill = 0;
          continue;
        }
        this.body = new Uint8Array(length);
        this.bodyFill = 0;
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFill, chunk.length - i);
      this.body.set(chunk.subarray(i, i + take), this.bodyFill);
      this.bodyFill += take;
      i += take;
      if (this.bodyFill === this.body.length) {
        out.push(this.body);
        this.body = null;
        this.bodyFill = 0;
        this.headerFill = 0;
      }
    }
    this.position += chunk.length;
    return out;
  }

  private fail(reason: LengthPrefixErrorReason, message: string, length: number): LengthPrefixError {
    this.error = new LengthPrefixError(reason, message, this.frameStart, length);
    this.body = null;
    this.bodyFill = 0;
    this.headerFill = 0;
    return this.error;
  }
}
