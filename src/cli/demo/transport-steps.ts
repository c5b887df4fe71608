/**
 * The transport part of the demo day: what a terminal engineer checks first on a new reader/card
 * pair, played against the emulator's diagnostic applet (applets-spec/diagnostic.md). Each step is a
 * logical command; the wrapper stack (chaining, GET RESPONSE, 6Cxx) turns it into the wire
 * exchanges that the trace counts.
 */
import { createHash } from 'node:crypto';
import { concatBytes, fromHex, toHex } from '../../util/bytes.js';

export interface DemoStep {
  name: string;
  /** Logical command, hex. */
  command: string;
  sw: number;
  /** Checks the response data; returns a problem or null. */
  check?: (data: Uint8Array) => string | null;
  /** One-line description of what the answer means. */
  shows: string;
}

const DIAG_AID = 'F068696C7444494147';

function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => i & 0xff);
}

function expectBytes(expected: Uint8Array): (data: Uint8Array) => string | null {
  return (data) =>
    data.length === expected.length && toHex(data) === toHex(expected)
      ? null
      : `expected ${expected.length} bytes ${toHex(expected).slice(0, 16)}…, got ${data.length} bytes ${toHex(data).slice(0, 16)}…`;
}

function digestAnswer(data: Uint8Array): Uint8Array {
  const n = data.length;
  return concatBytes(Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff), new Uint8Array(createHash('sha256').update(data).digest()));
}

const hex = (b: Uint8Array) => toHex(b).toUpperCase();
const lc = (n: number) => (n < 256 ? n.toString(16).padStart(2, '0') : '00' + n.toString(16).padStart(4, '0'));
const big = pattern(1000);

export const TRANSPORT_STEPS: DemoStep[] = [
  {
    name: 'SELECT diagnostic applet',
    command: `00A40400 09 ${DIAG_AID} 00`,
    sw: 0x9000,
    check: (d) => (d[0] === 0x6f ? null : 'no FCI template'),
    shows: 'FCI returned (6F template with the AID)',
  },
  { name: 'case 1 PING', command: '80100000', sw: 0x9000, shows: 'no data either way' },
  { name: 'case 2 PATTERN 16', command: '80120010 10', sw: 0x9000, check: expectBytes(pattern(16)), shows: '16 pattern bytes' },
  { name: 'case 3 PUT 5 bytes', command: '80140000 05 0102030405', sw: 0x9000, shows: 'data accepted' },
  { name: 'case 4 ECHO', command: '80180000 03 AABBCC 00', sw: 0x9000, check: expectBytes(fromHex('AABBCC')), shows: 'data echoed' },
  {
    name: '600 bytes to a short Le',
    command: '80120258 00',
    sw: 0x9000,
    check: expectBytes(pattern(600)),
    shows: 'card answered 61xx; GET RESPONSE collected 600 bytes',
  },
  {
    name: 'extended Le, 4096 bytes',
    command: '80121000 000000',
    sw: 0x9000,
    check: expectBytes(pattern(4096)),
    shows: 'one extended-length answer',
  },
  {
    name: 'wrong Le (EXACT LE 32)',
    command: '801C0020 00',
    sw: 0x9000,
    check: expectBytes(pattern(32)),
    shows: 'card answered 6C20; re-issued with Le 20',
  },
  {
    name: 'chained HASH of 1000 bytes',
    command: `801A0000 ${lc(1000)} ${hex(big)} 0000`,
    sw: 0x9000,
    check: expectBytes(digestAnswer(big)),
    shows: 'sent as 4 chained short commands, hash matches',
  },
  { name: 'slow command (150 ms)', command: '80300096', sw: 0x9000, shows: 'answer after the delay' },
  { name: 'chosen status word 6A82', command: '80326A82', sw: 0x6a82, shows: 'status word passed through' },
  {
    name: 'persistent counter +1',
    command: '80400000 04',
    sw: 0x9000,
    check: (d) => (d.length === 4 ? null : `expected 4 bytes, got ${d.length}`),
    shows: 'incremented inside a card transaction',
  },
  {
    name: 'GET DATA card serial (DF01)',
    command: '80CADF01 00',
    sw: 0x9000,
    check: (d) => (d.length > 0 ? null : 'empty serial'),
    shows: 'serial from the card OS',
  },
];

/** Through the SCP03 channel at level 33: the same applet, every byte protected on the wire. */
export const SECURE_STEPS: DemoStep[] = [
  { name: 'ECHO through SCP03', command: '80180000 03 AABBCC 00', sw: 0x9000, check: expectBytes(fromHex('AABBCC')), shows: 'plain answer after R-MAC check and decryption' },
  {
    name: '600 bytes through SCP03',
    command: '80120258 00',
    sw: 0x9000,
    check: expectBytes(pattern(600)),
    shows: 'wrapped answer served by 61xx, verified as one',
  },
  {
    name: 'persistent counter +1 (protected)',
    command: '80400000 04',
    sw: 0x9000,
    check: (d) => (d.length === 4 ? null : `expected 4 bytes, got ${d.length}`),
    shows: 'value change under C-MAC + C-DEC',
  },
];
