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
 *   4. the secure channel, when the channel's applet belongs to a security domain (or is one), for
 *      every command but the transport commands of 5: INITIALIZE UPDATE and EXTERNAL AUTHENTICATE go
 *      to the channel's SCP03 card session; any other command is unwrapped by it (a failure answers
 *      6982 and ends the session) and goes on as the plain command.
 *   5. a chain in progress on the channel that this command does not continue → 6883 (chain dropped);
 *      GET RESPONSE does not break a chain (it fetches the answer to the last part).
 *   6. OS commands (interindustry class, no SM): SELECT by AID, MANAGE CHANNEL, GET RESPONSE; and
 *      GET DATA (00 or 80 class, no SM) for the card-wide tags.
 *   7. the channel's selected applet, through its chaining mode.
 *   8. no applet: SM class → 6882, SELECT → 6A82, GET DATA → 6A88, anything else → 6D00.
 * The answer to an unwrapped command is wrapped by the session (R-MAC, R-ENC per the level); the
 * result goes through `deliver`: at most Ne bytes now, the rest behind 61xx for GET RESPONSE.
 * What ends a session: INITIALIZE UPDATE, a verification failure, deselection of the channel's applet
 * (any SELECT that deselects it, reselection included), MANAGE CHANNEL close, power off, reset.
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
import { kddFromSerial } from '../../src/crypto/diversify.js';
import type { Scp03CardSession } from '../security/scp03-card.js';
import {
  SecurityDomainApplet,
  createDomainSession,
  domainMatchesConfig,
  resolveSecurityDomains,
  zeroizeResolved,
  SD_KEY_NAMES,
  type DomainScope,
  type ResolvedDomain,
  type SecurityDomainConfig,
} from './security-domain.js';

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

const INS = { SELECT: 0xa4, MANAGE_CHANNEL: 0x70, GET_RESPONSE: 0xc0, GET_DATA: 0xca, INITIALIZE_UPDATE: 0x50, EXTERNAL_AUTHENTICATE: 0x82 } as const;
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
  /**
   * AID of the security domain the applet is associated with (one of `securityDomains`): its
   * secure channel protects the applet's commands. Default: the issuer security domain, if the card
   * has one; null: none (protected commands reach the applet as they came, as on a card without
   * domains).
   */
  securityDomain?: Uint8Array | null;
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
  /**
   * GlobalPlatform security domains (ISD and supplementary), installed once like applets, selectable
   * by their AID, registered after the applets. See security-domain.ts and applets-spec/security.md,
   * "Card-side security domain".
   */
  securityDomains?: SecurityDomainConfig[];
}

interface Registered {
  readonly aid: Uint8Array;
  readonly aidHex: string;
  readonly name: string;
  readonly applet: Applet;
  readonly selectable: boolean;
  readonly isDefault: boolean;
  readonly keys: Record<string, Uint8Array>;
  /** Hex AID of the security domain whose secure channel protects this entry (its own, for a domain). */
  readonly domainHex: string | null;
  /** Set for a security domain's own entry. */
  readonly domainConfig: ResolvedDomain | null;
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

/** The SCP03 card session of a logical channel, with the domain it belongs to. */
interface ChannelSecurity {
  readonly domain: Registered;
  readonly session: Scp03CardSession;
}

interface ChannelState {
  selected: Registered | null;
  pending: PendingResponse | null;
  chain: Chain | null;
  /** Created by the first INITIALIZE UPDATE; ended (keys zeroized) when the selection changes. */
  secure: ChannelSecurity | null;
}

/** What the secure-channel step decided: answer now, or go on with the (unwrapped) command. */
type GateResult = { answer: ResponseApdu } | { cmd: CommandApdu; session: Scp03CardSession | null };

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
  /** Security domains by hex AID. */
  private readonly domains: ReadonlyMap<string, Registered>;
  /** Key diversification data every domain answers in INITIALIZE UPDATE: kddFromSerial(serial). */
  private readonly kdd: Uint8Array;

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
    const domains = resolveSecurityDomains(options.securityDomains ?? []);
    try {
      this.registry = this.register(options.applets, domains);
      const defaults = this.registry.filter((e) => e.isDefault);
      if (defaults.length > 1) throw new BadInputError(`at most one default applet, got ${defaults.map((e) => e.name).join(', ')}`);
      this.defaultApplet = defaults[0];
      this.domains = new Map(this.registry.filter((e) => e.domainConfig !== null).map((e) => [e.aidHex, e]));
      this.kdd = kddFromSerial(this.serial);
      this.cardTags = this.buildCardTags(options.productionData ?? {});
      for (const entry of this.registry) this.installOnce(entry);
    } finally {
      // Installed (or refused): the card image holds the keys now, nothing else needs these copies.
      zeroizeResolved(domains);
    }
    this.powerOn();
  }

  get atr(): Uint8Array {
    return this.atrBytes.slice();
  }

  powerOn(): void {
    this.dropVolatileState();
    this.powered = true;
    this.channels[0] = { selected: null, pending: null, chain: null, secure: null };
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

  private register(entries: AppletEntry[], domains: readonly ResolvedDomain[]): Registered[] {
    if (!Array.isArray(entries)) throw new BadInputError('applets: expected an array');
    const out: Registered[] = [];
    const issuer = domains.find((d) => d.issuer);
    for (const [i, e] of entries.entries()) {
      assertBytes(e.aid, `applets[${i}].aid`);
      assertInt(e.aid.length, `applets[${i}].aid length`, 5, 16);
      if (typeof e.name !== 'string' || e.name.length === 0) throw new BadInputError(`applets[${i}].name: expected a non-empty string`);
      if (typeof e.applet?.process !== 'function') throw new BadInputError(`applets[${i}] (${e.name}): applet has no process()`);
      const aidHex = toHex(e.aid);
      const twin = out.find((r) => r.aidHex === aidHex);
      if (twin) throw new BadInputError(`applets[${i}] (${e.name}): AID ${aidHex} is already used by ${twin.name}`);
      for (const [name, key] of Object.entries(e.keys ?? {})) assertBytes(key, `applets[${i}].keys.${name}`);
      let domainHex: string | null = issuer?.aidHex ?? null;
      if (e.securityDomain === null) domainHex = null;
      else if (e.securityDomain !== undefined) {
        assertBytes(e.securityDomain, `applets[${i}].securityDomain`);
        const wanted = toHex(e.securityDomain);
        if (!domains.some((d) => d.aidHex === wanted)) {
          throw new BadInputError(`applets[${i}] (${e.name}): securityDomain ${wanted} is not one of the card's security domains`);
        }
        domainHex = wanted;
      }
      out.push({
        aid: e.aid.slice(),
        aidHex,
        name: e.name,
        applet: e.applet,
        selectable: e.selectable !== false,
        isDefault: e.default === true,
        keys: { ...(e.keys ?? {}) },
        domainHex,
        domainConfig: null,
      });
    }
    for (const d of domains) {
      const twin = out.find((r) => r.aidHex === d.aidHex);
      if (twin) throw new BadInputError(`security domain ${d.name}: AID ${d.aidHex} is already used by ${twin.name}`);
      out.push({
        aid: d.aid.slice(),
        aidHex: d.aidHex,
        name: d.name,
        applet: new SecurityDomainApplet({ kvn: d.keys.kvn, i: d.i }),
        selectable: true,
        isDefault: false,
        keys: { [SD_KEY_NAMES.enc]: d.keys.enc, [SD_KEY_NAMES.mac]: d.keys.mac, [SD_KEY_NAMES.dek]: d.keys.dek },
        domainHex: d.aidHex,
        domainConfig: d,
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
    if (this.store.get(marker) !== undefined) {
      if (entry.domainConfig && !domainMatchesConfig(this.domainScope(entry, () => undefined), entry.domainConfig)) {
        this.warn(`security domain ${entry.name}: the card image holds other keys, KVN or i than configured; the card image wins`);
      }
      return;
    }
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
    for (const state of this.channels) if (state) this.endSession(state);
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
    const wireCla = decodeCla(bytes[0]);
    if (wireCla.channel < 0) return status(SW.CLA_NOT_SUPPORTED);
    let wire: CommandApdu;
    try {
      wire = CommandApdu.decode(bytes);
    } catch {
      return status(SW.WRONG_LENGTH);
    }
    const insHigh = wire.ins & 0xf0;
    if (insHigh === 0x60 || insHigh === 0x90) return status(SW.INS_NOT_SUPPORTED);
    const ch = wireCla.channel;
    if (ch >= this.maxChannels) return status(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);

    const osClass = !wireCla.proprietary && wireCla.secureMessaging === 'none';
    const state = this.channels[ch];
    if (state && !(osClass && wire.ins === INS.GET_RESPONSE)) state.pending = null;
    const selectByAid = osClass && wire.ins === INS.SELECT && wire.p1 === SELECT_BY_NAME;
    if (!state) {
      return selectByAid && !wireCla.chaining ? this.select(ch, wire, epoch) : status(SW.LOGICAL_CHANNEL_NOT_SUPPORTED);
    }
    // SELECT by AID, MANAGE CHANNEL and GET RESPONSE are transport: never protected, never seen by the
    // secure channel (GET RESPONSE serves the already wrapped answer; see card-os.md).
    const transport = osClass && (selectByAid || wire.ins === INS.MANAGE_CHANNEL || wire.ins === INS.GET_RESPONSE);

    let cmd = wire;
    let cla = wireCla;
    let session: Scp03CardSession | null = null;
    const domain = state.selected?.domainHex ? this.domains.get(state.selected.domainHex) : undefined;
    if (domain && !transport) {
      const gate = this.secureChannel(ch, state, domain, wire, wireCla, epoch);
      if ('answer' in gate) return this.deliver(state, gate.answer.data, gate.answer.sw, wire.ne);
      cmd = gate.cmd;
      cla = decodeCla(cmd.cla);
      session = gate.session;
    }
    // The answer to an unwrapped command leaves wrapped (R-MAC, R-ENC as the level says), then Le applies.
    const finish = (r: ResponseApdu): ResponseApdu => {
      const out = session !== null && session.state === 'authenticated' ? session.wrapResponse(r) : r;
      return this.deliver(state, out.data, out.sw, wire.ne);
    };

    // GET RESPONSE fetches the answer to a chain part (under R-MAC it carries data): it does not break the chain.
    const fetching = transport && wire.ins === INS.GET_RESPONSE;
    if (state.chain && !fetching && !this.continuesChain(state.chain, cmd)) {
      state.chain = null;
      return finish(status(SW.LAST_COMMAND_OF_CHAIN_EXPECTED));
    }
    if (transport) {
      if (cla.chaining) return status(SW.COMMAND_CHAINING_NOT_SUPPORTED);
      if (selectByAid) return this.select(ch, cmd, epoch);
      if (cmd.ins === INS.MANAGE_CHANNEL) return this.manageChannel(ch, cmd, epoch);
      return this.getResponse(state, cmd);
    }
    const tag = (cmd.p1 << 8) | cmd.p2;
    if (cmd.ins === INS.GET_DATA && cla.secureMessaging === 'none' && this.cardTags.has(tag)) {
      if (cla.chaining) return finish(status(SW.COMMAND_CHAINING_NOT_SUPPORTED));
      if (cmd.nc > 0) return finish(status(SW.WRONG_LENGTH));
      return finish(new ResponseApdu(this.cardTags.get(tag) as Uint8Array, SW.OK));
    }
    if (state.selected) {
      const security = session !== null && session.state === 'authenticated' ? this.statusOf(session, domain as Registered) : NO_SECURE_CHANNEL;
      return finish(await this.dispatch(ch, state, state.selected, cmd, cla, epoch, security));
    }
    if (cla.secureMessaging !== 'none') return status(SW.SECURE_MESSAGING_NOT_SUPPORTED);
    if (cmd.ins === INS.SELECT) return status(SW.FILE_NOT_FOUND);
    if (cmd.ins === INS.GET_DATA) return status(SW.REFERENCED_DATA_NOT_FOUND);
    return status(SW.INS_NOT_SUPPORTED);
  }

  // ---- secure channel -----------------------------------------------------------------------------

  /**
   * The security domain's part of a command on a channel whose applet belongs to `domain` (GP's
   * SecureChannel.processSecurity + unwrap, done by the OS for every applet):
   * - INITIALIZE UPDATE (proprietary class, no SM, no chaining, INS 50): to the channel's session,
   *   created on first use; any session the channel had ends.
   * - EXTERNAL AUTHENTICATE (proprietary class with SM, INS 82) while no session is authenticated: to
   *   the session (6985 when there is none). Inside an authenticated session INS 82 is an ordinary
   *   protected command for the applet.
   * - Either of them while a chain is in progress: 6883, chain dropped.
   * - Any other command: no session → plain commands go on, protected ones 6982; otherwise the
   *   session unwraps it (a pending handshake is abandoned; in an authenticated session a C-MAC
   *   failure, a replay, or a command without the protection the level requires answers 6982 and ends
   *   the session).
   */
  private secureChannel(ch: number, state: ChannelState, domain: Registered, wire: CommandApdu, cla: ClaInfo, epoch: number): GateResult {
    const plainProprietary = cla.proprietary && !cla.chaining && cla.secureMessaging === 'none';
    const protectedProprietary = cla.proprietary && !cla.chaining && cla.secureMessaging !== 'none';
    const current = state.secure?.session;
    const initializeUpdate = plainProprietary && wire.ins === INS.INITIALIZE_UPDATE;
    const externalAuthenticate = protectedProprietary && wire.ins === INS.EXTERNAL_AUTHENTICATE && current?.state !== 'authenticated';
    if (initializeUpdate || externalAuthenticate) {
      if (state.chain) {
        state.chain = null;
        return { answer: status(SW.LAST_COMMAND_OF_CHAIN_EXPECTED) };
      }
      if (externalAuthenticate) return { answer: current ? current.externalAuthenticate(wire) : status(SW.CONDITIONS_NOT_SATISFIED) };
      try {
        const session = current ?? this.openSession(state, domain, epoch);
        return { answer: session.initializeUpdate(wire) };
      } catch (e) {
        if (e instanceof SwError) return { answer: status(e.sw) };
        throw e;
      }
    }
    if (!current) return cla.secureMessaging === 'none' ? { cmd: wire, session: null } : { answer: status(SW.SECURITY_STATUS_NOT_SATISFIED) };
    const was = current.state;
    const plain = current.unwrapCommand(wire);
    if (plain instanceof ResponseApdu) {
      if (was === 'authenticated') this.warn(`secure channel of ${domain.name} on channel ${ch} ended: command failed verification`, { command: toHex(wire.encode()) });
      return { answer: plain };
    }
    return { cmd: plain, session: current.state === 'authenticated' ? current : null };
  }

  private openSession(state: ChannelState, domain: Registered, epoch: number): Scp03CardSession {
    const session = createDomainSession(this.domainScope(domain, this.guardFor(epoch)), domain.aid, this.kdd);
    state.secure = { domain, session };
    return session;
  }

  /** Ends the channel's secure channel, if any: session and static key copies zeroized. */
  private endSession(state: ChannelState): void {
    const secure = state.secure;
    state.secure = null;
    secure?.session.destroy();
  }

  private statusOf(session: Scp03CardSession, domain: Registered): SecureChannelStatus {
    return Object.freeze({ level: session.securityLevel ?? 0, authenticated: true, domain: domain.aidHex });
  }

  /** The domain's own records and key slot: the OS's view, never handed to an applet. */
  private domainScope(domain: Registered, guard: () => void): DomainScope {
    return {
      records: new ScopedStore(this.store, STORE_PREFIX.data(domain.aidHex), guard),
      keys: new KeySlot(new ScopedStore(this.store, STORE_PREFIX.keys(domain.aidHex), guard)),
    };
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
    const state: ChannelState = this.channels[ch] ?? { selected: null, pending: null, chain: null, secure: null };
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
    if (state) this.endSession(state);
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
    const state: ChannelState = { selected: null, pending: null, chain: null, secure: null };
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

  /** The applet's answer to `cmd` (or the OS's, for chain parts and chaining errors), before Le applies. */
  private async dispatch(
    ch: number,
    state: ChannelState,
    entry: Registered,
    cmd: CommandApdu,
    cla: ClaInfo,
    epoch: number,
    security: SecureChannelStatus,
  ): Promise<ResponseApdu> {
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
    return this.callProcess(entry, apdu, ch, epoch, security);
  }

  private async callProcess(entry: Registered, apdu: CommandApdu, ch: number, epoch: number, security: SecureChannelStatus): Promise<ResponseApdu> {
    const ctx = this.contextFor(entry, this.guardFor(epoch), security);
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
