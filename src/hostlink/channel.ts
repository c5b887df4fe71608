/**
 * `IsoChannel`: ISO 8583 messages over one TCP socket, for both ends of the host link (a terminal's
 * uplink and each connection a mock host accepts). Message (iso8583/message.ts), codec
 * (iso8583/packager.ts), MAC (iso8583/mac.ts) and framing (framing.ts) are separate pieces; this
 * file only moves them over a socket. Promise API only.
 *
 * Sending: `send(message)` MACs the message with `macKey(message)` (field 64 or 128), packs it,
 * frames it and hands the frame to one socket write. `request(message)` does the same and resolves
 * with the answer, matched by response MTI, STAN (field 11) and terminal id (field 41); at most
 * `maxInFlight` requests wait at once (more: IsoChannelError 'busy', at once, nothing sent), each
 * for at most its timeout (TimeoutError; a late answer is then dropped and counted in
 * `unmatchedResponses`). `receive()` resolves with the next request or advice the peer sent.
 *
 * What arrives, and what happens:
 * - a well-formed request or advice with a valid MAC: queued for receive() (at most `maxQueued`;
 *   a peer that floods past that breaks the protocol: see below);
 * - a response with a valid MAC: resolves the request it answers, or is dropped when none waits;
 * - a MAC that does not verify, or no key for the message (`macKey` gave none): receive() (for a
 *   request) or the matched request() (for a response) rejects with IsoMacError, whose
 *   `isoMessage` lets a host answer 63; the channel stays open, the message is not acted on;
 * - bytes that are not a frame (LengthPrefixError: empty, oversized, bad header) or a frame that is
 *   not a message (Iso8583Error: garbage, truncated, unknown MTI, ...), or a receive queue overflow:
 *   the stream cannot be trusted any more. The channel stops reading, ends the socket (destroying
 *   it after `closeGraceMs` if the peer does not close), and every waiting and later call rejects
 *   with that error (`closeReason`) once the queued messages have been received.
 * When the peer closes, waiting calls reject with ChannelClosedError.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { IsoMessage, isRequestMti, responseMti } from './iso8583/message.js';
import { pack, unpack } from './iso8583/packager.js';
import { IsoMacError, assertMessageMac, signMessage } from './iso8583/mac.js';
import { Iso8583Error } from './iso8583/errors.js';
import { twoByteLengthFraming, type FrameStreamDecoder, type Framing } from './framing.js';
import { LengthPrefixError } from '../util/length-prefixed.js';
import { BadInputError, ChannelClosedError, HiltError, TimeoutError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

/** Bound of one request() (sending included). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Requests waiting for their answer at once. */
export const DEFAULT_MAX_IN_FLIGHT = 16;
/** Received requests not yet taken by receive(). */
export const DEFAULT_MAX_QUEUED = 64;
/** After ending the socket, how long the peer has to close its side before it is destroyed. */
export const DEFAULT_CLOSE_GRACE_MS = 1_000;
/** Bound of connectIsoChannel's TCP connect. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export type IsoChannelErrorReason =
  | 'busy' // request(): maxInFlight requests already wait (code BAD_INPUT: the caller's bound)
  | 'duplicate' // request(): a request with the same MTI, STAN and terminal id already waits (BAD_INPUT)
  | 'not-a-request' // request() with a response MTI, or without field 11 or 41 (BAD_INPUT)
  | 'overflow'; // the peer sent more than maxQueued requests nobody received (PROTOCOL)

export class IsoChannelError extends HiltError {
  readonly reason: IsoChannelErrorReason;
  constructor(reason: IsoChannelErrorReason, message: string) {
    super(reason === 'overflow' ? 'PROTOCOL' : 'BAD_INPUT', message);
    this.reason = reason;
  }
}

export interface IsoChannelOptions {
  /**
   * The MAC key of a message, outgoing (to sign it) and incoming (to verify it); typically looked up
   * by its terminal id (field 41) and key version (field 53). undefined: no key. The channel does not
   * keep or zeroize what it returns.
   */
  macKey: (message: IsoMessage) => Uint8Array | undefined;
  /** Default twoByteLengthFraming(). */
  framing?: Framing;
  /** Default DEFAULT_REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
  /** Default DEFAULT_MAX_IN_FLIGHT. */
  maxInFlight?: number;
  /** Default DEFAULT_MAX_QUEUED. */
  maxQueued?: number;
  /** Default DEFAULT_CLOSE_GRACE_MS. */
  closeGraceMs?: number;
}

interface Pending {
  resolve(message: IsoMessage): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface Waiter {
  resolve(message: IsoMessage): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
}

type Incoming = { message: IsoMessage } | { error: HiltError };

/** The matching key of a request's answer, or of a response: response MTI | STAN | terminal id. */
function matchKey(responseMtiValue: string, message: IsoMessage): string | null {
  const stan = message.text(11);
  const tid = message.text(41);
  return stan === undefined || tid === undefined ? null : `${responseMtiValue}|${stan}|${tid}`;
}

export class IsoChannel {
  readonly framing: Framing;
  readonly requestTimeoutMs: number;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly closeGraceMs: number;
  private readonly socket: Socket;
  private readonly macKey: (message: IsoMessage) => Uint8Array | undefined;
  private readonly decoder: FrameStreamDecoder;
  private readonly pending = new Map<string, Pending>();
  private readonly queue: Incoming[] = [];
  private readonly waiters: Waiter[] = [];
  private reason: HiltError | null = null;
  private ending = false;
  private closedFlag = false;
  private unmatched = 0;
  private graceTimer: NodeJS.Timeout | null = null;
  private readonly closedPromise: Promise<HiltError | null>;

  constructor(socket: Socket, options: IsoChannelOptions) {
    if (typeof options !== 'object' || options === null || typeof options.macKey !== 'function') {
      throw new BadInputError('IsoChannel options: macKey must be a function (message) => key | undefined');
    }
    this.socket = socket;
    this.macKey = options.macKey;
    this.framing = options.framing ?? twoByteLengthFraming();
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    assertInt(this.requestTimeoutMs, 'requestTimeoutMs', 1, 2 ** 31 - 1);
    assertInt(this.maxInFlight, 'maxInFlight', 1, 1_000_000);
    assertInt(this.maxQueued, 'maxQueued', 1, 1_000_000);
    assertInt(this.closeGraceMs, 'closeGraceMs', 0, 2 ** 31 - 1);
    this.decoder = this.framing.decoder();
    socket.setNoDelay(true);
    let resolveClosed!: (reason: HiltError | null) => void;
    this.closedPromise = new Promise((resolve) => (resolveClosed = resolve));
    const onClose = () => {
      this.onClosed();
      resolveClosed(this.reason);
    };
    socket.on('error', (e: Error) => {
      if (this.reason === null && !this.ending) this.reason = new ChannelClosedError(`host link socket error: ${e.message}`);
    });
    if (socket.destroyed) {
      onClose();
      return;
    }
    socket.once('close', onClose);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** True once the socket has closed. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Why the channel closed itself (a framing, codec or overflow error), or null. */
  get closeReason(): HiltError | null {
    return this.reason;
  }

  /** Requests waiting for their answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Responses that arrived with no request waiting for them (late, duplicated or stray). */
  get unmatchedResponses(): number {
    return this.unmatched;
  }

  /** Resolves when the socket has closed, with closeReason. */
  whenClosed(): Promise<HiltError | null> {
    return this.closedPromise;
  }

  /** MACs, packs, frames and writes `message` (one write); resolves with the message as sent. */
  async send(message: IsoMessage): Promise<IsoMessage> {
    if (!(message instanceof IsoMessage)) throw new BadInputError('send: expected an IsoMessage');
    if (this.ending || this.closedFlag) throw this.reason ?? new ChannelClosedError('host link channel is closed');
    const key = this.macKey(message);
    if (key === undefined) throw new BadInputError(`send: no MAC key for ${message.mti} to terminal ${JSON.stringify(message.terminalId() ?? '')}`);
    const signed = signMessage(message, key);
    const frame = this.framing.encode(pack(signed));
    await new Promise<void>((resolve, reject) => {
      this.socket.write(frame, (e) => (e ? reject(new ChannelClosedError(`host link write failed: ${e.message}`)) : resolve()));
    });
    return signed;
  }

  /** Sends a request or advice and resolves with its answer (see the top of this file). */
  request(message: IsoMessage, timeoutMs: number = this.requestTimeoutMs): Promise<IsoMessage> {
    if (!(message instanceof IsoMessage) || !message.isRequest) {
      return Promise.reject(new IsoChannelError('not-a-request', `request: ${message instanceof IsoMessage ? `MTI ${message.mti} is a response` : 'expected an IsoMessage'}`));
    }
    assertInt(timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1);
    const key = matchKey(responseMti(message.mti), message);
    if (key === null) return Promise.reject(new IsoChannelError('not-a-request', 'request: fields 11 (STAN) and 41 (terminal id) are needed to match the answer'));
    if (this.ending || this.closedFlag) return Promise.reject(this.reason ?? new ChannelClosedError('host link channel is closed'));
    if (this.pending.has(key)) return Promise.reject(new IsoChannelError('duplicate', `request: ${message.mti} STAN ${message.text(11)} from ${JSON.stringify(message.terminalId())} is already waiting`));
    if (this.pending.size >= this.maxInFlight) return Promise.reject(new IsoChannelError('busy', `request: ${this.maxInFlight} requests already wait for their answer`));
    return new Promise<IsoMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        reject(new TimeoutError(`no ${responseMti(message.mti)} for STAN ${message.text(11)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(key, { resolve, reject, timer });
      this.send(message).catch((e: unknown) => {
        const p = this.pending.get(key);
        if (p === undefined) return;
        this.pending.delete(key);
        clearTimeout(p.timer);
        reject(e);
      });
    });
  }

  /** The next request or advice from the peer; rejects with IsoMacError for one that did not authenticate. */
  receive(timeoutMs?: number): Promise<IsoMessage> {
    if (timeoutMs !== undefined) assertInt(timeoutMs, 'timeoutMs', 1, 2 ** 31 - 1);
    const item = this.queue.shift();
    if (item !== undefined) return 'message' in item ? Promise.resolve(item.message) : Promise.reject(item.error);
    if (this.ending || this.closedFlag) return Promise.reject(this.reason ?? new ChannelClosedError('host link channel is closed'));
    return new Promise<IsoMessage>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, timer: null };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new TimeoutError(`no message from the peer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.waiters.push(waiter);
    });
  }

  /** Ends the socket (destroyed after closeGraceMs if the peer holds it); waiting calls reject. */
  async close(): Promise<void> {
    this.shutdown(null);
    await this.closedPromise;
  }

  // -------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.ending || this.closedFlag) return;
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (e) {
      this.shutdown(e instanceof LengthPrefixError ? e : new ChannelClosedError(`host link framing failed: ${(e as Error).message}`));
      return;
    }
    for (const frame of frames) {
      let message: IsoMessage;
      try {
        message = unpack(frame).message;
      } catch (e) {
        if (!(e instanceof Iso8583Error)) throw e;
        this.shutdown(e);
        return;
      }
      this.dispatch(message);
      if (this.ending) return;
    }
  }

  private authenticate(message: IsoMessage): HiltError | null {
    let key: Uint8Array | undefined;
    try {
      key = this.macKey(message);
    } catch (e) {
      return new IsoMacError('no-key', `no MAC key for ${message.mti} from ${JSON.stringify(message.terminalId() ?? '')}: ${(e as Error).message}`, message);
    }
    if (key === undefined) return new IsoMacError('no-key', `no MAC key for ${message.mti} from terminal ${JSON.stringify(message.terminalId() ?? '')}`, message);
    try {
      assertMessageMac(message, key);
      return null;
    } catch (e) {
      if (e instanceof HiltError) return e;
      throw e;
    }
  }

  private dispatch(message: IsoMessage): void {
    const failure = this.authenticate(message);
    if (isRequestMti(message.mti)) {
      this.deliver(failure === null ? { message } : { error: failure });
      return;
    }
    const key = matchKey(message.mti, message);
    const p = key === null ? undefined : this.pending.get(key);
    if (key === null || p === undefined) {
      this.unmatched++;
      return;
    }
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (failure === null) p.resolve(message);
    else p.reject(failure);
  }

  private deliver(item: Incoming): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      if (waiter.timer !== null) clearTimeout(waiter.timer);
      if ('message' in item) waiter.resolve(item.message);
      else waiter.reject(item.error);
      return;
    }
    if (this.queue.length >= this.maxQueued) {
      this.shutdown(new IsoChannelError('overflow', `the peer sent more than ${this.maxQueued} requests that were not received`));
      return;
    }
    this.queue.push(item);
  }

  /** Stops reading, fails everything waiting with `reason` (or ChannelClosedError), ends the socket. */
  private shutdown(reason: HiltError | null): void {
    if (this.ending) return;
    this.ending = true;
    if (reason !== null && this.reason === null) this.reason = reason;
    this.failWaiting();
    if (this.closedFlag) return;
    this.socket.end();
    this.graceTimer = setTimeout(() => this.socket.destroy(), this.closeGraceMs);
  }

  private onClosed(): void {
    this.closedFlag = true;
    this.ending = true;
    if (this.graceTimer !== null) clearTimeout(this.graceTimer);
    this.failWaiting();
  }

  private failWaiting(): void {
    const error = (): Error => this.reason ?? new ChannelClosedError('host link channel is closed');
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error());
    }
    this.pending.clear();
    for (const w of this.waiters.splice(0)) {
      if (w.timer !== null) clearTimeout(w.timer);
      w.reject(error());
    }
  }
}

export interface ConnectOptions extends IsoChannelOptions {
  host: string;
  port: number;
  /** Default DEFAULT_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
}

/** Opens a TCP connection and wraps it; rejects with TimeoutError or ChannelClosedError. */
export async function connectIsoChannel(options: ConnectOptions): Promise<IsoChannel> {
  assertInt(options.port, 'port', 1, 65535);
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  assertInt(timeoutMs, 'connectTimeoutMs', 1, 2 ** 31 - 1);
  const socket = connect({ host: options.host, port: options.port });
  const timer = setTimeout(() => socket.destroy(new TimeoutError(`connect to ${options.host}:${options.port} took more than ${timeoutMs} ms`)), timeoutMs);
  try {
    await once(socket, 'connect');
  } catch (e) {
    socket.destroy();
    if (e instanceof HiltError) throw e;
    throw new ChannelClosedError(`connect to ${options.host}:${options.port} failed: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return new IsoChannel(socket, options);
}
