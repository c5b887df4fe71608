/**
 * The uplink's configuration, validated once at the edge into a typed, frozen object: who the
 * terminal and its reader are on the host link (fields 41 and 42), where the gateway is, which MAC
 * key the terminal holds, and the bounds of every wait and retry. Every bound is a named constant.
 *
 * The MAC key is the terminal's own key (deriveTerminalKey(master, 'mac', terminalId, keyVersion),
 * computed by the host from its master and injected into the terminal at personalisation); the
 * uplink never sees a master key. The key-encryption key (KEK) is injected the same way
 * (deriveTerminalKey(kekMaster, 'kek', terminalId, KEK version 1)); a key change (0800 161) needs it
 * to unwrap the new MAC key, nothing else uses it. After a key change the uplink store's key
 * outranks the configured one (keys.ts).
 */
import { BadInputError } from '../../util/errors.js';
import { assertBytes, assertInt } from '../../util/assert.js';

/** Field 41 carries 8 characters; the card's purse record carries the same 8 bytes. */
export const UPLINK_TERMINAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,7}$/;
/** Field 42 carries 15 characters. */
export const UPLINK_READER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,14}$/;

/** The MAC key version a terminal starts with. */
export const DEFAULT_KEY_VERSION = 1;

/** Bound of one request/answer exchange with the gateway. */
export const DEFAULT_UPLINK_REQUEST_TIMEOUT_MS = 10_000;
/** Bound of the TCP connect to the gateway. */
export const DEFAULT_UPLINK_CONNECT_TIMEOUT_MS = 5_000;

/**
 * Retry with exponential backoff: the n-th failed attempt (n = 0, 1, 2, ...) waits
 * min(BACKOFF_MAX_MS, BACKOFF_BASE_MS × BACKOFF_FACTOR^n), minus up to BACKOFF_JITTER of it (so a
 * fleet of terminals that lost the host together does not come back in step).
 */
export const BACKOFF_BASE_MS = 250;
export const BACKOFF_FACTOR = 2;
export const BACKOFF_MAX_MS = 60_000;
export const BACKOFF_JITTER = 0.2;

/** Records in flight at once (sent, answer not yet in). 1: strictly one after the other. */
export const DEFAULT_WINDOW = 1;
export const MAX_WINDOW = 8;

/** How often an idle forwarder looks at the outbox again (new records, or a backoff that ran out). */
export const DEFAULT_IDLE_POLL_MS = 500;
/** Sign-ons in a row a message may trigger (the host said "not signed on" again right after one). */
export const MAX_SIGN_ON_RETRIES = 1;
/** Sign-on attempts with a fresh challenge when the host says the challenge is stale (81). */
export const MAX_CHALLENGE_RETRIES = 2;

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  factor: number;
  /** 0..1: the share of the delay that may be taken off at random. */
  jitter: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({ baseMs: BACKOFF_BASE_MS, maxMs: BACKOFF_MAX_MS, factor: BACKOFF_FACTOR, jitter: BACKOFF_JITTER });

export interface UplinkConfigInput {
  /** Field 41: 1..8 id characters. */
  terminalId: string;
  /** Field 42: 1..15 id characters. */
  readerId: string;
  /** Gateway address. */
  host: string;
  port: number;
  /** The terminal's MAC key (16, 24 or 32 bytes), for key version `keyVersion`. */
  macKey: Uint8Array;
  /** Field 53; default DEFAULT_KEY_VERSION. */
  keyVersion?: number;
  /** The terminal's key-encryption key (16, 24 or 32 bytes): needed by a key change only. */
  kek?: Uint8Array;
  /** Field 24 (destination host the gateway routes to), when the gateway needs it. */
  nii?: number;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  backoff?: Partial<BackoffPolicy>;
}

export interface UplinkConfig {
  readonly terminalId: string;
  readonly readerId: string;
  readonly host: string;
  readonly port: number;
  readonly macKey: Uint8Array;
  readonly keyVersion: number;
  readonly kek: Uint8Array | undefined;
  readonly nii: number | undefined;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly backoff: Readonly<BackoffPolicy>;
}

function shown(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);
}

/** Checks `input` and fills the defaults; BadInputError names the field. The key is copied. */
export function uplinkConfig(input: UplinkConfigInput): UplinkConfig {
  if (typeof input !== 'object' || input === null) throw new BadInputError('uplink configuration: expected an object');
  if (typeof input.terminalId !== 'string' || !UPLINK_TERMINAL_ID_PATTERN.test(input.terminalId)) {
    throw new BadInputError(`terminalId: expected 1 to 8 letters, digits, '.', '_', ':' or '-' (field 41), got ${shown(input.terminalId)}`);
  }
  if (typeof input.readerId !== 'string' || !UPLINK_READER_ID_PATTERN.test(input.readerId)) {
    throw new BadInputError(`readerId: expected 1 to 15 letters, digits, '.', '_', ':' or '-' (field 42), got ${shown(input.readerId)}`);
  }
  if (typeof input.host !== 'string' || input.host.length === 0) throw new BadInputError(`host: expected a host name or address, got ${shown(input.host)}`);
  assertInt(input.port, 'port', 1, 65535);
  assertBytes(input.macKey, 'macKey', [16, 24, 32]);
  const keyVersion = input.keyVersion ?? DEFAULT_KEY_VERSION;
  assertInt(keyVersion, 'keyVersion', 1, 255);
  if (input.kek !== undefined) assertBytes(input.kek, 'kek', [16, 24, 32]);
  if (input.nii !== undefined) assertInt(input.nii, 'nii', 0, 999);
  const requestTimeoutMs = input.requestTimeoutMs ?? DEFAULT_UPLINK_REQUEST_TIMEOUT_MS;
  assertInt(requestTimeoutMs, 'requestTimeoutMs', 1, 600_000);
  const connectTimeoutMs = input.connectTimeoutMs ?? DEFAULT_UPLINK_CONNECT_TIMEOUT_MS;
  assertInt(connectTimeoutMs, 'connectTimeoutMs', 1, 600_000);
  const backoff = backoffPolicy(input.backoff);
  return Object.freeze({
    terminalId: input.terminalId,
    readerId: input.readerId,
    host: input.host,
    port: input.port,
    macKey: input.macKey.slice(),
    keyVersion,
    kek: input.kek === undefined ? undefined : input.kek.slice(),
    nii: input.nii,
    requestTimeoutMs,
    connectTimeoutMs,
    backoff,
  });
}

/** DEFAULT_BACKOFF with `overrides`, checked. */
export function backoffPolicy(overrides: Partial<BackoffPolicy> = {}): Readonly<BackoffPolicy> {
  if (typeof overrides !== 'object' || overrides === null) throw new BadInputError('backoff: expected an object');
  const p = { ...DEFAULT_BACKOFF, ...overrides };
  assertInt(p.baseMs, 'backoff.baseMs', 1, 3_600_000);
  assertInt(p.maxMs, 'backoff.maxMs', p.baseMs, 86_400_000);
  if (typeof p.factor !== 'number' || !(p.factor >= 1 && p.factor <= 10)) throw new BadInputError(`backoff.factor: expected a number from 1 to 10, got ${String(p.factor)}`);
  if (typeof p.jitter !== 'number' || !(p.jitter >= 0 && p.jitter <= 1)) throw new BadInputError(`backoff.jitter: expected a number from 0 to 1, got ${String(p.jitter)}`);
  return Object.freeze(p);
}

/**
 * The wait after the `failures`-th failure in a row (0 = the first): exponential, capped, with jitter
 * taken off. `random` returns [0, 1) (Math.random by default; tests pass their own).
 */
export function backoffDelay(policy: Readonly<BackoffPolicy>, failures: number, random: () => number = Math.random): number {
  assertInt(failures, 'failures', 0, Number.MAX_SAFE_INTEGER);
  // Cap the exponent: factor^n overflows to Infinity long before it matters, and min() handles that,
  // but a bounded loop-free computation is clearer.
  const raw = policy.baseMs * Math.pow(policy.factor, Math.min(failures, 64));
  const capped = Math.min(policy.maxMs, raw);
  return Math.max(1, Math.round(capped * (1 - policy.jitter * random())));
}
