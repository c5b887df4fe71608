/**
 * FileStore: the card's persistent store (its EEPROM) as a file, or any Medium.
 *
 * Design: a double-buffered (A/B) image. The medium holds two slot headers (32 bytes each, at 0 and
 * 32) and two body areas (slot A's at 64, slot B's at 64 + capacity). A body is the whole record set,
 * serialized; a header names its slot, a sequence number, the body's length and CRC-32, and ends with
 * its own CRC-32. The slot whose valid header has the higher sequence number is the committed state.
 *
 * commit() never touches the committed slot. It costs exactly 4 persistent writes:
 *   1. write the new body into the other slot's body area
 *   2. sync
 *   3. write that slot's header (sequence + 1, body length, body CRC)   <- the commit point
 *   4. sync                                                              <- durable before return
 * A cut at 1 or 2 leaves the other slot's old header describing a body that is no longer there (or
 * no header at all): it fails its CRC and the committed slot still wins. A cut at 3 leaves a header
 * that fails its own CRC (any prefix, or garbage after the cut) or was not written. Once 3 has
 * landed whole, the new slot wins. Recovery on open only reads: there is nothing to replay, so a
 * second power cut during recovery cannot do harm. Outside a transaction, put and delete are each an
 * implicit one-record transaction (the same 4 writes). A transaction that changes nothing writes
 * nothing.
 *
 * What a tear can produce is narrow, and everything else is reported as CORRUPT, never as an empty
 * store: both headers unreadable; the newest valid header's body failing its CRC (a tear only ever
 * hits the *older* slot's body); two valid headers whose sequence numbers are not consecutive; a
 * valid header in slot B while slot A was never written; a short image. The one thing a reader cannot
 * tell from a tear is damage confined to the newest header: it reads like a torn header write, so the
 * store opens on the previous commit (see README.md).
 *
 * The on-medium format byte by byte and the full argument are in emulator/store/README.md.
 */
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { bytesEqual } from '../../src/util/bytes.js';
import { BadInputError, HiltError } from '../../src/util/errors.js';
import { StoreError } from './errors.js';
import { FileMedium, type Medium } from './medium.js';
import type { PersistentStore } from './types.js';

/** Layout constants of the image (format version 1); see README.md. */
export const FILE_STORE_FORMAT = Object.freeze({
  /** "HILT" */
  magic: Object.freeze([0x48, 0x49, 0x4c, 0x54]),
  version: 1,
  headerSize: 32,
  /** Both headers; slot A's body starts here. */
  headerArea: 64,
  /** Per record: 1 byte key length + 4 bytes value length. */
  recordOverhead: 5,
  maxKeyBytes: 255,
  minCapacity: 64,
  maxCapacity: 16 * 1024 * 1024,
  defaultCapacity: 64 * 1024,
  /** Persistent write events per commit that changes something. */
  writesPerCommit: 4,
  /** The write (1-based, within a commit) after which the new state is the committed one. */
  commitPointWrite: 3,
});

const F = FILE_STORE_FORMAT;

export interface FileStoreOptions {
  /**
   * Bytes available for records (serialized size, `recordOverhead` + key + value each); default
   * 64 KiB. Fixed when the image is first written: reopening with a different value is refused.
   */
  capacity?: number;
}

type Slot = 0 | 1;

interface Header {
  slot: Slot;
  sequence: number;
  capacity: number;
  bodyLength: number;
  bodyCrc: number;
}

type HeaderRead = { kind: 'blank' } | { kind: 'unreadable'; hasMagic: boolean } | { kind: 'valid'; header: Header };

interface Recovered {
  records: Map<string, Uint8Array>;
  size: number;
  active: Slot | null;
  sequence: number;
  capacity: number | null;
}

const CRC_TABLE: readonly number[] = Object.freeze(
  Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  }),
);

/** CRC-32 (IEEE 802.3, reflected, as zlib and PNG): crc32("123456789") === 0xcbf43926. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function quote(key: string): string {
  return JSON.stringify(key.length > 40 ? key.slice(0, 40) + '…' : key);
}

/** UTF-8 of a record key, refusing keys that are too long or do not survive UTF-8 (lone surrogates). */
function keyBytes(key: string): Uint8Array {
  if (typeof key !== 'string') throw new BadInputError(`store key: expected a string, got ${typeof key}`);
  const b = utf8.encode(key);
  if (b.length > F.maxKeyBytes) {
    throw new BadInputError(`store key ${quote(key)} is ${b.length} bytes of UTF-8; at most ${F.maxKeyBytes} are allowed`);
  }
  if (utf8Strict.decode(b) !== key) throw new BadInputError(`store key ${quote(key)} is not valid Unicode (unpaired surrogate)`);
  return b;
}

function recordSize(keyLength: number, valueLength: number): number {
  return F.recordOverhead + keyLength + valueLength;
}

function bodyOffset(slot: Slot, capacity: number): number {
  return F.headerArea + slot * capacity;
}

function slotName(slot: Slot): string {
  return slot === 0 ? 'A' : 'B';
}

function corrupt(label: string, detail: string): StoreError {
  return new StoreError('CORRUPT', `store image ${label} is corrupt: ${detail}`);
}

function encodeBody(records: Map<string, Uint8Array>, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const key of [...records.keys()].sort()) {
    const k = utf8.encode(key);
    const v = records.get(key) as Uint8Array;
    out[o] = k.length;
    out.set(k, o + 1);
    view.setUint32(o + 1 + k.length, v.length);
    out.set(v, o + 5 + k.length);
    o += recordSize(k.length, v.length);
  }
  if (o !== size) throw new Error(`FileStore internal error: body is ${o} bytes, accounted ${size}`);
  return out;
}

function decodeBody(body: Uint8Array, label: string, where: string): Map<string, Uint8Array> {
  const records = new Map<string, Uint8Array>();
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let prev: string | null = null;
  let o = 0;
  while (o < body.length) {
    const bad = (what: string): StoreError => corrupt(label, `${where}: ${what} at body byte ${o}`);
    const kl = body[o];
    if (o + 1 + kl + 4 > body.length) throw bad('record header runs past the body');
    let key: string;
    try {
      key = utf8Strict.decode(body.subarray(o + 1, o + 1 + kl));
    } catch {
      throw bad('record key is not UTF-8');
    }
    if (prev !== null && !(prev < key)) throw bad(`record key ${quote(key)} is out of order or repeated`);
    const vl = view.getUint32(o + 1 + kl);
    if (vl > body.length - (o + 5 + kl)) throw bad(`value of ${quote(key)} (${vl} bytes) runs past the body`);
    records.set(key, body.slice(o + 5 + kl, o + 5 + kl + vl));
    prev = key;
    o += recordSize(kl, vl);
  }
  return records;
}

function encodeHeader(h: Header): Uint8Array {
  const out = new Uint8Array(F.headerSize);
  const view = new DataView(out.buffer);
  out.set(F.magic, 0);
  out[4] = F.version;
  out[5] = h.slot;
  view.setBigUint64(8, BigInt(h.sequence));
  view.setUint32(16, h.capacity);
  view.setUint32(20, h.bodyLength);
  view.setUint32(24, h.bodyCrc);
  view.setUint32(28, crc32(out.subarray(0, 28)));
  return out;
}

function parseHeader(image: Uint8Array, slot: Slot, label: string): HeaderRead {
  const b = image.subarray(slot * F.headerSize, (slot + 1) * F.headerSize);
  if (b.every((x) => x === 0)) return { kind: 'blank' };
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hasMagic = F.magic.every((m, i) => b[i] === m);
  if (!hasMagic || view.getUint32(28) !== crc32(b.subarray(0, 28))) return { kind: 'unreadable', hasMagic };
  // From here the header is intact as written; anything wrong is not a tear.
  const name = `slot ${slotName(slot)} header`;
  if (b[4] !== F.version) throw corrupt(label, `${name} has format version ${b[4]}; this build reads version ${F.version}`);
  if (b[5] !== slot) throw corrupt(label, `${name} says it belongs to slot ${b[5]}`);
  if (b[6] !== 0 || b[7] !== 0) throw corrupt(label, `${name} has non-zero reserved bytes`);
  const seq = view.getBigUint64(8);
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(label, `${name} has sequence number ${seq}`);
  const capacity = view.getUint32(16);
  if (capacity < F.minCapacity || capacity > F.maxCapacity) throw corrupt(label, `${name} has capacity ${capacity}`);
  const bodyLength = view.getUint32(20);
  if (bodyLength > capacity) throw corrupt(label, `${name} has a ${bodyLength}-byte body, more than its capacity ${capacity}`);
  return { kind: 'valid', header: { slot, sequence: Number(seq), capacity, bodyLength, bodyCrc: view.getUint32(24) } };
}

const FRESH: () => Recovered = () => ({ records: new Map(), size: 0, active: null, sequence: 0, capacity: null });

/** Reads the committed state out of an image. Read-only; throws CORRUPT for what no tear explains. */
function recover(image: Uint8Array | null, label: string): Recovered {
  if (image === null || image.length === 0) return FRESH();
  if (image.length < F.headerArea) {
    throw corrupt(label, `the image is ${image.length} bytes, shorter than its ${F.headerArea}-byte header area`);
  }
  const a = parseHeader(image, 0, label);
  const b = parseHeader(image, 1, label);
  let newest: Header;
  if (a.kind === 'valid' && b.kind === 'valid') {
    const [x, y] = [a.header, b.header];
    if (x.capacity !== y.capacity) throw corrupt(label, `the slot headers disagree on the capacity (${x.capacity} and ${y.capacity})`);
    if (Math.abs(x.sequence - y.sequence) !== 1) {
      throw corrupt(label, `the slot headers carry sequence numbers ${x.sequence} and ${y.sequence}; commits only ever produce consecutive ones`);
    }
    newest = x.sequence > y.sequence ? x : y;
  } else if (a.kind === 'valid') {
    newest = a.header; // slot B never written, or its header write was torn
  } else if (b.kind === 'valid') {
    if (a.kind === 'blank') throw corrupt(label, 'slot B holds a commit but slot A was never written; the first commit always goes to slot A');
    newest = b.header; // slot A's header write was torn
  } else if (a.kind === 'unreadable' && b.kind === 'blank') {
    return FRESH(); // the very first commit was torn while writing slot A's header
  } else if (a.kind === 'blank' && b.kind === 'blank') {
    return FRESH(); // the first commit was torn before its header write (or nothing was committed)
  } else if (a.kind === 'blank') {
    throw corrupt(label, 'slot B has a header but slot A was never written');
  } else {
    const magic = (a.kind === 'unreadable' && a.hasMagic) || (b.kind === 'unreadable' && b.hasMagic);
    throw corrupt(
      label,
      magic
        ? 'both slot headers fail their checksum; a power cut only ever damages one'
        : 'neither slot header starts with the magic "HILT"; this is not a hilt store image',
    );
  }
  const where = `slot ${slotName(newest.slot)} (sequence ${newest.sequence}), the newest commit,`;
  const off = bodyOffset(newest.slot, newest.capacity);
  if (off + newest.bodyLength > image.length) {
    throw corrupt(label, `${where} has a ${newest.bodyLength}-byte body at offset ${off} but the image ends at byte ${image.length}`);
  }
  const body = image.subarray(off, off + newest.bodyLength);
  if (crc32(body) !== newest.bodyCrc) {
    throw corrupt(label, `${where} fails its body checksum; it was damaged after it was committed (a power cut never touches the newest commit)`);
  }
  return {
    records: decodeBody(body, label, where),
    size: body.length,
    active: newest.slot,
    sequence: newest.sequence,
    capacity: newest.capacity,
  };
}

/** A crash-safe PersistentStore over a Medium. Open with `FileStore.open` or `openFileStore`. */
export class FileStore implements PersistentStore {
  readonly medium: Medium;
  readonly capacity: number;
  private committed: Map<string, Uint8Array>;
  private committedSize: number;
  private active: Slot | null;
  private seq: number;
  /** Changes of the open transaction (null = delete), or null outside one. */
  private pending: Map<string, Uint8Array | null> | null = null;
  /** Serialized size of the state as the caller sees it (committed + pending). */
  private used: number;
  private halted: string | null = null;

  private constructor(medium: Medium, capacity: number, r: Recovered) {
    this.medium = medium;
    this.capacity = capacity;
    this.committed = r.records;
    this.committedSize = r.size;
    this.used = r.size;
    this.active = r.active;
    this.seq = r.sequence;
  }

  /**
   * Opens the store on `medium`: reads the image and picks the committed state. Writes nothing.
   * Throws StoreError 'CORRUPT' if the image is damaged in a way no power cut explains, 'ACCESS' if
   * it cannot be read, and BadInputError if `opts.capacity` differs from that of an existing image.
   */
  static open(medium: Medium, opts: FileStoreOptions = {}): FileStore {
    if (opts.capacity !== undefined) assertInt(opts.capacity, 'capacity', F.minCapacity, F.maxCapacity);
    let image: Uint8Array | null;
    try {
      image = medium.read();
    } catch (e) {
      if (e instanceof HiltError) throw e;
      throw new StoreError('ACCESS', `cannot read store image ${medium.label}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const r = recover(image, medium.label);
    if (r.capacity !== null && opts.capacity !== undefined && opts.capacity !== r.capacity) {
      throw new BadInputError(`store image ${medium.label} has capacity ${r.capacity}, not the ${opts.capacity} asked for`);
    }
    return new FileStore(medium, r.capacity ?? opts.capacity ?? F.defaultCapacity, r);
  }

  get inTransaction(): boolean {
    return this.pending !== null;
  }

  /** Sequence number of the committed state (0 for a store never committed to). */
  get sequence(): number {
    return this.seq;
  }

  /** Bytes used by the records as the caller sees them (inside a transaction: with its changes). */
  get size(): number {
    return this.used;
  }

  get(key: string): Uint8Array | undefined {
    this.live();
    const v = this.visible(key);
    return v?.slice();
  }

  keys(prefix = ''): string[] {
    this.live();
    const all = new Set(this.committed.keys());
    for (const [k, v] of this.pending ?? []) {
      if (v === null) all.delete(k);
      else all.add(k);
    }
    return [...all].filter((k) => k.startsWith(prefix)).sort();
  }

  put(key: string, value: Uint8Array): void {
    this.live();
    const kb = keyBytes(key);
    assertBytes(value, 'value');
    this.change(key, kb, value.slice());
  }

  delete(key: string): void {
    this.live();
    this.change(key, keyBytes(key), null);
  }

  begin(): void {
    this.live();
    if (this.pending) throw new StoreError('IN_PROGRESS', 'a transaction is already in progress');
    this.pending = new Map();
  }

  commit(): void {
    this.live();
    if (!this.pending) throw new StoreError('NOT_IN_PROGRESS', 'commit without a transaction');
    const changes = this.pending;
    this.pending = null;
    const next = new Map(this.committed);
    let changed = false;
    for (const [k, v] of changes) {
      const old = next.get(k);
      if (v === null) {
        if (old !== undefined) {
          next.delete(k);
          changed = true;
        }
      } else if (old === undefined || !bytesEqual(old, v)) {
        next.set(k, v);
        changed = true;
      }
    }
    if (!changed) {
      this.used = this.committedSize;
      return;
    }
    const body = encodeBody(next, this.used);
    const slot: Slot = this.active === 0 ? 1 : 0;
    const sequence = this.seq + 1;
    const header = encodeHeader({ slot, sequence, capacity: this.capacity, bodyLength: body.length, bodyCrc: crc32(body) });
    try {
      this.medium.write(bodyOffset(slot, this.capacity), body);
      this.medium.sync();
      this.medium.write(slot * F.headerSize, header);
      this.medium.sync();
    } catch (e) {
      this.halt(e);
    }
    this.committed = next;
    this.committedSize = body.length;
    this.active = slot;
    this.seq = sequence;
  }

  abort(): void {
    this.live();
    if (!this.pending) throw new StoreError('NOT_IN_PROGRESS', 'abort without a transaction');
    this.pending = null;
    this.used = this.committedSize;
  }

  /** Drops an open transaction (as a power-off would) and releases the medium. Later calls throw. */
  close(): void {
    if (this.halted === null) this.halted = 'the store is closed';
    this.pending = null;
    this.medium.close();
  }

  private visible(key: string): Uint8Array | undefined {
    if (this.pending?.has(key)) return this.pending.get(key) ?? undefined;
    return this.committed.get(key);
  }

  /** Stages one change, inside the open transaction or as an implicit one-record transaction. */
  private change(key: string, kb: Uint8Array, value: Uint8Array | null): void {
    const old = this.visible(key);
    const used = this.used - (old ? recordSize(kb.length, old.length) : 0) + (value ? recordSize(kb.length, value.length) : 0);
    if (used > this.capacity) {
      throw new StoreError(
        'FULL',
        `not enough memory (6A84): storing ${value?.length ?? 0} bytes under ${quote(key)} would need ${used} of the ${this.capacity} bytes of the store`,
      );
    }
    const implicit = this.pending === null;
    if (implicit) this.pending = new Map();
    (this.pending as Map<string, Uint8Array | null>).set(key, value);
    this.used = used;
    if (implicit) this.commit();
  }

  private live(): void {
    if (this.halted !== null) throw new StoreError('POWER_LOST', `${this.halted}; reopen the store`);
  }

  private halt(e: unknown): never {
    const msg = e instanceof Error ? e.message : String(e);
    this.halted = `the store stopped after a failed persistent write (${msg})`;
    this.pending = null;
    if (e instanceof StoreError) throw e;
    throw new StoreError('POWER_LOST', `persistent write to ${this.medium.label} failed: ${msg}; the store is stopped, reopen it`);
  }
}

/** Opens (or, on first write, creates) the store image at `path`. */
export function openFileStore(path: string, opts: FileStoreOptions = {}): FileStore {
  return FileStore.open(new FileMedium(path), opts);
}
