/**
 * The card bureau: makes an issued e-money purse card, as a bureau would for an issuer
 * (applets-spec/emoney-purse.md "Issuance", applets-spec/security.md §4 "Personalisation").
 *
 * For one card order (serial, the e-money provider's master key set, the issuer's purse master key,
 * currency and limits):
 *
 *   1. Build the card: the e-money provider's supplementary security domain (EMONEY_SD_AID) holding
 *      the card keys diversifyStaticKeys(master, kddFromSerial(serial)) (never the master keys), the
 *      purse applet associated with it, optionally the issuer security domain with the public GP
 *      TEST KEYS and other applets. The card image is a file (tear-safe) or a given store.
 *   2. SELECT the purse, READ STATUS in the clear: a purse already ACTIVE was issued before (a
 *      re-run on the same image): nothing more is sent, the card is returned as it is.
 *   3. Otherwise open an SCP03 session (level 33) with the same card keys and run the issuance
 *      sequence (personalizePurse: READ STATUS, PERSONALIZE 01, PERSONALIZE 02 with the purse key
 *      purseCardKey(issuerMaster, serial), LOCK, READ STATUS).
 *   4. Optionally LOAD an initial balance, authorized by the issuer's load cryptogram over the
 *      counter 0 the fresh purse shows (terminal id BUREAU01, sequence 1).
 *
 * The bureau holds the issuer's master key and the provider's master keys; what it keeps of a card
 * is the serial and the KCV of its purse key (the returned record), never a key.
 *
 * The secure channel is the bureau's channel stack, given by the caller (`openSecureChannel`, e.g.
 * src/reader/scp03.ts's openScp03): the emulator does not import the reader layer (DESIGN.md).
 */
import type { CardChannel } from '../src/reader/channel.js';
import { CommandApdu } from '../src/apdu/command.js';
import { ResponseApdu } from '../src/apdu/response.js';
import { StatusWordError } from '../src/apdu/sw.js';
import { assertStaticKeys, type SecurityLevel, type StaticKeys } from '../src/crypto/scp03.js';
import { assertAesKey } from '../src/crypto/aes.js';
import { diversifyStaticKeys, kddFromSerial } from '../src/crypto/diversify.js';
import { PURSE_U32_MAX, encodeCurrency, encodePurseDateTime, loadCryptogram, purseCardKey } from '../src/crypto/purse-certificate.js';
import { assertBytes, assertInt } from '../src/util/assert.js';
import { BadInputError, ProtocolError } from '../src/util/errors.js';
import { bytesEqual, concatBytes, fromHex, toHex, zeroize } from '../src/util/bytes.js';
import { makeCard, testKeysIsd, TEST_KEYS_ISD, type AppletChoice, type CardSpec, type EmulatedCard } from './make-card.js';
import { CardOs, type OsLogger } from './os/index.js';
import type { SecurityDomainConfig } from './os/security-domain.js';
import type { PersistentStore } from './store/types.js';
import { APPLET_CATALOG } from './catalog.js';
import { DEFAULT_ATR } from './atr.js';
import { InProcessChannel } from './in-process.js';
import { personalizePurse } from './personalize.js';
import {
  PURSE_AID,
  PURSE_INS,
  PURSE_LIFE_CYCLE,
  decodeStatus,
  encodeRequest,
  type PurseStatus,
} from './applets/purse-records.js';

/** The e-money provider's security domain on bureau cards: F0 + ASCII "hiltEMSD". */
export const EMONEY_SD_AID: Uint8Array = fromHex('F0 68 69 6C 74 45 4D 53 44');

/** The providers the bureau issues purses for: the security domain each one's applet lives in. */
export const PURSE_PROVIDERS = Object.freeze({
  emoney: Object.freeze({ aid: EMONEY_SD_AID, name: 'emoney' }),
});
export type PurseProvider = keyof typeof PURSE_PROVIDERS;

/** The catalog name of the purse applet. */
export const PURSE_APPLET = 'emoney-purse';

/** Who the initial load comes from, on the card's log: the bureau's own terminal id and sequence. */
export const BUREAU_TERMINAL_ID: Uint8Array = Uint8Array.from('BUREAU01', (c) => c.charCodeAt(0));
export const BUREAU_LOAD_SEQUENCE = 1;
/** The issuer reference of the initial load: 12 ASCII bytes. */
export const BUREAU_LOAD_REFERENCE: Uint8Array = Uint8Array.from('ISSUE0000001', (c) => c.charCodeAt(0));

/** The level the bureau's sessions run at: PERSONALIZE needs C-DECRYPTION, policy asks for 33. */
export const BUREAU_SECURITY_LEVEL = 0x33;

/** Opens an authenticated SCP03 session over `inner` with the given card keys (src/reader/scp03.ts openScp03 fits). */
export type SecureChannelOpener = (inner: CardChannel, options: { keys: StaticKeys; securityLevel: SecurityLevel }) => Promise<CardChannel>;

export interface PurseCardOrder {
  /** The card serial, 1..32 bytes (GET DATA DF01; the KDD is derived from it). */
  serial: Uint8Array;
  provider: PurseProvider;
  /** The provider's master key set: the card gets keys diversified from it. Not zeroized here. */
  masterKeys: StaticKeys;
  /** The issuer's purse master key (16, 24 or 32 bytes). Not zeroized here. */
  issuerMaster: Uint8Array;
  /** ISO 4217 numeric, 1..999 (392 = JPY). */
  currency: number;
  maxBalance: number;
  maxPerTransaction: number;
  /** Minor units loaded right after issuance (0 or absent: none), at most maxBalance. */
  initialLoad?: number;
  /** Card image file; absent (and no `store`): memory only. */
  image?: string;
  /** A store to put the card on instead of an image file (tests: a FileStore on a tearing medium). */
  store?: PersistentStore;
  /** Add the issuer security domain with the public GlobalPlatform TEST KEYS. Default false. */
  testKeys?: boolean;
  /** Other applets on the same card. */
  applets?: AppletChoice[];
  atr?: Uint8Array;
  maxChannels?: number;
  logger?: OsLogger;
  /** Date-time of the initial load (ms, UTC); default Date.now. */
  clock?: () => number;
}

/** What the bureau hands over: the card, and its issuance record. */
export interface BureauCard extends EmulatedCard {
  serial: Uint8Array;
  /** True when this call issued the purse; false when the image held an issued purse already. */
  issued: boolean;
  /** Minor units loaded by this call. */
  loaded: number;
  /** Key check value of the purse key written by this call (null when not issued now). */
  purseKeyKcv: string | null;
  /** READ STATUS at the end. */
  status: PurseStatus;
}

function checkOrder(order: PurseCardOrder): void {
  if (typeof order !== 'object' || order === null) throw new BadInputError('purse card order: expected an object');
  assertBytes(order.serial, 'serial');
  assertInt(order.serial.length, 'serial length', 1, 32);
  if (!Object.hasOwn(PURSE_PROVIDERS, order.provider)) {
    throw new BadInputError(`provider: expected one of ${Object.keys(PURSE_PROVIDERS).join(', ')}, got ${String(order.provider)}`);
  }
  assertStaticKeys(order.masterKeys);
  assertAesKey(order.issuerMaster, 'issuer purse master key');
  encodeCurrency(order.currency);
  assertInt(order.maxBalance, 'maximum balance', 1, PURSE_U32_MAX);
  assertInt(order.maxPerTransaction, 'maximum per transaction', 1, order.maxBalance);
  if (order.initialLoad !== undefined) assertInt(order.initialLoad, 'initial load', 0, order.maxBalance);
  if (order.image !== undefined && order.store !== undefined) throw new BadInputError('give an image file or a store, not both');
}

/** The card's e-money domain: the provider's keys diversified for this serial. The caller zeroizes them. */
function domainConfig(order: PurseCardOrder): SecurityDomainConfig {
  const p = PURSE_PROVIDERS[order.provider];
  return { aid: p.aid.slice(), name: p.name, keys: diversifyStaticKeys(order.masterKeys, kddFromSerial(order.serial)) };
}

function zeroizeDomain(d: SecurityDomainConfig): void {
  zeroize(d.keys.enc, d.keys.mac, d.keys.dek);
}

function appletChoices(order: PurseCardOrder): AppletChoice[] {
  const others = (order.applets ?? []).filter((a) => a.name !== PURSE_APPLET);
  return [...others, { name: PURSE_APPLET, securityDomain: PURSE_PROVIDERS[order.provider].aid.slice() }];
}

/**
 * Step 1 only: the card with its domains and applets, on its image file or store. A card whose
 * image already holds them keeps what it holds (the OS installs once). No APDU is sent.
 */
export function buildPurseCard(order: PurseCardOrder): EmulatedCard {
  checkOrder(order);
  const domain = domainConfig(order);
  try {
    const spec: CardSpec = {
      serial: order.serial.slice(),
      applets: appletChoices(order),
      image: order.image,
      atr: order.atr,
      maxChannels: order.maxChannels,
      logger: order.logger,
      securityDomains: [domain],
      testKeys: order.testKeys === true,
    };
    if (order.store === undefined) return makeCard(spec);
    return { os: cardOnStore(spec, order.store), store: order.store, spec };
  } finally {
    zeroizeDomain(domain);
  }
}

/** makeCard's card, on a store the caller opened (makeCard opens image files itself). */
function cardOnStore(spec: CardSpec, store: PersistentStore): CardOs {
  const domains = [...(spec.securityDomains ?? [])];
  if (spec.testKeys === true) domains.unshift(testKeysIsd());
  try {
    return new CardOs({
      atr: spec.atr ?? DEFAULT_ATR,
      serial: spec.serial,
      store,
      applets: spec.applets.map((choice) => {
        const entry = APPLET_CATALOG[choice.name];
        if (!entry) throw new BadInputError(`unknown applet "${choice.name}"`);
        return { aid: choice.aid ?? entry.aid, name: choice.name, applet: entry.create(), securityDomain: choice.securityDomain };
      }),
      maxChannels: spec.maxChannels,
      logger: spec.logger,
      securityDomains: domains,
      productionData: spec.testKeys === true ? { recognition: { secureChannel: { scp: 0x03, i: TEST_KEYS_ISD.i } } } : undefined,
    });
  } finally {
    if (spec.testKeys === true) zeroize(domains[0].keys.enc, domains[0].keys.mac, domains[0].keys.dek);
  }
}

const SELECT_PURSE = new CommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x0c, data: PURSE_AID });
const READ_STATUS = new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_STATUS, p1: 0, p2: 0, ne: 256 });

async function send(channel: CardChannel, cmd: CommandApdu, what: string): Promise<Uint8Array> {
  const resp = ResponseApdu.decode(await channel.transmit(cmd.encode()));
  if (resp.sw !== 0x9000) throw new StatusWordError(resp.sw, { expected: [0x9000], context: what });
  return resp.data;
}

async function readStatus(channel: CardChannel): Promise<PurseStatus> {
  const data = await send(channel, READ_STATUS, 'READ STATUS');
  return decodeStatus(data) ?? fail(`READ STATUS: unreadable answer ${toHex(data)}`);
}

function fail(message: string): never {
  throw new ProtocolError(message);
}

function utcParts(ms: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
  const d = new Date(ms);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
}

/** LOAD `amount` on the freshly issued purse (counter `counterBefore`), with the issuer's cryptogram. */
async function initialLoad(secure: CardChannel, order: PurseCardOrder, amount: number, counterBefore: number): Promise<void> {
  const request = {
    amount,
    currency: order.currency,
    terminalId: BUREAU_TERMINAL_ID,
    terminalSequence: BUREAU_LOAD_SEQUENCE,
    dateTime: encodePurseDateTime(utcParts((order.clock ?? Date.now)())),
  };
  const key = purseCardKey(order.issuerMaster, order.serial);
  const cryptogram = loadCryptogram(key, { serial: order.serial, counter: counterBefore, ...request, issuerReference: BUREAU_LOAD_REFERENCE });
  zeroize(key);
  const data = concatBytes(encodeRequest(request), BUREAU_LOAD_REFERENCE, cryptogram);
  await send(secure, new CommandApdu({ cla: 0x80, ins: PURSE_INS.LOAD, p1: 0, p2: 0, data, ne: 256 }), 'LOAD (initial balance)');
}

/** Steps 1 to 4 of the module comment. */
export async function issuePurseCard(order: PurseCardOrder, openSecureChannel: SecureChannelOpener): Promise<BureauCard> {
  if (typeof openSecureChannel !== 'function') throw new BadInputError('openSecureChannel: expected a function (e.g. openScp03)');
  const card = buildPurseCard(order);
  const channel = new InProcessChannel(card.os);
  await send(channel, SELECT_PURSE, 'SELECT purse');
  const before = await readStatus(channel);
  if (!bytesEqual(before.serial, order.serial)) throw new ProtocolError(`the card reports serial ${toHex(before.serial)}, the order names ${toHex(order.serial)}`);
  if (before.lifeCycle === PURSE_LIFE_CYCLE.ACTIVE) {
    await channel.reset();
    return { ...card, serial: order.serial.slice(), issued: false, loaded: 0, purseKeyKcv: null, status: before };
  }

  const domain = domainConfig(order);
  let secure: CardChannel;
  try {
    secure = await openSecureChannel(channel, { keys: domain.keys, securityLevel: BUREAU_SECURITY_LEVEL });
  } finally {
    zeroizeDomain(domain);
  }
  try {
    const issued = await personalizePurse(secure, {
      masterKey: order.issuerMaster,
      currency: order.currency,
      maxBalance: order.maxBalance,
      maxPerTransaction: order.maxPerTransaction,
      serial: order.serial,
    });
    const amount = order.initialLoad ?? 0;
    if (amount > 0) await initialLoad(secure, order, amount, issued.status.counter);
    const status = await readStatus(secure);
    if (status.balance !== amount) throw new ProtocolError(`after issuance the purse shows balance ${status.balance}, expected ${amount}`);
    // The card drops its session at the reset; closing the host side zeroizes the session keys.
    await channel.reset();
    return { ...card, serial: order.serial.slice(), issued: true, loaded: amount, purseKeyKcv: issued.purseKeyKcv, status };
  } finally {
    await secure.close();
  }
}
