/**
 * Reader authentication (the NEC paper's "reader authentication" at the host): a reader proves it is
 * the device the operator put into service, when it is first put into service (enrolment) and
 * periodically after (sign-on). Both are 0800 sign-on messages (70 = 001) whose field 62 carries the
 * proof; the host answers 0810. The whole 0800 is also MACed with the terminal's key (mac.ts), so the
 * signature proves the reader and the MAC the terminal it sits in.
 *
 * Keys: each reader has its own ECDSA key pair on P-256 (@noble/curves), generated on the reader; the
 * host keeps only the public key (uncompressed, 65 bytes 04 ‖ X ‖ Y). Signatures are ECDSA P-256 over
 * SHA-256 of the signed bytes below, compact r ‖ s (64 bytes), low-S.
 *
 * 1. Enrolment (once, and again whenever the operator re-keys a reader). The operator issues a
 *    one-time code for (terminal id, reader id) through the hosts' admin API and gives it to the
 *    person installing the reader. The reader sends
 *      0800 70=001  62 {DF42 code, DF43 public key, DF41 signature}
 *    signed bytes:  "hilt-reader-enrol-v1" ‖ lv(code) ‖ lv(terminal id) ‖ lv(reader id) ‖ public key
 *    (the signature proves possession of the private key). The host checks the code (known, issued
 *    for this terminal and reader, unused, not expired), the signature, and the negative reader list,
 *    burns the code, stores the key: 0810 00 = enrolled AND signed on.
 * 2. Sign-on, step 1 (challenge): 0800 70=001 without field 62. The host answers 0810 00 with
 *    62 {DF40 challenge}: 16 random bytes, for this terminal and reader only, single use, valid for
 *    a short time (the host's choice, 60 s by default).
 * 3. Sign-on, step 2 (proof): 0800 70=001  62 {DF40 challenge, DF41 signature}
 *    signed bytes:  "hilt-reader-signon-v1" ‖ lv(challenge) ‖ lv(terminal id) ‖ lv(reader id)
 *    The host burns the challenge whatever the outcome, checks the signature under the enrolled key:
 *    0810 00 = signed on, for a session of limited length (the host's choice). Every other message
 *    from the reader is refused with 76 until it is signed on, and again after the session expires.
 *
 * lv(x) = one length byte ‖ x (ids and codes are ASCII, at most 32 bytes), so the signed bytes name
 * each part unambiguously; the two labels keep an enrolment signature from ever being a sign-on
 * signature. Terminal and reader id are field 41 / 42 without their space padding.
 *
 * Response codes (field 39 of the 0810, and of any refused message for 76, 79, 80):
 *
 *   | 39 | RC name            | when                                                            |
 *   |----|--------------------|-----------------------------------------------------------------|
 *   | 00 | approved           | enrolled; challenge issued; signed on                           |
 *   | 76 | readerNotSignedOn  | any other message before sign-on or after the session expired   |
 *   | 77 | badEnrolmentCode   | enrolment code unknown, used, expired or for another reader     |
 *   | 78 | badReaderSignature | the signature does not verify (enrolment or sign-on)            |
 *   | 79 | unknownReader      | challenge or proof from a reader never enrolled                 |
 *   | 80 | blockedReader      | the reader is on the negative reader list: at sign-on and every message |
 *   | 81 | badChallenge       | the challenge is unknown, already used, expired or for another reader |
 *   | 30 | formatError        | field 62 is not one of the three shapes above                   |
 */
import { p256 } from '@noble/curves/nist.js';
import { Iso8583Error } from './iso8583/errors.js';
import type { IsoMessage } from './iso8583/message.js';
import { networkResponse, signOnRequest, RC, type NetworkRequest, type NetworkResponse, type RequestHeader, type ResponseCode } from './messages.js';
import { BadInputError } from '../util/errors.js';
import { assertBytes } from '../util/assert.js';
import { concatBytes } from '../util/bytes.js';

/** Bytes of an uncompressed P-256 public key (04 ‖ X ‖ Y). */
export const READER_PUBLIC_KEY_LENGTH = 65;
/** Bytes of a P-256 private key. */
export const READER_PRIVATE_KEY_LENGTH = 32;
/** Bytes of a compact ECDSA P-256 signature (r ‖ s). */
export const READER_SIGNATURE_LENGTH = 64;
/** Bytes of a sign-on challenge. */
export const CHALLENGE_LENGTH = 16;
/** Enrolment codes: 8..32 characters of ENROLMENT_CODE_ALPHABET. */
export const ENROLMENT_CODE_MIN = 8;
export const ENROLMENT_CODE_MAX = 32;
/** Crockford base32 without I, L, O, U: read aloud and typed by people, no look-alikes. */
export const ENROLMENT_CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export const ENROLMENT_LABEL = 'hilt-reader-enrol-v1';
export const SIGN_ON_LABEL = 'hilt-reader-signon-v1';

/** The reader-authentication answers of RC, by name (documented above). */
export const READER_AUTH_CODES = {
  enrolled: RC.approved,
  challengeIssued: RC.approved,
  signedOn: RC.approved,
  notSignedOn: RC.readerNotSignedOn,
  badCode: RC.badEnrolmentCode,
  badSignature: RC.badReaderSignature,
  unknownReader: RC.unknownReader,
  blockedReader: RC.blockedReader,
  badChallenge: RC.badChallenge,
  malformed: RC.formatError,
} as const satisfies Record<string, ResponseCode>;

const ascii = new TextEncoder();

function _ascii(value: unknown, name: string, min: number, max: number): Uint8Array {
  if (typeof value !== 'string' || value.length < min || value.length > max || !/^[\x21-\x7e]+$/.test(value)) {
    throw new BadInputError(`${name}: expected ${min} to ${max} printable ASCII characters without spaces, got ${JSON.stringify(value)}`);
  }
  return ascii.encode(value);
}

function _lv(bytes: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(bytes.length), bytes);
}

function _trimmed(id: string): string {
  return id.replace(/ +$/, '');
}

/** A fresh reader key pair (P-256); the public key uncompressed, 65 bytes. */
export function generateReaderKeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = p256.utils.randomSecretKey();
  return { privateKey, publicKey: p256.getPublicKey(privateKey, false) };
}

/** The public key of a private key, uncompressed. */
export function readerPublicKey(privateKey: Uint8Array): Uint8Array {
  assertBytes(privateKey, 'reader private key', [READER_PRIVATE_KEY_LENGTH]);
  return p256.getPublicKey(privateKey, false);
}

/** True for 65 bytes 04 ‖ X ‖ Y that are a point of P-256. */
export function isReaderPublicKey(publicKey: unknown): publicKey is Uint8Array {
  return publicKey instanceof Uint8Array && publicKey.length === READER_PUBLIC_KEY_LENGTH && publicKey[0] === 0x04 && p256.utils.isValidPublicKey(publicKey, false);
}

/** The bytes an enrolment signature covers (layout in the header comment). */
export function enrolmentSignedBytes(code: string, terminalId: string, readerId: string, publicKey: Uint8Array): Uint8Array {
  assertBytes(publicKey, 'reader public key', [READER_PUBLIC_KEY_LENGTH]);
  return concatBytes(
    ascii.encode(ENROLMENT_LABEL),
    _lv(_ascii(code, 'enrolment code', ENROLMENT_CODE_MIN, ENROLMENT_CODE_MAX)),
    _lv(_ascii(_trimmed(terminalId), 'terminal id', 1, 32)),
    _lv(_ascii(_trimmed(readerId), 'reader id', 1, 32)),
    publicKey,
  );
}

/** The bytes a sign-on signature covers (layout in the header comment). */
export function signOnSignedBytes(challenge: Uint8Array, terminalId: string, readerId: string): Uint8Array {
  assertBytes(challenge, 'challenge', [CHALLENGE_LENGTH]);
  return concatBytes(ascii.encode(SIGN_ON_LABEL), _lv(challenge), _lv(_ascii(_trimmed(terminalId), 'terminal id', 1, 32)), _lv(_ascii(_trimmed(readerId), 'reader id', 1, 32)));
}

function _sign(bytes: Uint8Array, privateKey: Uint8Array): Uint8Array {
  assertBytes(privateKey, 'reader private key', [READER_PRIVATE_KEY_LENGTH]);
  return p256.sign(bytes, privateKey, { prehash: true, lowS: true });
}

function _verify(signature: Uint8Array | undefined, bytes: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== READER_SIGNATURE_LENGTH || !isReaderPublicKey(publicKey)) return false;
  try {
    return p256.verify(signature, bytes, publicKey, { prehash: true, lowS: true });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Terminal side

/** Enrolment: 0800 sign-on, 62 {DF42 code, DF43 public key, DF41 signature}. Unsigned (the channel MACs it). */
export function enrolmentRequest(h: RequestHeader, o: { code: string; publicKey: Uint8Array; privateKey: Uint8Array }): IsoMessage {
  if (typeof o !== 'object' || o === null) throw new BadInputError('enrolment: expected { code, publicKey, privateKey }');
  if (!isReaderPublicKey(o.publicKey)) throw new BadInputError('enrolment: publicKey is not an uncompressed P-256 point (65 bytes 04 X Y)');
  const signed = enrolmentSignedBytes(o.code, h.terminalId, h.readerId, o.publicKey);
  const signature = _sign(signed, o.privateKey);
  return signOnRequest(h, { enrolmentCode: ascii.encode(o.code), publicKey: o.publicKey, signature });
}

/** Sign-on step 1: 0800 sign-on without field 62; the host answers with a challenge. */
export function signOnChallengeRequest(h: RequestHeader): IsoMessage {
  return signOnRequest(h);
}

/** Sign-on step 2: 0800 sign-on, 62 {DF40 challenge, DF41 signature}. */
export function signOnProofRequest(h: RequestHeader, challenge: Uint8Array, privateKey: Uint8Array): IsoMessage {
  const signature = _sign(signOnSignedBytes(challenge, h.terminalId, h.readerId), privateKey);
  return signOnRequest(h, { challenge, signature });
}

/** The challenge of an approved answer to step 1, or null when the answer has none. */
export function challengeOf(response: NetworkResponse): Uint8Array | null {
  const c = response.readerAuth?.challenge;
  return response.responseCode === RC.approved && c !== undefined && c.length === CHALLENGE_LENGTH ? c : null;
}

// ---------------------------------------------------------------------------------------------
// Host side

export type SignOnStep =
  | { step: 'enrolment'; terminalId: string; readerId: string; code: string; publicKey: Uint8Array; signature: Uint8Array }
  | { step: 'challenge'; terminalId: string; readerId: string }
  | { step: 'proof'; terminalId: string; readerId: string; challenge: Uint8Array; signature: Uint8Array };

/**
 * Which of the three sign-on shapes a parsed 0800 sign-on is (Iso8583Error PROTOCOL, so 30, for any
 * other combination of field 62's tags, or for a request that is not a sign-on).
 */
export function signOnStep(req: NetworkRequest): SignOnStep {
  const fail = (why: string): never => {
    throw new Iso8583Error('PROTOCOL', 'bad-value', `sign-on: ${why}`, 62);
  };
  if (req.code !== 'signOn') fail(`network code ${req.code} is not a sign-on`);
  const { terminalId, readerId } = req.header;
  const ra = req.readerAuth;
  if (ra === undefined) return { step: 'challenge', terminalId, readerId };
  const has = [ra.enrolmentCode, ra.publicKey, ra.challenge, ra.signature].map((x) => x !== undefined).join('');
  if (has === 'truetruefalsetrue') {
    const codeBytes = ra.enrolmentCode as Uint8Array;
    const code = String.fromCharCode(...codeBytes);
    if (!/^[\x21-\x7e]+$/.test(code)) fail('the enrolment code is not printable ASCII');
    return { step: 'enrolment', terminalId, readerId, code, publicKey: ra.publicKey as Uint8Array, signature: ra.signature as Uint8Array };
  }
  if (has === 'falsefalsetruetrue') return { step: 'proof', terminalId, readerId, challenge: ra.challenge as Uint8Array, signature: ra.signature as Uint8Array };
  return fail('field 62 must be {DF42, DF43, DF41} (enrolment), {DF40, DF41} (proof) or absent (challenge)');
}

/** Whether an enrolment's signature verifies under the public key it carries (possession proof). */
export function verifyEnrolment(e: { terminalId: string; readerId: string; code: string; publicKey: Uint8Array; signature: Uint8Array }): boolean {
  if (!isReaderPublicKey(e.publicKey)) return false;
  let signed: Uint8Array;
  try {
    signed = enrolmentSignedBytes(e.code, e.terminalId, e.readerId, e.publicKey);
  } catch {
    return false;
  }
  return _verify(e.signature, signed, e.publicKey);
}

/** Whether a sign-on proof's signature verifies under the reader's enrolled public key. */
export function verifySignOnProof(p: { terminalId: string; readerId: string; challenge: Uint8Array; signature: Uint8Array }, publicKey: Uint8Array): boolean {
  let signed: Uint8Array;
  try {
    signed = signOnSignedBytes(p.challenge, p.terminalId, p.readerId);
  } catch {
    return false;
  }
  return _verify(p.signature, signed, publicKey);
}

/** The host's 0810 to a sign-on; `challenge` only with 00 to step 1. */
export function signOnResponse(request: IsoMessage, o: { responseCode: ResponseCode; at: Date; challenge?: Uint8Array }): IsoMessage {
  if (o.challenge !== undefined) {
    assertBytes(o.challenge, 'challenge', [CHALLENGE_LENGTH]);
    if (o.responseCode !== RC.approved) throw new BadInputError('a challenge goes only in an approval');
    return networkResponse(request, { responseCode: o.responseCode, at: o.at, readerAuth: { challenge: o.challenge } });
  }
  return networkResponse(request, { responseCode: o.responseCode, at: o.at });
}
