/**
 * hilt's own vpcd reader: the terminal side of the vsmartcard vpcd protocol, with no pcscd in between.
 * It listens; a card side (hilt's emulator VpcdCardClient, jCardSim in remote mode, vsmartcard vicc)
 * connects, and the server drives it through the CardChannel contract.
 *
 * One card at a time, like a reader with one slot: while a card connection is active (being powered
 * up or in use), further connections are closed at once without a byte sent. A vpcd card side treats
 * that as "reader went away" and retries later, so a second card gets in after the first leaves.
 *
 * Card life cycle: on connect the server sends POWER ON and GET ATR (one write); the card is
 * "inserted" when its ATR arrives ('card-inserted' with the ATR). When the socket closes, or the card
 * breaks the protocol (bad frame, unsolicited frame, no answer within the timeout), it is "removed"
 * ('card-removed'); a command in flight then rejects with CardRemovedError (TimeoutError for the
 * command that timed out).
 *
 * Sessions, as in PC/SC: the channel binds to the card present at its first transmit or reset. After
 * that card leaves, transmit rejects with CardRemovedError until reset() binds the channel to the card
 * now present (a new card is not silently handed to state, such as a secure channel, kept for the old
 * one). With no card at all, transmit and reset reject with NoCardError (code NO_CARD).
 *
 * Latency: noDelay, one write per operation (all its frames in one buffer), TCP_QUICKACK re-armed after
 * every read, so a card side that writes a frame in two pieces is not held by a delayed ACK.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { CardChannel } from './channel.js';
import {
  FrameDecoder,
  VPCD_MAX_FRAME_LENGTH,
  VpcdControl,
  encodeControl,
  encodeFrame,
} from '../apdu/vpcd-frame.js';
import {
  BadInputError,
  CardRemovedError,
  ChannelClosedError,
  HiltError,
  ProtocolError,
  TimeoutError,
} from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { concatBytes, toSpacedHex } from '../util/bytes.js';
import { resolveQuickAck, type QuickAck, type QuickAckSetting } from '../util/quickack.js';
import { stderrWarnings, type Logger } from '../util/logger.js';

/** The vpcd port pcscd's driver uses (0x8C7B); pass port 0 for an ephemeral one. */
export const VPCD_SERVER_DEFAULT_PORT = 35963;
export const VPCD_SERVER_DEFAULT_HOST = '127.0.0.1';
/** Bound of one transmit; generous, as on-card key generation takes seconds. */
export const DEFAULT_TRANSMIT_TIMEOUT_MS = 30_000;
/** Bound of the power-up + GET ATR exchange (on connect and in reset). */
export const DEFAULT_ATR_TIMEOUT_MS = 5_000;
/** Default bound of waitForCard() / waitForRemoval(). */
export const DEFAULT_WAIT_FOR_CARD_MS = 30_000;
/** An ATR is at least TS and T0. */
const MIN_ATR_LENGTH = 2;

/** No card is in the reader. */
export class NoCardError extends HiltError {
  constructor(message = 'no card in the vpcd reader') {
    super('NO_CARD', message);
  }
}

/** What the vpcd server logs through (src/util/logger.ts). */
export type VpcdLogger = Logger;

const stderrLogger: VpcdLogger = stderrWarnings('hilt vpcd server');

export interface VpcdServerOptions {
  /** Default 127.0.0.1. Use 0.0.0.0 to accept cards from other machines. */
  host?: string;
  /** Default 35963; 0 picks a free port (see `port` after start()). */
  port?: number;
  transmitTimeoutMs?: number;
  atrTimeoutMs?: number;
  /** Longest frame accepted from the card; default 65535. */
  maxFrameLength?: number;
  /** A shared QuickAck, or false to turn it off (measurements). Default: on, own instance. */
  quickAck?: QuickAckSetting;
  logger?: VpcdLogger;
}

export interface VpcdServerEvents {
  /** A card connected, was powered up and answered GET ATR. */
  'card-inserted': [atr: Uint8Array];
  /** The card that was inserted left; `reason` says how. */
  'card-removed': [reason: string];
}

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
}

interface CardLink {
  readonly id: number;
  readonly socket: Socket;
  readonly decoder: FrameDecoder;
  /** handshake: powering up; ready: inserted; gone: closed or dropped. */
  phase: 'handshake' | 'ready' | 'gone';
  atr: Uint8Array | null;
  pending: Pending | null;
  /** Settles when the socket has closed. */
  readonly closed: Promise<void>;
}

export class VpcdServer extends EventEmitter<VpcdServerEvents> implements CardChannel {
  readonly host: string;
  private readonly requestedPort: number;
  private readonly transmitTimeoutMs: number;
  private readonly atrTimeoutMs: number;
  private readonly maxFrameLength: number;
  private readonly quickAck: QuickAck;
  private readonly log: VpcdLogger;

  private server: Server | null = null;
  private starting: Promise<void> | null = null;
  private boundPort = 0;
  private closing: Promise<void> | null = null;
  private link: CardLink | null = null;
  private nextLinkId = 1;
  /** The card link the channel session is bound to (0: not bound yet). */
  private boundLinkId = 0;
  /** Operations on the card (handshake, transmit, reset) run one after another on this chain. */
  private tail: Promise<void> = Promise.resolve();
  /** Rejecters of waitForCard/waitForRemoval calls, run by close(). */
  private readonly waiters = new Set<(error: Error) => void>();

  constructor(options: VpcdServerOptions = {}) {
    super();
    this.host = options.host ?? VPCD_SERVER_DEFAULT_HOST;
    this.requestedPort = options.port ?? VPCD_SERVER_DEFAULT_PORT;
    assertInt(this.requestedPort, 'port', 0, 65535);
    this.transmitTimeoutMs = options.transmitTimeoutMs ?? DEFAULT_TRANSMIT_TIMEOUT_MS;
    this.atrTimeoutMs = options.atrTimeoutMs ?? DEFAULT_ATR_TIMEOUT_MS;
    assertInt(this.transmitTimeoutMs, 'transmitTimeoutMs', 1, 3_600_000);
    assertInt(this.atrTimeoutMs, 'atrTimeoutMs', 1, 3_600_000);
    this.maxFrameLength = options.maxFrameLength ?? VPCD_MAX_FRAME_LENGTH;
    assertInt(this.maxFrameLength, 'maxFrameLength', 2, VPCD_MAX_FRAME_LENGTH);
    this.log = options.logger ?? stderrLogger;
    this.quickAck = resolveQuickAck(options.quickAck, (m) => this.log.warn(m));
  }

  /** Creates a server and starts listening. */
  static async listen(options: VpcdServerOptions = {}): Promise<VpcdServer> {
    const server = new VpcdServer(options);
    await server.start();
    return server;
  }

  /** Starts listening (idempotent). Rejects with READER_UNAVAILABLE if the address cannot be bound. */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new ChannelClosedError('vpcd server is closed'));
    if (!this.starting) {
      this.starting = this.listenNow().catch((e: unknown) => {
        this.starting = null;
        throw e;
      });
    }
    return this.starting;
  }

  private listenNow(): Promise<void> {
    const server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    return new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException): void => {
        reject(new HiltError('READER_UNAVAILABLE', `vpcd server cannot listen on ${this.host}:${this.requestedPort}: ${e.code ?? e.message}`, { cause: e }));
      };
      server.once('error', onError);
      server.listen(this.requestedPort, this.host, () => {
        server.off('error', onError);
        server.on('error', (e) => this.log.warn(`vpcd listener error: ${e.message}`));
        this.server = server;
        this.boundPort = (server.address() as AddressInfo).port;
        this.log.info(`vpcd server listening on ${this.host}:${this.boundPort}`);
        resolve();
      });
    });
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    if (!this.server || this.boundPort === 0) throw new ChannelClosedError('vpcd server is not listening');
    return this.boundPort;
  }

  /** A card is inserted (connected, powered, ATR read). */
  get cardPresent(): boolean {
    return this.link?.phase === 'ready';
  }

  /** ATR of the inserted card, if any. */
  get atr(): Uint8Array | undefined {
    return this.link?.phase === 'ready' && this.link.atr ? this.link.atr.slice() : undefined;
  }

  /** Whether TCP_QUICKACK is really armed on reads ('active'), or why not. */
  get quickAckStatus(): QuickAck['status'] {
    return this.quickAck.status;
  }

  /** Resolves with the ATR once a card is inserted (at once if one is). */
  waitForCard(timeoutMs: number = DEFAULT_WAIT_FOR_CARD_MS): Promise<Uint8Array> {
    const atr = this.atr;
    if (atr) return Promise.resolve(atr);
    return this.waitFor<Uint8Array>(
      (listener) => {
        this.on('card-inserted', listener);
        return () => this.off('card-inserted', listener);
      },
      timeoutMs,
      'no card inserted',
    );
  }

  /** Resolves with the reason once the card is removed (at once if none is inserted). */
  waitForRemoval(timeoutMs: number = DEFAULT_WAIT_FOR_CARD_MS): Promise<string> {
    if (!this.cardPresent) return Promise.resolve('no card');
    return this.waitFor<string>(
      (listener) => {
        this.on('card-removed', listener);
        return () => this.off('card-removed', listener);
      },
      timeoutMs,
      'card not removed',
    );
  }

  transmit(command: Uint8Array): Promise<Uint8Array> {
    assertBytes(command, 'command APDU');
    if (command.length < 2 || command.length > this.maxFrameLength) {
      // 1 byte would be read as a control code, 0 bytes is not a frame.
      return Promise.reject(new BadInputError(`command APDU: ${command.length} bytes; vpcd carries 2 to ${this.maxFrameLength}`));
    }
    const frame = encodeFrame(command);
    return this.serial(async () => {
      const link = this.sessionLink();
      const response = await this.exchange(link, frame, this.transmitTimeoutMs, 'R-APDU');
      if (response.length < 2) {
        throw new ProtocolError(`card answered ${response.length} byte(s); an R-APDU has at least SW1 SW2`);
      }
      return response;
    });
  }

  /** Cold: power off + power on; warm (default): reset. Then GET ATR. Binds the session to this card. */
  reset(cold = false): Promise<Uint8Array> {
    const frames = cold
      ? concatBytes(encodeControl(VpcdControl.PowerOff), encodeControl(VpcdControl.PowerOn), encodeControl(VpcdControl.GetAtr))
      : concatBytes(encodeControl(VpcdControl.Reset), encodeControl(VpcdControl.GetAtr));
    return this.serial(async () => {
      this.assertOpen();
      const link = this.link;
      if (!link || link.phase !== 'ready') throw new NoCardError();
      const atr = await this.exchange(link, frames, this.atrTimeoutMs, 'ATR');
      this.checkAtr(link, atr);
      link.atr = atr;
      this.boundLinkId = link.id;
      return atr.slice();
    });
  }

  /** Stops listening and drops the card. Idempotent; pending and later calls reject with ChannelClosedError. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const server = this.server;
    const link = this.link;
    if (link) this.dropLink(link, 'vpcd server closed', new ChannelClosedError('vpcd server is closed'));
    for (const reject of [...this.waiters]) reject(new ChannelClosedError('vpcd server is closed'));
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (link) await link.closed;
    await this.tail;
  }

  private assertOpen(): void {
    if (this.closing) throw new ChannelClosedError('vpcd server is closed');
  }

  /** The card the session talks to; binds to the present card on first use. */
  private sessionLink(): CardLink {
    this.assertOpen();
    const link = this.link;
    const present = link && link.phase === 'ready' ? link : null;
    if (this.boundLinkId === 0) {
      if (!present) throw new NoCardError();
      this.boundLinkId = present.id;
      return present;
    }
    if (present && present.id === this.boundLinkId) return present;
    if (present) throw new CardRemovedError('the card of this session was removed; reset() to use the card now present');
    throw new CardRemovedError('card removed');
  }

  private serial<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.tail.then(operation);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Waits for one event; `on` subscribes a listener and returns its unsubscribe. */
  private waitFor<T>(on: (listener: (value: T) => void) => () => void, timeoutMs: number, what: string): Promise<T> {
    if (this.closing) return Promise.reject(new ChannelClosedError('vpcd server is closed'));
    return new Promise<T>((resolve, reject) => {
      const settle = (): void => {
        off();
        clearTimeout(timer);
        this.waiters.delete(onClose);
      };
      const onClose = (e: Error): void => {
        settle();
        reject(e);
      };
      const timer = setTimeout(() => onClose(new TimeoutError(`${what} within ${timeoutMs} ms`)), timeoutMs);
      const off = on((value) => {
        settle();
        resolve(value);
      });
      this.waiters.add(onClose);
    });
  }

  private onConnection(socket: Socket): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    if (this.closing || (this.link && this.link.phase !== 'gone')) {
      this.log.info(`refusing card connection from ${peer}: ${this.closing ? 'server closing' : 'a card is already in the reader'}`);
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    let settleClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      settleClosed = resolve;
    });
    const link: CardLink = {
      id: this.nextLinkId++,
      socket,
      decoder: new FrameDecoder({ maxFrameLength: this.maxFrameLength }),
      phase: 'handshake',
      atr: null,
      pending: null,
      closed,
    };
    this.link = link;
    this.log.info(`card connected from ${peer}`);
    socket.on('data', (chunk: Buffer) => this.onData(link, chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.log.info(`card connection error: ${e.code ?? e.message}`);
    });
    socket.on('close', () => {
      this.dropLink(link, 'card disconnected', new CardRemovedError('card removed'));
      settleClosed();
    });
    void this.serial(() => this.handshake(link)).catch((e: unknown) => {
      this.log.warn(`card from ${peer} did not power up: ${describe(e)}`);
      this.dropLink(link, 'power-up failed', new CardRemovedError('card removed during power-up'));
    });
  }

  private async handshake(link: CardLink): Promise<void> {
    if (link.phase !== 'handshake') throw new CardRemovedError('card left before power-up');
    const frames = concatBytes(encodeControl(VpcdControl.PowerOn), encodeControl(VpcdControl.GetAtr));
    const atr = await this.exchange(link, frames, this.atrTimeoutMs, 'ATR');
    this.checkAtr(link, atr);
    if (link.phase !== 'handshake') throw new CardRemovedError('card left during power-up');
    link.atr = atr;
    link.phase = 'ready';
    this.log.info(`card inserted, ATR ${toSpacedHex(atr)}`);
    this.emit('card-inserted', atr.slice());
  }

  private checkAtr(link: CardLink, atr: Uint8Array): void {
    if (atr.length < MIN_ATR_LENGTH) {
      const error = new ProtocolError(`card answered GET ATR with ${atr.length} byte(s); an ATR has at least ${MIN_ATR_LENGTH}`);
      this.dropLink(link, 'invalid ATR', error);
      throw error;
    }
  }

  /** Sends `bytes` in one write and waits for the one frame that answers it. */
  private exchange(link: CardLink, bytes: Uint8Array, timeoutMs: number, what: string): Promise<Uint8Array> {
    if (link.phase === 'gone' || link.socket.destroyed) return Promise.reject(new CardRemovedError('card removed'));
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        link.pending = null;
        reject(new TimeoutError(`card did not send its ${what} within ${timeoutMs} ms`));
        this.log.warn(`card mute for ${timeoutMs} ms, dropping it`);
        this.dropLink(link, `card mute (no ${what} within ${timeoutMs} ms)`, new CardRemovedError('card removed'));
      }, timeoutMs);
      link.pending = {
        resolve: (payload) => {
          clearTimeout(timer);
          resolve(payload);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      link.socket.write(bytes);
    });
  }

  private onData(link: CardLink, chunk: Buffer): void {
    if (link.phase === 'gone') return;
    this.quickAck.arm(link.socket);
    let frames: Uint8Array[];
    try {
      frames = link.decoder.push(chunk);
    } catch (e) {
      this.log.warn(`malformed frame from card, dropping it: ${describe(e)}`);
      this.dropLink(link, 'protocol error', e instanceof Error ? e : new ProtocolError(String(e)));
      return;
    }
    for (const frame of frames) {
      const pending = link.pending;
      if (!pending) {
        this.log.warn(`card sent ${frame.length} byte(s) nobody asked for, dropping it`);
        this.dropLink(link, 'protocol error: unsolicited frame', new ProtocolError('unsolicited frame from card'));
        return;
      }
      link.pending = null;
      pending.resolve(frame);
    }
  }

  /** Ends a link: rejects its pending exchange with `error`, closes the socket, reports removal. */
  private dropLink(link: CardLink, reason: string, error: Error): void {
    if (link.phase === 'gone') return;
    const wasReady = link.phase === 'ready';
    link.phase = 'gone';
    const pending = link.pending;
    link.pending = null;
    pending?.reject(error);
    link.socket.destroy();
    if (this.link === link) this.link = null;
    if (wasReady) {
      this.log.info(`card removed: ${reason}`);
      this.emit('card-removed', reason);
    }
  }
}

function describe(e: unknown): string {
  if (e instanceof HiltError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
