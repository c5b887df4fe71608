/**
 * The terminal key file: a small INI-like text format holding providers' master key sets
 * (applets-spec/security.md, "Key file"), and the value parsers the environment source shares.
 *
 *   # comment (whole lines only; '#' or ';')
 *   [emoney]                      one section per provider id
 *   kvn = 01                      key version number, two hex digits, 01..FF
 *   enc = 6E8117D5A7FA...         master keys, 16, 24 or 32 bytes of hex, all three the same length;
 *   mac = B833FD3142AE...         spaces, tabs, ':' and '-' between digits are ignored
 *   dek = 21A8446A6AC8...
 *   enc.kcv = 1A2B3C              optional key check values, checked on load
 *   mac.kcv = ...
 *   dek.kcv = ...
 *   diversify = yes               optional: yes (default) or no (the card holds the master keys as is)
 *
 * Key bytes are decoded straight from the file's bytes, never turned into a JS string (strings
 * cannot be wiped), and the buffer the file was read into is zeroed afterwards. No error message
 * ever quotes a key value: they name the file, the line and the field.
 */
import { open } from 'node:fs/promises';
import { assertAesKey, AES_KEY_LENGTHS } from '../crypto/aes.js';
import { kcvHex, KEY_TYPES, type KeyType } from '../crypto/diversify.js';
import type { StaticKeys } from '../crypto/scp03.js';
import { BadInputError } from '../util/errors.js';
import { zeroize } from '../util/bytes.js';

// ---------------------------------------------------------------------------------------------
// Shared shapes

/** Where a domain's master keys came from. */
export type KeySourceKind = 'file' | 'env' | 'test' | 'keys';

/** One provider's master key set as a source delivered it, before the store takes it over. */
export interface KeyEntry {
  provider: string;
  keys: StaticKeys;
  diversify: boolean;
  source: KeySourceKind;
  /** Human-readable place: "keys.ini:12", "environment (HILT_KEYS_BANK_*)", "built-in test keys". */
  origin: string;
}

/** Provider ids: lower-case letters and digits in dash-separated words, 1..32 characters. */
export const PROVIDER_ID_PATTERN = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const PROVIDER_ID_MAX = 32;

export function isProviderId(id: unknown): id is string {
  return typeof id === 'string' && id.length <= PROVIDER_ID_MAX && PROVIDER_ID_PATTERN.test(id);
}

export function assertProviderId(id: unknown): asserts id is string {
  if (!isProviderId(id)) {
    const shown = typeof id === 'string' ? `'${id.length > 40 ? id.slice(0, 40) + '…' : id}'` : String(id);
    throw new BadInputError(`provider id: expected lower-case letters and digits in dash-separated words, at most ${PROVIDER_ID_MAX} characters (e.g. 'gp-test'), got ${shown}`);
  }
}

/** A key file (or key variable) that cannot be loaded: the message names where, never the value. */
export class KeyFileError extends BadInputError {
  readonly origin: string;
  readonly line: number | undefined;
  constructor(origin: string, line: number | undefined, message: string) {
    super(`${origin}${line === undefined ? '' : `:${line}`}: ${message}`);
    this.origin = origin;
    this.line = line;
  }
}

/** Zeroizes every key of the entries (on a failed load, and when the store closes). */
export function zeroizeEntries(entries: readonly KeyEntry[]): void {
  for (const e of entries) zeroize(e.keys.enc, e.keys.mac, e.keys.dek);
}

// ---------------------------------------------------------------------------------------------
// Value parsers (shared with the environment source). Each throws a plain message; the caller
// wraps it with the place.

const SEPARATORS = new Set([0x20, 0x09, 0x3a, 0x2d]); // space, tab, ':', '-'

function _hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

class _ValueError extends Error {}

/**
 * Decodes key hex from `length` character codes given by `at`, without building a string. The
 * error says which character position is wrong, never what the value is.
 */
function _secretHex(at: (i: number) => number, length: number): Uint8Array {
  let digits = 0;
  for (let i = 0; i < length; i++) {
    const c = at(i);
    if (_hexValue(c) >= 0) digits++;
    else if (!SEPARATORS.has(c)) throw new _ValueError(`not hex (character ${i + 1} of the value)`);
  }
  if (digits % 2 !== 0) throw new _ValueError(`odd number of hex digits (${digits})`);
  const n = digits / 2;
  if (!(AES_KEY_LENGTHS as readonly number[]).includes(n)) throw new _ValueError(`expected a key of 16, 24 or 32 bytes, got ${n}`);
  const out = new Uint8Array(n);
  let d = 0;
  for (let i = 0; i < length; i++) {
    const v = _hexValue(at(i));
    if (v < 0) continue;
    out[d >> 1] |= (d & 1) === 0 ? v << 4 : v;
    d++;
  }
  return out;
}

/** A key from a string (environment variable): 16, 24 or 32 bytes of hex. */
export function secretHexFromString(text: string): Uint8Array {
  return _secretHex((i) => text.charCodeAt(i), text.length);
}

/** A key from bytes of text (a key file line). */
export function secretHexFromBytes(bytes: Uint8Array): Uint8Array {
  return _secretHex((i) => bytes[i], bytes.length);
}

/** A key version number: exactly two hex digits, 01..FF. */
export function parseKvn(text: string): number {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{2}$/.test(t)) throw new _ValueError(`key version: expected two hex digits (01..FF), got '${t}'`);
  const kvn = parseInt(t, 16);
  if (kvn === 0) throw new _ValueError(`key version: 00 means "any key version" in INITIALIZE UPDATE; a key set needs 01..FF`);
  return kvn;
}

/** A key check value: exactly six hex digits; returned upper-case. */
export function parseKcv(text: string): string {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{6}$/.test(t)) throw new _ValueError(`key check value: expected six hex digits, got '${t}'`);
  return t.toUpperCase();
}

const YES = new Set(['yes', 'on', 'true', '1']);
const NO = new Set(['no', 'off', 'false', '0']);

/** yes/no (also on/off, true/false, 1/0), any case. */
export function parseSwitch(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (YES.has(t)) return true;
  if (NO.has(t)) return false;
  throw new _ValueError(`expected yes or no, got '${text.trim()}'`);
}

/** Runs a value parser, turning its complaint into a KeyFileError at `origin`:`line`. */
export function parseAt<T>(origin: string, line: number | undefined, field: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof _ValueError) throw new KeyFileError(origin, line, `${field}: ${e.message}`);
    throw e;
  }
}

/** Checks a key against an expected check value; the message shows both KCVs (never the key). */
export function checkKcv(origin: string, line: number | undefined, field: string, key: Uint8Array, expected: string): void {
  assertAesKey(key, field);
  const actual = kcvHex(key);
  if (actual !== expected) {
    throw new KeyFileError(origin, line, `${field}: key check value mismatch: the key's KCV is ${actual}, expected ${expected} (mistyped key or wrong KCV)`);
  }
}

/** Master key lengths of one set must agree; SCP03 key sets are of one AES size. */
export function checkKeyLengths(origin: string, line: number | undefined, keys: Pick<StaticKeys, 'enc' | 'mac' | 'dek'>): void {
  if (keys.enc.length !== keys.mac.length || keys.enc.length !== keys.dek.length) {
    throw new KeyFileError(origin, line, `keys of one set must have the same length, got enc ${keys.enc.length}, mac ${keys.mac.length}, dek ${keys.dek.length} bytes`);
  }
}

// ---------------------------------------------------------------------------------------------
// The key file

/** Largest key file read: far above any real one, small enough to refuse a wrong path quickly. */
export const MAX_KEY_FILE_BYTES = 1 << 20;
/** Longest line: a 32-byte key with separators fits many times over. */
export const MAX_KEY_FILE_LINE = 1024;

type _Field = KeyType | 'kvn' | 'enc.kcv' | 'mac.kcv' | 'dek.kcv' | 'diversify';
const FIELDS: readonly _Field[] = ['kvn', 'enc', 'mac', 'dek', 'enc.kcv', 'mac.kcv', 'dek.kcv', 'diversify'];
const SECRET_FIELDS: readonly string[] = KEY_TYPES;

interface _Section {
  provider: string;
  line: number;
  seen: Map<string, number>; // field → line
  kvn?: number;
  keys: Partial<Record<KeyType, Uint8Array>>;
  kcv: Partial<Record<KeyType, { value: string; line: number }>>;
  diversify: boolean;
}

const _isBlank = (c: number): boolean => c === 0x20 || c === 0x09;

function _trim(bytes: Uint8Array): Uint8Array {
  let s = 0;
  let e = bytes.length;
  while (s < e && _isBlank(bytes[s])) s++;
  while (e > s && _isBlank(bytes[e - 1])) e--;
  return bytes.subarray(s, e);
}

const _ascii = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

function _finish(origin: string, s: _Section): KeyEntry {
  const missing = (['kvn', ...KEY_TYPES] as const).filter((f) => !s.seen.has(f));
  if (missing.length > 0) throw new KeyFileError(origin, s.line, `[${s.provider}]: missing ${missing.join(', ')}`);
  const keys = { enc: s.keys.enc as Uint8Array, mac: s.keys.mac as Uint8Array, dek: s.keys.dek as Uint8Array };
  checkKeyLengths(origin, s.line, keys);
  for (const t of KEY_TYPES) {
    const kcv = s.kcv[t];
    if (kcv !== undefined) checkKcv(origin, kcv.line, `${t}.kcv`, keys[t], kcv.value);
  }
  return { provider: s.provider, keys: { ...keys, kvn: s.kvn as number }, diversify: s.diversify, source: 'file', origin: `${origin}:${s.line}` };
}

/**
 * Parses key file text given as bytes. `origin` names the file in messages. The input is not
 * modified; the caller zeroes it. On any error every key parsed so far is zeroized.
 */
export function parseKeyFile(bytes: Uint8Array, origin: string): KeyEntry[] {
  const entries: KeyEntry[] = [];
  const loose: Uint8Array[] = []; // keys of the section being read
  let section: _Section | undefined;
  const providers = new Map<string, number>();
  const close = (): void => {
    if (section === undefined) return;
    entries.push(_finish(origin, section));
    loose.length = 0;
    section = undefined;
  };
  try {
    let start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0; // UTF-8 BOM
    let lineNo = 0;
    while (start <= bytes.length) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      lineNo++;
      let raw = bytes.subarray(start, end);
      if (raw.length > 0 && raw[raw.length - 1] === 0x0d) raw = raw.subarray(0, raw.length - 1);
      start = end + 1;
      if (raw.length > MAX_KEY_FILE_LINE) throw new KeyFileError(origin, lineNo, `line of ${raw.length} bytes; at most ${MAX_KEY_FILE_LINE}`);
      const bad = raw.findIndex((c) => c !== 0x09 && (c < 0x20 || c > 0x7e));
      if (bad >= 0) throw new KeyFileError(origin, lineNo, `a non-ASCII or control byte at column ${bad + 1}; key files are plain ASCII`);
      const line = _trim(raw);
      if (line.length === 0 || line[0] === 0x23 || line[0] === 0x3b) continue; // blank, '#', ';'

      if (line[0] === 0x5b) {
        // [provider]
        if (line[line.length - 1] !== 0x5d) throw new KeyFileError(origin, lineNo, `a section header must end with ']'`);
        close();
        const provider = _ascii(_trim(line.subarray(1, line.length - 1)));
        if (!isProviderId(provider)) {
          throw new KeyFileError(origin, lineNo, `'${provider}' is not a provider id (lower-case letters and digits in dash-separated words, e.g. 'gp-test')`);
        }
        const before = providers.get(provider);
        if (before !== undefined) throw new KeyFileError(origin, lineNo, `[${provider}] appears twice (first at line ${before})`);
        providers.set(provider, lineNo);
        section = { provider, line: lineNo, seen: new Map(), keys: {}, kcv: {}, diversify: true };
        continue;
      }

      const eq = line.indexOf(0x3d);
      if (eq < 0) throw new KeyFileError(origin, lineNo, `expected '[provider]', 'name = value' or a comment`);
      const name = _ascii(_trim(line.subarray(0, eq))).toLowerCase();
      const value = _trim(line.subarray(eq + 1));
      if (!(FIELDS as readonly string[]).includes(name)) {
        throw new KeyFileError(origin, lineNo, `unknown field '${name}' (expected ${FIELDS.join(', ')})`);
      }
      if (section === undefined) throw new KeyFileError(origin, lineNo, `'${name}' outside a section: start one with [provider]`);
      const first = section.seen.get(name);
      if (first !== undefined) throw new KeyFileError(origin, lineNo, `'${name}' given twice in [${section.provider}] (first at line ${first})`);
      section.seen.set(name, lineNo);
      if (value.length === 0) throw new KeyFileError(origin, lineNo, `'${name}' has no value`);

      if (SECRET_FIELDS.includes(name)) {
        const key = parseAt(origin, lineNo, name, () => secretHexFromBytes(value));
        loose.push(key);
        section.keys[name as KeyType] = key;
      } else if (name === 'kvn') {
        section.kvn = parseAt(origin, lineNo, name, () => parseKvn(_ascii(value)));
      } else if (name === 'diversify') {
        section.diversify = parseAt(origin, lineNo, name, () => parseSwitch(_ascii(value)));
      } else {
        const t = name.slice(0, 3) as KeyType;
        section.kcv[t] = { value: parseAt(origin, lineNo, name, () => parseKcv(_ascii(value))), line: lineNo };
      }
    }
    close();
    if (entries.length === 0) throw new KeyFileError(origin, undefined, 'no key sets: the file has no [provider] section');
    return entries;
  } catch (e) {
    zeroize(...loose);
    zeroizeEntries(entries);
    throw e;
  }
}

export interface ReadKeyFileOptions {
  /** Where the permission warning goes; default process.emitWarning with code HILT_KEY_FILE_MODE. */
  warn?: (message: string) => void;
  /** Platform whose permission bits apply; default process.platform (no check on win32). */
  platform?: NodeJS.Platform;
}

function _defaultWarn(message: string): void {
  process.emitWarning(message, { code: 'HILT_KEY_FILE_MODE' });
}

/**
 * Reads and parses a key file. Warns (once per call) when the file is readable or writable by its
 * group or by others: master keys belong to the terminal's user alone (chmod 600). The stat and the
 * read use one open descriptor, so the checked file is the file read.
 */
export async function readKeyFile(path: string, options: ReadKeyFileOptions = {}): Promise<KeyEntry[]> {
  if (typeof path !== 'string' || path.length === 0) throw new BadInputError(`key file path: expected a non-empty string, got ${String(path)}`);
  const warn = options.warn ?? _defaultWarn;
  const platform = options.platform ?? process.platform;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new KeyFileError(path, undefined, `cannot open the key file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let buf: Buffer | undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new KeyFileError(path, undefined, 'not a regular file');
    if (st.size > MAX_KEY_FILE_BYTES) throw new KeyFileError(path, undefined, `${st.size} bytes; a key file is at most ${MAX_KEY_FILE_BYTES}`);
    if (platform !== 'win32' && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      warn(`key file ${path} is accessible to group or others (mode ${mode}); master keys should be readable by the terminal's user only: chmod 600 ${path}`);
    }
    buf = await fh.readFile();
    return parseKeyFile(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), path);
  } finally {
    buf?.fill(0);
    await fh.close();
  }
}
