/**
 * The PC/SC native binding (the optional npm package `smartcard`, N-API over pcsc-lite / WinSCard):
 * loading it, the part of its API hilt uses, and turning its errors into hilt's typed errors.
 *
 * Loading is lazy and never fatal at import time: hilt installs and runs without the module (no
 * libpcsclite-dev when `npm install` ran); the first PC/SC operation then fails with one
 * MissingDependencyError whose message says what to install and how to start the daemon.
 *
 * The binding is described here by structural types rather than imported from `smartcard`, so hilt
 * type-checks without it and tests can inject a fake binding with the same shape (node-serialport's
 * mock-binding model).
 *
 * Errors: the binding reports a PC/SC failure as a plain Error whose message is pcsc-lite's return
 * code rendered as text (its table in src/pcsc_errors.h, e.g. "Card was removed" for
 * SCARD_W_REMOVED_CARD); there is no numeric code on the object. PCSC_ERROR_TABLE maps those
 * messages back to the PC/SC names and to hilt's error codes.
 */
import { createRequire } from 'node:module';
import {
  BadInputError,
  CardRemovedError,
  HiltError,
  MissingDependencyError,
  TimeoutError,
  type ErrorCode,
} from '../util/errors.js';

/** The state of one reader as SCardGetStatusChange reports it. */
export interface NativeReaderState {
  name: string;
  /** dwEventState: SCARD_STATE_* bits, the event counter in the upper 16 bits. */
  state: number;
  changed: boolean;
  atr: Uint8Array | null;
}

export interface NativeCardStatus {
  state: number;
  protocol: number;
  atr: Uint8Array;
}

/** A connected card (SCARDHANDLE). */
export interface NativeCard {
  readonly protocol: number;
  readonly connected: boolean;
  transmit(command: Uint8Array, options?: { maxRecvLength?: number }): Promise<Uint8Array>;
  getStatus(): NativeCardStatus;
  disconnect(disposition?: number): void;
  reconnect(shareMode?: number, protocols?: number, initialization?: number): Promise<number>;
}

export interface NativeReader {
  readonly name: string;
  readonly state: number;
  readonly atr: Uint8Array | null;
  connect(shareMode?: number, protocols?: number): Promise<NativeCard>;
}

/** A reader name with the state the caller believes it is in (dwCurrentState). */
export interface NativeStateQuery {
  name: string;
  state: number;
}

/** An SCARDCONTEXT. Its constructor establishes the context (and throws if the daemon is down). */
export interface NativeContext {
  readonly isValid: boolean;
  listReaders(): NativeReader[];
  /**
   * SCardGetStatusChange on a worker thread. Resolves with every queried reader's new state, with
   * [] on timeout, with null when cancel() was called; no timeout means INFINITE.
   */
  waitForChange(readers?: NativeStateQuery[], timeoutMs?: number): Promise<NativeReaderState[] | null>;
  cancel(): void;
  close(): void;
}

/** The constants hilt uses, by their PC/SC names. */
export const PCSC_CONSTANT_NAMES = [
  'SCARD_SHARE_SHARED',
  'SCARD_SHARE_EXCLUSIVE',
  'SCARD_PROTOCOL_T0',
  'SCARD_PROTOCOL_T1',
  'SCARD_PROTOCOL_RAW',
  'SCARD_LEAVE_CARD',
  'SCARD_RESET_CARD',
  'SCARD_UNPOWER_CARD',
  'SCARD_STATE_UNAWARE',
  'SCARD_STATE_IGNORE',
  'SCARD_STATE_CHANGED',
  'SCARD_STATE_UNKNOWN',
  'SCARD_STATE_UNAVAILABLE',
  'SCARD_STATE_EMPTY',
  'SCARD_STATE_PRESENT',
  'SCARD_STATE_ATRMATCH',
  'SCARD_STATE_EXCLUSIVE',
  'SCARD_STATE_INUSE',
  'SCARD_STATE_MUTE',
] as const;

export type PcscConstantName = (typeof PCSC_CONSTANT_NAMES)[number];

export type PcscBinding = { readonly Context: new () => NativeContext } & { readonly [K in PcscConstantName]: number };

/** A binding, or a function that loads one (the default loads the `smartcard` package). */
export type PcscBindingSource = PcscBinding | (() => unknown);

/** The name pcsc-lite gives the pseudo-reader that signals readers being added or removed. */
export const PNP_NOTIFICATION_READER = '\\\\?PnP?\\Notification';

/** How to get PC/SC working, appended to every "missing" message. */
export const PCSC_INSTALL_HINT =
  'install the PC/SC library and daemon with `apt-get install libpcsclite-dev pcscd`, then run `npm install` ' +
  '(or `npm rebuild smartcard`), and start the daemon with `pcscd` (or `systemctl start pcscd`)';

/** How to start a daemon that is installed but not running. */
export const PCSCD_START_HINT = 'start it with `pcscd` (or `systemctl start pcscd`)';

function defaultLoad(): unknown {
  return createRequire(import.meta.url)('smartcard');
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0].trim();
}

function isBinding(value: unknown): value is PcscBinding {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return typeof m.Context === 'function' && PCSC_CONSTANT_NAMES.every((k) => typeof m[k] === 'number');
}

/**
 * Loads the binding. Throws MissingDependencyError (code MISSING_DEPENDENCY) when the module is not
 * installed, its native part cannot load (libpcsclite.so.1 missing), or it lacks the API hilt needs.
 */
export function loadPcscBinding(source?: PcscBindingSource): PcscBinding {
  if (source !== undefined && typeof source !== 'function') {
    if (!isBinding(source)) throw new BadInputError('PC/SC binding: expected Context and the SCARD_* constants');
    return source;
  }
  let loaded: unknown;
  try {
    loaded = (source ?? defaultLoad)();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND' ? 'it is not installed' : firstLine(e);
    throw new MissingDependencyError(`PC/SC support is unavailable: the optional module 'smartcard' could not be loaded (${why}); ${PCSC_INSTALL_HINT}`);
  }
  if (!isBinding(loaded)) {
    throw new MissingDependencyError(
      `PC/SC support is unavailable: the module 'smartcard' does not offer the expected API (Context and SCARD_* constants); reinstall it: ${PCSC_INSTALL_HINT}`,
    );
  }
  return loaded;
}

/** How hilt reports one PC/SC return code. */
interface PcscErrorRow {
  /** The binding's message for it (pcsc_errors.h of `smartcard`). */
  readonly message: string;
  /** The PC/SC name. */
  readonly name: string;
  /** removed: CardRemovedError; timeout: TimeoutError; otherwise a PcscError with `code`. */
  readonly kind: 'removed' | 'timeout' | ErrorCode;
  /** The daemon itself is gone (the monitor rebuilds its context on these). */
  readonly service?: true;
  /** What to tell the user, after the reader name. */
  readonly text: string;
}

export const PCSC_ERROR_TABLE: readonly PcscErrorRow[] = [
  { message: 'Card was removed', name: 'SCARD_W_REMOVED_CARD', kind: 'removed', text: 'card removed' },
  { message: 'Card was reset', name: 'SCARD_W_RESET_CARD', kind: 'removed', text: 'card was reset by another application; the session with it is lost' },
  { message: 'Card is unpowered', name: 'SCARD_W_UNPOWERED_CARD', kind: 'removed', text: 'card was powered down; the session with it is lost' },
  { message: 'No smart card present', name: 'SCARD_E_NO_SMARTCARD', kind: 'NO_CARD', text: 'no card in the reader' },
  { message: 'Card is unresponsive', name: 'SCARD_W_UNRESPONSIVE_CARD', kind: 'NO_CARD', text: 'the card does not answer to reset (mute card, or inserted the wrong way)' },
  { message: 'Operation timed out', name: 'SCARD_E_TIMEOUT', kind: 'timeout', text: 'PC/SC operation timed out' },
  { message: 'PC/SC service not running', name: 'SCARD_E_NO_SERVICE', kind: 'READER_UNAVAILABLE', service: true, text: `the PC/SC daemon (pcscd) is not running; ${PCSCD_START_HINT}` },
  { message: 'PC/SC service stopped', name: 'SCARD_E_SERVICE_STOPPED', kind: 'READER_UNAVAILABLE', service: true, text: `the PC/SC daemon (pcscd) stopped; ${PCSCD_START_HINT}` },
  { message: 'Communication error', name: 'SCARD_F_COMM_ERROR', kind: 'READER_UNAVAILABLE', service: true, text: 'lost the connection to the PC/SC daemon (pcscd stopped or restarted)' },
  { message: 'Invalid handle', name: 'SCARD_E_INVALID_HANDLE', kind: 'READER_UNAVAILABLE', service: true, text: 'the PC/SC connection is no longer valid (pcscd restarted?)' },
  { message: 'Context is not valid', name: 'SCARD_E_INVALID_HANDLE', kind: 'READER_UNAVAILABLE', service: true, text: 'the PC/SC context is closed' },
  { message: 'Reader unavailable', name: 'SCARD_E_READER_UNAVAILABLE', kind: 'READER_UNAVAILABLE', text: 'reader unavailable (unplugged?)' },
  { message: 'Unknown reader', name: 'SCARD_E_UNKNOWN_READER', kind: 'READER_UNAVAILABLE', text: 'no such reader' },
  { message: 'No readers available', name: 'SCARD_E_NO_READERS_AVAILABLE', kind: 'READER_UNAVAILABLE', text: 'no PC/SC reader is connected' },
  { message: 'Reader not ready', name: 'SCARD_E_NOT_READY', kind: 'READER_UNAVAILABLE', text: 'reader not ready' },
  { message: 'Sharing violation', name: 'SCARD_E_SHARING_VIOLATION', kind: 'READER_UNAVAILABLE', text: 'the card is in exclusive use by another application' },
  { message: 'Protocol mismatch', name: 'SCARD_E_PROTO_MISMATCH', kind: 'NOT_SUPPORTED', text: 'the card does not offer the requested protocol' },
  { message: 'Card is not supported', name: 'SCARD_W_UNSUPPORTED_CARD', kind: 'NOT_SUPPORTED', text: 'card not supported (ATR not usable)' },
  { message: 'Invalid ATR', name: 'SCARD_E_INVALID_ATR', kind: 'NOT_SUPPORTED', text: 'the card sent an invalid ATR' },
  { message: 'Unknown card type', name: 'SCARD_E_UNKNOWN_CARD', kind: 'NOT_SUPPORTED', text: 'unknown card type' },
  { message: 'Transaction failed', name: 'SCARD_E_NOT_TRANSACTED', kind: 'PROTOCOL', text: 'the exchange with the card failed' },
  { message: 'Insufficient buffer', name: 'SCARD_E_INSUFFICIENT_BUFFER', kind: 'PROTOCOL', text: 'the card answered more bytes than the receive buffer holds' },
  { message: 'Card is not connected', name: 'SCARD_E_INVALID_HANDLE', kind: 'CHANNEL_CLOSED', text: 'the card connection is closed' },
  { message: 'Operation cancelled', name: 'SCARD_E_CANCELLED', kind: 'CHANNEL_CLOSED', text: 'operation cancelled' },
  { message: 'System cancelled operation', name: 'SCARD_E_SYSTEM_CANCELLED', kind: 'CHANNEL_CLOSED', text: 'operation cancelled by the system' },
  { message: 'Invalid parameter', name: 'SCARD_E_INVALID_PARAMETER', kind: 'BAD_INPUT', text: 'invalid parameter' },
  { message: 'Invalid value', name: 'SCARD_E_INVALID_VALUE', kind: 'BAD_INPUT', text: 'invalid value' },
  { message: 'Not enough memory', name: 'SCARD_E_NO_MEMORY', kind: 'PROTOCOL', text: 'out of memory in the PC/SC stack' },
  { message: 'Internal error', name: 'SCARD_F_INTERNAL_ERROR', kind: 'PROTOCOL', text: 'internal error in the PC/SC stack' },
];

/** A PC/SC failure that is not a card removal or a timeout. `pcsc` is the PC/SC name of the return code. */
export class PcscError extends HiltError {
  readonly pcsc: string;
  /** The daemon is gone or restarted (contexts and card handles must be rebuilt). */
  readonly serviceLost: boolean;
  constructor(code: ErrorCode, pcsc: string, message: string, serviceLost: boolean, options?: { cause?: unknown }) {
    super(code, message, options);
    this.pcsc = pcsc;
    this.serviceLost = serviceLost;
  }
}

/** The PC/SC name behind a binding error, or undefined for anything else. */
export function pcscErrorName(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  return PCSC_ERROR_TABLE.find((r) => r.message === e.message)?.name;
}

/**
 * Turns an error thrown by the binding into hilt's typed error: CardRemovedError for a card removed
 * or reset, TimeoutError for SCARD_E_TIMEOUT, a PcscError with a stable code otherwise. `where`
 * (a reader name, "PC/SC") prefixes the message. HiltErrors pass through unchanged.
 */
export function mapPcscError(e: unknown, where: string): Error {
  if (e instanceof HiltError) return e;
  const message = e instanceof Error ? e.message : String(e);
  const row = PCSC_ERROR_TABLE.find((r) => r.message === message);
  if (!row) return new PcscError('READER_UNAVAILABLE', 'UNKNOWN', `${where}: PC/SC error: ${firstLine(e)}`, false, { cause: e });
  const text = `${where}: ${row.text} (${row.name})`;
  if (row.kind === 'removed') return new CardRemovedError(text);
  if (row.kind === 'timeout') return new TimeoutError(text);
  return new PcscError(row.kind, row.name, text, row.service === true, { cause: e });
}

/** True for errors meaning the daemon is gone (contexts must be re-established). */
export function isServiceLost(e: unknown): boolean {
  return e instanceof PcscError && e.serviceLost;
}

/** Opens a context; a stopped daemon gives the one-line READER_UNAVAILABLE error with the start hint. */
export function establishContext(binding: PcscBinding): NativeContext {
  try {
    return new binding.Context();
  } catch (e) {
    throw mapPcscError(e, 'PC/SC');
  }
}

/** SCARD_STATE_* names, in bit order, for people and --json. */
const STATE_FLAG_NAMES: readonly [PcscConstantName, string][] = [
  ['SCARD_STATE_IGNORE', 'ignore'],
  ['SCARD_STATE_CHANGED', 'changed'],
  ['SCARD_STATE_UNKNOWN', 'unknown'],
  ['SCARD_STATE_UNAVAILABLE', 'unavailable'],
  ['SCARD_STATE_EMPTY', 'empty'],
  ['SCARD_STATE_PRESENT', 'present'],
  ['SCARD_STATE_ATRMATCH', 'atrmatch'],
  ['SCARD_STATE_EXCLUSIVE', 'exclusive'],
  ['SCARD_STATE_INUSE', 'inuse'],
  ['SCARD_STATE_MUTE', 'mute'],
];

/** The SCARD_STATE_* flags set in `state`, by short name ("present", "inuse", ...). */
export function readerStateFlags(binding: PcscBinding, state: number): string[] {
  return STATE_FLAG_NAMES.filter(([k]) => (state & binding[k]) !== 0).map(([, name]) => name);
}

/** pcsc-lite's per-reader event counter (upper 16 bits of dwEventState). */
export function eventCounter(state: number): number {
  return (state >>> 16) & 0xffff;
}
