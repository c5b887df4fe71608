/**
 * The card OS runtime: a Java Card + GlobalPlatform card as a reader sees it. It owns the applet
 * registry, logical channels, applet selection, the response buffer behind 61xx/GET RESPONSE,
 * command chaining, card-wide GET DATA and power semantics, and builds each applet's firewalled
 * context. Every command answer is specified in applets-spec/card-os.md; this file follows it.
 *
 * Dispatch of one C-APDU, in order:
 *   1. fewer than 4 bytes → 6700; CLA FF or RFU (no logical channel) → 6E00; undecodable → 6700;
 *      INS 6x/9x → 6D00; channel ≥ maxChannels → 6881.
 *   2. any command other than GET RESPONSE drops the channel's pending response.
 *   3. closed channel: SELECT by AID opens it, anything else → 6881.
 *   4. a chain in progress on the channel that this command does not continue → 6883 (chain dropped).
 *   5. OS commands (interindustry class, no SM): SELECT by AID, MANAGE CHANNEL, GET RESPONSE; and
 *      GET DATA (00 or 80 class, no SM) for the card-wide tags.
 *   6. the channel's selected applet, through its chaining mode.
 *   7. no applet: SM class → 6882, SELECT → 6A82, GET DATA → 6A88, anything else → 6D00.
 * Response data then goes through `deliver`: at most Ne bytes now, the rest behind 61xx.
 */
import { CommandApdu, MAX_EXTENDED_NC } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { decodeCla, claWithChaining, type ClaInfo } from '../../src/apdu/cla.js';
import { toHex, bytesEqual, concatBytes } from '../../src/util/bytes.js';
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { BadInputError, CardRemovedError, HiltError, ProtocolError } from '../../src/util/errors.js';
import type { VirtualCard } from '../card.js';
import type { PersistentStore } from '../store/types.js';
import { StoreError } from '../store/errors.js';
import { SwError, NO_SECURE_CHANNEL, type Applet, type AppletContext, type AppletTransaction, type OsLogger, type SecureChannelStatus } from './applet.js';
import { ScopedStore, KeySlot } from './scoped-store.js';
import { SW, swBytesRemaining, swCorrectLength } from './sw.js';
import { buildCardData, buildCplc, defaultFci, tlv, type CardRecognitionOptions, type CplcFields } from './card-data.js';

/** Logical channels the card offers unless told otherwise, and the most ISO 7816-4 can address. */
export const DEFAULT_MAX_CHANNELS = 4;
export const MAX_LOGICAL_CHANNELS = 20;

/** GET DATA tags (P1P2) the OS answers itself, whatever applet is selected. */
export const CARD_TAGS = {
  CPLC: 0x9f7f,
  CARD_IMAGE_NUMBER: 0x0045,
  ISSUER_IDENTIFICATION_NUMBER: 0x0042,
  CARD_DATA: 0x0066,
  /** hilt-specific: the full card serial. */
  CARD_SERIAL: 0xdf01,
} as const;

const INS = { SELECT: 0xa4, MANAGE_CHANNEL: 0x70, GET_RESPONSE: 0xc0, GET_DATA: 0xca } as const;
const SELECT_BY_NAME = 0x04;

/** Keys of the persistent store, by owner. Each ends in '/' before a variable part that cannot contain one. */
const STORE_PREFIX = {
  installed: 'os/installed/',
  data: (aidHex: string) => `app/${aidHex}/`,
  keys: (aidHex: string) => `key/${aidHex}/`,
} as const;

export interface ProductionData {
  /** CPLC fields; the IC serial number and batch identifier default to the end of the card serial. */
  cplc?: CplcFields;
  /** Tag 42; GET DATA 0042 answers 6A88 when absent. */
  issuerIdentificationNumber?: Uint8Array;
  /** Tag 45; defaults to the card serial. */
  cardImageNumber?: Uint8Array;
  /** What Card Recognition Data (GET DATA 0066) claims. */
  recognition?: CardRecognitionOptions;
}

export interface AppletEntry {
  /** 5 to 16 bytes, unique on the card. */
  aid: Uint8Array;
  name: string;
  applet: Applet;
  /** False: never selected (a library other applets reach through getShareable). Default true. */
  selectable?: boolean;
  /** Selected on channel 0 at power-on and on channels opened from channel 0. At most one. */
  default?: boolean;
  /** Keys put into the applet's key slot when it is installed. */
  keys?: Record<string, Uint8Array>;
}

export interface CardOsOptions {
  atr: Uint8Array;
  serial: Uint8Array;
  productionData?: ProductionData;
  store: PersistentStore;
  applets: AppletEntry[];
  /** Logical channels 0..maxChannels-1 exist; 1 to 20, default 4. */
  maxChannels?: number;
  logger?: OsLogger;
}

interface Registered {
  readonly aid: Uint8Array;
  readonly aidHex: string;
  readonly name: string;
  readonly applet: Applet;
  readonly selectable: boolean;
  readonly isDefault: boolean;
  readonly keys: Record<string, Uint8Array>;
}

interface PendingResponse {
  readonly data: Uint8Array;
  offset: number;
  /** The SW that comes with the last part. */
  readonly sw: number;
}

interface Chain {
  /** CLA with b5 cleared, INS, P1, P2 of the first part; every later part must repeat them. */
  readonly header: readonly [number, number, number, number];
  readonly parts: Uint8Array[];
  length: number;
}

interface ChannelState {
  selected: Registered | null;
  pending: PendingResponse | null;
  chain: Chain | null;
}

const NO_LOGGER: OsLogger = { warn: () => undefined };

const status = (sw: number): ResponseApdu => ResponseApdu.status(sw);

/** Store failures that mean the card itself is broken: the command cannot be answered at all. */
function isFatal(e: unknown): e is StoreError {
  return e instanceof StoreError && (e.reason === 'CORRUPT' || e.reason === 'POWER_LOST');
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

export class CardOs implements VirtualCard {
  private readonly atrBytes: Uint8Array;
  private readonly serial: Uint8Array;
  private readonly store: PersistentStore;
  private readonly registry: readonly Registered[];
  private readonly defaultApplet: Registered | undefined;
  private readonly maxChannels: number;
  private readonly logger: OsLogger;
  private readonly cardTags: ReadonlyMap<number, Uint8Array>;

  /** Index = channel number; null = closed. */
  private channels: (ChannelState | null)[] = [];
  private transients = new Map<string, Map<string, Uint8Array>>();
  private powered = false;
  /** Bumped at every power change: contexts and queued commands of an older epoch are dead. */
  private epoch = 0;
  /** Commands run one at a time, in arrival order, like a card's single CPU. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: CardOsOptions) {
    assertBytes(options.atr, 'atr');
    assertInt(options.atr.length, 'ATR length', 2, 33);
    assertBytes(options.serial, 'serial');
    assertInt(options.serial.length, 'serial length', 1, 32);
    this.maxChannels = options.maxChannels ?? DEFAULT_MAX_CHANNELS;
    assertInt(this.maxChannels, 'maxChannels', 1, MAX_LOGICAL_CHANNELS);
    if (typeof options.store?.get !== 'function' || typeof options.store.begin !== 'function') {
      throw new BadInputError('store: expected a PersistentStore');
    }
    this.atrBytes = options.atr.slice();
    this.serial = options.serial.slice();
    this.store = options.store;
    this.logger = options.logger ?? NO_LOGGER;
    this.registry = this.register(options.applets);
    const defaults = this.registry.filter((e) => e.isDefault);
    if (defaults.length > 1) throw new BadInputError(`at most one default applet, got ${defaults.map((e) => e.name).join(', ')}`);
    this.defaultApplet = defaults[0];
    this.cardTags = this.buildCardTags(options.productionData ?? {});
    for (const entry of this.registry) this.installOnce(entry);
    this.powerOn();
  }

  get atr(): Uint8Array {
    return this.atrBytes.slice();
  }

  powerOn(): void {
    this.dropVolatileState();
    this.powered = true;
    this.channels[0] = { selected: null, pending: null, chain: null };
    if (this.defaultApplet) this.selectOn(0, this.defaultApplet);
  }

  powerOff(): void {
    this.dropVolatileState();
    this.powered = false;
  }

  reset(): void {
    this.powerOff();
    this.powerOn();
  }

  process(command: Uint8Array): Promise<Uint8Array> {
    const epoch = this.epoch;
    const run = this.tail.then(() => this.runOne(command, epoch));
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  // ---- setup --------------------------------------------------------------------------------------

  private register(entries: AppletEntry[]): Registered[] {
    if (!Array.isArray(entries)) throw new BadInputError('applets: expected an array');
    const out: Registered[] = [];
    for (const [i, e] of entries.entries()) {
      assertBytes(e.aid, `applets[${i}].aid`);
      assertInt(e.aid.length, `applets[${i}].aid length`, 5, 16);
      if (typeof e.name !== 'string' || e.name.length === 0) throw new BadInputError(`applets[${i}].name: expected a non-empty string`);
      if (typeof e.applet?.process !== 'function') throw new BadInputError(`applets[${i}] (${e.name}): applet has no process()`);
      const aidHex = toHex(e.aid);
      const twin = out.find((r) => r.aidHex === aidHex);
      if (twin) throw new BadInputError(`applets[${i}] (${e.name}): AID ${aidHex} is already used by ${twin.name}`);
      for (const [name, key] of Object.entries(e.keys ?? {})) assertBytes(key, `applets[${i}].keys.${name}`);
      out.push({
        aid: e.aid.slice(),
        aidHex,
        name: e.name,
        applet: e.applet,
        selectable: e.selectable !== false,
        isDefault: e.default === true,
        keys: { ...(e.keys ?? {}) },
      });
    }
    return out;
  }

  private buildCardTags(pd: ProductionData): Map<number, Uint8Array> {
    const tags = new Map<number, Uint8Array>();
    tags.set(CARD_TAGS.CPLC, tlv(CARD_TAGS.CPLC, buildCplc(this.serial, pd.cplc)));
    const cin = pd.cardImageNumber ?? this.serial;
    assertBytes(cin, 'productionData.cardImageNumber');
    tags.set(CARD_TAGS.CARD_IMAGE_NUMBER, tlv(CARD_TAGS.CARD_IMAGE_NUMBER, cin));
    if (pd.issuerIdentificationNumber !== undefined) {
      assertBytes(pd.issuerIdentificationNumber, 'productionData.issuerIdentificationNumber');
      tags.set(CARD_TAGS.ISSUER_IDENTIFICATION_NUMBER, tlv(CARD_TAGS.ISSUER_IDENTIFICATION_NUMBER, pd.issuerIdentificationNumber));
    }
    tags.set(CARD_TAGS.CARD_DATA, buildCardData(pd.recognition));
    tags.set(CARD_TAGS.CARD_SERIAL, tlv(CARD_TAGS.CARD_SERIAL, this.serial));
    return tags;
  }

  /** Java Card install: once in the card's life, atomically with the marker that records it. */
  private installOnce(entry: Registered): void {
    const marker = STORE_PREFIX.installed + entry.aidHex;
    if (this.store.get(marker) !== undefined) return;
    if (this.store.inTransaction) this.store.abort();
    const ctx = this.contextFor(entry, () => undefined);
    this.store.begin();
    try {
      for (const [name, key] of Object.entries(entry.keys)) ctx.keys.set(name, key);
      entry.applet.install?.(ctx);
      this.store.put(marker, Uint8Array.of(1));
      this.store.commit();
    } catch (e) {
      if (isFatal(e)) throw e;
      if (this.store.inTransaction) this.store.abort();
      throw new HiltError('BAD_INPUT', `applet ${entry.name}: install failed: ${describe(e)}`, { cause: e });
    }
  }

  // ---- power --------------------------------------------------------------------------------------

  /** What a power loss erases: channels, selections, pending responses, chains, RAM, the open transaction. */
  private dropVolatileState(): void {
    this.epoch++;
    this.tail = Promise.resolve();
    this.channels = new Array<ChannelState | null>(this.maxChannels).fill(null);
    this.transients = new Map();
    try {
      if (this.store.inTransaction) this.store.abort();
    } catch (e) {
      this.warn('could not abort the open transaction at power loss', { error: describe(e) });
    }
  }

  // ---- one command --------------------------------------------------------------------------------

  private async runOne(command: Uint8Array, epoch: number): Promise<Uint8Array> {
    if (epoch !== this.epoch) throw new CardRemovedError('the card was reset or powered off before the command ran');
    if (!this.powered) throw new ProtocolError('the card is not powered: call powerOn() first');
    if (!(command instanceof Uint8Array)) return status(SW.WRONG_LENGTH).encode();
    let response: ResponseApdu;
    try {
      response = await this.execute(command, epoch);
    } catch (e) {
      if (epoch !== this.epoch) throw new CardRemovedError('power was removed during the command');
      if (isFatal(e)) {
        // The store failed under the command: the card is as good as unpowered.
        this.powerOff();
        throw e;
      }
      this.warn('card OS fault', { error: describe(e), command: toHex(command) });
      response = status(SW.UNKNOWN);
    }
    if (epoch !== this.epoch) throw new CardRemovedError('power was removed during the command');
    return response.encode();
  }

  private async execute(bytes: Uint8Array, epoch: number): Promise<ResponseApdu> {
    if (bytes.length < 4) return status(SW.WRONG_LENGTH);
    const cla = decodeCla(bytes[0]);
    if (cla.channel < 0) return status(SW.CLA_NOT_SUPPORTED);
    let cmd: CommandApdu;
    try {
      cmd = CommandApdu.decode(bytes);
    } catch {
      return status(SW.WRONG_LENGTH);
    }
    const insHigh = cmd.ins & 0xf0;
    if (insHigh === 0x60 || insHigh === 0x90) return status(SW.INS_NOT_SUPPORTED);
    const ch = cla.channel;
    if (ch >= this.maxChannels) return status(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);

    const osClass = !cla.proprietary && cla.secureMessaging === 'none';
    const state = this.channels[ch];
    if (state && !(osClass && cmd.ins === INS.GET_RESPONSE)) state.pending = null;
    const selectByAid = osClass && cmd.ins === INS.SELECT && cmd.p1 === SELECT_BY_NAME;
    if (!state) {
      return selectByAid && !cla.chaining ? this.select(ch, cmd, epoch) : status(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
    }
    if (state.chain && !this.continuesChain(state.chain, cmd)) {
      state.chain = null;
      return status(SW.LAST_COMMAND_OF_CHAIN_EXPECTED);
    }
    if (osClass && (selectByAid || cmd.ins === INS.MANAGE_CHANNEL || cmd.ins === INS.GET_RESPONSE)) {
      if (cla.chaining) return status(SW.COMMAND_CHAINING_NOT_SUPPORTED);
      if (selectByAid) return this.select(ch, cmd, epoch);
      if (cmd.ins === INS.MANAGE_CHANNEL) return this.manageChannel(ch, cmd, epoch);
      return this.getResponse(state, cmd);
    }
    const tag = (cmd.p1 << 8) | cmd.p2;
    if (cmd.ins === INS.GET_DATA && cla.secureMessaging === 'none' && this.cardTags.has(tag)) {
      if (cla.chaining) return status(SW.COMMAND_CHAINING_NOT_SUPPORTED);
      if (cmd.nc > 0) return status(SW.WRONG_LENGTH);
      return this.deliver(state, this.cardTags.get(tag) as Uint8Array, SW.OK, cmd.ne);
    }
    if (state.selected) return this.dispatch(ch, state, state.selected, cmd, cla, epoch);
    if (cla.secureMessaging !== 'none') return status(SW.SECURE_MESSAGING_NOT_SUPPORTED);
    if (cmd.ins === INS.SELECT) return status(SW.FILE_NOT_FOUND);
    if (cmd.ins === INS.GET_DATA) return status(SW.REFERENCED_DATA_NOT_FOUND);
    return status(SW.INS_NOT_SUPPORTED);
  }

  /**
   * Fits response data to Ne: all of it when it fits, else the first Ne bytes (none when the command
   * had no Le) with 61xx, the rest kept for GET RESPONSE; the applet's own SW comes with the last part.
   */
  private deliver(state: ChannelState, data: Uint8Array, sw: number, ne: number): ResponseApdu {
    if (data.length <= ne || data.length === 0) return new ResponseApdu(data, sw);
    state.pending = { data, offset: ne, sw };
    return new ResponseApdu(data.subarray(0, ne), swBytesRemaining(data.length - ne));
  }

  // ---- GET RESPONSE -------------------------------------------------------------------------------

  private getResponse(state: ChannelState, cmd: CommandApdu): ResponseApdu {
    if (cmd.p1 !== 0 || cmd.p2 !== 0) return status(SW.INCORRECT_P1P2);
    if (cmd.nc > 0) return status(SW.WRONG_LENGTH);
    const p = state.pending;
    if (!p) return status(SW.CONDITIONS_NOT_SATISFIED);
    const remaining = p.data.length - p.offset;
    // Le 00 (short) and any extended Le mean "up to"; a specific short Le above what is left is wrong.
    const upTo = cmd.extended || cmd.ne === 256;
    if (cmd.ne === 0 || (cmd.ne > remaining && !upTo)) return status(swCorrectLength(Math.min(remaining, 256)));
    const n = Math.min(cmd.ne, remaining);
    const chunk = p.data.subarray(p.offset, p.offset + n);
    p.offset += n;
    if (p.offset < p.data.length) return new ResponseApdu(chunk, swBytesRemaining(p.data.length - p.offset));
    state.pending = null;
    return new ResponseApdu(chunk, p.sw);
  }

  // ---- SELECT -------------------------------------------------------------------------------------

  /**
   * SELECT by AID (P1 04). P2: b8..b5 must be 0; b4b3 00 = return the FCI, 11 (0C) = no data, others
   * 6A86; b2b1 00 first, 01 last, 10 next, 11 previous occurrence among the selectable applets whose
   * AID starts with the data, in registration order, "next"/"previous" relative to the channel's
   * current applet. No candidate → 6A82 and the current applet stays selected. A candidate refusing
   * selection → 6999 and no applet is selected (the current one was deselected first). A SELECT that
   * opened the channel and fails closes it again.
   */
  private select(ch: number, cmd: CommandApdu, epoch: number): ResponseApdu {
    const p2 = cmd.p2;
    const answer = p2 & 0x0c;
    if ((p2 & 0xf0) !== 0 || answer === 0x04 || answer === 0x08) return status(SW.INCORRECT_P1P2);
    if (cmd.nc < 1 || cmd.nc > 16) return status(SW.WRONG_LENGTH);
    const opening = this.channels[ch] === null;
    const current = this.channels[ch]?.selected ?? null;
    const matches = this.registry.filter((e) => e.selectable && e.aid.length >= cmd.nc && bytesEqual(e.aid.subarray(0, cmd.nc), cmd.data));
    const at = current ? matches.indexOf(current) : -1;
    const candidate = [
      matches[0],
      matches[matches.length - 1],
      at < 0 ? matches[0] : matches[at + 1],
      at < 0 ? matches[matches.length - 1] : matches[at - 1],
    ][p2 & 0x03];
    if (!candidate) return status(SW.FILE_NOT_FOUND);
    const state: ChannelState = this.channels[ch] ?? { selected: null, pending: null, chain: null };
    this.channels[ch] = state;
    const sw = this.selectOn(ch, candidate);
    if (sw !== SW.OK) {
      if (opening) this.channels[ch] = null;
      return status(sw);
    }
    if (answer === 0x0c) return status(SW.OK);
    const custom = this.callHook(candidate, epoch, 'fci', (ctx) => candidate.applet.fci?.(ctx, ch));
    const fci = custom.ok && custom.value instanceof Uint8Array ? custom.value : defaultFci(candidate.aid, candidate.name);
    return this.deliver(state, fci, SW.OK, cmd.ne);
  }

  /** Makes `entry` the applet of open channel `ch`: multiselection check, deselect, select. */
  private selectOn(ch: number, entry: Registered): number {
    const state = this.channels[ch] as ChannelState;
    const elsewhere = this.channels.some((s, i) => i !== ch && s?.selected === entry);
    if (elsewhere && entry.applet.multiSelectable !== true) return SW.CONDITIONS_NOT_SATISFIED;
    this.deselectOn(ch);
    const result = this.callHook(entry, this.epoch, 'select', (ctx) => entry.applet.select?.(ctx, ch));
    if (!result.ok || result.value === false) return SW.APPLET_SELECT_FAILED;
    state.selected = entry;
    return SW.OK;
  }

  private deselectOn(ch: number): void {
    const state = this.channels[ch];
    const entry = state?.selected;
    if (!state || !entry) return;
    state.selected = null;
    state.chain = null;
    this.callHook(entry, this.epoch, 'deselect', (ctx) => entry.applet.deselect?.(ctx, ch));
  }

  // ---- MANAGE CHANNEL -----------------------------------------------------------------------------

  /**
   * P1 00 open (P2 00: the card picks the lowest free channel and returns it in one byte; P2 n: opens
   * n), P1 80 close channel P2. The new channel gets the default applet when opened from channel 0,
   * the origin channel's applet otherwise; if that applet cannot be selected there, the channel is
   * closed again and the select error (6985, 6999) is returned.
   */
  private manageChannel(origin: number, cmd: CommandApdu, epoch: number): ResponseApdu {
    if (cmd.nc > 0) return status(SW.WRONG_LENGTH);
    const n = cmd.p2;
    if (cmd.p1 === 0x80) {
      if (n === 0 || n >= MAX_LOGICAL_CHANNELS) return status(SW.INCORRECT_P1P2);
      if (n >= this.maxChannels || !this.channels[n]) return status(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
      this.deselectOn(n);
      this.channels[n] = null;
      return status(SW.OK);
    }
    if (cmd.p1 !== 0x00) return status(SW.INCORRECT_P1P2);
    let target = n;
    if (n === 0) {
      target = this.channels.findIndex((s, i) => i > 0 && s === null);
      if (target < 0) return status(SW.FUNCTION_NOT_SUPPORTED);
    } else if (n >= MAX_LOGICAL_CHANNELS) {
      return status(SW.INCORRECT_P1P2);
    } else if (n >= this.maxChannels) {
      return status(SW.FUNCTION_NOT_SUPPORTED);
    } else if (this.channels[n]) {
      return status(SW.INCORRECT_P1P2);
    }
    const state: ChannelState = { selected: null, pending: null, chain: null };
    this.channels[target] = state;
    const inherit = origin === 0 ? this.defaultApplet : this.channels[origin]?.selected;
    if (inherit) {
      const sw = this.selectOn(target, inherit);
      if (sw !== SW.OK) {
        this.channels[target] = null;
        return status(sw);
      }
    }
    if (n !== 0) return status(SW.OK);
    // The answer belongs to the origin channel, where the command was sent.
    return this.deliver(this.channels[origin] as ChannelState, Uint8Array.of(target), SW.OK, cmd.ne);
  }

  // ---- applets ------------------------------------------------------------------------------------

  private continuesChain(chain: Chain, cmd: CommandApdu): boolean {
    const [cla, ins, p1, p2] = chain.header;
    return claWithChaining(cmd.cla, false) === cla && cmd.ins === ins && cmd.p1 === p1 && cmd.p2 === p2;
  }

  private async dispatch(ch: number, state: ChannelState, entry: Registered, cmd: CommandApdu, cla: ClaInfo, epoch: number): Promise<ResponseApdu> {
    let apdu = cmd;
    if (cla.chaining || state.chain) {
      const mode = entry.applet.chaining;
      if (mode === undefined) return status(SW.COMMAND_CHAINING_NOT_SUPPORTED);
      if (mode === 'accumulate') {
        const chain = state.chain ?? { header: [claWithChaining(cmd.cla, false), cmd.ins, cmd.p1, cmd.p2] as const, parts: [], length: 0 };
        if (chain.length + cmd.nc > MAX_EXTENDED_NC) {
          state.chain = null;
          return status(SW.WRONG_LENGTH);
        }
        chain.parts.push(cmd.data);
        chain.length += cmd.nc;
        if (cla.chaining) {
          state.chain = chain;
          return status(SW.OK);
        }
        state.chain = null;
        apdu = new CommandApdu({ cla: chain.header[0], ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: concatBytes(...chain.parts), ne: cmd.ne, extended: cmd.extended });
      }
    }
    const response = await this.callProcess(entry, apdu, ch, epoch);
    return this.deliver(state, response.data, response.sw, apdu.ne);
  }

  private async callProcess(entry: Registered, apdu: CommandApdu, ch: number, epoch: number): Promise<ResponseApdu> {
    const ctx = this.contextFor(entry, this.guardFor(epoch));
    let result: unknown;
    try {
      result = await entry.applet.process(ctx, apdu, ch);
    } catch (e) {
      if (epoch !== this.epoch || isFatal(e)) throw e;
      this.abortOpenTransaction(entry, 'process threw');
      if (e instanceof SwError) return status(e.sw);
      if (e instanceof StoreError && e.reason === 'FULL') return status(SW.NOT_ENOUGH_MEMORY);
      this.warn(`applet ${entry.name}: process failed`, { error: describe(e), command: apdu.toString() });
      return status(SW.UNKNOWN);
    }
    if (epoch !== this.epoch) throw new CardRemovedError('power was removed during the command');
    if (this.abortOpenTransaction(entry, 'process returned with a transaction open')) return status(SW.UNKNOWN);
    if (!(result instanceof ResponseApdu)) {
      this.warn(`applet ${entry.name}: process did not return a ResponseApdu`, { command: apdu.toString() });
      return status(SW.UNKNOWN);
    }
    return result;
  }

  /** Runs a synchronous applet hook; errors other than fatal store errors become { ok: false }. */
  private callHook<T>(entry: Registered, epoch: number, what: string, fn: (ctx: AppletContext) => T): { ok: true; value: T } | { ok: false } {
    const ctx = this.contextFor(entry, this.guardFor(epoch));
    try {
      const value = fn(ctx);
      if (this.abortOpenTransaction(entry, `${what} returned with a transaction open`)) return { ok: false };
      return { ok: true, value };
    } catch (e) {
      if (isFatal(e)) throw e;
      this.abortOpenTransaction(entry, `${what} threw`);
      if (!(e instanceof SwError)) this.warn(`applet ${entry.name}: ${what} failed`, { error: describe(e) });
      return { ok: false };
    }
  }

  /** Aborts a transaction left open by an applet; true if there was one. */
  private abortOpenTransaction(entry: Registered, why: string): boolean {
    if (!this.store.inTransaction) return false;
    this.store.abort();
    this.warn(`applet ${entry.name}: ${why}; the transaction was aborted`);
    return true;
  }

  private guardFor(epoch: number): () => void {
    return () => {
      if (epoch !== this.epoch || !this.powered) throw new StoreError('POWER_LOST', 'the card lost power since this context was made');
    };
  }

  private contextFor(entry: Registered, guard: () => void, security: SecureChannelStatus = NO_SECURE_CHANNEL): AppletContext {
    const store = new ScopedStore(this.store, STORE_PREFIX.data(entry.aidHex), guard);
    const transaction: AppletTransaction = {
      begin: () => store.begin(),
      commit: () => store.commit(),
      abort: () => store.abort(),
      get inProgress() {
        return store.inTransaction;
      },
    };
    let ram = this.transients.get(entry.aidHex);
    if (!ram) {
      ram = new Map();
      this.transients.set(entry.aidHex, ram);
    }
    return {
      aid: entry.aid.slice(),
      serial: this.serial.slice(),
      store,
      keys: new KeySlot(new ScopedStore(this.store, STORE_PREFIX.keys(entry.aidHex), guard)),
      transient: ram,
      transaction,
      logger: { warn: (message, fields) => this.warn(`applet ${entry.name}: ${message}`, fields) },
      security,
      getShareable: <T extends object>(serverAid: Uint8Array, param: number): T | null => {
        guard();
        return this.shareable(entry, serverAid, param, guard) as T | null;
      },
    };
  }

  private shareable(client: Registered, serverAid: Uint8Array, param: number, guard: () => void): object | null {
    assertBytes(serverAid, 'serverAid');
    assertInt(param, 'param', 0, 0xff);
    const server = this.registry.find((e) => bytesEqual(e.aid, serverAid));
    if (!server?.applet.getShareableInterface) return null;
    const found = server.applet.getShareableInterface(this.contextFor(server, guard), client.aid.slice(), param);
    return typeof found === 'object' && found !== null ? found : null;
  }

  private warn(message: string, fields?: Record<string, unknown>): void {
    try {
      this.logger.warn(message, fields);
    } catch {
      // A failing logger must not take the card down.
    }
  }
}
