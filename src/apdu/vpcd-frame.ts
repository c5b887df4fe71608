/**
 * Framing of the vsmartcard "vpcd" socket protocol, the one pcscd's vpcd driver, jCardSim's remote
 * mode and vsmartcard's vicc speak. Bytes only: both the card side (emulator/vpcd) and the reader
 * side (src/reader/vpcd-server.ts) use this codec.
 *
 * Every message is a 2-byte big-endian length followed by that many payload bytes. A 1-byte payload
 * is a control code sent by the reader side (see VpcdControl); only GET ATR is answered, with the ATR
 * as an ordinary frame. Any longer payload is a C-APDU, answered with the R-APDU. A zero-length frame
 * is not a message of the protocol and is refused, as is a frame longer than the decoder's maximum.
 */
import { BadInputError, ProtocolError } from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';

/** Bytes of the big-endian length that precedes every payload. */
export const VPCD_HEADER_LENGTH = 2;

/** The largest payload a 2-byte length can announce; also the default maximum of FrameDecoder. */
export const VPCD_MAX_FRAME_LENGTH = 0xffff;

/** The 1-byte payloads the reader side sends to the card side. */
export const VpcdControl = {
  /** Contacts unpowered. No answer. */
  PowerOff: 0x00,
  /** Contacts powered. No answer. */
  PowerOn: 0x01,
  /** Warm reset. No answer. */
  Reset: 0x02,
  /** Answered with the ATR as a normal frame. */
  GetAtr: 0x04,
} as const;

export type VpcdControlCode = (typeof VpcdControl)[keyof typeof VpcdControl];

const CONTROL_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(VpcdControl).map(([name, code]) => [code, name] as [number, string]),
);

export function isVpcdControlCode(value: number): value is VpcdControlCode {
  return CONTROL_NAMES.has(value);
}

/** "PowerOn", "GetAtr", ... or "unknown 0x07" for a byte that is not a control code. */
export function vpcdControlName(code: number): string {
  return CONTROL_NAMES.get(code) ?? `unknown 0x${(code & 0xff).toString(16).padStart(2, '0')}`;
}

/** What one payload means: a control code (1 byte) or an APDU (2 bytes or more). */
export type VpcdMessage =
  | { readonly kind: 'control'; readonly code: number }
  | { readonly kind: 'apdu'; readonly apdu: Uint8Array };

/** Classifies a decoded payload. The control code may be one this codec does not know. */
export function classifyVpcdPayload(payload: Uint8Array): VpcdMessage {
  assertBytes(payload, 'vpcd payload');
  if (payload.length === 0) throw new BadInputError('vpcd payload: empty payloads are not messages');
  if (payload.length === 1) return { kind: 'control', code: payload[0] };
  return { kind: 'apdu', apdu: payload };
}

/** Length header and payload in one buffer, so a sender can hand a whole frame to one write. */
export function encodeFrame(payload: Uint8Array): Uint8Array {
  assertBytes(payload, 'vpcd payload');
  if (payload.length === 0) throw new BadInputError('vpcd payload: a frame cannot be empty');
  if (payload.length > VPCD_MAX_FRAME_LENGTH) {
    throw new BadInputError(`vpcd payload: ${payload.length} bytes, a 2-byte length carries at most ${VPCD_MAX_FRAME_LENGTH}`);
  }
  const out = new Uint8Array(VPCD_HEADER_LENGTH + payload.length);
  out[0] = payload.length >> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, VPCD_HEADER_LENGTH);
  return out;
}

/** The 3-byte frame of a control code. */
export function encodeControl(code: VpcdControlCode): Uint8Array {
  if (!isVpcdControlCode(code)) throw new BadInputError(`vpcd control code: ${String(code)} is not one of ${[...CONTROL_NAMES.keys()].join(', ')}`);
  return Uint8Array.of(0, 1, code);
}

/** Why a frame was refused. */
export type FrameErrorReason = 'empty' | 'too-long' | 'after-error';

/**
 * The peer sent a frame the protocol does not allow. `offset` is the stream position (bytes pushed
 * since the decoder was created or reset) of the frame's length header; `length` is the announced
 * payload length.
 */
export class FrameError extends ProtocolError {
  readonly reason: FrameErrorReason;
  readonly offset: number;
  readonly length: number;
  constructor(reason: FrameErrorReason, message: string, offset: number, length: number) {
    super(`${message} (at stream byte ${offset})`);
    this.reason = reason;
    this.offset = offset;
    this.length = length;
  }
}

export interface FrameDecoderOptions {
  /** Longest payload accepted, 1 to 65535; default VPCD_MAX_FRAME_LENGTH. */
  maxFrameLength?: number;
}

/**
 * Incremental decoder for a byte stream of vpcd frames. `push` takes chunks as they arrive (a frame
 * may be split anywhere, a chunk may hold several frames) and returns the payloads it completed, in
 * order, each a fresh copy. Work and memory are linear in the input: a payload is allocated once
 * its length is known and filled in place.
 *
 * After a FrameError the stream is out of step (there is no way to find the next frame boundary), so
 * the decoder refuses every later push with a FrameError of reason 'after-error' until `reset()`.
 * The payloads completed in the same chunk before the bad frame are lost with it: a peer that sent a
 * bad frame is disconnected, so nothing it sent is acted upon.
 */
export class FrameDecoder {
  readonly maxFrameLength: number;
  /** Bytes consumed since creation or reset; stream offset of the next byte pushed. */
  private position = 0;
  /** Header bytes collected so far for the frame in progress (0, 1 or 2). */
  private headerFill = 0;
  private headerHigh = 0;
  /** Payload of the frame in progress, allocated once its length is known. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private frameStart = 0;
  private error: FrameError | null = null;

  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameLength ?? VPCD_MAX_FRAME_LENGTH;
    assertInt(max, 'maxFrameLength', 1, VPCD_MAX_FRAME_LENGTH);
    this.maxFrameLength = max;
  }

  /** Bytes held of a frame not yet complete (header bytes included). */
  get pending(): number {
    return this.headerFill + this.bodyFill;
  }

  /** True after a FrameError, until reset(). */
  get failed(): boolean {
    return this.error !== null;
  }

  /** Drops any partial frame and a previous error; stream offsets start again at 0. */
  reset(): void {
    this.position = 0;
    this.headerFill = 0;
    this.headerHigh = 0;
    this.body = null;
    this.bodyFill = 0;
    this.frameStart = 0;
    this.error = null;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    assertBytes(chunk, 'vpcd chunk');
    if (this.error) {
      throw new FrameError('after-error', `vpcd stream refused after an earlier error: ${this.error.message}`, this.error.offset, this.error.length);
    }
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.body === null) {
        if (this.headerFill === 0) {
          this.frameStart = this.position + i;
          this.headerHigh = chunk[i++];
          this.headerFill = 1;
          continue;
        }
        const length = (this.headerHigh << 8) | chunk[i++];
        this.headerFill = 2;
        if (length === 0) throw this.fail('empty', 'vpcd frame with length 0', 0);
        if (length > this.maxFrameLength) {
          throw this.fail('too-long', `vpcd frame of ${length} bytes exceeds the maximum of ${this.maxFrameLength}`, length);
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

  private fail(reason: FrameErrorReason, message: string, length: number): FrameError {
    this.error = new FrameError(reason, message, this.frameStart, length);
    this.body = null;
    this.bodyFill = 0;
    this.headerFill = 0;
    return this.error;
  }
}
