/**
 * Shared pieces of the card-side secure channel tests: cards with the diagnostic applet behind a
 * security domain, a wire tap (records and tampers with what crosses between host and card), key
 * sets of each AES size, the levels.
 */
import { CardOs, type AppletEntry, type CardOsOptions } from '../../../emulator/os/card-os.js';
import type { SecurityDomainConfig } from '../../../emulator/os/security-domain.js';
import { GP_ISD_AID } from '../../../emulator/os/security-domain.js';
import { DiagnosticApplet, DIAGNOSTIC_AID, DIAGNOSTIC_NAME } from '../../../emulator/applets/diagnostic.js';
import { InProcessChannel } from '../../../emulator/in-process.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import type { PersistentStore } from '../../../emulator/store/types.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { SECURITY_LEVEL, type SecurityLevel, type StaticKeys } from '../../../src/crypto/scp03.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';

export const ATR = fromHex('3B 80 80 01 01');
export const SERIAL = fromHex('01 02 03 04 05 06 07 08');
export const ISD_AID = GP_ISD_AID;
export const ISD_HEX = toHex(GP_ISD_AID);
/** A supplementary security domain of a service provider. */
export const SSD_AID = fromHex('A0 00 00 01 51 53 50 01');
export const KVN = 0x30;

export const LEVELS: readonly SecurityLevel[] = [
  SECURITY_LEVEL.C_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC,
  SECURITY_LEVEL.C_MAC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC,
];
export const KEY_LENGTHS = [16, 24, 32] as const;

export const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** A key set of `length`-byte keys; `seed` makes distinct sets. */
export function keysOf(length: 16 | 24 | 32, seed = 0, kvn = KVN): StaticKeys {
  const k = (off: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (seed * 7 + off + i * 13) & 0xff);
  return { enc: k(0x10), mac: k(0x40), dek: k(0x70), kvn };
}

export const SELECT_DIAG = `00A4040C09${toHex(DIAGNOSTIC_AID)}`;
export const selectOn = (channel: number, aid: Uint8Array): string => `${hex2(channel)}A4040C${hex2(aid.length)}${toHex(aid)}`;

export interface CardSetup {
  keys?: StaticKeys;
  i?: number;
  /** Extra domains after the ISD. */
  more?: SecurityDomainConfig[];
  /** Applets; default: the diagnostic applet, associated with the ISD by default. */
  applets?: AppletEntry[];
  store?: PersistentStore;
  /** No ISD at all (securityDomains = more only). */
  noIsd?: boolean;
  logger?: CardOsOptions['logger'];
}

export function isdConfig(keys: StaticKeys, i = 0x70): SecurityDomainConfig {
  return { aid: ISD_AID, name: 'ISD', keys, i };
}

export function diagEntry(extra: Partial<AppletEntry> = {}): AppletEntry {
  return { aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet: new DiagnosticApplet({ sleep: async () => undefined }), ...extra };
}

export function buildCard(setup: CardSetup = {}): { card: CardOs; store: PersistentStore; keys: StaticKeys } {
  const keys = setup.keys ?? keysOf(16);
  const store = setup.store ?? new MemoryStore();
  const securityDomains = [...(setup.noIsd ? [] : [isdConfig(keys, setup.i)]), ...(setup.more ?? [])];
  const card = new CardOs({ atr: ATR, serial: SERIAL, store, applets: setup.applets ?? [diagEntry()], securityDomains, logger: setup.logger });
  return { card, store, keys };
}

/**
 * A channel between host and card that records every exchange and can tamper with the next
 * command or response once. `raw` is the in-process reader under it.
 */
export class Tap implements CardChannel {
  readonly raw: InProcessChannel;
  /** Every C-APDU that reached the card, upper-case hex. */
  readonly commands: string[] = [];
  /** Every R-APDU the card sent (before tampering), upper-case hex. */
  readonly responses: string[] = [];
  tamperCommand: ((bytes: Uint8Array) => Uint8Array) | undefined;
  tamperResponse: ((bytes: Uint8Array) => Uint8Array) | undefined;

  constructor(readonly card: CardOs) {
    this.raw = new InProcessChannel(card);
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    const tc = this.tamperCommand;
    this.tamperCommand = undefined;
    const sent = tc ? tc(command) : command;
    this.commands.push(toHex(sent).toUpperCase());
    const answer = await this.raw.transmit(sent);
    this.responses.push(toHex(answer).toUpperCase());
    const tr = this.tamperResponse;
    this.tamperResponse = undefined;
    return tr ? tr(answer) : answer;
  }

  reset(cold?: boolean): Promise<Uint8Array> {
    return this.raw.reset(cold);
  }

  close(): Promise<void> {
    return this.raw.close();
  }

  /** Sends hex straight to the card (not through any wrapper); resolves to upper-case hex. */
  async send(apduHex: string): Promise<string> {
    return toHex(await this.transmit(fromHex(apduHex))).toUpperCase();
  }
}

/** Flips one bit of the last byte of a command's data field (the end of its C-MAC). */
export function flipMacBit(bytes: Uint8Array): Uint8Array {
  const cmd = CommandApdu.decode(bytes);
  const data = cmd.data.slice();
  data[data.length - 1] ^= 0x01;
  return cmd.with({ data }).encode();
}

/** Flips one bit of the last data byte of a response (the end of its R-MAC), SW untouched. */
export function flipResponseMacBit(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out[out.length - 3] ^= 0x80;
  return out;
}

/** Upper-case hex without spaces. */
export function h(text: string): string {
  return text.replace(/\s+/g, '').toUpperCase();
}

export function hexOf(bytes: Uint8Array): string {
  return toHex(bytes).toUpperCase();
}
