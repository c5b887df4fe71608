/**
 * Card-wide data objects the OS answers to GET DATA and SELECT, built from the card's configuration:
 * CPLC (GlobalPlatform Card Production Life Cycle, tag 9F7F), Card Recognition Data (tag 66), the
 * default FCI. Layouts are tables; values are computed once when the card is built.
 */
import { concatBytes } from '../../src/util/bytes.js';
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { BadInputError } from '../../src/util/errors.js';

/**
 * BER-TLV of one data object: `tag` as its 1..3 encoded bytes written as a number (0x6F, 0x9F7F),
 * definite length in the short or long form.
 */
export function tlv(tag: number, value: Uint8Array): Uint8Array {
  const t = tag > 0xffff ? [tag >> 16, (tag >> 8) & 0xff, tag & 0xff] : tag > 0xff ? [tag >> 8, tag & 0xff] : [tag];
  const n = value.length;
  const l = n < 0x80 ? [n] : n <= 0xff ? [0x81, n] : n <= 0xffff ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concatBytes(Uint8Array.from(t), Uint8Array.from(l), value);
}

/** CPLC fields in order, with their sizes in bytes (GlobalPlatform Card Specification, GET DATA 9F7F). */
export const CPLC_FIELDS = [
  ['icFabricator', 2],
  ['icType', 2],
  ['operatingSystemId', 2],
  ['operatingSystemReleaseDate', 2],
  ['operatingSystemReleaseLevel', 2],
  ['icFabricationDate', 2],
  ['icSerialNumber', 4],
  ['icBatchIdentifier', 2],
  ['icModuleFabricator', 2],
  ['icModulePackagingDate', 2],
  ['iccManufacturer', 2],
  ['icEmbeddingDate', 2],
  ['icPrePersonalizer', 2],
  ['icPrePersonalizationEquipmentDate', 2],
  ['icPrePersonalizationEquipmentId', 4],
  ['icPersonalizer', 2],
  ['icPersonalizationDate', 2],
  ['icPersonalizationEquipmentId', 4],
] as const;

export type CplcFieldName = (typeof CPLC_FIELDS)[number][0];
export type CplcFields = Partial<Record<CplcFieldName, number>>;

/** 42: the length of the CPLC value. */
export const CPLC_LENGTH = CPLC_FIELDS.reduce((n, [, size]) => n + size, 0);

/** Byte offset of a field inside the CPLC value. */
export function cplcOffset(field: CplcFieldName): number {
  let o = 0;
  for (const [name, size] of CPLC_FIELDS) {
    if (name === field) return o;
    o += size;
  }
  throw new BadInputError(`unknown CPLC field ${String(field)}`);
}

/**
 * The 42-byte CPLC value. The IC serial number is the last 4 bytes of `serial` and the IC batch
 * identifier the 2 bytes before them (zero-padded on the left when the serial is shorter), unless
 * `fields` sets them; every other field is `fields[name]` or 0.
 */
export function buildCplc(serial: Uint8Array, fields: CplcFields = {}): Uint8Array {
  assertBytes(serial, 'serial');
  const padded = new Uint8Array(Math.max(6, serial.length));
  padded.set(serial, padded.length - serial.length);
  const tail = padded.subarray(padded.length - 6);
  const out = new Uint8Array(CPLC_LENGTH);
  let o = 0;
  for (const [name, size] of CPLC_FIELDS) {
    const v = fields[name];
    if (v !== undefined) {
      assertInt(v, `CPLC ${name}`, 0, size === 2 ? 0xffff : 0xffffffff);
      for (let i = 0; i < size; i++) out[o + i] = (v >>> (8 * (size - 1 - i))) & 0xff;
    } else if (name === 'icSerialNumber') {
      out.set(tail.subarray(2, 6), o);
    } else if (name === 'icBatchIdentifier') {
      out.set(tail.subarray(0, 2), o);
    }
    o += size;
  }
  return out;
}

/** {iso(1) member-body(2) us(840) globalPlatform(114283)} as DER content bytes. */
const GP_OID = [0x2a, 0x86, 0x48, 0x86, 0xfc, 0x6b] as const;

function gpOid(...arcs: number[]): Uint8Array {
  return tlv(0x06, Uint8Array.from([...GP_OID, ...arcs]));
}

export interface CardRecognitionOptions {
  /** GlobalPlatform version the card claims, e.g. [2, 3, 1] (the default). */
  gpVersion?: readonly number[];
  /** Secure channel protocol to advertise (tag 64), e.g. { scp: 0x03, i: 0x70 }; omitted by default. */
  secureChannel?: { scp: number; i: number };
}

/**
 * Card Data (tag 66) holding a minimal Card Recognition Data template (tag 73): the GP
 * recognition OID, card management type and version (60), card identification scheme (63) and, when
 * configured, the secure channel protocol (64).
 */
export function buildCardData(options: CardRecognitionOptions = {}): Uint8Array {
  const version = options.gpVersion ?? [2, 3, 1];
  for (const v of version) assertInt(v, 'gpVersion component', 0, 127);
  const parts = [gpOid(1), tlv(0x60, gpOid(2, ...version)), tlv(0x63, gpOid(3))];
  if (options.secureChannel) {
    assertInt(options.secureChannel.scp, 'secureChannel.scp', 1, 127);
    assertInt(options.secureChannel.i, 'secureChannel.i', 0, 255);
    // The i parameter is one content byte; above 127 it would need base-128 continuation.
    const i = options.secureChannel.i;
    const arcs = i < 0x80 ? [i] : [0x81, i & 0x7f];
    parts.push(tlv(0x64, gpOid(4, options.secureChannel.scp, ...arcs)));
  }
  return tlv(0x66, tlv(0x73, concatBytes(...parts)));
}

/** Longest application label (tag 50) the default FCI carries. */
export const FCI_LABEL_MAX = 16;

/** 6F { 84 AID, A5 { 50 label } }: the FCI the OS answers for an applet that supplies none. */
export function defaultFci(aid: Uint8Array, name: string): Uint8Array {
  const label = new TextEncoder().encode(name).subarray(0, FCI_LABEL_MAX);
  return tlv(0x6f, concatBytes(tlv(0x84, aid), tlv(0xa5, tlv(0x50, label))));
}
