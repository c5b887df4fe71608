/**
 * Command chaining (ISO/IEC 7816-4 §5.3.3) as a wrapper.
 *
 * A command whose data is longer than the card takes in one APDU is sent as a chain of commands
 * with the same INS P1 P2, the data cut in order into parts of at most `maxCommandData` bytes:
 *
 *   link        | CLA                     | data        | Le
 *   ------------|-------------------------|-------------|------------------
 *   1 .. n-1    | chaining bit b5 set     | next part   | absent
 *   n (last)    | the command's own CLA   | last part   | the command's Le
 *
 * Every link but the last must be answered 9000; any other answer stops the chain and is returned
 * to the caller as it is (the card refused a link; the rest is not sent). The answer to the last
 * link is the answer to the command. Commands that fit pass through unchanged, byte for byte.
 */
import type { CardChannel, Wrapper } from './channel.js';
import { serialChannel } from './serialize.js';
import { _sw } from './get-response.js';
import { CommandApdu, MAX_EXTENDED_NC, MAX_SHORT_NC } from '../apdu/command.js';
import { claWithChaining, decodeCla } from '../apdu/cla.js';
import { BadInputError, DecodeError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { hexByte } from '../util/bytes.js';

export interface ChainingOptions {
  /** Most data bytes the card takes in one command; longer commands are chained. Default 255. */
  maxCommandData?: number;
}

export const DEFAULT_MAX_COMMAND_DATA = MAX_SHORT_NC;
/** Most links in one chain; a longer chain is refused before anything is sent. */
export const MAX_CHAIN_LINKS = 4096;

const SW_OK = 0x9000;

/**
 * Cuts `command` into chain links of at most `maxData` data bytes. The last link carries `lastNe`
 * (default: the command's Ne). A command that fits gives one link with its own CLA.
 * Throws BadInputError if the CLA defines no chaining bit or the chain would exceed MAX_CHAIN_LINKS.
 */
export function splitChain(command: CommandApdu, maxData: number, lastNe: number = command.ne): CommandApdu[] {
  assertInt(maxData, 'maxData', 1, MAX_EXTENDED_NC);
  const n = Math.max(1, Math.ceil(command.nc / maxData));
  if (n > 1 && decodeCla(command.cla).channel < 0) {
    throw new BadInputError(`CLA ${hexByte(command.cla)} defines no chaining bit; cannot chain ${command.nc} data bytes`);
  }
  if (n > MAX_CHAIN_LINKS) {
    throw new BadInputError(`${command.nc} data bytes in parts of ${maxData} need ${n} links, more than MAX_CHAIN_LINKS (${MAX_CHAIN_LINKS})`);
  }
  const links: CommandApdu[] = [];
  for (let i = 0; i < n; i++) {
    const last = i === n - 1;
    links.push(
      new CommandApdu({
        cla: last ? command.cla : claWithChaining(command.cla, true),
        ins: command.ins,
        p1: command.p1,
        p2: command.p2,
        data: command.data.subarray(i * maxData, (i + 1) * maxData),
        ne: last ? lastNe : 0,
      }),
    );
  }
  return links;
}

/** Sends the links in order; stops at the first link but the last answered other than 9000. */
export async function _sendChain(inner: CardChannel, links: readonly CommandApdu[]): Promise<Uint8Array> {
  for (let i = 0; i < links.length - 1; i++) {
    const r = await inner.transmit(links[i].encode());
    if (_sw(r) !== SW_OK) return r;
  }
  return inner.transmit(links[links.length - 1].encode());
}

/** Wrapper: chains commands with more than `maxCommandData` data bytes. */
export function withChaining(options: ChainingOptions = {}): Wrapper {
  const maxCommandData = options.maxCommandData ?? DEFAULT_MAX_COMMAND_DATA;
  assertInt(maxCommandData, 'maxCommandData', 1, MAX_EXTENDED_NC);
  return (inner) =>
    serialChannel(inner, {
      transmit: async (command) => {
        let apdu: CommandApdu;
        try {
          apdu = CommandApdu.decode(command);
        } catch (e) {
          if (e instanceof DecodeError) return inner.transmit(command); // not ours to judge: the card answers
          throw e;
        }
        if (apdu.nc <= maxCommandData) return inner.transmit(command);
        return _sendChain(inner, splitChain(apdu, maxCommandData));
      },
    });
}
