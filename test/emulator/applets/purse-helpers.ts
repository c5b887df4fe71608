/**
 * Shared pieces of the purse tests: a card with the purse behind the e-money security domain (TEST
 * keys diversified for the card), a recording and tampering wire, SCP03 sessions through the real
 * host wrapper, issuance, and the issuer's side (purse key, load cryptograms, certificate checks).
 */
import { CardOs, type CardOsOptions } from '../../../emulator/os/card-os.js';
import { PurseApplet } from '../../../emulator/applets/purse.js';
import {
  PURSE_AID,
  PURSE_INS,
  decodeLogRecord,
  decodeStatus,
  encodeRequest,
  LOG_RECORD_LENGTH,
  type PurseLogRecord,
  type PurseStatus,
  type PurseTransactionRequest,
} from '../../../emulator/applets/purse-records.js';
import { personalizePurse, type IssuedPurse, type PurseIssuance } from '../../../emulator/personalize.js';
import { InProcessChannel } from '../../../emulator/in-process.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import type { PersistentStore } from '../../../emulator/store/types.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { openScp03, type Scp03Channel } from '../../../src/reader/scp03.js';
import { withGetResponse } from '../../../src/reader/get-response.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import type { SecurityLevel, StaticKeys } from '../../../src/crypto/scp03.js';
import { diversifyStaticKeys, kddFromSerial, testStaticKeys } from '../../../src/crypto/diversify.js';
import {
  encodePurseDateTime,
  loadCryptogram,
  purseCardKey,
  testPurseMasterKey,
  verifyPurseCertificate,
  type PurseTransactionType,
} from '../../../src/crypto/purse-certificate.js';
import { concatBytes, fromHex, toHex } from '../../../src/util/bytes.js';

export const ATR = fromHex('3B 80 80 01 01');
export const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
export const SERIAL = ascii('HILT0000001');
/** The e-money provider's security domain on the card: F0 + "hiltEMSD". */
export const EMONEY_SD_AID = fromHex('F0 68 69 6C 74 45 4D 53 44');
export const SELECT_PURSE = `00A4040C0A${toHex(PURSE_AID).toUpperCase()}`;
export const TERMINAL = ascii('TERM0001');
export const WHEN = encodePurseDateTime({ year: 2025, month: 3, day: 14, hour: 9, minute: 30, second: 15 });
export const JPY = 392;

export const ISSUANCE: PurseIssuance = { masterKey: testPurseMasterKey(), currency: JPY, maxBalance: 50_000, maxPerTransaction: 10_000 };

/** The card's SCP03 keys for the e-money domain: TEST master keys diversified with the card's KDD. */
export function cardKeys(serial: Uint8Array = SERIAL): StaticKeys {
  return diversifyStaticKeys(testStaticKeys('emoney'), kddFromSerial(serial));
}

/** The issuer's copy of the card's purse key. */
export function issuerPurseKey(serial: Uint8Array = SERIAL): Uint8Array {
  return purseCardKey(testPurseMasterKey(), serial);
}

export function purseCard(options: { store?: PersistentStore; serial?: Uint8Array; extra?: Partial<CardOsOptions> } = {}): { card: CardOs; store: PersistentStore } {
  const store = options.store ?? new MemoryStore();
  const serial = options.serial ?? SERIAL;
  const card = new CardOs({
    atr: ATR,
    serial,
    store,
    applets: [{ aid: PURSE_AID, name: 'emoney-purse', applet: new PurseApplet(), securityDomain: EMONEY_SD_AID }],
    securityDomains: [{ aid: EMONEY_SD_AID, name: 'emoney', keys: cardKeys(serial) }],
    ...options.extra,
  });
  return { card, store };
}

/** A wire that records what crosses it and can tamper with the next command once. */
export class Wire implements CardChannel {
  readonly raw: InProcessChannel;
  readonly log: { command: string; response: string }[] = [];
  tamperNext: ((bytes: Uint8Array) => Uint8Array) | undefined;

  constructor(readonly card: CardOs) {
    this.raw = new InProcessChannel(card);
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    const t = this.tamperNext;
    this.tamperNext = undefined;
    const sent = t ? t(command) : command;
    const answer = await this.raw.transmit(sent);
    this.log.push({ command: toHex(sent).toUpperCase(), response: toHex(answer).toUpperCase() });
    return answer;
  }

  reset(cold?: boolean): Promise<Uint8Array> {
    return this.raw.reset(cold);
  }

  close(): Promise<void> {
    return this.raw.close();
  }

  /** Hex in, upper-case hex out, straight to the card. */
  async send(apduHex: string): Promise<string> {
    return toHex(await this.transmit(fromHex(apduHex))).toUpperCase();
  }

  /** The last C-APDU that reached the card. */
  get lastCommand(): string {
    return this.log[this.log.length - 1]?.command ?? '';
  }
}

/** Flips one bit of the last byte of the command data (the end of the C-MAC). */
export function flipLastDataBit(bytes: Uint8Array): Uint8Array {
  const cmd = CommandApdu.decode(bytes);
  const data = cmd.data.slice();
  data[data.length - 1] ^= 0x01;
  return cmd.with({ data }).encode();
}

/** SELECTs the purse (plain) and opens an SCP03 session over the wire at `level`. */
export async function openSession(wire: Wire, level: SecurityLevel, serial: Uint8Array = SERIAL): Promise<Scp03Channel> {
  const sw = await wire.send(SELECT_PURSE);
  if (sw !== '9000') throw new Error(`SELECT purse answered ${sw}`);
  return openScp03(withGetResponse()(wire), { keys: cardKeys(serial), securityLevel: level });
}

/** Issues the purse on a fresh card (level 03 session, personalizePurse); the session ends with a reset. */
export async function issue(wire: Wire, issuance: PurseIssuance = ISSUANCE, serial: Uint8Array = SERIAL): Promise<IssuedPurse> {
  const secure = await openSession(wire, 0x03, serial);
  const issued = await personalizePurse(secure, issuance);
  await wire.reset();
  return issued;
}

export interface Answer {
  sw: number;
  data: Uint8Array;
}

export async function exchange(channel: CardChannel, apdu: CommandApdu): Promise<Answer> {
  const r = ResponseApdu.decode(await channel.transmit(apdu.encode()));
  return { sw: r.sw, data: r.data };
}

export const readStatusApdu = (cla = 0x80): CommandApdu => new CommandApdu({ cla, ins: PURSE_INS.READ_STATUS, p1: 0, p2: 0, ne: 256 });

export async function readStatus(channel: CardChannel): Promise<PurseStatus> {
  const a = await exchange(channel, readStatusApdu());
  if (a.sw !== 0x9000) throw new Error(`READ STATUS answered ${a.sw.toString(16)}`);
  const s = decodeStatus(a.data);
  if (!s) throw new Error(`READ STATUS: unreadable ${toHex(a.data)}`);
  return s;
}

export async function readLog(channel: CardChannel): Promise<PurseLogRecord[]> {
  const a = await exchange(channel, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: 0, p2: 0, ne: 65536 }));
  if (a.sw !== 0x9000) throw new Error(`READ LOG answered ${a.sw.toString(16)}`);
  const out: PurseLogRecord[] = [];
  for (let o = 0; o < a.data.length; o += LOG_RECORD_LENGTH) {
    const r = decodeLogRecord(a.data.subarray(o, o + LOG_RECORD_LENGTH));
    if (!r) throw new Error('READ LOG: unreadable record');
    out.push(r);
  }
  return out;
}

export function request(amount: number, terminalSequence: number, extra: Partial<PurseTransactionRequest> = {}): PurseTransactionRequest {
  return { amount, currency: JPY, terminalId: TERMINAL, terminalSequence, dateTime: WHEN, ...extra };
}

export function debitApdu(req: PurseTransactionRequest | Uint8Array, cla = 0x80): CommandApdu {
  const data = req instanceof Uint8Array ? req : encodeRequest(req);
  return new CommandApdu({ cla, ins: PURSE_INS.DEBIT, p1: 0, p2: 0, data, ne: 256 });
}

export const ISSUER_REFERENCE = ascii('000000123456');

/** What the issuer sends back for a load request: the cryptogram over the counter the card reported. */
export function issuerCryptogram(req: PurseTransactionRequest, counterBefore: number, options: { serial?: Uint8Array; reference?: Uint8Array; key?: Uint8Array } = {}): Uint8Array {
  return loadCryptogram(options.key ?? issuerPurseKey(options.serial), {
    serial: options.serial ?? SERIAL,
    counter: counterBefore,
    ...req,
    issuerReference: options.reference ?? ISSUER_REFERENCE,
  });
}

export function loadApdu(req: PurseTransactionRequest, cryptogram: Uint8Array, reference: Uint8Array = ISSUER_REFERENCE, cla = 0x80): CommandApdu {
  return new CommandApdu({ cla, ins: PURSE_INS.LOAD, p1: 0, p2: 0, data: concatBytes(encodeRequest(req), reference, cryptogram), ne: 256 });
}

/** LOAD with a genuine cryptogram for the card's current counter (read first). */
export async function load(channel: CardChannel, req: PurseTransactionRequest): Promise<Answer> {
  const before = await readStatus(channel);
  return exchange(channel, loadApdu(req, issuerCryptogram(req, before.counter)));
}

/** Checks a certificate as the issuer does, with its own copy of the purse key. */
export function issuerVerifies(type: PurseTransactionType, req: PurseTransactionRequest, counter: number, balanceAfter: number, certificate: Uint8Array, serial: Uint8Array = SERIAL): boolean {
  return verifyPurseCertificate(issuerPurseKey(serial), { serial, counter, type, ...req, balanceAfter }, certificate);
}

export function u32(n: number): string {
  return n.toString(16).padStart(8, '0').toUpperCase();
}

/** Where the purse's records sit in the card's store (card-os.md, "Applet firewall"). */
export const PURSE_SCOPE = `app/${toHex(PURSE_AID)}/`;

/**
 * Rewrites an active purse's records as if `counter` transactions had happened (the last 10 logged,
 * amount 1 each, terminal TERM9999): the only way to reach counter values near 2^32 in a test.
 */
export function forgeCounter(store: PersistentStore, counter: number, balance: number): void {
  store.begin();
  store.put(`${PURSE_SCOPE}state`, fromHex(`0F${u32(counter)}${u32(balance)}`));
  for (let c = Math.max(1, counter - 9); c <= counter; c++) {
    const record = `${u32(c)}01${u32(1)}0392${toHex(ascii('TERM9999'))}${u32(c)}${toHex(WHEN)}${u32(balance)}${'00'.repeat(16)}`;
    store.put(`${PURSE_SCOPE}log/${String(c % 10).padStart(2, '0')}`, fromHex(record));
  }
  store.commit();
}
