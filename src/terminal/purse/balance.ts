/**
 * Balance inquiry: what the purse shows to anyone, no keys needed (READ STATUS and READ LOG need no
 * secure channel, emoney-purse.md "Security conditions"):
 *
 *   SELECT → READ STATUS → READ LOG 00 (only when the card has log records)
 *
 * Nothing here is authenticated, so nothing here goes into the journal: a counter read in the clear
 * could be a forger's, and recording it would make the genuine card look rolled back. Purchases read
 * the same data inside the secure channel.
 *
 * READ LOG 00 can answer 500 bytes, more than a short Le gets at once: the card says 61xx and this
 * module fetches the rest with GET RESPONSE itself (no 6Cxx re-issue), whatever the caller's stack.
 */
import type { CardChannel } from '../../reader/channel.js';
import { withGetResponse } from '../../reader/get-response.js';
import { ResponseApdu } from '../../apdu/response.js';
import { StatusWordError } from '../../apdu/sw.js';
import type { CommandApdu } from '../../apdu/command.js';
import { decodeCardLog, decodeCardStatus, readLogCommand, readStatusCommand, selectPurse, type CardLogEntry, type CardStatus } from './protocol.js';

export interface PurseBalance {
  status: CardStatus;
  /** Newest first. */
  log: CardLogEntry[];
}

async function expectOk(channel: CardChannel, cmd: CommandApdu, what: string): Promise<ResponseApdu> {
  const resp = ResponseApdu.decode(await channel.transmit(cmd.encode()));
  if (resp.sw !== 0x9000) throw new StatusWordError(resp.sw, { expected: [0x9000], context: what });
  return resp;
}

/** Reads balance, counter, serial, limits and log. The caller's channel stays open. */
export async function readPurseBalance(channel: CardChannel): Promise<PurseBalance> {
  const ch = withGetResponse({ reissueOn6C: false })(channel);
  await expectOk(ch, selectPurse(), 'SELECT purse');
  const status = decodeCardStatus((await expectOk(ch, readStatusCommand(), 'READ STATUS')).data);
  const log = status.active && status.logCount > 0 ? decodeCardLog((await expectOk(ch, readLogCommand(0), 'READ LOG')).data) : [];
  return { status, log };
}
