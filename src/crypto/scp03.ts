/**
 * GlobalPlatform Secure Channel Protocol '03' (Card Specification Amendment D): the pieces both
 * ends share. Pure functions over bytes, plus one state object, Scp03Session, for the part where
 * state is real: the session keys, the MAC chaining value and the encryption counter of an open
 * secure channel. The host wrapper (src/reader/scp03.ts) and the card session
 * (emulator/security/scp03-card.ts) each hold one; neither knows about the other.
 *
 * Facts this module encodes (Amendment D v1.1.2):
 * - Session keys: S-ENC = KDF(K-ENC, 04), S-MAC = KDF(K-MAC, 06), S-RMAC = KDF(K-MAC, 07), each as
 *   long as its static key, context = host challenge || card challenge (see kdf.ts).
 * - Card cryptogram = KDF(S-MAC, 00), host cryptogram = KDF(S-MAC, 01), 64 bits in S8 mode, 128 in S16.
 * - Pseudo-random card challenge = KDF(K-ENC, 02, context = sequence counter (3 bytes) || AID of the
 *   security domain), 64 or 128 bits.
 * - C-MAC = CMAC(S-MAC, chaining value || CLA' INS P1 P2 Lc' || data'), where CLA' carries the
 *   secure-messaging bit, Lc' counts the MAC, data' is the (encrypted) data; the full 16-byte CMAC
 *   becomes the next chaining value (16 zero bytes before EXTERNAL AUTHENTICATE), its first 8 (S8)
 *   or 16 (S16) bytes are appended. Le is not MACed.
 * - The encryption counter starts at 0 after EXTERNAL AUTHENTICATE and is incremented for every
 *   command of the session, with or without data (the known-answer vectors depend on it).
 *   Command data is padded 80 00.. and AES-CBC-encrypted under S-ENC with ICV = E(S-ENC, counter as
 *   16 bytes big-endian); an empty data field is not encrypted.
 * - R-MAC = CMAC(S-RMAC, chaining value || response data || SW1 SW2), truncated like the C-MAC; the
 *   chaining value is the C-MAC of the command being answered. Response data is encrypted with
 *   ICV = E(S-ENC, counter with its first byte set to 80).
 * - §6.2.5: "No R-MAC shall be generated and no protection shall be applied to a response that
 *   includes an error status word"; every SW other than 9000, 62xx and 63xx is an error SW.
 *
 * Key forms: the MAC and encryption functions take a session key either as bytes (one-shot: node
 * ciphers built for the call) or as a keyed object (AesKey for S-ENC, CmacKey for S-MAC and
 * S-RMAC: ciphers and CMAC subkeys built once per session), with the same results. Scp03Session
 * builds its keyed objects when it opens and destroys them when it closes.
 */
import { AesKey, KeyDestroyedError, aesEncryptBlock, assertAesKey, AES_BLOCK } from './aes.js';
import { cmac, CmacKey } from './cmac.js';
import { scp03Kdf, type KdfOutputBits } from './kdf.js';
import { HiltError, BadInputError } from '../util/errors.js';
import { assertBytes, assertInt } from '../util/assert.js';
import { concatBytes, constantTimeEqual, zeroize, hexByte, hexWord } from '../util/bytes.js';

// ---------------------------------------------------------------------------------------------
// Tables

/** Derivation constants of Amendment D Table 4-1. */
export const DERIVATION_CONSTANT = {
  cardCryptogram: 0x00,
  hostCryptogram: 0x01,
  cardChallenge: 0x02,
  sEnc: 0x04,
  sMac: 0x06,
  sRmac: 0x07,
} as const;

/** Security levels of the P1 of EXTERNAL AUTHENTICATE (Amendment D Table 7-3). */
export const SECURITY_LEVEL = {
  /** Mutual authentication only; later commands travel in the clear. */
  NONE: 0x00,
  C_MAC: 0x01,
  C_MAC_C_DEC: 0x03,
  C_MAC_R_MAC: 0x11,
  C_MAC_C_DEC_R_MAC: 0x13,
  C_MAC_C_DEC_R_MAC_R_ENC: 0x33,
} as const;
export type SecurityLevel = (typeof SECURITY_LEVEL)[keyof typeof SECURITY_LEVEL];
const SECURITY_LEVELS: readonly number[] = Object.values(SECURITY_LEVEL);

export interface SecurityLevelFlags {
  cMac: boolean;
  cDec: boolean;
  rMac: boolean;
  rEnc: boolean;
}

/** Bits of the security level byte. */
const LEVEL_BIT = { cMac: 0x01, cDec: 0x02, rMac: 0x10, rEnc: 0x20 } as const;

export function isSecurityLevel(level: unknown): level is SecurityLevel {
  return typeof level === 'number' && SECURITY_LEVELS.includes(level);
}

export function assertSecurityLevel(level: unknown): asserts level is SecurityLevel {
  if (!isSecurityLevel(level)) {
    const got = typeof level === 'number' && Number.isInteger(level) && level >= 0 && level <= 0xff ? hexByte(level) : String(level);
    throw new BadInputError(`SCP03 security level: expected 00, 01, 03, 11, 13 or 33 (hex), got ${got}`);
  }
}

export function securityLevelFlags(level: SecurityLevel): SecurityLevelFlags {
  assertSecurityLevel(level);
  return {
    cMac: (level & LEVEL_BIT.cMac) !== 0,
    cDec: (level & LEVEL_BIT.cDec) !== 0,
    rMac: (level & LEVEL_BIT.rMac) !== 0,
    rEnc: (level & LEVEL_BIT.rEnc) !== 0,
  };
}

/** Bits of the SCP03 "i" parameter (Amendment D §5.1, Table 5-1). */
export const I_PARAMETER_BIT = {
  /** b1: S16 mode (16-byte challenges, cryptograms and MACs) instead of S8. */
  s16: 0x01,
  /** b5: pseudo-random card challenge (and a sequence counter in INITIALIZE UPDATE's response). */
  pseudoRandomChallenge: 0x10,
  /** b6: R-MAC supported. */
  rMac: 0x20,
  /** b7: R-ENC supported (requires b6). */
  rEnc: 0x40,
} as const;

export interface IParameter {
  i: number;
  s16: boolean;
  pseudoRandomChallenge: boolean;
  rMacSupported: boolean;
  rEncSupported: boolean;
}

export function decodeIParameter(i: number): IParameter {
  assertInt(i, 'SCP03 i parameter', 0, 0xff);
  return {
    i,
    s16: (i & I_PARAMETER_BIT.s16) !== 0,
    pseudoRandomChallenge: (i & I_PARAMETER_BIT.pseudoRandomChallenge) !== 0,
    rMacSupported: (i & I_PARAMETER_BIT.rMac) !== 0,
    rEncSupported: (i & I_PARAMETER_BIT.rEnc) !== 0,
  };
}

/** Whether a card with parameter `i` can open a session at `level`. */
export function levelSupported(level: SecurityLevel, i: number): boolean {
  const f = securityLevelFlags(level);
  const p = decodeIParameter(i);
  return (!f.rMac || p.rMacSupported) && (!f.rEnc || p.rEncSupported);
}

/** SCP identifier in the key information of INITIALIZE UPDATE's response. */
export const SCP03_ID = 0x03;
/** Length of the sequence counter returned in pseudo-random mode. */
export const SEQUENCE_COUNTER_LENGTH = 3;
export const MAX_SEQUENCE_COUNTER = 0xffffff;

/** Challenge, cryptogram and MAC length: 8 bytes in S8 mode, 16 in S16. */
export type Scp03BlockLength = 8 | 16;

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Why authentication failed or a secure channel ended, as data:
 * - card-cryptogram: the card's cryptogram did not verify (wrong keys, or not the card we think)
 * - card-challenge: a pseudo-random card challenge did not match the sequence counter and AID
 * - key-version: the card answered with another key version than the one expected
 * - card-refused: the card refused INITIALIZE UPDATE or EXTERNAL AUTHENTICATE (see `sw`)
 * - host-cryptogram / command-mac / command-padding / unprotected-command: card-side refusals
 * - response-mac / response-padding / unprotected-response: a response did not verify
 * - session-ended: the session is over (reset, a MAC failure); authenticate again
 */
export type AuthFailure =
  | 'card-cryptogram'
  | 'card-challenge'
  | 'key-version'
  | 'card-refused'
  | 'host-cryptogram'
  | 'command-mac'
  | 'command-padding'
  | 'unprotected-command'
  | 'response-mac'
  | 'response-padding'
  | 'unprotected-response'
  | 'session-ended';

/** Authentication or MAC failure. Callers branch on `reason` (and `code` is always AUTH_FAILED). */
export class AuthError extends HiltError {
  readonly reason: AuthFailure;
  /** The card's status word, when the failure is a card's refusal. */
  readonly sw: number | undefined;
  constructor(reason: AuthFailure, message: string, sw?: number) {
    super('AUTH_FAILED', sw === undefined ? message : `${message} (SW ${hexWord(sw)})`);
    this.reason = reason;
    this.sw = sw;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys, cryptograms, challenges

/** A static key set of a security domain: K-ENC, K-MAC, K-DEK and their key version number. */
export interface StaticKeys {
  enc: Uint8Array;
  mac: Uint8Array;
  dek: Uint8Array;
  /** Key version number, 0x01..0x7F for SCP03 key sets (00 in INITIALIZE UPDATE means "any"). */
  kvn: number;
}

export interface SessionKeys {
  sEnc: Uint8Array;
  sMac: Uint8Array;
  sRmac: Uint8Array;
}

export function assertStaticKeys(keys: unknown): asserts keys is StaticKeys {
  if (typeof keys !== 'object' || keys === null) throw new BadInputError(`SCP03 keys: expected {enc, mac, dek, kvn}, got ${String(keys)}`);
  const k = keys as Record<string, unknown>;
  assertAesKey(k.enc, 'K-ENC');
  assertAesKey(k.mac, 'K-MAC');
  assertAesKey(k.dek, 'K-DEK');
  assertInt(k.kvn, 'key version number', 0, 0xff);
}

function _assertChallenges(hostChallenge: Uint8Array, cardChallenge: Uint8Array): Scp03BlockLength {
  assertBytes(hostChallenge, 'host challenge', [8, 16]);
  assertBytes(cardChallenge, 'card challenge', [hostChallenge.length]);
  return hostChallenge.length as Scp03BlockLength;
}

const _bits = (n: number): KdfOutputBits => (n * 8) as KdfOutputBits;

/** S-ENC, S-MAC, S-RMAC for one session. The caller zeroizes them (zeroizeSessionKeys) when done. */
export function deriveSessionKeys(keys: Pick<StaticKeys, 'enc' | 'mac'>, hostChallenge: Uint8Array, cardChallenge: Uint8Array): SessionKeys {
  assertAesKey(keys.enc, 'K-ENC');
  assertAesKey(keys.mac, 'K-MAC');
  _assertChallenges(hostChallenge, cardChallenge);
  const context = concatBytes(hostChallenge, cardChallenge);
  return {
    sEnc: scp03Kdf(keys.enc, DERIVATION_CONSTANT.sEnc, context, _bits(keys.enc.length)),
    sMac: scp03Kdf(keys.mac, DERIVATION_CONSTANT.sMac, context, _bits(keys.mac.length)),
    sRmac: scp03Kdf(keys.mac, DERIVATION_CONSTANT.sRmac, context, _bits(keys.mac.length)),
  };
}

export function zeroizeSessionKeys(keys: SessionKeys): void {
  zeroize(keys.sEnc, keys.sMac, keys.sRmac);
}

/** A session's keys as keyed objects (persistent ciphers, CMAC subkeys once). */
export interface KeyedSessionKeys {
  sEnc: AesKey;
  sMac: CmacKey;
  sRmac: CmacKey;
}

/**
 * Keyed objects over S-ENC, S-MAC, S-RMAC (each holds its own copy; `keys` stay the caller's). No
 * cipher is built until a key is first used. Destroy them with destroyKeyedSessionKeys.
 */
export function keySessionKeys(keys: SessionKeys): KeyedSessionKeys {
  assertAesKey(keys.sEnc, 'S-ENC');
  assertAesKey(keys.sMac, 'S-MAC');
  assertAesKey(keys.sRmac, 'S-RMAC');
  return { sEnc: new AesKey(keys.sEnc), sMac: new CmacKey(keys.sMac), sRmac: new CmacKey(keys.sRmac) };
}

export function destroyKeyedSessionKeys(keys: KeyedSessionKeys): void {
  keys.sEnc.destroy();
  keys.sMac.destroy();
  keys.sRmac.destroy();
}

/** S-ENC as bytes or as a keyed object. */
export type EncKey = Uint8Array | AesKey;
/** S-MAC or S-RMAC as bytes or as a keyed object. */
export type MacKey = Uint8Array | CmacKey;

function _assertMacKey(key: MacKey, name: string): void {
  if (key instanceof CmacKey) {
    if (key.destroyed) throw new KeyDestroyedError(name);
  } else {
    assertAesKey(key, name);
  }
}

function _assertEncKey(key: EncKey, name: string): void {
  if (key instanceof AesKey) {
    if (key.destroyed) throw new KeyDestroyedError(name);
  } else {
    assertAesKey(key, name);
  }
}

const _mac = (key: MacKey, msg: Uint8Array): Uint8Array => (key instanceof CmacKey ? key.mac(msg) : cmac(key, msg));

function _cryptogram(constant: number, sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  assertAesKey(sMac, 'S-MAC');
  const n = _assertChallenges(hostChallenge, cardChallenge);
  return scp03Kdf(sMac, constant, concatBytes(hostChallenge, cardChallenge), _bits(n));
}

/** The card's cryptogram, as long as the challenges (8 bytes in S8 mode, 16 in S16). */
export function cardCryptogram(sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  return _cryptogram(DERIVATION_CONSTANT.cardCryptogram, sMac, hostChallenge, cardChallenge);
}

/** The host's cryptogram, sent in EXTERNAL AUTHENTICATE. */
export function hostCryptogram(sMac: Uint8Array, hostChallenge: Uint8Array, cardChallenge: Uint8Array): Uint8Array {
  return _cryptogram(DERIVATION_CONSTANT.hostCryptogram, sMac, hostChallenge, cardChallenge);
}

/** Sequence counter as the 3 bytes INITIALIZE UPDATE returns. */
export function encodeSequenceCounter(counter: number): Uint8Array {
  assertInt(counter, 'sequence counter', 0, MAX_SEQUENCE_COUNTER);
  return Uint8Array.of(counter >> 16, (counter >> 8) & 0xff, counter & 0xff);
}

export function decodeSequenceCounter(bytes: Uint8Array): number {
  assertBytes(bytes, 'sequence counter', [SEQUENCE_COUNTER_LENGTH]);
  return (bytes[0] << 16) | (bytes[1] << 8) | bytes[2];
}

/** The card challenge of pseudo-random mode: KDF(K-ENC, 02, sequence counter || AID). */
export function pseudoRandomCardChallenge(kEnc: Uint8Array, sequenceCounter: Uint8Array, aid: Uint8Array, length: Scp03BlockLength = 8): Uint8Array {
  assertAesKey(kEnc, 'K-ENC');
  assertBytes(sequenceCounter, 'sequence counter', [SEQUENCE_COUNTER_LENGTH]);
  assertBytes(aid, 'AID');
  if (aid.length < 5 || aid.length > 16) throw new BadInputError(`AID: expected 5 to 16 bytes, got ${aid.length}`);
  assertInt(length, 'card challenge length', 8, 16);
  return scp03Kdf(kEnc, DERIVATION_CONSTANT.cardChallenge, concatBytes(sequenceCounter, aid), _bits(length));
}

// ---------------------------------------------------------------------------------------------
// CLA, padding, MACs, encryption

/** True when CLA indicates secure messaging (b3 in the first interindustry form, b6 in the further). */
export function hasSecureMessaging(cla: number): boolean {
  assertInt(cla, 'CLA', 0, 0xfe);
  return (cla & 0x40) === 0 ? (cla & 0x0c) !== 0 : (cla & 0x20) !== 0;
}

/**
 * CLA with GlobalPlatform's secure-messaging indication set: b4b3 = 01 in the first forms, channels
 * 0..3 (80 → 84, 00 → 04; proprietary 8X..BX all read as the first form), b6 in the further forms,
 * channels 4..19 (C0 → E0). Channel and chaining bits are kept; the reserved classes 20..3F refused.
 */
export function secureMessagingCla(cla: number): number {
  assertInt(cla, 'CLA', 0, 0xfe);
  if ((cla & 0xe0) === 0x20) throw new BadInputError(`CLA ${hexByte(cla)} is a reserved class; it cannot carry secure messaging`);
  const out = (cla & 0x40) === 0 ? (cla & ~0x0c & 0xff) | 0x04 : cla | 0x20;
  // DF (channel 19, chaining) would become the invalid FF.
  if (out === 0xff) throw new BadInputError(`CLA ${hexByte(cla)} with secure messaging would be FF, which is invalid`);
  return out;
}

/** CLA with the secure-messaging indication cleared (what the applet behind the card session sees). */
export function plainCla(cla: number): number {
  assertInt(cla, 'CLA', 0, 0xfe);
  return (cla & 0x40) === 0 ? cla & ~0x0c & 0xff : cla & ~0x20 & 0xff;
}

/** ISO/IEC 9797-1 padding method 2: 80 then 00 up to the next 16-byte boundary (always adds a byte). */
export function pad80(data: Uint8Array): Uint8Array {
  assertBytes(data, 'data to pad');
  const out = new Uint8Array((Math.floor(data.length / AES_BLOCK) + 1) * AES_BLOCK);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/** Strips method-2 padding; undefined when the padding is absent or malformed. */
export function unpad80(data: Uint8Array): Uint8Array | undefined {
  assertBytes(data, 'padded data');
  if (data.length === 0 || data.length % AES_BLOCK !== 0) return undefined;
  let i = data.length - 1;
  const stop = data.length - AES_BLOCK; // the 80 lies in the last block
  while (i > stop && data[i] === 0) i--;
  return data[i] === 0x80 ? data.slice(0, i) : undefined;
}

/** The four header bytes of a command, with the CLA as it travels (secure-messaging bit set). */
export interface ApduHeader {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
}

/** A command as the session sees it: header, data field, and whether its lengths are extended. */
export interface CommandFields extends ApduHeader {
  data: Uint8Array;
  /** Extended-length encoding (Lc on 3 bytes: 00 Lc1 Lc2), which the C-MAC covers as sent. */
  extended: boolean;
}

const MAX_NC = 65535;
const MAX_SHORT_NC = 255;

/**
 * The C-MAC of one command: CMAC(S-MAC, chaining value || header || Lc || data), where Lc is
 * data.length + macLength in the short or the extended form. Returns the full 16 bytes, which are
 * the next chaining value; the MAC field is its first `macLength` bytes.
 */
export function computeCMac(sMac: MacKey, chainingValue: Uint8Array, header: ApduHeader, data: Uint8Array, macLength: Scp03BlockLength, extended: boolean): Uint8Array {
  _assertMacKey(sMac, 'S-MAC');
  assertBytes(chainingValue, 'MAC chaining value', [16]);
  assertBytes(data, 'command data');
  const lc = data.length + macLength;
  if (lc > MAX_NC) throw new BadInputError(`command data: at most ${MAX_NC - macLength} bytes fit with the C-MAC, got ${data.length}`);
  const useExtended = extended || lc > MAX_SHORT_NC;
  const lcBytes = useExtended ? Uint8Array.of(0, lc >> 8, lc & 0xff) : Uint8Array.of(lc);
  return _mac(sMac, concatBytes(chainingValue, Uint8Array.of(header.cla, header.ins, header.p1, header.p2), lcBytes, data));
}

/** The R-MAC of one response: CMAC(S-RMAC, chaining value || data || SW1 SW2), full 16 bytes. */
export function computeRMac(sRmac: MacKey, chainingValue: Uint8Array, data: Uint8Array, sw: number): Uint8Array {
  _assertMacKey(sRmac, 'S-RMAC');
  assertBytes(chainingValue, 'MAC chaining value', [16]);
  assertBytes(data, 'response data');
  assertInt(sw, 'SW', 0, 0xffff);
  return _mac(sRmac, concatBytes(chainingValue, data, Uint8Array.of(sw >> 8, sw & 0xff)));
}

/** ICV for command (first byte of the counter block as is) or response (first byte 80) encryption. */
export function encryptionIcv(sEnc: EncKey, counter: number, forResponse: boolean): Uint8Array {
  assertInt(counter, 'encryption counter', 0, Number.MAX_SAFE_INTEGER);
  const block = new Uint8Array(AES_BLOCK);
  let c = counter;
  for (let i = AES_BLOCK - 1; i >= 0 && c > 0; i--) {
    block[i] = c % 256;
    c = Math.floor(c / 256);
  }
  if (forResponse) block[0] = 0x80;
  return sEnc instanceof AesKey ? sEnc.encryptBlock(block) : aesEncryptBlock(sEnc, block);
}

/** Runs `op` over S-ENC as a keyed object: the caller's, or one built for this call and destroyed. */
function _withEncKey<T>(sEnc: EncKey, op: (key: AesKey) => T): T {
  if (sEnc instanceof AesKey) return op(sEnc);
  const key = new AesKey(sEnc);
  try {
    return op(key);
  } finally {
    key.destroy();
  }
}

function _encrypt(sEnc: EncKey, counter: number, forResponse: boolean, data: Uint8Array): Uint8Array {
  _assertEncKey(sEnc, 'S-ENC');
  assertBytes(data, 'plaintext');
  if (data.length === 0) return new Uint8Array(0);
  return _withEncKey(sEnc, (key) => {
    const icv = encryptionIcv(key, counter, forResponse);
    const padded = pad80(data);
    try {
      return key.cbcEncrypt(icv, padded);
    } finally {
      zeroize(padded, icv);
    }
  });
}

function _decrypt(sEnc: EncKey, counter: number, forResponse: boolean, data: Uint8Array): Uint8Array | undefined {
  _assertEncKey(sEnc, 'S-ENC');
  assertBytes(data, 'ciphertext');
  if (data.length === 0) return new Uint8Array(0);
  if (data.length % AES_BLOCK !== 0) return undefined;
  return _withEncKey(sEnc, (key) => {
    const icv = encryptionIcv(key, counter, forResponse);
    const padded = key.cbcDecrypt(icv, data);
    const out = unpad80(padded);
    zeroize(padded, icv);
    return out;
  });
}

/** C-DECRYPTION on the host: pad and encrypt a command's data (empty stays empty). */
export function encryptCommandData(sEnc: EncKey, counter: number, data: Uint8Array): Uint8Array {
  return _encrypt(sEnc, counter, false, data);
}

/** The card's inverse of encryptCommandData; undefined when the length or the padding is wrong. */
export function decryptCommandData(sEnc: EncKey, counter: number, data: Uint8Array): Uint8Array | undefined {
  return _decrypt(sEnc, counter, false, data);
}

/** R-ENCRYPTION on the card: pad and encrypt response data (empty stays empty). */
export function encryptResponseData(sEnc: EncKey, counter: number, data: Uint8Array): Uint8Array {
  return _encrypt(sEnc, counter, true, data);
}

/** The host's inverse of encryptResponseData; undefined when the length or the padding is wrong. */
export function decryptResponseData(sEnc: EncKey, counter: number, data: Uint8Array): Uint8Array | undefined {
  return _decrypt(sEnc, counter, true, data);
}

/** 9000 and the warnings 62xx, 63xx: the status words whose responses secure messaging protects. */
export function isProtectedSw(sw: number): boolean {
  const sw1 = sw >> 8;
  return sw === 0x9000 || sw1 === 0x62 || sw1 === 0x63;
}

// ---------------------------------------------------------------------------------------------
// The session

export interface Scp03SessionInit {
  /** Session keys; the session takes ownership and zeroizes them on close. */
  keys: SessionKeys;
  level: SecurityLevel;
  macLength: Scp03BlockLength;
  /** The C-MAC of EXTERNAL AUTHENTICATE (16 bytes), copied. */
  chainingValue: Uint8Array;
}

/**
 * An open SCP03 secure channel after EXTERNAL AUTHENTICATE, from either end. The host calls
 * wrapCommand then unwrapResponse; the card calls unwrapCommand then wrapResponse. Any AuthError
 * thrown by an unwrap leaves the session to the caller to close (both callers close it). After
 * close() every method throws AuthError('session-ended').
 */
export class Scp03Session {
  readonly level: SecurityLevel;
  readonly macLength: Scp03BlockLength;
  readonly #flags: SecurityLevelFlags;
  readonly #keys: SessionKeys;
  /** Keyed objects over #keys, built once for the session and destroyed by close(). */
  readonly #keyed: KeyedSessionKeys;
  readonly #chain: Uint8Array;
  #counter = 0;
  #open = true;

  constructor(init: Scp03SessionInit) {
    assertSecurityLevel(init.level);
    if (init.macLength !== 8 && init.macLength !== 16) throw new BadInputError(`MAC length: expected 8 or 16, got ${String(init.macLength)}`);
    assertAesKey(init.keys.sEnc, 'S-ENC');
    assertAesKey(init.keys.sMac, 'S-MAC');
    assertAesKey(init.keys.sRmac, 'S-RMAC');
    assertBytes(init.chainingValue, 'MAC chaining value', [16]);
    this.level = init.level;
    this.macLength = init.macLength;
    this.#flags = securityLevelFlags(init.level);
    this.#keys = init.keys;
    this.#keyed = keySessionKeys(init.keys);
    this.#chain = init.chainingValue.slice();
  }

  get open(): boolean {
    return this.#open;
  }

  get flags(): SecurityLevelFlags {
    return { ...this.#flags };
  }

  /** Number of commands wrapped or unwrapped so far (the current encryption counter). */
  get counter(): number {
    return this.#counter;
  }

  #assertOpen(): void {
    if (!this.#open) throw new AuthError('session-ended', 'SCP03 session is closed; authenticate again');
  }

  /** Host: protects one command per the level. `cmd.cla` is the plain CLA. */
  wrapCommand(cmd: CommandFields): CommandFields {
    this.#assertOpen();
    if (this.level === SECURITY_LEVEL.NONE) return { ...cmd, data: cmd.data.slice() };
    this.#counter++;
    const body = this.#flags.cDec ? encryptCommandData(this.#keyed.sEnc, this.#counter, cmd.data) : cmd.data.slice();
    const header = { cla: secureMessagingCla(cmd.cla), ins: cmd.ins, p1: cmd.p1, p2: cmd.p2 };
    const lc = body.length + this.macLength;
    const extended = cmd.extended || lc > MAX_SHORT_NC;
    const mac = computeCMac(this.#keyed.sMac, this.#chain, header, body, this.macLength, extended);
    this.#chain.set(mac);
    const data = concatBytes(body, mac.subarray(0, this.macLength));
    zeroize(mac);
    return { ...header, data, extended };
  }

  /**
   * Card: verifies and strips the protection of one command; returns it with the plain CLA.
   * Throws AuthError on a MAC or padding failure, or when a command lacks the protection the level
   * requires. The chaining value moves only when the MAC verifies, so a replay can never verify.
   */
  unwrapCommand(cmd: CommandFields): CommandFields {
    this.#assertOpen();
    const sm = hasSecureMessaging(cmd.cla);
    if (this.level === SECURITY_LEVEL.NONE) {
      if (sm) throw new AuthError('unprotected-command', 'secure messaging indicated in a session at security level 00');
      return { ...cmd, data: cmd.data.slice() };
    }
    if (!sm) throw new AuthError('unprotected-command', `CLA ${hexByte(cmd.cla)} carries no secure messaging at security level ${hexByte(this.level)}`);
    if (cmd.data.length < this.macLength) {
      throw new AuthError('command-mac', `command data of ${cmd.data.length} bytes cannot hold a ${this.macLength}-byte C-MAC`);
    }
    const body = cmd.data.subarray(0, cmd.data.length - this.macLength);
    const received = cmd.data.subarray(cmd.data.length - this.macLength);
    const header = { cla: cmd.cla, ins: cmd.ins, p1: cmd.p1, p2: cmd.p2 };
    const mac = computeCMac(this.#keyed.sMac, this.#chain, header, body, this.macLength, cmd.extended);
    if (!constantTimeEqual(mac.subarray(0, this.macLength), received)) {
      zeroize(mac);
      throw new AuthError('command-mac', 'C-MAC does not verify');
    }
    this.#chain.set(mac);
    zeroize(mac);
    this.#counter++;
    let data: Uint8Array = body.slice();
    if (this.#flags.cDec && body.length > 0) {
      const plain = decryptCommandData(this.#keyed.sEnc, this.#counter, body);
      if (plain === undefined) throw new AuthError('command-padding', 'encrypted command data is not a padded whole number of blocks');
      data = plain;
    }
    // The plain command's length form follows its own data; the caller re-derives it with Ne.
    return { cla: plainCla(cmd.cla), ins: cmd.ins, p1: cmd.p1, p2: cmd.p2, data, extended: data.length > MAX_SHORT_NC };
  }

  /** Card: protects the response to the last unwrapped command; returns the data field to send. */
  wrapResponse(data: Uint8Array, sw: number): Uint8Array {
    this.#assertOpen();
    assertBytes(data, 'response data');
    assertInt(sw, 'SW', 0, 0xffff);
    if (!this.#flags.rMac) return data.slice();
    if (!isProtectedSw(sw)) return new Uint8Array(0); // §6.2.5: an error SW travels alone
    const body = this.#flags.rEnc ? encryptResponseData(this.#keyed.sEnc, this.#counter, data) : data.slice();
    const mac = computeRMac(this.#keyed.sRmac, this.#chain, body, sw);
    const out = concatBytes(body, mac.subarray(0, this.macLength));
    zeroize(mac);
    return out;
  }

  /**
   * Host: verifies and strips the protection of the response to the last wrapped command. An error
   * SW alone (no data) is returned as is, as §6.2.5 prescribes; an error SW with data is refused
   * (AuthError 'unprotected-response'): that data could not be authenticated.
   */
  unwrapResponse(data: Uint8Array, sw: number): Uint8Array {
    this.#assertOpen();
    assertBytes(data, 'response data');
    assertInt(sw, 'SW', 0, 0xffff);
    if (!this.#flags.rMac) return data.slice();
    if (!isProtectedSw(sw)) {
      if (data.length === 0) return new Uint8Array(0);
      throw new AuthError('unprotected-response', `${data.length} bytes of response data came with error SW ${hexWord(sw)} and no R-MAC`, sw);
    }
    if (data.length < this.macLength) {
      throw new AuthError('response-mac', `response data of ${data.length} bytes cannot hold a ${this.macLength}-byte R-MAC`, sw);
    }
    const body = data.subarray(0, data.length - this.macLength);
    const received = data.subarray(data.length - this.macLength);
    const mac = computeRMac(this.#keyed.sRmac, this.#chain, body, sw);
    const ok = constantTimeEqual(mac.subarray(0, this.macLength), received);
    zeroize(mac);
    if (!ok) throw new AuthError('response-mac', 'R-MAC does not verify', sw);
    if (!this.#flags.rEnc || body.length === 0) return body.slice();
    const plain = decryptResponseData(this.#keyed.sEnc, this.#counter, body);
    if (plain === undefined) throw new AuthError('response-padding', 'encrypted response data is not a padded whole number of blocks', sw);
    return plain;
  }

  /** Zeroizes the session keys and the chaining value and destroys the keyed objects. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    destroyKeyedSessionKeys(this.#keyed);
    zeroizeSessionKeys(this.#keys);
    zeroize(this.#chain);
    this.#counter = 0;
  }
}
