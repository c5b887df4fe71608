/**
 * Malformed APDUs every decoder in the tree must refuse, each with the reason. Command-APDU decoders
 * (CommandApdu.decode, the card OS's command parser, ...) refuse BAD_COMMAND_APDUS; response
 * decoders refuse BAD_RESPONSE_APDUS; every decoder refuses NOT_BYTES (values that are not a
 * Uint8Array at all). Import it from a test and loop; do not copy it.
 */
import { fromHex } from '../../src/util/bytes.js';

export interface BadInput {
  /** Short name for the test title. */
  name: string;
  bytes: Uint8Array;
  /** Why a decoder must refuse it. */
  why: string;
}

function filled(length: number, head: number[] = [], fill = 0x5a): Uint8Array {
  const b = new Uint8Array(length).fill(fill);
  b.set(head);
  return b;
}

export const BAD_COMMAND_APDUS: readonly BadInput[] = [
  { name: 'empty', bytes: new Uint8Array(0), why: 'no header: CLA INS P1 P2 are mandatory' },
  { name: '1 byte', bytes: fromHex('00'), why: 'header truncated after CLA' },
  { name: '3 bytes', bytes: fromHex('00A404'), why: 'header truncated before P2' },
  { name: 'CLA FF case 1', bytes: fromHex('FFA40400'), why: 'CLA FF is reserved for PPS, never a command class' },
  { name: 'CLA FF case 2S', bytes: fromHex('FFCA000000'), why: 'CLA FF is reserved for PPS' },
  { name: 'short Lc beyond the data', bytes: fromHex('00A4040005A000'), why: 'Lc 5 announces 5 data bytes, only 2 follow' },
  {
    name: 'short Lc, 2 bytes too many',
    bytes: fromHex('00D6000001AABBCC'),
    why: 'after Lc 1 and its byte, 2 bytes remain: neither nothing (3S) nor one Le byte (4S)',
  },
  { name: 'short Lc, 2-byte Le', bytes: fromHex('00A4040002AABB0000'), why: 'a short Lc takes a 1-byte Le; 2-byte Le needs the extended form' },
  { name: 'Lc FF, 254 data bytes', bytes: filled(5 + 254, [0x00, 0xd6, 0x00, 0x00, 0xff]), why: 'Lc 255 with one data byte missing' },
  { name: 'extended marker alone', bytes: fromHex('00B000000000'), why: '00 00 after the header is a truncated extended length (6 bytes)' },
  { name: 'extended Le, 1 byte', bytes: fromHex('00B00000' + '0001'), why: 'extended marker then one byte: Le needs two' },
  { name: 'extended Lc 0000 with data', bytes: fromHex('00DA0000000000AA'), why: 'an extended Lc of 0000 is not allowed; Nc must be 1..65535' },
  { name: 'extended, 8 zero bytes', bytes: new Uint8Array(8), why: 'extended Lc 0000 followed by one more byte' },
  { name: 'extended Lc beyond the data', bytes: fromHex('00DA00000000050102'), why: 'extended Lc 5 announces 5 data bytes, only 2 follow' },
  { name: 'extended Lc, 1-byte Le', bytes: fromHex('00A404000000020102' + '00'), why: 'after extended Lc and data the Le must be 2 bytes, not 1' },
  { name: 'extended Lc, 3-byte Le', bytes: fromHex('00A40400000002010200' + '0000'), why: 'after extended Lc and data the Le must be 2 bytes, not 3' },
  {
    name: 'extended 2E plus a byte',
    bytes: fromHex('00B00000000100' + '00'),
    why: 'a 7-byte case 2E with one byte appended reads as extended Lc 0100 (256) with 1 data byte',
  },
  {
    name: 'longer than any APDU',
    bytes: filled(4 + 3 + 65535 + 2 + 1, [0x00, 0xd6, 0x00, 0x00, 0x00, 0xff, 0xff]),
    why: 'case 4E with Nc 65535 is 65544 bytes, the longest valid command; this is one more',
  },
  {
    name: 'extended Lc FFFF, 1 byte short',
    bytes: filled(4 + 3 + 65534, [0x00, 0xd6, 0x00, 0x00, 0x00, 0xff, 0xff]),
    why: 'Lc 65535 with one data byte missing',
  },
];

export const BAD_RESPONSE_APDUS: readonly BadInput[] = [
  { name: 'empty', bytes: new Uint8Array(0), why: 'a response always ends in SW1 SW2' },
  { name: '1 byte', bytes: fromHex('90'), why: 'SW2 missing' },
  {
    name: '65537 data bytes',
    bytes: filled(65537 + 2, [], 0x00).fill(0x90, 65537, 65538),
    why: 'at most 65536 data bytes can be asked for (extended Le 0000), plus SW1 SW2',
  },
];

/** Not bytes at all: every decoder refuses these with its DecodeError, never a TypeError. */
export const NOT_BYTES: readonly { name: string; value: unknown }[] = [
  { name: 'undefined', value: undefined },
  { name: 'null', value: null },
  { name: 'hex string', value: '00A40400' },
  { name: 'number array', value: [0, 0xa4, 4, 0] },
  { name: 'number', value: 0x9000 },
  { name: 'ArrayBuffer', value: new ArrayBuffer(4) },
  { name: 'DataView', value: new DataView(new ArrayBuffer(4)) },
  { name: 'Uint16Array', value: Uint16Array.of(0x00a4, 0x0400) },
  { name: 'plain object', value: { length: 4, 0: 0, 1: 0xa4, 2: 4, 3: 0 } },
];
