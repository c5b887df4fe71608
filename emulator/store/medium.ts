/**
 * The low-level byte device under a FileStore: the card's EEPROM.
 *
 * A Medium is a flat, growable array of bytes. Every call to `write`, `truncate` or `sync` is one
 * "persistent write event": the unit at which a power cut can strike. `read` and `close` are not
 * events. The durability model the FileStore relies on is the strictest one TearingMedium offers:
 * a write that was interrupted may have landed partly (any prefix), with garbage after the cut, or
 * not at all; writes issued since the last completed `sync` may be lost or reach the medium out of
 * order; everything before the last completed `sync` is durable.
 *
 * - FileMedium: a real file, with synchronous node:fs calls (the store API is synchronous, as a
 *   card's is) and fsync on `sync`.
 * - RamMedium: bytes in memory, for tests and throw-away cards.
 * - TearingMedium: wraps another medium, counts events and cuts the power at a chosen one.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { BadInputError } from '../../src/util/errors.js';
import { StoreError } from './errors.js';

/** Largest offset or length a medium accepts (far above any card image). */
export const MAX_MEDIUM_SIZE = 0x7fff_ffff;

export interface Medium {
  /** Human-readable name for error messages (a path, "RAM", ...). */
  readonly label: string;
  /** The whole content, or null if the medium was never written (no file yet). */
  read(): Uint8Array | null;
  /**
   * Writes `bytes` at `offset`. Writing past the end extends the medium; any gap reads as zeros.
   * One persistent write event.
   */
  write(offset: number, bytes: Uint8Array): void;
  /** Sets the length (cutting off or zero-extending). One persistent write event. */
  truncate(length: number): void;
  /** Makes every earlier write durable (fsync). One persistent write event. */
  sync(): void;
  /** Releases OS resources (file descriptor). Not a persistent write. */
  close(): void;
}

/** The power failed during a persistent write: StoreError with reason 'POWER_LOST'. */
export class PowerLostError extends StoreError {
  constructor(message: string) {
    super('POWER_LOST', message);
  }
}

function checkWrite(offset: number, bytes: Uint8Array): void {
  assertInt(offset, 'offset', 0, MAX_MEDIUM_SIZE);
  assertBytes(bytes, 'bytes');
  if (offset + bytes.length > MAX_MEDIUM_SIZE) {
    throw new BadInputError(`write of ${bytes.length} bytes at offset ${offset} passes the medium limit ${MAX_MEDIUM_SIZE}`);
  }
}

/** A medium held in memory. `new RamMedium()` is a never-written medium (`read()` gives null). */
export class RamMedium implements Medium {
  readonly label: string;
  private data: Uint8Array | null;

  constructor(initial: Uint8Array | null = null, label = 'RAM medium') {
    this.data = initial === null ? null : initial.slice();
    this.label = label;
  }

  /** A RAM medium holding a copy of `bytes` (or never written, for null): a "reboot" on saved bytes. */
  static from(bytes: Uint8Array | null, label?: string): RamMedium {
    return new RamMedium(bytes, label);
  }

  read(): Uint8Array | null {
    return this.data === null ? null : this.data.slice();
  }

  write(offset: number, bytes: Uint8Array): void {
    checkWrite(offset, bytes);
    const cur = this.data ?? new Uint8Array(0);
    const end = offset + bytes.length;
    if (end > cur.length) {
      const grown = new Uint8Array(end);
      grown.set(cur);
      this.data = grown;
    } else {
      this.data = cur;
    }
    this.data.set(bytes, offset);
  }

  truncate(length: number): void {
    assertInt(length, 'length', 0, MAX_MEDIUM_SIZE);
    const cur = this.data ?? new Uint8Array(0);
    const next = new Uint8Array(length);
    next.set(cur.subarray(0, Math.min(length, cur.length)));
    this.data = next;
  }

  sync(): void {
    // RAM is "durable" for as long as the process lives.
  }

  close(): void {
    // nothing to release
  }
}

/**
 * A file as the medium, with synchronous node:fs calls. The file (mode 0600) and its parent folders
 * (mode 0700) are created on the first write; `sync` fsyncs the file and, the first time after the
 * file was created, its folder, so the file's existence is durable too.
 */
export class FileMedium implements Medium {
  readonly path: string;
  private fd: number | null = null;
  private dirNeedsSync = false;

  constructor(path: string) {
    if (typeof path !== 'string' || path.length === 0) throw new BadInputError('FileMedium: expected a file path');
    this.path = path;
  }

  get label(): string {
    return this.path;
  }

  read(): Uint8Array | null {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }

  write(offset: number, bytes: Uint8Array): void {
    checkWrite(offset, bytes);
    const fd = this.open();
    let done = 0;
    // writeSync may write less than asked (rarely, e.g. on a full disk it throws instead); bounded
    // because every round either advances or throws.
    while (done < bytes.length) {
      const n = fs.writeSync(fd, bytes, done, bytes.length - done, offset + done);
      if (n <= 0) throw new StoreError('POWER_LOST', `${this.path}: write made no progress at offset ${offset + done}`);
      done += n;
    }
  }

  truncate(length: number): void {
    assertInt(length, 'length', 0, MAX_MEDIUM_SIZE);
    fs.ftruncateSync(this.open(), length);
  }

  sync(): void {
    fs.fsyncSync(this.open());
    if (this.dirNeedsSync) {
      syncDirectory(dirname(this.path));
      this.dirNeedsSync = false;
    }
  }

  close(): void {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      fs.closeSync(fd);
    }
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    const dir = dirname(this.path);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const existed = fs.existsSync(this.path);
    this.fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (!existed) this.dirNeedsSync = true;
    return this.fd;
  }
}

/** fsync of a directory: supported on Linux and macOS; platforms that refuse it (Windows) skip it. */
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * How the interrupted event lands:
 * - 'nothing': the write is lost entirely (a sync does nothing).
 * - 'prefix': the first `tornLength` bytes land, the rest of the range keeps its old content.
 * - 'garbage': the first `tornLength` bytes land, every byte after the cut becomes a value that
 *   differs from the one intended (old content is gone too).
 * - 'reorder': a volatile write cache that reorders: of the writes completed since the last
 *   completed sync only the most recent reached the medium; the interrupted one is lost.
 * - 'lost': a volatile write cache that is lost: every write since the last completed sync is gone.
 * For 'nothing', 'prefix' and 'garbage' every completed write is durable at once (EEPROM); an
 * interrupted sync then has nothing to tear. A torn truncate: not applied, except in 'garbage' where
 * the affected range becomes garbage.
 */
export type TearMode = 'nothing' | 'prefix' | 'garbage' | 'reorder' | 'lost';

export const TEAR_MODES: readonly TearMode[] = ['nothing', 'prefix', 'garbage', 'reorder', 'lost'];

export interface TearingOptions {
  /**
   * Power fails during the n-th persistent write event (1-based): events 1..n-1 complete, event n
   * is torn as `mode` says, then PowerLostError is thrown, and so is every later call. Omitted:
   * never cut (a counting medium).
   */
  cutAfter?: number;
  /** Default 'prefix'. */
  mode?: TearMode;
  /**
   * For 'prefix' and 'garbage': how many leading bytes of the torn write land, clamped to
   * 0..length-1 (a torn write never lands whole). Default: half, rounded down.
   */
  tornLength?: number | ((length: number) => number);
  /** Seed of the garbage generator (deterministic runs). Default 1. */
  seed?: number;
}

export interface WriteEvent {
  /** 1-based number of the event. */
  readonly index: number;
  readonly kind: 'write' | 'truncate' | 'sync';
  readonly offset: number;
  /** Bytes written, or the new length for a truncate, 0 for a sync. */
  readonly length: number;
  readonly torn: boolean;
}

type PendingOp = { kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; length: number };

/** Forwards to `inner`, counts persistent writes, and cuts the power at the chosen one. */
export class TearingMedium implements Medium {
  readonly inner: Medium;
  readonly events: WriteEvent[] = [];
  private readonly cutAt: number;
  private readonly mode: TearMode;
  private readonly tornLength: (length: number) => number;
  private rng: number;
  private dead = false;
  /** Content as of the last completed sync, and writes since: only for the write-cache modes. */
  private synced: Uint8Array | null = null;
  private unsynced: PendingOp[] = [];

  constructor(inner: Medium, opts: TearingOptions = {}) {
    this.inner = inner;
    if (opts.cutAfter !== undefined) assertInt(opts.cutAfter, 'cutAfter', 1, Number.MAX_SAFE_INTEGER);
    this.cutAt = opts.cutAfter ?? Infinity;
    this.mode = opts.mode ?? 'prefix';
    if (!TEAR_MODES.includes(this.mode)) throw new BadInputError(`TearingMedium: unknown mode ${String(this.mode)}`);
    const tl = opts.tornLength;
    this.tornLength = typeof tl === 'function' ? tl : (n) => (tl === undefined ? Math.floor(n / 2) : tl);
    this.rng = (opts.seed ?? 1) >>> 0 || 1;
    if (this.cachesWrites()) this.synced = inner.read();
  }

  get label(): string {
    return `tearing(${this.inner.label})`;
  }

  /** Persistent write events seen so far, including the torn one. */
  get writes(): number {
    return this.events.length;
  }

  get powerLost(): boolean {
    return this.dead;
  }

  read(): Uint8Array | null {
    this.alive();
    return this.inner.read();
  }

  write(offset: number, bytes: Uint8Array): void {
    checkWrite(offset, bytes);
    if (this.event('write', offset, bytes.length)) {
      this.inner.write(offset, bytes);
      this.remember({ kind: 'write', offset, bytes: bytes.slice() });
      return;
    }
    if (this.cachesWrites()) this.dropCache();
    else if (this.mode === 'prefix' || this.mode === 'garbage') {
      const n = bytes.length === 0 ? 0 : Math.max(0, Math.min(bytes.length - 1, Math.floor(this.tornLength(bytes.length))));
      const landed = bytes.slice();
      if (this.mode === 'garbage') for (let i = n; i < landed.length; i++) landed[i] ^= this.garbageByte();
      this.inner.write(offset, this.mode === 'garbage' ? landed : landed.subarray(0, n));
    }
    this.powerFail('write', offset, bytes.length);
  }

  truncate(length: number): void {
    assertInt(length, 'length', 0, MAX_MEDIUM_SIZE);
    if (this.event('truncate', 0, length)) {
      this.inner.truncate(length);
      this.remember({ kind: 'truncate', length });
      return;
    }
    if (this.cachesWrites()) this.dropCache();
    else if (this.mode === 'garbage') {
      const cur = this.inner.read() ?? new Uint8Array(0);
      const from = Math.min(length, cur.length);
      const to = Math.max(length, cur.length);
      const junk = new Uint8Array(to - from);
      for (let i = 0; i < junk.length; i++) junk[i] = (cur[from + i] ?? 0) ^ this.garbageByte();
      this.inner.write(from, junk);
    }
    this.powerFail('truncate', 0, length);
  }

  sync(): void {
    if (this.event('sync', 0, 0)) {
      this.inner.sync();
      if (this.cachesWrites()) {
        this.synced = this.inner.read();
        this.unsynced = [];
      }
      return;
    }
    if (this.cachesWrites()) this.dropCache();
    this.powerFail('sync', 0, 0);
  }

  close(): void {
    this.inner.close();
  }

  private cachesWrites(): boolean {
    return this.mode === 'reorder' || this.mode === 'lost';
  }

  /** Records the event; true if it completes normally, false if it is the one to tear. */
  private event(kind: WriteEvent['kind'], offset: number, length: number): boolean {
    this.alive();
    const index = this.events.length + 1;
    const torn = index >= this.cutAt;
    this.events.push({ index, kind, offset, length, torn });
    return !torn;
  }

  private remember(op: PendingOp): void {
    if (this.cachesWrites()) this.unsynced.push(op);
  }

  /** Rolls the inner medium back to the last sync, keeping only the newest write for 'reorder'. */
  private dropCache(): void {
    const keep = this.mode === 'reorder' ? this.unsynced[this.unsynced.length - 1] : undefined;
    this.inner.truncate(this.synced?.length ?? 0);
    if (this.synced && this.synced.length > 0) this.inner.write(0, this.synced);
    if (keep?.kind === 'write') this.inner.write(keep.offset, keep.bytes);
    else if (keep?.kind === 'truncate') this.inner.truncate(keep.length);
    this.unsynced = [];
  }

  private powerFail(kind: WriteEvent['kind'], offset: number, length: number): never {
    this.dead = true;
    const what = kind === 'sync' ? 'sync' : kind === 'truncate' ? `truncate to ${length}` : `write of ${length} bytes at offset ${offset}`;
    throw new PowerLostError(`power lost during persistent write #${this.events.length} (${what}, torn as '${this.mode}')`);
  }

  private alive(): void {
    if (this.dead) throw new PowerLostError(`power is off: persistent write #${this.events.length} was torn`);
  }

  /** A non-zero byte from a xorshift32 generator, XORed in so the garbage differs from the intent. */
  private garbageByte(): number {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x >>> 0;
    return (this.rng % 255) + 1;
  }
}
