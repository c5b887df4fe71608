/**
 * T=0 response handling (ISO/IEC 7816-4 §5.3.2 and ISO/IEC 7816-3 §12.2.3) as a wrapper.
 *
 * Over T=0 a card cannot send response data with the status word of a case-4 command; it answers
 *   61xx  "xx more bytes are available": the reader fetches them with GET RESPONSE (INS C0), Le = xx
 *         (00 meaning 256), on the command's logical channel. The answer may again be 61xx.
 *   6Cxx  "wrong Le, the right one is xx": the reader sends the same command again with Le = xx.
 * This wrapper does both, so the caller sees one full R-APDU: all the data, then the final SW.
 *
 * Bounds ("no open loops"): at most `maxGetResponses` GET RESPONSE commands per transmit (a card
 * still answering 61xx after them is a ProtocolError), and at most MAX_6C_REISSUES re-issue per
 * command: a second 6Cxx is returned to the caller as it is.
 */
import type { CardChannel, Wrapper } from './channel.js';
import { serialChannel } from './serialize.js';
import { CommandApdu } from '../apdu/command.js';
import { claChannel, claForChannel } from '../apdu/cla.js';
import { DecodeError, ProtocolError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { concatBytes, hexWord } from '../util/bytes.js';

export interface GetResponseOptions {
  /** Fetch the rest of a 61xx answer with GET RESPONSE. Default true. */
  getResponse?: boolean;
  /** Re-issue a command answered 6Cxx with Le = xx. Default true. */
  reissueOn6C?: boolean;
  /** Most GET RESPONSE commands per transmit. Default DEFAULT_MAX_GET_RESPONSES (128 × 256 bytes = 32 KiB). */
  maxGetResponses?: number;
}

export const DEFAULT_MAX_GET_RESPONSES = 128;
/** Upper limit accepted for maxGetResponses: enough for a 16 MiB answer in 256-byte parts. */
export const MAX_GET_RESPONSES_LIMIT = 65536;
/** A command is re-issued at most this many times after 6Cxx. */
export const MAX_6C_REISSUES = 1;

export const INS_GET_RESPONSE = 0xc0;
const SW1_MORE_DATA = 0x61;
const SW1_WRONG_LE = 0x6c;

/** The Ne a 61xx or 6Cxx status word announces: xx, with 00 meaning 256. */
export function _neFromSw2(sw2: number): number {
  return sw2 === 0 ? 256 : sw2;
}

/** SW of a raw response; a response shorter than SW1 SW2 breaks the channel contract. */
export function _sw(response: Uint8Array): number {
  if (response.length < 2) throw new ProtocolError(`channel answered ${response.length} byte(s), fewer than SW1 SW2`);
  return (response[response.length - 2] << 8) | response[response.length - 1];
}

/** GET RESPONSE for the logical channel of `cla`: interindustry class 00 recoded for that channel. */
export function getResponseCommand(cla: number, ne: number): Uint8Array {
  assertInt(ne, 'Ne', 1, 256);
  return Uint8Array.of(claForChannel(0x00, claChannel(cla)), INS_GET_RESPONSE, 0x00, 0x00, ne === 256 ? 0 : ne);
}

export interface _CollectOptions {
  maxGetResponses: number;
  reissueOn6C: boolean;
  /** Stop asking once this many data bytes are collected (the caller's Ne); undefined: no limit. */
  limit?: number;
}

/**
 * Follows a 61xx answer with GET RESPONSE until a final status word, concatenating the data of
 * every part (the first answer's data too, if any). Returns the full R-APDU. If `limit` is reached
 * while the card still says 61xx, that answer is returned with its 61xx so the caller knows more is
 * available. A GET RESPONSE answered 6Cxx is re-issued with Le = xx (counted in the bound).
 */
export async function _collectGetResponse(
  inner: CardChannel,
  cla: number,
  first: Uint8Array,
  options: _CollectOptions,
): Promise<Uint8Array> {
  let sw = _sw(first);
  const parts: Uint8Array[] = [first.subarray(0, first.length - 2)];
  let total = parts[0].length;
  let sent = 0;
  const send = async (ne: number): Promise<Uint8Array> => {
    if (sent >= options.maxGetResponses) {
      throw new ProtocolError(
        `card still answered ${hexWord(sw)} after ${sent} GET RESPONSE commands (maxGetResponses = ${options.maxGetResponses})`,
      );
    }
    sent++;
    return inner.transmit(getResponseCommand(cla, ne));
  };
  while (sw >> 8 === SW1_MORE_DATA) {
    if (options.limit !== undefined && total >= options.limit) break;
    let ne = _neFromSw2(sw & 0xff);
    if (options.limit !== undefined) ne = Math.min(ne, options.limit - total);
    let r = await send(ne);
    let rsw = _sw(r);
    for (let re = 0; options.reissueOn6C && rsw >> 8 === SW1_WRONG_LE && re < MAX_6C_REISSUES; re++) {
      r = await send(_neFromSw2(rsw & 0xff));
      rsw = _sw(r);
    }
    parts.push(r.subarray(0, r.length - 2));
    total += r.length - 2;
    sw = rsw;
  }
  parts.push(Uint8Array.of(sw >> 8, sw & 0xff));
  return concatBytes(...parts);
}

/** The same command with Le = ne, or undefined if the bytes are not a command APDU we can re-code. */
function _withLe(command: Uint8Array, ne: number): Uint8Array | undefined {
  try {
    return CommandApdu.decode(command).with({ ne }).encode();
  } catch (e) {
    if (e instanceof DecodeError) return undefined;
    throw e;
  }
}

/**
 * One exchange with T=0 handling, on a channel the caller holds for the whole sequence.
 * Exported for wrappers that need the behaviour on their own sub-commands.
 */
export async function _exchangeT0(inner: CardChannel, command: Uint8Array, options: Required<GetResponseOptions>): Promise<Uint8Array> {
  let response = await inner.transmit(command);
  let sw = _sw(response);
  let sent = command;
  for (let re = 0; options.reissueOn6C && sw >> 8 === SW1_WRONG_LE && re < MAX_6C_REISSUES; re++) {
    const again = _withLe(sent, _neFromSw2(sw & 0xff));
    if (!again) break; // not an APDU we can re-code: the caller gets the 6Cxx as it is
    sent = again;
    response = await inner.transmit(sent);
    sw = _sw(response);
  }
  if (options.getResponse && sw >> 8 === SW1_MORE_DATA) {
    return _collectGetResponse(inner, command[0], response, { maxGetResponses: options.maxGetResponses, reissueOn6C: options.reissueOn6C });
  }
  return response;
}

export function _getResponseOptions(options: GetResponseOptions): Required<GetResponseOptions> {
  const resolved = {
    getResponse: options.getResponse ?? true,
    reissueOn6C: options.reissueOn6C ?? true,
    maxGetResponses: options.maxGetResponses ?? DEFAULT_MAX_GET_RESPONSES,
  };
  assertInt(resolved.maxGetResponses, 'maxGetResponses', 1, MAX_GET_RESPONSES_LIMIT);
  return resolved;
}

/**
 * Wrapper: T=0 GET RESPONSE (61xx) and wrong-Le re-issue (6Cxx). Options are checked when the
 * wrapper is made. Answers other than 61xx / 6Cxx pass through untouched, byte for byte.
 */
export function withGetResponse(options: GetResponseOptions = {}): Wrapper {
  const opts = _getResponseOptions(options);
  return (inner) => serialChannel(inner, { transmit: (command) => _exchangeT0(inner, command, opts) });
}
