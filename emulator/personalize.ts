/**
 * Issuance of an e-money purse, as a card bureau runs it (applets-spec/emoney-purse.md, "Issuance").
 *
 * The bureau holds the issuer's purse master key; the card never sees it. For each card:
 *
 *   1. SELECT the purse (00 A4 04 0C 0A F0 68 69 6C 74 50 55 52 53 45).
 *   2. Open an SCP03 session with the card's security domain of the e-money provider, at a level
 *      with C-MAC and C-DECRYPTION (03, 13 or 33): PERSONALIZE carries the purse key and the applet
 *      refuses it in any weaker channel (6982).
 *   3. READ STATUS: the card must be in the issuance state (07); its serial is read here.
 *   4. PERSONALIZE 01: currency, maximum balance, maximum per transaction.
 *   5. PERSONALIZE 02: the purse key = purseCardKey(master, serial), with its key check value.
 *   6. LOCK: the purse becomes active (0F) with counter 0, balance 0, an empty log; personalization
 *      is refused from then on (6985).
 *   7. READ STATUS again, to check.
 *
 * Steps 1 and 2 are the bureau's channel stack (the emulator does not import the reader layer):
 * `personalizePurse` runs 3 to 7 on a channel that already carries the session.
 * `purseIssuanceCommands` gives the APDUs of 4 to 6, for scripts and for reading.
 */
import type { CardChannel } from '../src/reader/channel.js';
import { CommandApdu } from '../src/apdu/command.js';
import { ResponseApdu } from '../src/apdu/response.js';
import { StatusWordError } from '../src/apdu/sw.js';
import { BadInputError, ProtocolError } from '../src/util/errors.js';
import { assertBytes, assertInt } from '../src/util/assert.js';
import { bytesEqual, concatBytes, toHex, zeroize } from '../src/util/bytes.js';
import { assertAesKey } from '../src/crypto/aes.js';
import { kcvHex, keyCheckValue } from '../src/crypto/diversify.js';
import { PURSE_U32_MAX, encodeCurrency, purseCardKey } from '../src/crypto/purse-certificate.js';
import {
  PERSONALIZE_OBJECT,
  PURSE_INS,
  PURSE_LIFE_CYCLE,
  decodeStatus,
  encodeParameters,
  type PurseStatus,
} from './applets/purse-records.js';

/** Class of the purse's commands before SCP03 wrapping. */
const CLA = 0x80;
const SW_OK = 0x9000;

/** What the bureau needs to issue one purse. */
export interface PurseIssuance {
  /** The issuer's purse master key, 16, 24 or 32 bytes. Stays with the bureau. */
  masterKey: Uint8Array;
  /** ISO 4217 numeric currency, 1..999 (392 = JPY). */
  currency: number;
  /** Maximum balance in minor units, 1..2^32-1. */
  maxBalance: number;
  /** Maximum debit in minor units, 1..maxBalance. */
  maxPerTransaction: number;
  /** The serial the bureau's order names; when given, the card's must be the same. */
  serial?: Uint8Array;
}

export interface IssuedPurse {
  serial: Uint8Array;
  /** Key check value of the purse key written, 6 hex digits: for the issuance record, never the key. */
  purseKeyKcv: string;
  status: PurseStatus;
}

function checkIssuance(i: PurseIssuance): void {
  assertAesKey(i.masterKey, 'purse master key');
  encodeCurrency(i.currency);
  assertInt(i.maxBalance, 'maximum balance', 1, PURSE_U32_MAX);
  assertInt(i.maxPerTransaction, 'maximum per transaction', 1, i.maxBalance);
  if (i.serial !== undefined) assertBytes(i.serial, 'serial');
}

/**
 * PERSONALIZE 01, PERSONALIZE 02, LOCK for the card `serial` (plain commands; they must travel in an
 * SCP03 session with C-DECRYPTION). The second one carries the purse key: zeroize its data when sent.
 */
export function purseIssuanceCommands(serial: Uint8Array, issuance: PurseIssuance): CommandApdu[] {
  checkIssuance(issuance);
  const key = purseCardKey(issuance.masterKey, serial);
  const keyData = concatBytes(key, keyCheckValue(key));
  zeroize(key);
  const commands = [
    new CommandApdu({
      cla: CLA,
      ins: PURSE_INS.PERSONALIZE,
      p1: 0,
      p2: PERSONALIZE_OBJECT.PARAMETERS,
      data: encodeParameters({ currency: issuance.currency, maxBalance: issuance.maxBalance, maxPerTransaction: issuance.maxPerTransaction }),
    }),
    new CommandApdu({ cla: CLA, ins: PURSE_INS.PERSONALIZE, p1: 0, p2: PERSONALIZE_OBJECT.PURSE_KEY, data: keyData }),
    new CommandApdu({ cla: CLA, ins: PURSE_INS.LOCK, p1: 0, p2: 0 }),
  ];
  zeroize(keyData);
  return commands;
}

async function send(channel: CardChannel, cmd: CommandApdu, what: string): Promise<ResponseApdu> {
  const bytes = cmd.encode();
  let resp: ResponseApdu;
  try {
    resp = ResponseApdu.decode(await channel.transmit(bytes));
  } finally {
    zeroize(bytes);
  }
  if (resp.sw !== SW_OK) throw new StatusWordError(resp.sw, { expected: [SW_OK], context: what });
  return resp;
}

async function readStatus(channel: CardChannel): Promise<PurseStatus> {
  const resp = await send(channel, new CommandApdu({ cla: CLA, ins: PURSE_INS.READ_STATUS, p1: 0, p2: 0, ne: 256 }), 'READ STATUS');
  return decodeStatus(resp.data) ?? fail(`READ STATUS: unreadable answer ${toHex(resp.data)}`);
}

function fail(message: string): never {
  throw new ProtocolError(message);
}

/**
 * Issues the purse selected on `secure`, a channel carrying an SCP03 session (C-MAC + C-DECRYPTION)
 * with the e-money provider's security domain: steps 3 to 7 of the module comment. Refuses a card
 * that is not in the issuance state or whose serial is not the one ordered (BadInputError); a status
 * word other than 9000 rejects with StatusWordError (code SW).
 */
export async function personalizePurse(secure: CardChannel, issuance: PurseIssuance): Promise<IssuedPurse> {
  checkIssuance(issuance);
  const before = await readStatus(secure);
  if (before.lifeCycle !== PURSE_LIFE_CYCLE.ISSUANCE) {
    throw new BadInputError(`purse ${toHex(before.serial)} is not in the issuance state (life cycle ${before.lifeCycle.toString(16).padStart(2, '0')}): it was issued already`);
  }
  if (issuance.serial !== undefined && !bytesEqual(issuance.serial, before.serial)) {
    throw new BadInputError(`the card's serial is ${toHex(before.serial)}, the order names ${toHex(issuance.serial)}`);
  }
  const key = purseCardKey(issuance.masterKey, before.serial);
  const kcv = kcvHex(key);
  zeroize(key);
  const names = ['PERSONALIZE 01 (parameters)', 'PERSONALIZE 02 (purse key)', 'LOCK'];
  const commands = purseIssuanceCommands(before.serial, issuance);
  try {
    for (const [i, cmd] of commands.entries()) await send(secure, cmd, names[i]);
  } finally {
    for (const cmd of commands) zeroize(cmd.data);
  }
  const after = await readStatus(secure);
  if (after.lifeCycle !== PURSE_LIFE_CYCLE.ACTIVE || after.counter !== 0 || after.balance !== 0 || after.currency !== issuance.currency) {
    throw new ProtocolError(`purse ${toHex(after.serial)}: after LOCK the card reports life cycle ${after.lifeCycle}, counter ${after.counter}, balance ${after.balance}`);
  }
  return { serial: before.serial, purseKeyKcv: kcv, status: after };
}
