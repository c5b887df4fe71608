/** Byte helpers shared by every layer. Bytes are always Uint8Array, never Buffer, in public APIs. */
import { BadInputError } from './errors.js';

const HEX = '0123456789abcdef';

/** Lower-case hex, no separators. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  return s;
}

/** Upper-case hex with a space between bytes ("3B 8F 80"), the way pcsc-tools prints. */
export function toSpacedHex(bytes: Uint8Array): string {
  return toHex(bytes).toUpperCase().replace(/(..)(?=.)/g, '$1 ');
}

/**
 * Parses hex written the ways people paste it: any case, with spaces, colons, dashes or newlines
 * between bytes, with or without a leading 0x. Refuses odd digit counts and non-hex characters.
 */
export function fromHex(text: string): Uint8Array {
  const clean = text.trim().replace(/^0x/i, '').replace(/[\s:\-]/g, '');
  if (!/^[0-9a-fA-F]*$/.test(clean)) {
    const bad = clean.match(/[^0-9a-fA-F]/)?.[0] ?? '?';
    throw new BadInputError(`not hex: unexpected character '${bad}' in "${text.length > 40 ? text.slice(0, 40) + '…' : text}"`);
  }
  if (clean.length % 2 !== 0) throw new BadInputError(`not hex: odd number of digits (${clean.length}) in "${text}"`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Constant-time comparison for MACs and cryptograms. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** Two hex digits, upper case: hexByte(0x6a) === '6A'. */
export function hexByte(b: number): string {
  return HEX[(b >> 4) & 15].toUpperCase() + HEX[b & 15].toUpperCase();
}

/** Four hex digits, upper case, for status words: hexWord(0x9000) === '9000'. */
export function hexWord(w: number): string {
  return hexByte(w >> 8) + hexByte(w & 0xff);
}

/** Overwrites secrets in place; call when a key or session is closed. */
export function zeroize(...buffers: Uint8Array[]): void {
  for (const b of buffers) b.fill(0);
}
