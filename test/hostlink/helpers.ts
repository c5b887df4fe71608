/**
 * Shared by the host-link tests: generators of valid field values and messages (fast-check
 * arbitraries for property tests, a seeded PRNG for the fuzz test), test keys and headers.
 */
import fc from 'fast-check';
import { FIELD_TABLE, type FieldDef } from '../../src/hostlink/iso8583/fields.js';
import { IsoMessage, MTI_TABLE, type FieldValue } from '../../src/hostlink/iso8583/message.js';
import { Tlv, encodeTlv } from '../../src/apdu/tlv.js';
import { fromHex } from '../../src/util/bytes.js';
import { deriveTerminalKey } from '../../src/hostlink/iso8583/mac.js';
import type { RequestHeader } from '../../src/hostlink/messages.js';

export const MTIS = MTI_TABLE.map((m) => m.mti);

/** TEST master MAC key of the mock host (publicly known). */
export const TEST_MASTER_MAC = fromHex('00112233445566778899aabbccddeeff');
export const TEST_MASTER_KEK = fromHex('ffeeddccbbaa99887766554433221100');
export const TERMINAL = 'TERM0001';
export const READER = 'READER01';
export const macKeyOf = (terminalId: string, version = 1): Uint8Array => deriveTerminalKey(TEST_MASTER_MAC, 'mac', terminalId, version);

export const AT = new Date(Date.UTC(2025, 2, 14, 9, 30, 15));
export function header(overrides: Partial<RequestHeader> = {}): RequestHeader {
  return { terminalId: TERMINAL, readerId: READER, stan: 1, at: AT, keyVersion: 1, ...overrides };
}

const DIGITS = '0123456789';
const AN = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ';
const ANS = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)).join('');
const Z = '0123456789=';
const CHARS: Record<Exclude<FieldDef['type'], 'b'>, string> = { n: DIGITS, an: AN, ans: ANS, z: Z };

/** Tags for generated TLV values: primitive one- and two-byte tags, and one constructed. */
const PRIMITIVE_TAGS = [0x5a, 0x82, 0x95, 0x9f02, 0x9f36, 0xdf51, 0xdf5a];

function tlvArb(maxBytes: number): fc.Arbitrary<Uint8Array> {
  const leaf = fc.tuple(fc.constantFrom(...PRIMITIVE_TAGS), fc.uint8Array({ maxLength: 20 })).map(([t, v]) => Tlv.primitive(t, v));
  const node = fc.oneof({ weight: 4, arbitrary: leaf }, { weight: 1, arbitrary: fc.array(leaf, { maxLength: 3 }).map((kids) => Tlv.constructed(0xe1, kids)) });
  // A leaf is at most 3 + 1 + 20 bytes, a template at most 2 + 3 × 24.
  return fc.array(node, { maxLength: Math.max(0, Math.floor(maxBytes / 74)) }).map((list) => encodeTlv(list));
}

/** Any value the field table accepts for `def`. */
export function valueArb(def: FieldDef): fc.Arbitrary<FieldValue> {
  const minLength = def.kind === 'fixed' ? def.length : 0;
  if (def.type === 'b') return def.tlv ? tlvArb(def.length) : fc.uint8Array({ minLength, maxLength: def.length });
  const chars = CHARS[def.type];
  return fc.string({ unit: fc.constantFrom(...chars), minLength, maxLength: def.length });
}

/** Any message the model accepts: a hilt MTI and any subset of the table's fields (64 only without 65..128). */
export const messageArb: fc.Arbitrary<IsoMessage> = fc
  .tuple(fc.constantFrom(...MTIS), fc.tuple(...FIELD_TABLE.map((def) => fc.option(valueArb(def), { freq: 2, nil: undefined }))))
  .map(([mti, values]) => {
    const entries: [number, FieldValue][] = [];
    values.forEach((v, i) => {
      if (v !== undefined) entries.push([FIELD_TABLE[i].n, v]);
    });
    const secondary = entries.some(([n]) => n > 64);
    return new IsoMessage(mti, secondary ? entries.filter(([n]) => n !== 64) : entries);
  });

// ---------------------------------------------------------------------------------------------
// Seeded PRNG for the fuzz test

/** mulberry32: small, seeded, deterministic. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  return { next, int, bytes, pick };
}
export type Rng = ReturnType<typeof prng>;

function randomValue(r: Rng, def: FieldDef): FieldValue {
  const length = def.kind === 'fixed' ? def.length : r.int(Math.min(def.length, 40) + 1);
  if (def.type === 'b') {
    if (!def.tlv) return r.bytes(length);
    const list: Tlv[] = [];
    for (let i = r.int(4); i > 0; i--) list.push(Tlv.primitive(r.pick(PRIMITIVE_TAGS), r.bytes(r.int(12))));
    return encodeTlv(list);
  }
  const chars = CHARS[def.type];
  let s = '';
  for (let i = 0; i < length; i++) s += chars[r.int(chars.length)];
  return s;
}

/** A valid message with a random MTI and random fields (values kept short so mutations hit structure). */
export function randomMessage(r: Rng): IsoMessage {
  const entries: [number, FieldValue][] = [];
  const density = 0.1 + r.next() * 0.5;
  for (const def of FIELD_TABLE) if (r.next() < density) entries.push([def.n, randomValue(r, def)]);
  const secondary = entries.some(([n]) => n > 64);
  return new IsoMessage(r.pick(MTIS), secondary ? entries.filter(([n]) => n !== 64) : entries);
}
