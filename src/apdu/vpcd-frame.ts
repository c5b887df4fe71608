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
import { BadInputError } from '../util/errors.js';
import { assertBytes } from '../util/assert.js';
import {
  BIG_ENDIAN_U16,
  LengthPrefixError,
  LengthPrefixedDecoder,
  encodeLengthPrefixed,
  type LengthPrefixErrorReason,
} from '../util/length-prefixed.js';

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
  return encodeLengthPrefixed(payload, { header: BIG_ENDIAN_U16, name: 'vpcd' });
}

/** The 3-byte frame of a control code. */
export function encodeControl(code: VpcdControlCode): Uint8Array {
  if (!isVpcdControlCode(code)) throw new BadInputError(`vpcd control code: ${String(code)} is not one of ${[...CONTROL_NAMES.keys()].join(', ')}`);
  return Uint8Array.of(0, 1, code);
}

/** Why a frame was refused: the generic length-prefixed decoder's reasons. */
export type FrameErrorReason = LengthPrefixErrorReason;

/** A vpcd frame the protocol does not allow (the generic LengthPrefixError; the name callers catch). */
export const FrameError = LengthPrefixError;
export type FrameError = LengthPrefixError;

export interface FrameDecoderOptions {
  /** Longest payload accepted, 1 to 65535; default VPCD_MAX_FRAME_LENGTH. */
  maxFrameLength?: number;
}

/**
 * Incremental decoder for a byte stream of vpcd frames: the generic length-prefixed decoder
 * (src/util/length-prefixed.ts) with vpcd's 2-byte big-endian header and no empty frames. See there
 * for chunking, copying and the after-error behaviour.
 */
export class FrameDecoder extends LengthPrefixedDecoder {
  constructor(options: FrameDecoderOptions = {}) {
    super({ header: BIG_ENDIAN_U16, maxFrameLength: options.maxFrameLength ?? VPCD_MAX_FRAME_LENGTH, name: 'vpcd' });
  }
}
