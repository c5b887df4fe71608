/**
 * The card side of the vpcd protocol: connects to a vpcd server (pcscd's vpcd driver on port 35963,
 * or hilt's own VpcdServer) and lets it drive a VirtualCard, exactly as jCardSim's remote mode or
 * vsmartcard's vicc do. While connected, the reader sees a card; disconnected, it sees none.
 *
 * - Control frames: 00 power off, 01 power on, 02 reset (no answer); 04 GET ATR answered with the ATR.
 *   Any longer payload is a C-APDU, answered with the card's R-APDU. Frames are handled strictly one at
 *   a time, in arrival order, across reconnections too (one queue per card).
 * - Reconnects with exponential backoff (RECONNECT_*) when the server is not up yet or goes away.
 *   `removeCard()` disconnects and stays disconnected; `insertCard()` connects again.
 * - A frame the protocol forbids (length 0, longer than the maximum), a flood of frames the card cannot
 *   keep up with, or an unexpected failure is logged; the connection is dropped cleanly and re-made.
 *   Nothing the server sends can crash the process.
 * - Leaving the reader (removeCard, server gone, dropped link) cuts the card's power, after the APDU in
 *   progress has finished, like pulling a real card out.
 * - Latency: noDelay, one write per frame, and TCP_QUICKACK re-armed after every read (see
 *   src/util/quickack.ts) so pcscd's two-write frames do not wait ~40 ms for a delayed ACK.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { VirtualCard } from '../card.js';
import {
  FrameDecoder,
  FrameError,
  VPCD_MAX_FRAME_LENGTH,
  VpcdControl,
  classifyVpcdPayload,
  encodeFrame,
  vpcdControlName,
} from '../../src/apdu/vpcd-frame.js';
import { ChannelClosedError, CardRemovedError, HiltError, TimeoutError } from '../../src/util/errors.js';
import { assertInt } from '../../src/util/assert.js';
import { toHex } from '../../src/util/bytes.js';
import { resolveQuickAck, type QuickAck, type QuickAckSetting } from '../../src/util/quickack.js';
import { stderrWarnings, type Logger } from '../../src/util/logger.js';

/** Port of pcscd's vpcd driver (0x8C7B), the vsmartcard and jCardSim default. */
export const VPCD_DEFAULT_PORT = 35963;
export const VPCD_DEFAULT_HOST = '127.0.0.1';
/** First wait before reconnecting; doubles (RECONNECT_BACKOFF_FACTOR) after each failed attempt. */
export const RECONNECT_INITIAL_DELAY_MS = 50;
/** The wait between attempts never grows beyond this. */
export const RECONNECT_MAX_DELAY_MS = 2_000;
export const RECONNECT_BACKOFF_FACTOR = 2;
/** A connect attempt that neither succeeds nor fails within this is abandoned (and retried). */
export const CONNECT_ATTEMPT_TIMEOUT_MS = 5_000;
/** Default bound of whenConnected(). */
export const DEFAULT_WHEN_CONNECTED_TIMEOUT_MS = 10_000;
/**
 * Frames received but not yet handled. A reader sends one request and waits for its answer (plus a
 * few unanswered control codes), so a deeper queue is a broken peer: the link is dropped.
 */
export const MAX_QUEUED_FRAMES = 32;
/** Answered when the card fails (rejects or returns something that is not an R-APDU): no precise diagnosis. */
const SW_NO_PRECISE_DIAGNOSIS = Uint8Array.of(0x6f, 0x00);

/** What the vpcd client logs through (src/util/logger.ts). */
export type VpcdLogger = Logger;

const stderrLogger: VpcdLogger = stderrWarnings('hilt vpcd client');

export interface VpcdCardClientOptions {
  host?: string;
  /** Default VPCD_DEFAULT_PORT (35963). */
  port?: number;
  /** Longest frame accepted from the server; default 65535. */
  maxFrameLength?: number;
  /** Reconnect backoff; defaults are the RECONNECT_* constants. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A shared QuickAck, or false to turn it off (measurements). Default: on, own instance. */
  quickAck?: QuickAckSetting;
  logger?: VpcdLogger;
}

/**
 * removed: not connected and not trying (initial state, or after removeCard());
 * connecting: trying to reach the server (with backoff); connected: the reader sees the card;
 * closed: close() was called, for good.
 */
export type VpcdClientState = 'removed' | 'connecting' | 'connected' | 'closed';

export interface VpcdCardClientEvents {
  /** TCP connection to the server is up: the reader can now see the card. */
  connected: [];
  /** The connection ended; `reason` says why (server closed, removeCard, protocol error, ...). */
  disconnected: [reason: string];
}

interface Link {
  readonly socket: Socket;
  readonly decoder: FrameDecoder;
  alive: boolean;
  /** The TCP connection was made (so its end is a 'disconnected' event). */
  established: boolean;
  /** Frames of this link queued or being handled. */
  queued: number;
  /** A power-on reached the card on this link (so leaving must power it off). */
  powered: boolean;
  /** Why the link ended, for the 'disconnected' event. */
  endReason: string;
  /** Settles when the socket has closed. */
  readonly closed: Promise<void>;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export class VpcdCardClient extends EventEmitter<VpcdCardClientEvents> {
  readonly host: string;
  readonly port: number;
  private readonly card: VirtualCard;
  private readonly maxFrameLength: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly quickAck: QuickAck;
  private readonly log: VpcdLogger;

  private stateValue: VpcdClientState = 'removed';
  private link: Link | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Consecutive attempts that did not lead to a working link; drives the backoff. */
  private failures = 0;
  /** "Waiting for the server" is logged once per outage, not per attempt. */
  private outageLogged = false;
  /** All card work (frames of every link, power-off on leaving) runs on this one chain. */
  private cardWork: Promise<void> = Promise.resolve();
  private waiters: Waiter[] = [];

  constructor(card: VirtualCard, options: VpcdCardClientOptions = {}) {
    super();
    this.card = card;
    this.host = options.host ?? VPCD_DEFAULT_HOST;
    this.port = options.port ?? VPCD_DEFAULT_PORT;
    assertInt(this.port, 'port', 1, 65535);
    this.maxFrameLength = options.maxFrameLength ?? VPCD_MAX_FRAME_LENGTH;
    assertInt(this.maxFrameLength, 'maxFrameLength', 1, VPCD_MAX_FRAME_LENGTH);
    this.initialDelayMs = options.initialDelayMs ?? RECONNECT_INITIAL_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? RECONNECT_MAX_DELAY_MS;
    assertInt(this.initialDelayMs, 'initialDelayMs', 1, 3_600_000);
    assertInt(this.maxDelayMs, 'maxDelayMs', this.initialDelayMs, 3_600_000);
    this.log = options.logger ?? stderrLogger;
    this.quickAck = resolveQuickAck(options.quickAck, (m) => this.log.warn(m));
  }

  get state(): VpcdClientState {
    return this.stateValue;
  }

  get connected(): boolean {
    return this.stateValue === 'connected';
  }

  /** Whether TCP_QUICKACK is really armed on reads ('active'), or why not. */
  get quickAckStatus(): QuickAck['status'] {
    return this.quickAck.status;
  }

  /** The wait before reconnect attempt number `failures + 1`. */
  backoffDelay(failures: number): number {
    const raw = this.initialDelayMs * RECONNECT_BACKOFF_FACTOR ** Math.min(failures, 30);
    return Math.min(this.maxDelayMs, raw);
  }

  /** Puts the card in the reader: connect (and keep reconnecting) until removeCard() or close(). */
  insertCard(): void {
    if (this.stateValue === 'closed') throw new ChannelClosedError('vpcd client is closed');
    if (this.stateValue !== 'removed') return;
    this.failures = 0;
    this.outageLogged = false;
    this.setState('connecting');
    this.attempt();
  }

  /** Takes the card out: disconnect, stop reconnecting. Resolves once the card is powered off. */
  async removeCard(): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.setState('removed');
    this.rejectWaiters(new CardRemovedError('card removed from the vpcd reader'));
    await this.dropCurrent('card removed');
  }

  /** Disconnects for good. Idempotent. Resolves once the socket is closed and the card idle. */
  async close(): Promise<void> {
    if (this.stateValue !== 'closed') {
      this.setState('closed');
      this.rejectWaiters(new ChannelClosedError('vpcd client is closed'));
    }
    await this.dropCurrent('client closed');
  }

  /**
   * Resolves when the client is connected (at once if it is). Rejects with TimeoutError after
   * `timeoutMs`, CardRemovedError if the card is or gets removed, ChannelClosedError on close().
   */
  whenConnected(timeoutMs: number = DEFAULT_WHEN_CONNECTED_TIMEOUT_MS): Promise<void> {
    if (this.stateValue === 'connected') return Promise.resolve();
    if (this.stateValue === 'closed') return Promise.reject(new ChannelClosedError('vpcd client is closed'));
    if (this.stateValue === 'removed') {
      return Promise.reject(new CardRemovedError('card is not in the vpcd reader; call insertCard()'));
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new TimeoutError(`vpcd server ${this.host}:${this.port} not reached within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiters.push(waiter);
    });
  }

  private setState(state: VpcdClientState): void {
    this.stateValue = state;
    if (state !== 'connecting' && this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  private rejectWaiters(error: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
  }

  private async dropCurrent(reason: string): Promise<void> {
    const link = this.link;
    if (link) {
      this.endLink(link, reason);
      await link.closed;
    }
    await this.cardWork;
  }

  private attempt(): void {
    this.retryTimer = null;
    if (this.stateValue !== 'connecting' || this.link) return;
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    let settleClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      settleClosed = resolve;
    });
    const link: Link = {
      socket,
      decoder: new FrameDecoder({ maxFrameLength: this.maxFrameLength }),
      alive: true,
      established: false,
      queued: 0,
      powered: false,
      endReason: 'connection closed by the server',
      closed,
    };
    this.link = link;
    socket.setTimeout(CONNECT_ATTEMPT_TIMEOUT_MS);
    socket.on('timeout', () => {
      if (socket.connecting) this.endLink(link, `connect attempt timed out after ${CONNECT_ATTEMPT_TIMEOUT_MS} ms`);
    });
    socket.on('connect', () => {
      socket.setTimeout(0);
      socket.setNoDelay(true);
      if (!link.alive) return;
      link.established = true;
      this.outageLogged = false;
      this.log.info(`connected to vpcd server ${this.host}:${this.port}`);
      if (this.stateValue === 'connecting') this.setState('connected');
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w.resolve();
      this.emit('connected');
    });
    socket.on('data', (chunk: Buffer) => this.onData(link, chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (!link.alive) return; // already ended on purpose; the close that follows keeps that reason
      if (!link.established) {
        if (!this.outageLogged) {
          this.outageLogged = true;
          this.log.info(`waiting for vpcd server ${this.host}:${this.port} (${e.code ?? e.message})`);
        }
        link.endReason = `connect failed: ${e.code ?? e.message}`;
      } else {
        this.log.warn(`vpcd connection error: ${e.message}`);
        link.endReason = `connection error: ${e.code ?? e.message}`;
      }
    });
    socket.on('close', () => {
      this.endLink(link, link.endReason);
      settleClosed();
      if (this.link === link) this.link = null;
      this.afterClose(link);
    });
  }

  /** Marks a link dead and tears its socket down; queues the power-off if the card had power. */
  private endLink(link: Link, reason: string): void {
    if (!link.alive) return;
    link.alive = false;
    link.endReason = reason;
    link.socket.destroy();
    if (link.powered) {
      link.powered = false;
      this.enqueue(() => {
        try {
          this.card.powerOff();
        } catch (e) {
          this.log.warn(`card power-off failed: ${describe(e)}`);
        }
      });
    }
  }

  private afterClose(link: Link): void {
    if (this.stateValue === 'connected') this.setState('connecting');
    if (link.established) {
      this.log.info(`vpcd link ended: ${link.endReason}`);
      this.emit('disconnected', link.endReason);
    }
    if (this.stateValue !== 'connecting') return;
    const delay = this.backoffDelay(this.failures);
    this.failures++;
    this.retryTimer = setTimeout(() => this.attempt(), delay);
  }

  private onData(link: Link, chunk: Buffer): void {
    if (!link.alive) return;
    this.quickAck.arm(link.socket);
    let frames: Uint8Array[];
    try {
      frames = link.decoder.push(chunk);
    } catch (e) {
      const why = e instanceof FrameError ? e.message : describe(e);
      this.log.warn(`malformed frame from vpcd server, reconnecting: ${why}`);
      this.endLink(link, `protocol error: ${why}`);
      return;
    }
    for (const frame of frames) {
      if (link.queued >= MAX_QUEUED_FRAMES) {
        this.log.warn(`vpcd server sent more than ${MAX_QUEUED_FRAMES} frames without waiting for answers, reconnecting`);
        this.endLink(link, 'protocol error: frame flood');
        return;
      }
      link.queued++;
      this.enqueue(async () => {
        try {
          if (link.alive) await this.handle(link, frame);
        } finally {
          link.queued--;
        }
      });
    }
    // A well-behaved server got its first frame through: the link works, so backoff starts over.
    if (frames.length > 0) this.failures = 0;
  }

  private enqueue(task: () => void | Promise<void>): void {
    this.cardWork = this.cardWork.then(task).catch((e: unknown) => {
      this.log.warn(`vpcd card task failed: ${describe(e)}`);
    });
  }

  private async handle(link: Link, payload: Uint8Array): Promise<void> {
    const message = classifyVpcdPayload(payload);
    if (message.kind === 'control') {
      switch (message.code) {
        case VpcdControl.PowerOff:
          this.card.powerOff();
          link.powered = false;
          return;
        case VpcdControl.PowerOn:
          this.card.powerOn();
          link.powered = true;
          return;
        case VpcdControl.Reset:
          this.card.reset();
          link.powered = true;
          return;
        case VpcdControl.GetAtr:
          this.send(link, this.card.atr);
          return;
        default:
          this.log.warn(`ignoring unknown vpcd control code ${vpcdControlName(message.code)}`);
          return;
      }
    }
    let response: Uint8Array;
    try {
      response = await this.card.process(message.apdu);
      if (!(response instanceof Uint8Array) || response.length < 2 || response.length > VPCD_MAX_FRAME_LENGTH) {
        this.log.warn(`card returned no valid R-APDU for ${toHex(message.apdu)}; answering 6F00`);
        response = SW_NO_PRECISE_DIAGNOSIS;
      }
    } catch (e) {
      this.log.warn(`card failed on ${toHex(message.apdu)}: ${describe(e)}; answering 6F00`);
      response = SW_NO_PRECISE_DIAGNOSIS;
    }
    this.send(link, response);
  }

  private send(link: Link, payload: Uint8Array): void {
    if (!link.alive || link.socket.destroyed) return;
    let frame: Uint8Array;
    try {
      frame = encodeFrame(payload);
    } catch (e) {
      this.log.warn(`cannot frame ${payload.length} bytes: ${describe(e)}`);
      return;
    }
    link.socket.write(frame);
  }
}

function describe(e: unknown): string {
  if (e instanceof HiltError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
