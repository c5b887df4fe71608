/**
 * GlobalPlatform SCP03, card side: the secure-channel session of a security domain, as pure logic
 * (no I/O, no clock). The security domain routes INITIALIZE UPDATE and EXTERNAL AUTHENTICATE here,
 * passes every other command it receives on the session's channel through unwrapCommand, and every
 * response through wrapResponse. One Scp03CardSession serves one logical channel.
 *
 * States: idle → (INITIALIZE UPDATE) → initialized → (EXTERNAL AUTHENTICATE) → authenticated.
 * - INITIALIZE UPDATE is accepted in any state and first drops whatever session there was.
 * - In pseudo-random mode (i bit 10) each INITIALIZE UPDATE increments the sequence counter and
 *   persists it through `sequenceCounter.set` BEFORE the challenge is derived from it, so a torn
 *   write can only skip a value, never reuse a challenge. At FFFFFF the card refuses (6985).
 *   In random mode the challenge comes from `random` and the counter is left alone.
 * - EXTERNAL AUTHENTICATE is accepted only in the initialized state (else 6985); any failure in it
 *   (length 6700, C-MAC 6982, host cryptogram 6300, security level not supported 6A86) drops to idle.
 * - unwrapCommand, authenticated: a C-MAC or padding failure, or a command without the secure
 *   messaging the level requires, answers 6982 and drops the session. Each verified C-MAC moves the
 *   chaining value on, so a replayed command never verifies.
 * - unwrapCommand, initialized: any command other than EXTERNAL AUTHENTICATE aborts the pending
 *   handshake (idle); idle: protected commands answer 6982, plain ones pass unchanged (the security
 *   domain decides what a plain command may do).
 * - wrapResponse protects 9000/62xx/63xx responses per the level; under R-MAC an error SW travels
 *   alone, without data or R-MAC (Amendment D §6.2.5).
 */
import { CommandApdu } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import {
  AuthError,
  Scp03Session,
  assertStaticKeys,
  cardCryptogram,
  computeCMac,
  decodeIParameter,
  deriveSessionKeys,
  encodeSequenceCounter,
  hasSecureMessaging,
  hostCryptogram,
  isSecurityLevel,
  levelSupported,
  pseudoRandomCardChallenge,
  zeroizeSessionKeys,
  MAX_SEQUENCE_COUNTER,
  SCP03_ID,
  type IParameter,
  type Scp03BlockLength,
  type SecurityLevel,
  type SessionKeys,
  type StaticKeys,
} from '../../src/crypto/scp03.js';
import { assertBytes, assertInt } from '../../src/util/assert.js';
import { BadInputError } from '../../src/util/errors.js';
import { concatBytes, constantTimeEqual, zeroize } from '../../src/util/bytes.js';

/** Status words this session answers with. */
export const SCP03_CARD_SW = {
  OK: 0x9000,
  /** EXTERNAL AUTHENTICATE: host cryptogram does not verify. */
  AUTHENTICATION_FAILED: 0x6300,
  WRONG_LENGTH: 0x6700,
  /** C-MAC failure, or protection missing: the session is dropped. */
  SECURITY_STATUS_NOT_SATISFIED: 0x6982,
  /** Command out of sequence, or sequence counter exhausted. */
  CONDITIONS_NOT_SATISFIED: 0x6985,
  /** Security level not supported. */
  WRONG_P1P2: 0x6a86,
  /** Key version not found. */
  REFERENCED_DATA_NOT_FOUND: 0x6a88,
  CLA_NOT_SUPPORTED: 0x6e00,
  INS_NOT_SUPPORTED: 0x6d00,
} as const;

const INS = { initializeUpdate: 0x50, externalAuthenticate: 0x82 } as const;
const KEY_DIVERSIFICATION_DATA_LENGTH = 10;

export type Scp03CardState = 'idle' | 'initialized' | 'authenticated';

/** Where the caller persists the sequence counter (the card's EEPROM); read and written in full. */
export interface SequenceCounterStore {
  get(): number;
  set(value: number): void;
}

export interface Scp03CardConfig {
  /** The domain's static keys; keys.kvn is the key version it answers with. */
  keys: StaticKeys;
  /** The i parameter: S16 (01), pseudo-random challenge (10), R-MAC (20), R-ENC (40). */
  i: number;
  /** Key diversification data returned by INITIALIZE UPDATE (10 bytes). */
  keyDiversificationData: Uint8Array;
  /** The security domain's AID, context of pseudo-random challenges (5..16 bytes). */
  aid: Uint8Array;
  /** Persistent sequence counter; required in pseudo-random mode. */
  sequenceCounter?: SequenceCounterStore;
  /** Source of random challenges; defaults to crypto.getRandomValues. */
  random?: (length: number) => Uint8Array;
}

interface _Pending {
  keys: SessionKeys;
  hostChallenge: Uint8Array;
  cardChallenge: Uint8Array;
}

const _defaultRandom = (n: number): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(n));

export class Scp03CardSession {
  readonly #keys: StaticKeys;
  readonly #i: IParameter;
  readonly #n: Scp03BlockLength;
  readonly #divData: Uint8Array;
  readonly #aid: Uint8Array;
  readonly #counter: SequenceCounterStore | undefined;
  readonly #random: (length: number) => Uint8Array;
  #pending: _Pending | undefined;
  #session: Scp03Session | undefined;

  constructor(config: Scp03CardConfig) {
    assertStaticKeys(config.keys);
    assertInt(config.keys.kvn, 'key version number', 1, 0xff);
    this.#i = decodeIParameter(config.i);
    assertBytes(config.keyDiversificationData, 'key diversification data', [KEY_DIVERSIFICATION_DATA_LENGTH]);
    assertBytes(config.aid, 'AID');
    if (config.aid.length < 5 || config.aid.length > 16) throw new BadInputError(`AID: expected 5 to 16 bytes, got ${config.aid.length}`);
    if (this.#i.pseudoRandomChallenge && config.sequenceCounter === undefined) {
      throw new BadInputError(`i=${config.i.toString(16)} selects pseudo-random challenges: a sequenceCounter store is required`);
    }
    if (this.#i.rEncSupported && !this.#i.rMacSupported) throw new BadInputError(`i=${config.i.toString(16)}: R-ENC support requires R-MAC support`);
    // Own copies: the caller's buffers may be reused or zeroized elsewhere.
    this.#keys = { enc: config.keys.enc.slice(), mac: config.keys.mac.slice(), dek: config.keys.dek.slice(), kvn: config.keys.kvn };
    this.#n = this.#i.s16 ? 16 : 8;
    this.#divData = config.keyDiversificationData.slice();
    this.#aid = config.aid.slice();
    this.#counter = config.sequenceCounter;
    this.#random = config.random ?? _defaultRandom;
  }

  get state(): Scp03CardState {
    return this.#session !== undefined ? 'authenticated' : this.#pending !== undefined ? 'initialized' : 'idle';
  }

  /** The level in force, once authenticated. */
  get securityLevel(): SecurityLevel | undefined {
    return this.#session?.level;
  }

  /** Drops any session or pending handshake, zeroizing its keys. */
  reset(): void {
    if (this.#pending !== undefined) {
      zeroizeSessionKeys(this.#pending.keys);
      this.#pending = undefined;
    }
    this.#session?.close();
    this.#session = undefined;
  }

  /** Zeroizes the static keys too; the object is unusable afterwards. */
  destroy(): void {
    this.reset();
    zeroize(this.#keys.enc, this.#keys.mac, this.#keys.dek);
  }

  initializeUpdate(cmd: CommandApdu): ResponseApdu {
    this.reset();
    if ((cmd.cla & 0x80) === 0 || hasSecureMessaging(cmd.cla)) return ResponseApdu.status(SCP03_CARD_SW.CLA_NOT_SUPPORTED);
    if (cmd.ins !== INS.initializeUpdate) return ResponseApdu.status(SCP03_CARD_SW.INS_NOT_SUPPORTED);
    if (cmd.p1 !== 0 && cmd.p1 !== this.#keys.kvn) return ResponseApdu.status(SCP03_CARD_SW.REFERENCED_DATA_NOT_FOUND);
    if (cmd.p2 !== 0) return ResponseApdu.status(SCP03_CARD_SW.WRONG_P1P2);
    if (cmd.data.length !== this.#n) return ResponseApdu.status(SCP03_CARD_SW.WRONG_LENGTH);

    let cardChallenge: Uint8Array;
    let sequence: Uint8Array | undefined;
    if (this.#i.pseudoRandomChallenge && this.#counter !== undefined) {
      const current = this.#counter.get();
      assertInt(current, 'stored sequence counter', 0, MAX_SEQUENCE_COUNTER);
      if (current === MAX_SEQUENCE_COUNTER) return ResponseApdu.status(SCP03_CARD_SW.CONDITIONS_NOT_SATISFIED);
      this.#counter.set(current + 1);
      sequence = encodeSequenceCounter(current + 1);
      cardChallenge = pseudoRandomCardChallenge(this.#keys.enc, sequence, this.#aid, this.#n);
    } else {
      cardChallenge = this.#random(this.#n);
      assertBytes(cardChallenge, 'random card challenge', [this.#n]);
    }
    const hostChallenge = cmd.data.slice();
    const keys = deriveSessionKeys(this.#keys, hostChallenge, cardChallenge);
    const cryptogram = cardCryptogram(keys.sMac, hostChallenge, cardChallenge);
    this.#pending = { keys, hostChallenge, cardChallenge };
    const data = concatBytes(
      this.#divData,
      Uint8Array.of(this.#keys.kvn, SCP03_ID, this.#i.i),
      cardChallenge,
      cryptogram,
      sequence ?? new Uint8Array(0),
    );
    return new ResponseApdu(data, SCP03_CARD_SW.OK);
  }

  externalAuthenticate(cmd: CommandApdu): ResponseApdu {
    const pending = this.#pending;
    if (pending === undefined || this.#session !== undefined) return ResponseApdu.status(SCP03_CARD_SW.CONDITIONS_NOT_SATISFIED);
    this.#pending = undefined; // one attempt per INITIALIZE UPDATE, whatever happens below
    const fail = (sw: number): ResponseApdu => {
      zeroizeSessionKeys(pending.keys);
      return ResponseApdu.status(sw);
    };
    if (cmd.ins !== INS.externalAuthenticate) return fail(SCP03_CARD_SW.INS_NOT_SUPPORTED);
    if (!hasSecureMessaging(cmd.cla)) return fail(SCP03_CARD_SW.SECURITY_STATUS_NOT_SATISFIED);
    if (cmd.data.length !== 2 * this.#n) return fail(SCP03_CARD_SW.WRONG_LENGTH);
    const received = cmd.data.subarray(0, this.#n);
    const header = { cla: cmd.cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2 };
    const mac = computeCMac(pending.keys.sMac, new Uint8Array(16), header, received, this.#n, cmd.extended);
    if (!constantTimeEqual(mac.subarray(0, this.#n), cmd.data.subarray(this.#n))) {
      zeroize(mac);
      return fail(SCP03_CARD_SW.SECURITY_STATUS_NOT_SATISFIED);
    }
    const expected = hostCryptogram(pending.keys.sMac, pending.hostChallenge, pending.cardChallenge);
    const ok = constantTimeEqual(expected, received);
    zeroize(expected);
    if (!ok) {
      zeroize(mac);
      return fail(SCP03_CARD_SW.AUTHENTICATION_FAILED);
    }
    const level = cmd.p1;
    if (cmd.p2 !== 0 || !isSecurityLevel(level) || !levelSupported(level, this.#i.i)) {
      zeroize(mac);
      return fail(SCP03_CARD_SW.WRONG_P1P2);
    }
    this.#session = new Scp03Session({ keys: pending.keys, level, macLength: this.#n, chainingValue: mac });
    zeroize(mac);
    return ResponseApdu.status(SCP03_CARD_SW.OK);
  }

  /** The plain command for the applet, or the status word to answer with (see the module comment). */
  unwrapCommand(cmd: CommandApdu): CommandApdu | ResponseApdu {
    const session = this.#session;
    if (session === undefined) {
      if (this.#pending !== undefined) this.reset();
      return hasSecureMessaging(cmd.cla) ? ResponseApdu.status(SCP03_CARD_SW.SECURITY_STATUS_NOT_SATISFIED) : cmd;
    }
    try {
      const p = session.unwrapCommand({ cla: cmd.cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data: cmd.data, extended: cmd.extended });
      return new CommandApdu({ cla: p.cla, ins: p.ins, p1: p.p1, p2: p.p2, data: p.data, ne: cmd.ne });
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      this.reset();
      return ResponseApdu.status(SCP03_CARD_SW.SECURITY_STATUS_NOT_SATISFIED);
    }
  }

  /** Protects the applet's response to the last unwrapped command per the level in force. */
  wrapResponse(resp: ResponseApdu): ResponseApdu {
    const session = this.#session;
    if (session === undefined) return resp;
    return new ResponseApdu(session.wrapResponse(resp.data, resp.sw), resp.sw);
  }
}
