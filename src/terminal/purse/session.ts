/**
 * Opening the purse for a value transaction:
 *
 *   1. SELECT the purse (plain): 00 A4 04 0C 0A F0 68 69 6C 74 50 55 52 53 45 → 90 00
 *   2. mutual authentication with the card's e-money security domain, through the key store's
 *      ProviderDomain of the terminal's provider: INITIALIZE UPDATE, EXTERNAL AUTHENTICATE at
 *      level 33, the card keys being the provider's master keys diversified by the key
 *      diversification data the card answered INITIALIZE UPDATE with
 *   3. READ STATUS inside the session (R-MAC verified, so counter, balance and serial are the card's)
 *
 * and two checks on what the card said: the purse is active, and its serial is the one its keys
 * were diversified for (kddFromSerial(serial) = the KDD of INITIALIZE UPDATE), so a card cannot
 * authenticate with one card's keys and claim another serial.
 *
 * The session runs on the caller's channel and never closes it: `close()` ends the secure session
 * (its keys zeroized) and leaves the channel to the caller. Under the channel there must be no
 * wrapper that re-issues a command on 6Cxx (src/reader/scp03.ts).
 */
import type { CardChannel } from '../../reader/channel.js';
import type { Scp03Channel } from '../../reader/scp03.js';
import type { CommandApdu } from '../../apdu/command.js';
import { ResponseApdu } from '../../apdu/response.js';
import { StatusWordError } from '../../apdu/sw.js';
import { kddFromSerial } from '../../crypto/diversify.js';
import { ProtocolError } from '../../util/errors.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import type { ProviderDomain } from '../keystore.js';
import { PURSE_SECURITY_LEVEL } from './config.js';
import {
  decodeCardLog,
  decodeCardStatus,
  readLogCommand,
  readStatusCommand,
  selectPurse,
  type CardLogEntry,
  type CardStatus,
} from './protocol.js';

const SW_OK = 0x9000;

export interface PurseSession {
  /** The secure channel: plain purse commands in, plain answers out. */
  readonly secure: Scp03Channel;
  /** READ STATUS as the session began. */
  readonly status: CardStatus;
  /** Upper-case hex of the card serial (the journal's form). */
  readonly serialHex: string;
  /** Sends one plain command through the session. */
  exchange(cmd: CommandApdu): Promise<ResponseApdu>;
  readStatus(): Promise<CardStatus>;
  /** Every record of the card's log, newest first (none when the log is empty). */
  readLog(): Promise<CardLogEntry[]>;
  /** Ends the secure session (keys zeroized); the caller's channel stays open. Idempotent. */
  close(): Promise<void>;
}

/** The caller's channel, with a close() that leaves it open: the session only borrows it. */
function borrow(channel: CardChannel): CardChannel {
  return {
    transmit: (command) => channel.transmit(command),
    reset: (cold) => channel.reset(cold),
    close: async () => undefined,
  };
}

async function expectOk(channel: CardChannel, cmd: CommandApdu, what: string): Promise<ResponseApdu> {
  const resp = ResponseApdu.decode(await channel.transmit(cmd.encode()));
  if (resp.sw !== SW_OK) throw new StatusWordError(resp.sw, { expected: [SW_OK], context: what });
  return resp;
}

/** Steps 1 to 3 of the module comment. The status is returned whatever the life cycle; callers check `active`. */
export async function openPurseSession(channel: CardChannel, domain: ProviderDomain, provider: string): Promise<PurseSession> {
  await expectOk(channel, selectPurse(), 'SELECT purse');
  const secure = await domain.openScp03(borrow(channel), { provider, securityLevel: PURSE_SECURITY_LEVEL });
  try {
    const readStatus = async (): Promise<CardStatus> => decodeCardStatus((await expectOk(secure, readStatusCommand(), 'READ STATUS')).data);
    const status = await readStatus();
    const kdd = kddFromSerial(status.serial);
    if (!bytesEqual(kdd, secure.info.keyDiversificationData)) {
      throw new ProtocolError(`card serial ${toHex(status.serial).toUpperCase()} is not the one its secure-channel keys were diversified for`);
    }
    return {
      secure,
      status,
      serialHex: toHex(status.serial).toUpperCase(),
      exchange: async (cmd) => ResponseApdu.decode(await secure.transmit(cmd.encode())),
      readStatus,
      readLog: async () => decodeCardLog((await expectOk(secure, readLogCommand(0), 'READ LOG')).data),
      close: () => secure.close(),
    };
  } catch (e) {
    await secure.close();
    throw e;
  }
}
