/**
 * PC/SC transport: a CardChannel over a real reader through pcsc-lite (or WinSCard), using the
 * optional native binding loaded by pcsc-binding.ts.
 *
 * - `listPcscReaders()` lists readers with their state (card present, ATR, in use, ...).
 * - `PcscChannel.open(reader, { share, protocol })` connects to the card: shared or exclusive, T=0,
 *   T=1 or either. Each channel owns its PC/SC context, so channels and monitors never share state.
 * - `transmit` sends one APDU as it is (no GET RESPONSE: that is a wrapper's job) and resolves to
 *   the whole R-APDU. Receive buffer: MAX_RESPONSE_LENGTH, enough for an extended Le of 65536.
 * - A card pulled out before or during a command makes `transmit` reject with CardRemovedError. pcsc-lite
 *   does not always say so itself: a vpcd or USB card that vanishes mid-exchange may come back as an
 *   empty answer or SCARD_E_NOT_TRANSACTED. The channel then asks the daemon whether the card is still
 *   there (SCardStatus, and if that still says present, one status-change wait bounded by
 *   `removalCheckMs`) and reports CardRemovedError when it is gone.
 * - `reset(false)` is SCardReconnect with SCARD_RESET_CARD, `reset(true)` with SCARD_UNPOWER_CARD.
 *   After the card was removed (or pcscd restarted) reset() connects anew to whatever card is in the
 *   reader now, like the vpcd server's sessions: transmit keeps failing with CardRemovedError until
 *   then, so no state kept for the old card is silently applied to a new one.
 * - `close()` disconnects (SCARD_LEAVE_CARD) after the exchange in progress, and releases the
 *   context. Idempotent.
 */
import type { CardChannel } from './channel.js';
import { SerialQueue } from './serialize.js';
import {
  establishContext,
  isServiceLost,
  loadPcscBinding,
  mapPcscError,
  readerStateFlags,
  PcscError,
  type NativeCard,
  type NativeContext,
  type PcscBinding,
  type PcscBindingSource,
} from './pcsc-binding.js';
import { BadInputError, CardRemovedError, ChannelClosedError, HiltError, ProtocolError } from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';

/** Receive buffer: 65536 data bytes (extended Le 0000) + SW1 SW2. */
export const MAX_RESPONSE_LENGTH = 65538;
/** How long a failed exchange waits for pcscd to confirm the card left before reporting another error. */
export const DEFAULT_REMOVAL_CHECK_MS = 1_000;

export type PcscShareMode = 'shared' | 'exclusive';
/** The protocol asked for: T=0 only, T=1 only, or either (the reader and card choose). */
export type PcscProtocolPreference = 'T=0' | 'T=1' | 'any';
/** The protocol in use on a connection. */
export type PcscProtocol = 'T=0' | 'T=1' | 'raw' | 'unknown';

/** Accepts T0, T=0, t0, 0 / T1, T=1, 1 / any, either, auto, T0|T1. */
export function parseProtocolPreference(text: string): PcscProtocolPreference {
  const t = text.trim().toLowerCase().replace(/\s+/g, '');
  if (t === 't0' || t === 't=0' || t === '0') return 'T=0';
  if (t === 't1' || t === 't=1' || t === '1') return 'T=1';
  if (t === 'any' || t === 'either' || t === 'auto' || t === 't0|t1' || t === 't=0|t=1' || t === 't0,t1') return 'any';
  throw new BadInputError(`protocol: expected T=0, T=1 or any, got "${text}"`);
}

export function parseShareMode(text: string): PcscShareMode {
  const t = text.trim().toLowerCase();
  if (t === 'shared' || t === 'exclusive') return t;
  throw new BadInputError(`share mode: expected shared or exclusive, got "${text}"`);
}

function protocolMask(binding: PcscBinding, p: PcscProtocolPreference): number {
  if (p === 'T=0') return binding.SCARD_PROTOCOL_T0;
  if (p === 'T=1') return binding.SCARD_PROTOCOL_T1;
  return binding.SCARD_PROTOCOL_T0 | binding.SCARD_PROTOCOL_T1;
}

function protocolName(binding: PcscBinding, value: number): PcscProtocol {
  if (value === binding.SCARD_PROTOCOL_T0) return 'T=0';
  if (value === binding.SCARD_PROTOCOL_T1) return 'T=1';
  if (value === binding.SCARD_PROTOCOL_RAW) return 'raw';
  return 'unknown';
}

/** Binding calls take a Buffer; a view over the same memory, never exposed. */
function nativeBytes(bytes: Uint8Array): Uint8Array {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain Uint8Array copy (bytes are never Buffers in hilt's public API). */
function plainCopy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  out.set(bytes);
  return out;
}

export interface PcscReaderStatus {
  name: string;
  cardPresent: boolean;
  /** The ATR of the card in the reader, when one is present and powered. */
  atr?: Uint8Array;
  /** Another application holds the card (shared). */
  inUse: boolean;
  /** Another application holds the card exclusively. */
  exclusive: boolean;
  /** A card is present but does not answer to reset. */
  mute: boolean;
  /** The reader's state is unknown to the daemon (driver problem). */
  unavailable: boolean;
  /** All SCARD_STATE_* flags set, by short name. */
  flags: string[];
}

export interface PcscListOptions {
  binding?: PcscBindingSource;
}

/** The readers pcscd knows, in its order, with their current state. */
export async function listPcscReaders(options: PcscListOptions = {}): Promise<PcscReaderStatus[]> {
  const binding = loadPcscBinding(options.binding);
  const context = establishContext(binding);
  try {
    let readers;
    try {
      readers = context.listReaders();
    } catch (e) {
      throw mapPcscError(e, 'PC/SC');
    }
    return readers.map((r) => {
      const s = r.state;
      const present = (s & binding.SCARD_STATE_PRESENT) !== 0;
      const status: PcscReaderStatus = {
        name: r.name,
        cardPresent: present,
        inUse: (s & binding.SCARD_STATE_INUSE) !== 0,
        exclusive: (s & binding.SCARD_STATE_EXCLUSIVE) !== 0,
        mute: (s & binding.SCARD_STATE_MUTE) !== 0,
        unavailable: (s & binding.SCARD_STATE_UNAVAILABLE) !== 0,
        flags: readerStateFlags(binding, s & ~binding.SCARD_STATE_CHANGED),
      };
      if (present && r.atr && r.atr.length > 0) status.atr = plainCopy(r.atr);
      return status;
    });
  } finally {
    context.close();
  }
}

export interface PcscConnectOptions {
  share?: PcscShareMode;
  protocol?: PcscProtocolPreference;
  binding?: PcscBindingSource;
  /** Bound of the wait that confirms a removal after a failed exchange. Default DEFAULT_REMOVAL_CHECK_MS. */
  removalCheckMs?: number;
}

/** A card in a PC/SC reader as a CardChannel. Make one with `PcscChannel.open()`. */
export class PcscChannel implements CardChannel {
  readonly reader: string;
  readonly share: PcscShareMode;
  readonly preference: PcscProtocolPreference;
  readonly #binding: PcscBinding;
  readonly #removalCheckMs: number;
  readonly #queue = new SerialQueue();
  #context: NativeContext | null;
  #card: NativeCard | null;
  #atr: Uint8Array;
  #protocol: PcscProtocol;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(
    binding: PcscBinding,
    reader: string,
    options: Required<Pick<PcscConnectOptions, 'share' | 'protocol' | 'removalCheckMs'>>,
    context: NativeContext,
    card: NativeCard,
  ) {
    this.#binding = binding;
    this.reader = reader;
    this.share = options.share;
    this.preference = options.protocol;
    this.#removalCheckMs = options.removalCheckMs;
    this.#context = context;
    this.#card = card;
    this.#atr = new Uint8Array(0);
    this.#protocol = protocolName(binding, card.protocol);
    this.#refreshStatus();
  }

  /**
   * Connects to the card in `reader` (its exact PC/SC name). Rejects with MISSING_DEPENDENCY (no
   * binding), READER_UNAVAILABLE (daemon stopped, no such reader, card held exclusively elsewhere),
   * NO_CARD (reader empty or card mute) or NOT_SUPPORTED (protocol not offered).
   */
  static async open(reader: string, options: PcscConnectOptions = {}): Promise<PcscChannel> {
    if (typeof reader !== 'string' || reader === '') throw new BadInputError('reader: expected a PC/SC reader name');
    const share = options.share ?? 'shared';
    const protocol = options.protocol ?? 'any';
    const removalCheckMs = options.removalCheckMs ?? DEFAULT_REMOVAL_CHECK_MS;
    assertInt(removalCheckMs, 'removalCheckMs', 0, 60_000);
    const binding = loadPcscBinding(options.binding);
    const context = establishContext(binding);
    try {
      const card = await PcscChannel.#connect(binding, context, reader, share, protocol);
      return new PcscChannel(binding, reader, { share, protocol, removalCheckMs }, context, card);
    } catch (e) {
      context.close();
      throw e;
    }
  }

  static async #connect(
    binding: PcscBinding,
    context: NativeContext,
    reader: string,
    share: PcscShareMode,
    protocol: PcscProtocolPreference,
  ): Promise<NativeCard> {
    let readers;
    try {
      readers = context.listReaders();
    } catch (e) {
      throw mapPcscError(e, 'PC/SC');
    }
    const found = readers.find((r) => r.name === reader);
    if (!found) {
      const names = readers.map((r) => `"${r.name}"`).join(', ');
      throw new PcscError('READER_UNAVAILABLE', 'SCARD_E_UNKNOWN_READER', `no PC/SC reader named "${reader}" (readers: ${names || 'none'})`, false);
    }
    const mode = share === 'exclusive' ? binding.SCARD_SHARE_EXCLUSIVE : binding.SCARD_SHARE_SHARED;
    try {
      return await found.connect(mode, protocolMask(binding, protocol));
    } catch (e) {
      throw mapPcscError(e, reader);
    }
  }

  /** The protocol in use (T=0 or T=1). */
  get protocol(): PcscProtocol {
    return this.#protocol;
  }

  /** The card's ATR as of the connection or the last reset. */
  get atr(): Uint8Array {
    return this.#atr.slice();
  }

  transmit(command: Uint8Array): Promise<Uint8Array> {
    try {
      assertBytes(command, 'command');
    } catch (e) {
      return Promise.reject(e);
    }
    if (command.length < 4) return Promise.reject(new BadInputError(`command APDU: expected at least 4 bytes, got ${command.length}`));
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    const bytes = command.slice();
    return this.#queue.run(async () => {
      const card = this.#usableCard();
      let response: Uint8Array;
      try {
        response = await card.transmit(nativeBytes(bytes), { maxRecvLength: MAX_RESPONSE_LENGTH });
      } catch (e) {
        throw await this.#failure(card, e);
      }
      if (this.#closed) throw new ChannelClosedError();
      if (response.length < 2) {
        // pcsc-lite reports some mid-exchange losses as success with no bytes.
        throw await this.#failure(card, new ProtocolError(`${this.reader}: the reader returned ${response.length} byte(s), no status word`));
      }
      return plainCopy(response);
    });
  }

  reset(cold = false): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new ChannelClosedError());
    return this.#queue.run(async () => {
      if (this.#closed) throw new ChannelClosedError();
      const how = cold ? this.#binding.SCARD_UNPOWER_CARD : this.#binding.SCARD_RESET_CARD;
      const card = this.#card;
      let done = false;
      if (card) {
        try {
          await card.reconnect(this.#shareMode(), protocolMask(this.#binding, this.preference), how);
          done = true;
        } catch (e) {
          const mapped = mapPcscError(e, this.reader);
          if (!(mapped instanceof CardRemovedError) && !isServiceLost(mapped) && !(mapped instanceof HiltError && mapped.code === 'CHANNEL_CLOSED')) {
            throw mapped;
          }
        }
      }
      if (!done) await this.#reconnectFresh(cold);
      if (this.#closed) throw new ChannelClosedError();
      this.#refreshStatus();
      return this.#atr.slice();
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.#queue.run(() => this.#release());
    return this.#closing;
  }

  #shareMode(): number {
    return this.share === 'exclusive' ? this.#binding.SCARD_SHARE_EXCLUSIVE : this.#binding.SCARD_SHARE_SHARED;
  }

  #usableCard(): NativeCard {
    if (this.#closed) throw new ChannelClosedError();
    if (!this.#card) throw new CardRemovedError(`${this.reader}: the card of this session is gone; reset() connects to the card now present`);
    return this.#card;
  }

  #refreshStatus(): void {
    const card = this.#card;
    if (!card) return;
    try {
      const status = card.getStatus();
      this.#atr = plainCopy(status.atr);
      this.#protocol = protocolName(this.#binding, status.protocol);
    } catch (e) {
      throw mapPcscError(e, this.reader);
    }
  }

  /** After a failed reconnect (card replaced, daemon restarted): a new connection to the card now present. */
  async #reconnectFresh(cold: boolean): Promise<void> {
    this.#dropCard();
    let context = this.#context;
    if (!context || !context.isValid) {
      this.#releaseContext();
      context = establishContext(this.#binding);
      this.#context = context;
    }
    let card: NativeCard;
    try {
      card = await PcscChannel.#connect(this.#binding, context, this.reader, this.share, this.preference);
    } catch (e) {
      if (!isServiceLost(e)) throw e;
      // The context died with the daemon: one more try on a new context.
      this.#releaseContext();
      context = establishContext(this.#binding);
      this.#context = context;
      card = await PcscChannel.#connect(this.#binding, context, this.reader, this.share, this.preference);
    }
    this.#card = card;
    if (cold) {
      try {
        await card.reconnect(this.#shareMode(), protocolMask(this.#binding, this.preference), this.#binding.SCARD_UNPOWER_CARD);
      } catch (e) {
        throw mapPcscError(e, this.reader);
      }
    }
  }

  #dropCard(): void {
    const card = this.#card;
    this.#card = null;
    if (!card) return;
    try {
      card.disconnect(this.#binding.SCARD_LEAVE_CARD);
    } catch {
      // The handle is already dead (card gone, daemon restarted): nothing left to release.
    }
  }

  #releaseContext(): void {
    const context = this.#context;
    this.#context = null;
    try {
      context?.close();
    } catch {
      // A context of a daemon that went away cannot be released any further.
    }
  }

  async #release(): Promise<void> {
    this.#dropCard();
    this.#releaseContext();
  }

  /**
   * The error to report for a failed exchange. A removal is reported as CardRemovedError even when
   * pcsc-lite describes it as a failed transaction or an empty answer.
   */
  async #failure(card: NativeCard, error: unknown): Promise<Error> {
    if (this.#closed) return new ChannelClosedError();
    const mapped = mapPcscError(error, this.reader);
    if (mapped instanceof CardRemovedError) {
      this.#dropCard();
      return mapped;
    }
    if (isServiceLost(mapped)) {
      this.#dropCard();
      return mapped;
    }
    if (await this.#cardLeft(card)) {
      this.#dropCard();
      return new CardRemovedError(`${this.reader}: card removed during the exchange`);
    }
    return mapped;
  }

  /** Whether the card of `card` has left the reader, waiting at most removalCheckMs for pcscd to notice. */
  async #cardLeft(card: NativeCard): Promise<boolean> {
    try {
      card.getStatus();
    } catch (e) {
      // SCardStatus on the handle says SCARD_W_REMOVED_CARD once pcscd has seen the card go.
      return mapPcscError(e, this.reader) instanceof CardRemovedError;
    }
    const context = this.#context;
    if (!context || this.#removalCheckMs === 0) return false;
    const b = this.#binding;
    // pcscd may not have noticed yet (it polls some drivers): ask the status-change service for the
    // current state, and if that still says present, block for one change, bounded.
    try {
      const now = await context.waitForChange([{ name: this.reader, state: b.SCARD_STATE_UNAWARE }], 0);
      const current = now?.[0];
      if (!current) return false;
      if ((current.state & b.SCARD_STATE_PRESENT) === 0) return true;
      const changed = await context.waitForChange([{ name: this.reader, state: current.state & ~b.SCARD_STATE_CHANGED }], this.#removalCheckMs);
      const after = changed?.[0];
      return after !== undefined && (after.state & b.SCARD_STATE_PRESENT) === 0;
    } catch {
      return false;
    }
  }
}
