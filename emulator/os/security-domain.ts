/**
 * GlobalPlatform security domains on the emulated card: the Issuer Security Domain (ISD) and
 * supplementary security domains, one per service provider. Specified in applets-spec/security.md,
 * "Card-side security domain"; the routing of secure-channel commands is the OS's
 * (card-os.ts, applets-spec/card-os.md "Secure channel").
 *
 * A security domain is registered like an applet (selectable by its AID, multiselectable) and owns,
 * in its own persistent scope, what GlobalPlatform puts in a domain:
 *
 *   where                         | record            | content
 *   ------------------------------|-------------------|---------------------------------------------
 *   key/<aid hex>/ (its key slot) | enc, mac, dek     | the static key set, AES-128/192/256, all one length
 *   app/<aid hex>/ (its records)  | kvn               | 1 byte, the key version number (01..FF)
 *                                 | scp03-i           | 1 byte, the SCP03 i parameter
 *                                 | sequence-counter  | 3 bytes big-endian, the SCP03 sequence counter
 *
 * Everything is written once, at install, in the install transaction; afterwards the card image is
 * the truth (a card rebuilt with other keys in its configuration keeps the keys it holds, as a real
 * card does until a PUT KEY, and the OS logs the difference). The sequence counter is the only
 * record that changes: once per INITIALIZE UPDATE, in a store transaction of its own that commits
 * before the challenge is derived from the new value (see Scp03CardSession), so a power cut can skip
 * a value but never let a challenge be used twice.
 *
 * Applets never see any of this: they are associated with a domain (AppletEntry.securityDomain) and
 * read the state of their channel's secure channel in ctx.security; the records above are outside
 * every applet's scope (the firewall of scoped-store.ts).
 */
import type { CommandApdu } from '../../src/apdu/command.js';
import {
  assertStaticKeys,
  decodeIParameter,
  decodeSequenceCounter,
  encodeSequenceCounter,
  type StaticKeys,
} from '../../src/crypto/scp03.js';
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { bytesEqual, fromHex, hexByte, toHex, zeroize } from '../../src/util/bytes.js';
import { BadInputError } from '../../src/util/errors.js';
import { Scp03CardSession } from '../security/scp03-card.js';
import type { PersistentStore } from '../store/types.js';
import { SwError, type Applet, type AppletContext } from './applet.js';
import type { KeySlot } from './scoped-store.js';
import { SW } from './sw.js';

/** The GlobalPlatform default AID of the Issuer Security Domain. */
export const GP_ISD_AID: Uint8Array = fromHex('A000000151000000');

/**
 * The i parameter a domain uses unless configured: 70 = pseudo-random card challenge (sequence
 * counter), R-MAC and R-ENC supported, S8. It admits every security level (00, 01, 03, 11, 13, 33).
 */
export const DEFAULT_SCP03_I = 0x70;

/** Names of a domain's records in its own scope (see the module comment). */
export const SD_RECORDS = { kvn: 'kvn', i: 'scp03-i', sequenceCounter: 'sequence-counter' } as const;
/** Names of a domain's keys in its key slot. */
export const SD_KEY_NAMES = { enc: 'enc', mac: 'mac', dek: 'dek' } as const;

/** One security domain as configured on a card (CardOsOptions.securityDomains). */
export interface SecurityDomainConfig {
  /** 5 to 16 bytes, unique on the card (applets included). The ISD is usually GP_ISD_AID. */
  aid: Uint8Array;
  name: string;
  /** Static keys: ENC, MAC, DEK all 16, 24 or 32 bytes, KVN 01..FF. Copied; the caller keeps its arrays. */
  keys: StaticKeys;
  /** SCP03 i parameter; default DEFAULT_SCP03_I (70). R-ENC support requires R-MAC support. */
  i?: number;
  /**
   * This domain is the Issuer Security Domain, the one applets belong to unless they name another.
   * At most one. When no domain says so, the domain at GP_ISD_AID (if any) is the ISD.
   */
  issuer?: boolean;
}

/** A validated domain configuration, with its own copies of the keys. */
export interface ResolvedDomain {
  readonly aid: Uint8Array;
  readonly aidHex: string;
  readonly name: string;
  readonly keys: StaticKeys;
  readonly i: number;
  readonly issuer: boolean;
}

/**
 * Validates a card's domain list and decides which is the ISD. Refuses (BadInputError) a bad AID,
 * name, key set or i parameter, two domains on one AID, and more than one `issuer: true`.
 */
export function resolveSecurityDomains(configs: readonly SecurityDomainConfig[]): ResolvedDomain[] {
  if (!Array.isArray(configs)) throw new BadInputError('securityDomains: expected an array');
  const out: ResolvedDomain[] = [];
  for (const [n, c] of configs.entries()) {
    const where = `securityDomains[${n}]`;
    if (typeof c !== 'object' || c === null) throw new BadInputError(`${where}: expected { aid, name, keys, i? }`);
    assertBytes(c.aid, `${where}.aid`);
    assertInt(c.aid.length, `${where}.aid length`, 5, 16);
    if (typeof c.name !== 'string' || c.name.length === 0) throw new BadInputError(`${where}.name: expected a non-empty string`);
    assertStaticKeys(c.keys);
    assertInt(c.keys.kvn, `${where}.keys.kvn`, 1, 0xff);
    if (c.keys.enc.length !== c.keys.mac.length || c.keys.enc.length !== c.keys.dek.length) {
      throw new BadInputError(
        `${where}.keys: ENC, MAC and DEK must have one length, got ${c.keys.enc.length}, ${c.keys.mac.length}, ${c.keys.dek.length} bytes`,
      );
    }
    const i = c.i ?? DEFAULT_SCP03_I;
    const ip = decodeIParameter(i);
    if (ip.rEncSupported && !ip.rMacSupported) throw new BadInputError(`${where}.i = ${hexByte(i)}: R-ENC support requires R-MAC support`);
    const aidHex = toHex(c.aid);
    const twin = out.find((d) => d.aidHex === aidHex);
    if (twin) throw new BadInputError(`${where} (${c.name}): AID ${aidHex} is already the domain ${twin.name}`);
    out.push({
      aid: c.aid.slice(),
      aidHex,
      name: c.name,
      keys: { enc: c.keys.enc.slice(), mac: c.keys.mac.slice(), dek: c.keys.dek.slice(), kvn: c.keys.kvn },
      i,
      issuer: c.issuer === true,
    });
  }
  const flagged = out.filter((d) => d.issuer);
  if (flagged.length > 1) throw new BadInputError(`at most one issuer security domain, got ${flagged.map((d) => d.name).join(', ')}`);
  if (flagged.length === 0) {
    const byAid = out.findIndex((d) => bytesEqual(d.aid, GP_ISD_AID));
    if (byAid >= 0) out[byAid] = { ...out[byAid], issuer: true };
  }
  return out;
}

/** Wipes the key copies of resolved domains (after install, nothing needs them). */
export function zeroizeResolved(domains: readonly ResolvedDomain[]): void {
  for (const d of domains) zeroize(d.keys.enc, d.keys.mac, d.keys.dek);
}

/**
 * The applet face of a security domain: what it answers when it is selected and a command reaches
 * it (after the OS has taken INITIALIZE UPDATE and EXTERNAL AUTHENTICATE, and unwrapped protected
 * commands). Card-wide GET DATA is the OS's; any other GET DATA answers 6A88, everything else 6D00.
 * Its install() writes the domain's records; its keys are written by the OS from the entry's keys.
 */
export class SecurityDomainApplet implements Applet {
  readonly multiSelectable = true;
  readonly #kvn: number;
  readonly #i: number;

  constructor(setup: { kvn: number; i: number }) {
    assertInt(setup.kvn, 'key version number', 1, 0xff);
    decodeIParameter(setup.i);
    this.#kvn = setup.kvn;
    this.#i = setup.i;
  }

  install(ctx: AppletContext): void {
    ctx.store.put(SD_RECORDS.kvn, Uint8Array.of(this.#kvn));
    ctx.store.put(SD_RECORDS.i, Uint8Array.of(this.#i));
    ctx.store.put(SD_RECORDS.sequenceCounter, encodeSequenceCounter(0));
  }

  process(_ctx: AppletContext, apdu: CommandApdu): never {
    throw new SwError(apdu.ins === GET_DATA ? SW.REFERENCED_DATA_NOT_FOUND : SW.INS_NOT_SUPPORTED);
  }
}

const GET_DATA = 0xca;

/** The domain's persistent scope, as the OS hands it to createDomainSession. */
export interface DomainScope {
  /** The domain's records (app/<aid hex>/). */
  records: PersistentStore;
  /** The domain's key slot (key/<aid hex>/). */
  keys: KeySlot;
}

function readByte(records: PersistentStore, name: string): number {
  const v = records.get(name);
  if (v === undefined || v.length !== 1) throw new SwError(SW.MEMORY_FAILURE, `security domain record "${name}" missing or malformed`);
  return v[0];
}

/**
 * An SCP03 card session for one logical channel, over the domain's persisted keys, i parameter and
 * sequence counter. The session holds its own copies of the keys (zeroized by its destroy()); the
 * copies read here are zeroized before returning. A missing or malformed record is a memory
 * failure (SwError 6581).
 */
export function createDomainSession(scope: DomainScope, aid: Uint8Array, keyDiversificationData: Uint8Array): Scp03CardSession {
  const { records, keys } = scope;
  const kvn = readByte(records, SD_RECORDS.kvn);
  const i = readByte(records, SD_RECORDS.i);
  const enc = keys.get(SD_KEY_NAMES.enc);
  const mac = keys.get(SD_KEY_NAMES.mac);
  const dek = keys.get(SD_KEY_NAMES.dek);
  try {
    if (!enc || !mac || !dek) throw new SwError(SW.MEMORY_FAILURE, 'security domain keys missing');
    return new Scp03CardSession({
      keys: { enc, mac, dek, kvn },
      i,
      keyDiversificationData,
      aid,
      sequenceCounter: {
        get: () => {
          const v = records.get(SD_RECORDS.sequenceCounter);
          if (v === undefined || v.length !== 3) throw new SwError(SW.MEMORY_FAILURE, 'sequence counter record missing or malformed');
          return decodeSequenceCounter(v);
        },
        // Its own transaction: committed (durable) before the session derives the challenge from it.
        set: (value: number) => {
          records.begin();
          records.put(SD_RECORDS.sequenceCounter, encodeSequenceCounter(value));
          records.commit();
        },
      },
    });
  } finally {
    for (const k of [enc, mac, dek]) if (k) zeroize(k);
  }
}

/** The card image holds the configured keys, KVN and i (the OS warns when it does not). */
export function domainMatchesConfig(scope: DomainScope, configured: ResolvedDomain): boolean {
  const stored = [scope.keys.get(SD_KEY_NAMES.enc), scope.keys.get(SD_KEY_NAMES.mac), scope.keys.get(SD_KEY_NAMES.dek)];
  const kvn = scope.records.get(SD_RECORDS.kvn);
  const i = scope.records.get(SD_RECORDS.i);
  const wanted = [configured.keys.enc, configured.keys.mac, configured.keys.dek];
  const same =
    stored.every((k, n) => k !== undefined && bytesEqual(k, wanted[n])) &&
    kvn !== undefined && kvn.length === 1 && kvn[0] === configured.keys.kvn &&
    i !== undefined && i.length === 1 && i[0] === configured.i;
  for (const k of stored) if (k) zeroize(k);
  return same;
}
