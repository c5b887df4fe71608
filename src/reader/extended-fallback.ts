/**
 * Extended-length fallback as a wrapper: many cards and some readers have no extended Lc/Le.
 *
 * An extended-length command is sent as it is while the card's support is unknown. If the card
 * refuses it with a bare 6700 (wrong length), or the transport rejects it with a HiltError of code
 * NOT_SUPPORTED (it cannot carry extended APDUs), the wrapper remembers, for this channel, that the
 * card has no extended length and sends the command again in short form, and sends every later
 * extended command in short form straight away:
 *
 *   - data longer than 255 bytes goes as a chain of short commands (chaining.ts), else in one;
 *   - Ne up to 256 becomes the short Le; a larger Ne becomes Le 00 (256) and the rest is fetched
 *     with GET RESPONSE while the card answers 61xx, until Ne bytes are collected or the card gives
 *     a final status word (at most `maxGetResponses` of them, else ProtocolError).
 *
 * Once the card has answered an extended command with anything but 6700, its support is known and
 * a later 6700 is the card's answer, returned as it is. The memory is dropped when the channel
 * reports CardRemovedError (the next card may differ); a reset keeps it (same card).
 * A command that cannot be re-coded in short form (data over 255 bytes with a CLA that has no
 * chaining bit) is not retried: the caller gets the card's 6700 or the transport's error.
 */
import type { CardChannel } from './channel.js';
import { serialChannel } from './serialize.js';
import { splitChain, _sendChain } from './chaining.js';
import { _collectGetResponse, _sw, DEFAULT_MAX_GET_RESPONSES, MAX_GET_RESPONSES_LIMIT } from './get-response.js';
import { CommandApdu, MAX_SHORT_NC, MAX_SHORT_NE } from '../apdu/command.js';
import { decodeCla } from '../apdu/cla.js';
import { BadInputError, DecodeError, isHiltError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

/** What the wrapper knows of the card's extended-length support. */
export const EXTENDED_LENGTH_SUPPORT = ['unknown', 'supported', 'unsupported'] as const;
export type ExtendedLengthSupport = (typeof EXTENDED_LENGTH_SUPPORT)[number];

export interface ExtendedFallbackOptions {
  /** What is known at the start (e.g. from the ATR's card capabilities). Default 'unknown'. */
  extendedLength?: ExtendedLengthSupport;
  /** Most GET RESPONSE commands when a large Ne is fetched in short parts. Default 128. */
  maxGetResponses?: number;
}

/** The channel the wrapper returns: a CardChannel that also tells what it learned. */
export interface ExtendedFallbackChannel extends CardChannel {
  readonly extendedLength: ExtendedLengthSupport;
}

const SW_WRONG_LENGTH = 0x6700;

function _shortable(apdu: CommandApdu): boolean {
  return apdu.nc <= MAX_SHORT_NC || decodeCla(apdu.cla).channel >= 0;
}

/** Wrapper: resends extended-length commands in short form to a card that refuses them. */
export function withExtendedFallback(options: ExtendedFallbackOptions = {}): (inner: CardChannel) => ExtendedFallbackChannel {
  const initial = options.extendedLength ?? 'unknown';
  if (!EXTENDED_LENGTH_SUPPORT.includes(initial)) {
    throw new BadInputError(`extendedLength: expected ${EXTENDED_LENGTH_SUPPORT.join(', ')}, got ${String(initial)}`);
  }
  const maxGetResponses = options.maxGetResponses ?? DEFAULT_MAX_GET_RESPONSES;
  assertInt(maxGetResponses, 'maxGetResponses', 1, MAX_GET_RESPONSES_LIMIT);

  return (inner) => {
    let support: ExtendedLengthSupport = initial;

    const sendShort = async (apdu: CommandApdu): Promise<Uint8Array> => {
      const links = splitChain(apdu, MAX_SHORT_NC, Math.min(apdu.ne, MAX_SHORT_NE));
      const r = await _sendChain(inner, links);
      if (apdu.ne > MAX_SHORT_NE && _sw(r) >> 8 === 0x61) {
        return _collectGetResponse(inner, apdu.cla, r, { maxGetResponses, reissueOn6C: true, limit: apdu.ne });
      }
      return r;
    };

    const exchange = async (command: Uint8Array): Promise<Uint8Array> => {
      let apdu: CommandApdu;
      try {
        apdu = CommandApdu.decode(command);
      } catch (e) {
        if (e instanceof DecodeError) return inner.transmit(command);
        throw e;
      }
      if (!apdu.extended || !_shortable(apdu)) return inner.transmit(command);
      if (support === 'unsupported') return sendShort(apdu);
      let r: Uint8Array;
      try {
        r = await inner.transmit(command);
      } catch (e) {
        if (isHiltError(e) && e.code === 'NOT_SUPPORTED') {
          support = 'unsupported';
          return sendShort(apdu);
        }
        throw e;
      }
      if (support === 'unknown') {
        if (r.length === 2 && _sw(r) === SW_WRONG_LENGTH) {
          support = 'unsupported';
          return sendShort(apdu);
        }
        support = 'supported';
      }
      return r;
    };

    const channel = serialChannel(inner, {
      transmit: async (command) => {
        try {
          return await exchange(command);
        } catch (e) {
          if (isHiltError(e) && e.code === 'CARD_REMOVED') support = initial;
          throw e;
        }
      },
    });
    return {
      transmit: (command) => channel.transmit(command),
      reset: (cold) => channel.reset(cold),
      close: () => channel.close(),
      get extendedLength() {
        return support;
      },
    };
  };
}
