/**
 * Framing of ISO 8583 messages over a byte stream: a small pluggable piece, kept apart from the
 * message (message.ts), the codec (iso8583/packager.ts) and the link (channel.ts).
 *
 * A `Framing` turns one packed message into the bytes of one frame and gives out decoders that cut
 * a stream back into packed messages. hilt's host link uses `twoByteLengthFraming()`: a 2-byte
 * big-endian binary length, then the message. `asciiLengthFraming()` (4 ASCII decimal digits, as
 * some acquirers use) shows the pluggability; both are the same generic length-prefixed codec
 * (src/util/length-prefixed.ts) with a different header, not a subclass per format.
 *
 * An empty frame is not a message and is refused. Frames longer than the framing's maximum (default
 * 8192 bytes: the largest hilt message packs to under 6 KiB) are refused on both sides: `encode`
 * throws BadInputError, the decoder throws LengthPrefixError('too-long') before allocating anything.
 */
import {
  BIG_ENDIAN_U16,
  LengthPrefixedDecoder,
  encodeLengthPrefixed,
  type LengthHeader,
} from '../util/length-prefixed.js';
import { assertInt } from '../util/assert.js';

/** Default maximum payload of one frame. */
export const DEFAULT_MAX_FRAME_LENGTH = 8192;

/** The decoder side of a framing: chunks in, complete payloads out (see LengthPrefixedDecoder). */
export interface FrameStreamDecoder {
  push(chunk: Uint8Array): Uint8Array[];
  /** Bytes held of a frame not yet complete. */
  readonly pending: number;
  /** True after a framing error: the stream is out of step. */
  readonly failed: boolean;
}

export interface Framing {
  /** "2-byte binary length", ... */
  readonly name: string;
  /** Longest payload accepted in either direction. */
  readonly maxFrameLength: number;
  /** The whole frame (header + payload) in one buffer, for one write. */
  encode(payload: Uint8Array): Uint8Array;
  /** A fresh decoder for one connection. */
  decoder(): FrameStreamDecoder;
}

export interface FramingOptions {
  /** Longest payload, 1..the header's maximum; default DEFAULT_MAX_FRAME_LENGTH (capped by the header). */
  maxFrameLength?: number;
}

/** 4 ASCII decimal digits "0000".."9999", most significant first. */
export const ASCII_DECIMAL_4: LengthHeader = Object.freeze({
  name: '4 ASCII digits',
  size: 4,
  maxLength: 9999,
  encode(length: number): Uint8Array {
    return Uint8Array.from(String(length).padStart(4, '0'), (c) => c.charCodeAt(0));
  },
  decode(header: Uint8Array): number | string {
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const d = header[i] - 0x30;
      if (d < 0 || d > 9) return `byte ${i} is 0x${header[i].toString(16).padStart(2, '0')}, not an ASCII digit`;
      n = n * 10 + d;
    }
    return n;
  },
});

/** A framing from any length header; the two named framings below are this with their header. */
export function lengthPrefixFraming(header: LengthHeader, options: FramingOptions = {}): Framing {
  const maxFrameLength = options.maxFrameLength ?? Math.min(DEFAULT_MAX_FRAME_LENGTH, header.maxLength);
  assertInt(maxFrameLength, 'maxFrameLength', 1, header.maxLength);
  const settings = { header, maxFrameLength, name: 'ISO 8583' };
  return Object.freeze({
    name: `${header.name} length`,
    maxFrameLength,
    encode: (payload: Uint8Array) => encodeLengthPrefixed(payload, settings),
    decoder: () => new LengthPrefixedDecoder(settings),
  });
}

/** hilt's host-link framing: 2-byte big-endian binary length (at most 65535; default maximum 8192). */
export function twoByteLengthFraming(options: FramingOptions = {}): Framing {
  return lengthPrefixFraming(BIG_ENDIAN_U16, options);
}

/** 4 ASCII decimal digits of length (at most 9999; default maximum 8192). */
export function asciiLengthFraming(options: FramingOptions = {}): Framing {
  return lengthPrefixFraming(ASCII_DECIMAL_4, options);
}
