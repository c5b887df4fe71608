/**
 * GlobalPlatform SCP03, host side, as a CardChannel wrapper.
 *
 * `openScp03(inner, opts)` authenticates (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE) and resolves to
 * a channel whose `transmit` takes plain C-APDUs and returns plain R-APDUs: every command is wrapped
 * per the security level (CLA secure-messaging bit, C-DECRYPTION, C-MAC, Lc updated, Le kept) and
 * every response unwrapped (R-MAC verified, R-ENCRYPTION removed).
 *
 * Stack order: put this wrapper straight on the transport, or OUTSIDE the other wrappers. The R-MAC
 * covers the whole response, so the wrapper must see the response whole: when the card answers a
 * wrapped command with 61xx, the wrapper itself fetches the rest with GET RESPONSE (interindustry
 * class, on the session's channel, never protected: the card serves the already wrapped answer in
 * parts) before verifying, at most MAX_SCP03_GET_RESPONSES times. Under it, a wrapper that re-issues
 * a command answered 6Cxx (withGetResponse's reissueOn6C) must be off: re-sending a wrapped command
 * replays its C-MAC, which the card refuses (6982) and which ends its session. A 6Cxx comes back to
 * the caller as it is (a bare error SW), who re-sends the plain command with the right Le.
 *
 * Behaviour:
 * - Authentication failures reject with AuthError (code AUTH_FAILED, `reason` says which check).
 *   When the card cryptogram (or a pseudo-random card challenge, or the key version) does not
 *   verify, nothing more is sent to the card.
 * - Commands must be plain (no secure-messaging bit in CLA) and addressed to the session's logical
 *   channel; others are refused with BadInputError without reaching the card.
 * - Responses with an error status word (anything but 9000, 62xx, 63xx) carry no R-MAC and no
 *   protection (Amendment D §6.2.5): a bare error SW is returned as is and the session stays open
 *   (the card decides whether its session survived: after a C-MAC failure it answers 6982 to every
 *   protected command until the host authenticates again). An error SW that comes WITH data is
 *   refused: that data cannot be authenticated.
 * - An R-MAC that does not verify (or bad R-ENC padding) rejects with AuthError and ends the session.
 * - reset() resets the card and ends the session; close() ends it and closes `inner`. An ended
 *   session's keys are zeroized, and transmit rejects with AuthError('session-ended'), or with
 *   ChannelClosedError after close().
 * - Calls are serialised (serialChannel), as the CardChannel contract asks.
 */
import type { CardChannel } from './channel.js';
import { serialChannel } from './serialize.js';
import { CommandApdu } from '../apdu/command.js';
import { ResponseApdu } from '../apdu/response.js';
import { claChannel, claForChannel } from '../apdu/cla.js';
import { _collectGetResponse } from './get-response.js';
import {
  AuthError,
  Scp03Session,
  assertSecurityLevel,
  assertStaticKeys,
  cardCryptogram,
  computeCMac,
  decodeIParameter,
  decodeSequenceCounter,
  deriveSessionKeys,
  hasSecureMessaging,
  hostCryptogram,
  levelSupported,
  pseudoRandomCardChallenge,
  securityLevelFlags,
  zeroizeSessionKeys,
  SCP03_ID,
  SEQUENCE_COUNTER_LENGTH,
  type IParameter,
  type Scp03BlockLength,
  type SecurityLevel,
  type StaticKeys,
} from '../crypto/scp03.js';
import { BadInputError, ChannelClosedError, HiltError, ProtocolError } from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { concatBytes, constantTimeEqual, hexByte, zeroize } from '../util/bytes.js';

export { AuthError, SECURITY_LEVEL, type SecurityLevel, type StaticKeys } from '../crypto/scp03.js';

/** INITIALIZE UPDATE and EXTERNAL AUTHENTICATE codings (GP Card Specification §11.11, §11.8). */
const INITIALIZE_UPDATE = { cla: 0x80, ins: 0x50, p2: 0x00, ne: 256 } as const;
const EXTERNAL_AUTHENTICATE = { cla: 0x84, ins: 0x82, p2: 0x00 } as const;

/** Layout of INITIALIZE UPDATE's response data (Amendment D §7.1.1.6), n = 8 (S8) or 16 (S16). */
const IU_RESPONSE = {
  keyDiversificationData: { offset: 0, length: 10 },
  keyInformation: { offset: 10, length: 3 }, // kvn, SCP identifier, i
  cardChallenge: { offset: 13 }, // n bytes, then the card cryptogram (n), then the sequence counter (3) when pseudo-random
} as const;

const SW_OK = 0x9000;
const SW1_MORE_DATA = 0x61;

/**
 * Most GET RESPONSE commands the wrapper sends to fetch one wrapped answer: 256 parts of 256 bytes
 * cover the longest extended response (65536 bytes) plus its protection.
 */
export const MAX_SCP03_GET_RESPONSES = 260;

/**
 * Static keys that can only be known once the card has answered INITIALIZE UPDATE: per-card keys
 * diversified from the card's key diversification data. `resolve` runs once, between INITIALIZE
 * UPDATE and the cryptogram check; openScp03 zeroizes the keys it returns when it is done with them.
 */
export interface Scp03KeyResolver {
  /** Key version to ask for in INITIALIZE UPDATE (00: whatever the card has). */
  readonly kvn: number;
  resolve(card: { keyDiversificationData: Uint8Array; kvn: number }): StaticKeys;
}

export interface Scp03Options {
  /** The static keys, or a resolver that derives them from the card's answer. */
  keys: StaticKeys | Scp03KeyResolver;
  securityLevel: SecurityLevel;
  /** Fixed host challenge (tests, vectors): 8 bytes, or 16 with `s16`. Random otherwise. */
  hostChallenge?: Uint8Array;
  /** S16 mode: 16-byte challenges, cryptograms and MACs. Default S8. */
  s16?: boolean;
  /** Key version the card must answer with; defaults to keys.kvn unless that is 00 ("any"). */
  expectedKvn?: number;
  /** When the card uses pseudo-random challenges, recompute its challenge from the AID and check it. */
  pseudoRandomCardChallenge?: { aid: Uint8Array };
  /** Logical channel of the session (0..19). Default 0. */
  channel?: number;
}

/** What INITIALIZE UPDATE told about the card, and the level in force. */
export interface Scp03Info {
  kvn: number;
  /** The raw i parameter and its decoded bits. */
  iParameter: number;
  i: IParameter;
  /** The card's sequence counter, present when it uses pseudo-random challenges. */
  sequenceCounter: number | undefined;
  securityLevel: SecurityLevel;
  keyDiversificationData: Uint8Array;
  channel: number;
}

export interface Scp03Channel extends CardChannel {
  readonly info: Scp03Info;
  /** False once the session ended (reset, close, R-MAC failure). */
  readonly active: boolean;
}

interface _ParsedInitializeUpdate {
  keyDiversificationData: Uint8Array;
  kvn: number;
  i: IParameter;
  cardChallenge: Uint8Array;
  cardCryptogram: Uint8Array;
  sequenceCounter: Uint8Array | undefined;
}

function _parseInitializeUpdate(data: Uint8Array, n: Scp03BlockLength): _ParsedInitializeUpdate {
  const ki = IU_RESPONSE.keyInformation;
  if (data.length < ki.offset + ki.length) {
    throw new ProtocolError(`INITIALIZE UPDATE response: ${data.length} bytes, too short for key information`);
  }
  const kvn = data[ki.offset];
  const scpId = data[ki.offset + 1];
  if (scpId !== SCP03_ID) {
    throw new HiltError('NOT_SUPPORTED', `INITIALIZE UPDATE response: the card offers SCP ${hexByte(scpId)}, not SCP03`);
  }
  const i = decodeIParameter(data[ki.offset + 2]);
  const cardN = i.s16 ? 16 : 8;
  if (cardN !== n) {
    throw new ProtocolError(`INITIALIZE UPDATE response: i=${hexByte(i.i)} says S${cardN} mode, the host asked for S${n}`);
  }
  const expected = IU_RESPONSE.cardChallenge.offset + 2 * n + (i.pseudoRandomChallenge ? SEQUENCE_COUNTER_LENGTH : 0);
  if (data.length !== expected) {
    throw new ProtocolError(`INITIALIZE UPDATE response: expected ${expected} bytes for i=${hexByte(i.i)}, got ${data.length}`);
  }
  const cc = IU_RESPONSE.cardChallenge.offset;
  return {
    keyDiversificationData: data.slice(0, IU_RESPONSE.keyDiversificationData.length),
    kvn,
    i,
    cardChallenge: data.slice(cc, cc + n),
    cardCryptogram: data.slice(cc + n, cc + 2 * n),
    sequenceCounter: i.pseudoRandomChallenge ? data.slice(cc + 2 * n) : undefined,
  };
}

function _randomChallenge(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** Authenticates over `inner` and returns the secure channel. See the module comment. */
export async function openScp03(inner: CardChannel, opts: Scp03Options): Promise<Scp03Channel> {
  const resolver = 'resolve' in opts.keys ? opts.keys : undefined;
  if (resolver) assertInt(resolver.kvn, 'key version', 0, 0xff);
  else assertStaticKeys(opts.keys as StaticKeys);
  assertSecurityLevel(opts.securityLevel);
  const n: Scp03BlockLength = opts.s16 === true ? 16 : 8;
  const channel = opts.channel ?? 0;
  assertInt(channel, 'channel', 0, 19);
  if (opts.expectedKvn !== undefined) assertInt(opts.expectedKvn, 'expected key version', 0, 0xff);
  if (opts.pseudoRandomCardChallenge !== undefined) assertBytes(opts.pseudoRandomCardChallenge.aid, 'AID');
  const hostChallenge = opts.hostChallenge === undefined ? _randomChallenge(n) : opts.hostChallenge.slice();
  assertBytes(hostChallenge, `host challenge (S${n})`, [n]);

  // INITIALIZE UPDATE
  const iu = new CommandApdu({
    cla: claForChannel(INITIALIZE_UPDATE.cla, channel),
    ins: INITIALIZE_UPDATE.ins,
    p1: opts.keys.kvn,
    p2: INITIALIZE_UPDATE.p2,
    data: hostChallenge,
    ne: INITIALIZE_UPDATE.ne,
  });
  const iuResp = ResponseApdu.decode(await inner.transmit(iu.encode()));
  if (iuResp.sw !== SW_OK) throw new AuthError('card-refused', 'INITIALIZE UPDATE refused', iuResp.sw);
  const card = _parseInitializeUpdate(iuResp.data, n);
  const staticKeys: StaticKeys = resolver
    ? resolver.resolve({ keyDiversificationData: card.keyDiversificationData.slice(), kvn: card.kvn })
    : (opts.keys as StaticKeys);
  if (resolver) assertStaticKeys(staticKeys);
  try {
    return await _authenticate(inner, opts, staticKeys, card, hostChallenge, n, channel);
  } finally {
    if (resolver) zeroize(staticKeys.enc, staticKeys.mac, staticKeys.dek);
  }
}

async function _authenticate(
  inner: CardChannel,
  opts: Scp03Options,
  staticKeys: StaticKeys,
  card: _ParsedInitializeUpdate,
  hostChallenge: Uint8Array,
  n: Scp03BlockLength,
  channel: number,
): Promise<Scp03Channel> {
  const level = opts.securityLevel;
  const expectedKvn = opts.expectedKvn ?? (opts.keys.kvn !== 0 ? opts.keys.kvn : undefined);
  if (expectedKvn !== undefined && card.kvn !== expectedKvn) {
    throw new AuthError('key-version', `the card answered with key version ${hexByte(card.kvn)}, expected ${hexByte(expectedKvn)}`);
  }
  if (!levelSupported(level, card.i.i)) {
    throw new HiltError('NOT_SUPPORTED', `security level ${hexByte(level)} needs R-MAC/R-ENC support the card lacks (i=${hexByte(card.i.i)})`);
  }
  if (opts.pseudoRandomCardChallenge !== undefined) {
    if (card.sequenceCounter === undefined) {
      throw new AuthError('card-challenge', `the card uses random challenges (i=${hexByte(card.i.i)}); its challenge cannot be checked`);
    }
    const expected = pseudoRandomCardChallenge(staticKeys.enc, card.sequenceCounter, opts.pseudoRandomCardChallenge.aid, n);
    const ok = constantTimeEqual(expected, card.cardChallenge);
    zeroize(expected);
    if (!ok) throw new AuthError('card-challenge', 'the card challenge does not match its sequence counter and AID');
  }

  const keys = deriveSessionKeys(staticKeys, hostChallenge, card.cardChallenge);
  let session: Scp03Session | undefined;
  try {
    const expectedCryptogram = cardCryptogram(keys.sMac, hostChallenge, card.cardChallenge);
    const ok = constantTimeEqual(expectedCryptogram, card.cardCryptogram);
    zeroize(expectedCryptogram);
    if (!ok) throw new AuthError('card-cryptogram', 'card cryptogram does not verify: wrong keys, or not the expected card');

    // EXTERNAL AUTHENTICATE: host cryptogram, C-MAC from a zero chaining value.
    const header = { cla: claForChannel(EXTERNAL_AUTHENTICATE.cla, channel), ins: EXTERNAL_AUTHENTICATE.ins, p1: level, p2: EXTERNAL_AUTHENTICATE.p2 };
    const cryptogram = hostCryptogram(keys.sMac, hostChallenge, card.cardChallenge);
    const mac = computeCMac(keys.sMac, new Uint8Array(16), header, cryptogram, n, false);
    const ea = new CommandApdu({ ...header, data: concatBytes(cryptogram, mac.subarray(0, n)) });
    session = new Scp03Session({ keys, level, macLength: n, chainingValue: mac });
    zeroize(mac, cryptogram);
    const eaResp = ResponseApdu.decode(await inner.transmit(ea.encode()));
    if (eaResp.sw !== SW_OK) throw new AuthError('card-refused', 'EXTERNAL AUTHENTICATE refused', eaResp.sw);
  } catch (e) {
    // A session built before EXTERNAL AUTHENTICATE failed owns the keys: closing it destroys its
    // keyed objects (ciphers, CMAC subkeys) too.
    if (session !== undefined) session.close();
    else zeroizeSessionKeys(keys);
    throw e;
  }

  const info: Scp03Info = Object.freeze({
    kvn: card.kvn,
    iParameter: card.i.i,
    i: card.i,
    sequenceCounter: card.sequenceCounter === undefined ? undefined : decodeSequenceCounter(card.sequenceCounter),
    securityLevel: level,
    keyDiversificationData: card.keyDiversificationData,
    channel,
  });
  return _secureChannel(inner, session, info);
}

function _secureChannel(inner: CardChannel, session: Scp03Session, info: Scp03Info): Scp03Channel {
  let endedBy: 'reset' | 'response' | undefined;
  let closed = false;
  const end = (why: 'reset' | 'response'): void => {
    endedBy ??= why;
    session.close();
  };
  const plainCommand = securityLevelFlags(info.securityLevel).cMac;

  const base = serialChannel(inner, {
    async transmit(bytes: Uint8Array): Promise<Uint8Array> {
      if (closed) throw new ChannelClosedError();
      if (!session.open) {
        const why = endedBy === 'reset' ? 'the card was reset' : 'a response failed verification';
        throw new AuthError('session-ended', `SCP03 session ended (${why}); authenticate again with openScp03`);
      }
      const cmd = CommandApdu.decode(bytes);
      if (claChannel(cmd.cla) !== info.channel) {
        throw new BadInputError(`command on logical channel ${claChannel(cmd.cla)}; this SCP03 session runs on channel ${info.channel}`);
      }
      if (plainCommand && hasSecureMessaging(cmd.cla)) {
        throw new BadInputError(`CLA ${hexByte(cmd.cla)} already indicates secure messaging; give the wrapper plain commands`);
      }
      const w = session.wrapCommand({ cla: cmd.cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: cmd.data, extended: cmd.extended || cmd.ne > 256 });
      const wrapped = new CommandApdu({ cla: w.cla, ins: w.ins, p1: w.p1, p2: w.p2, data: w.data, ne: cmd.ne, extended: w.extended });
      let answer = await inner.transmit(wrapped.encode());
      if (closed) throw new ChannelClosedError(); // close() won the race; its keys are gone
      if (answer.length >= 2 && answer[answer.length - 2] === SW1_MORE_DATA) {
        answer = await _collectGetResponse(inner, wrapped.cla, answer, { maxGetResponses: MAX_SCP03_GET_RESPONSES, reissueOn6C: true });
        if (closed) throw new ChannelClosedError();
      }
      const resp = ResponseApdu.decode(answer);
      try {
        return new ResponseApdu(session.unwrapResponse(resp.data, resp.sw), resp.sw).encode();
      } catch (e) {
        if (e instanceof AuthError) end('response');
        throw e;
      }
    },
    async reset(cold: boolean): Promise<Uint8Array> {
      end('reset');
      return inner.reset(cold);
    },
  });

  return {
    info,
    get active(): boolean {
      return session.open;
    },
    transmit: (command) => base.transmit(command),
    reset: (cold) => base.reset(cold),
    close(): Promise<void> {
      closed = true;
      session.close();
      return base.close();
    },
  };
}
