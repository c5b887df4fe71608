/**
 * Reader authentication (src/hostlink/reader-auth.ts): the three sign-on shapes go over the wire and
 * are recognised; signatures verify only for the bytes, ids and key they were made for.
 */
import { describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import {
  CHALLENGE_LENGTH,
  READER_AUTH_CODES,
  challengeOf,
  enrolmentRequest,
  enrolmentSignedBytes,
  generateReaderKeyPair,
  isReaderPublicKey,
  readerPublicKey,
  signOnChallengeRequest,
  signOnProofRequest,
  signOnResponse,
  signOnSignedBytes,
  signOnStep,
  verifyEnrolment,
  verifySignOnProof,
} from '../../src/hostlink/reader-auth.js';
import { RC, RESPONSE_CODES, TAG, echoRequest, parseNetworkRequest, parseNetworkResponse, signOnRequest } from '../../src/hostlink/messages.js';
import { pack, unpack } from '../../src/hostlink/iso8583/packager.js';
import { signMessage } from '../../src/hostlink/iso8583/mac.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { Iso8583Error } from '../../src/hostlink/iso8583/errors.js';
import { header, macKeyOf } from './helpers.js';
import { testTerminalMacKey, TEST_HOST_MAC_MASTER_HEX } from '../../src/hostlink/test-keys.js';
import { deriveTerminalKey } from '../../src/hostlink/iso8583/mac.js';
import { fromHex } from '../../src/util/bytes.js';

const wire = (m: IsoMessage): IsoMessage => unpack(pack(signMessage(m, macKeyOf('TERM0001')))).message;
const CODE = 'K7Q2M9X4PA';

describe('reader key pairs', () => {
  it('are P-256, public key uncompressed 65 bytes, and different each time', () => {
    const a = generateReaderKeyPair();
    const b = generateReaderKeyPair();
    expect(a.publicKey.length).toBe(65);
    expect(a.publicKey[0]).toBe(0x04);
    expect(a.privateKey.length).toBe(32);
    expect(isReaderPublicKey(a.publicKey)).toBe(true);
    expect(readerPublicKey(a.privateKey)).toEqual(a.publicKey);
    expect(a.publicKey).not.toEqual(b.publicKey);
    const notOnCurve = a.publicKey.slice();
    notOnCurve[64] ^= 1;
    expect(isReaderPublicKey(notOnCurve)).toBe(false);
    expect(isReaderPublicKey(p256.getPublicKey(a.privateKey, true))).toBe(false);
  });
});

describe('enrolment', () => {
  const kp = generateReaderKeyPair();
  it('goes over the wire and verifies', () => {
    const msg = wire(enrolmentRequest(header(), { code: CODE, ...kp }));
    expect(msg.mti).toBe('0800');
    const step = signOnStep(parseNetworkRequest(msg));
    expect(step.step).toBe('enrolment');
    if (step.step !== 'enrolment') return;
    expect(step.code).toBe(CODE);
    expect(step.publicKey).toEqual(kp.publicKey);
    expect(step.signature.length).toBe(64);
    expect(verifyEnrolment(step)).toBe(true);
  });
  it('does not verify for another code, terminal, reader or key', () => {
    const step = signOnStep(parseNetworkRequest(wire(enrolmentRequest(header(), { code: CODE, ...kp }))));
    if (step.step !== 'enrolment') throw new Error('not an enrolment');
    expect(verifyEnrolment({ ...step, code: 'K7Q2M9X4PB' })).toBe(false);
    expect(verifyEnrolment({ ...step, terminalId: 'TERM0002' })).toBe(false);
    expect(verifyEnrolment({ ...step, readerId: 'READER02' })).toBe(false);
    expect(verifyEnrolment({ ...step, publicKey: generateReaderKeyPair().publicKey })).toBe(false);
    const sig = step.signature.slice();
    sig[10] ^= 0x40;
    expect(verifyEnrolment({ ...step, signature: sig })).toBe(false);
    expect(verifyEnrolment({ ...step, signature: new Uint8Array(0) })).toBe(false);
  });
  it('a key the private key does not match proves nothing', () => {
    const other = generateReaderKeyPair();
    const step = signOnStep(parseNetworkRequest(wire(enrolmentRequest(header(), { code: CODE, publicKey: other.publicKey, privateKey: kp.privateKey }))));
    if (step.step !== 'enrolment') throw new Error('not an enrolment');
    expect(verifyEnrolment(step)).toBe(false);
  });
  it('refuses a bad code or key when built', () => {
    expect(() => enrolmentRequest(header(), { code: 'short', ...kp })).toThrow(/enrolment code/);
    expect(() => enrolmentRequest(header(), { code: CODE, publicKey: kp.publicKey.slice(1), privateKey: kp.privateKey })).toThrow(/P-256/);
  });
  it('signed bytes: label, length-prefixed parts, the key; ids without padding', () => {
    const b = enrolmentSignedBytes('ABCDEFGH', 'T1      ', 'R1', kp.publicKey);
    const label = new TextEncoder().encode('hilt-reader-enrol-v1');
    expect(b.subarray(0, label.length)).toEqual(label);
    expect([...b.subarray(label.length, label.length + 9)]).toEqual([8, ...new TextEncoder().encode('ABCDEFGH')]);
    expect([...b.subarray(label.length + 9, label.length + 15)]).toEqual([2, 0x54, 0x31, 2, 0x52, 0x31]);
    expect(b.subarray(label.length + 15)).toEqual(kp.publicKey);
  });
});

describe('sign-on', () => {
  const kp = generateReaderKeyPair();
  const challenge = Uint8Array.from({ length: CHALLENGE_LENGTH }, (_, i) => i * 7);
  it('step 1 is a sign-on without field 62; the answer carries the challenge', () => {
    const req = wire(signOnChallengeRequest(header()));
    expect(req.has(62)).toBe(false);
    expect(signOnStep(parseNetworkRequest(req)).step).toBe('challenge');
    const res = parseNetworkResponse(wire(signOnResponse(req, { responseCode: RC.approved, at: new Date(), challenge })));
    expect(challengeOf(res)).toEqual(challenge);
    const refused = parseNetworkResponse(wire(signOnResponse(req, { responseCode: RC.blockedReader, at: new Date() })));
    expect(challengeOf(refused)).toBeNull();
    expect(() => signOnResponse(req, { responseCode: RC.blockedReader, at: new Date(), challenge })).toThrow(/approval/);
  });
  it('step 2 verifies under the reader key, for that challenge and those ids only', () => {
    const step = signOnStep(parseNetworkRequest(wire(signOnProofRequest(header(), challenge, kp.privateKey))));
    if (step.step !== 'proof') throw new Error('not a proof');
    expect(step.challenge).toEqual(challenge);
    expect(verifySignOnProof(step, kp.publicKey)).toBe(true);
    expect(verifySignOnProof(step, generateReaderKeyPair().publicKey)).toBe(false);
    expect(verifySignOnProof({ ...step, readerId: 'READER02' }, kp.publicKey)).toBe(false);
    expect(verifySignOnProof({ ...step, terminalId: 'TERM0002' }, kp.publicKey)).toBe(false);
    const other = challenge.slice();
    other[0] ^= 1;
    expect(verifySignOnProof({ ...step, challenge: other }, kp.publicKey)).toBe(false);
  });
  it('an enrolment signature is never a sign-on signature (labels differ)', () => {
    const e = enrolmentSignedBytes(CODE, 'TERM0001', 'READER01', kp.publicKey);
    const s = signOnSignedBytes(challenge, 'TERM0001', 'READER01');
    expect(new TextDecoder().decode(e.subarray(0, 17))).not.toBe(new TextDecoder().decode(s.subarray(0, 17)));
  });
  it('refuses other shapes of field 62, and non-sign-on requests', () => {
    const shapes = [{ signature: new Uint8Array(64) }, { challenge }, { enrolmentCode: new TextEncoder().encode(CODE), signature: new Uint8Array(64) }, { challenge, signature: new Uint8Array(64), publicKey: kp.publicKey }];
    for (const ra of shapes) {
      expect(() => signOnStep(parseNetworkRequest(wire(signOnRequest(header(), ra))))).toThrow(Iso8583Error);
    }
    expect(() => signOnStep(parseNetworkRequest(wire(echoRequest(header()))))).toThrow(/not a sign-on/);
  });
});

describe('tables', () => {
  it('every reader-auth code is a response code of the table; tags are in 62', () => {
    for (const code of Object.values(READER_AUTH_CODES)) expect(RESPONSE_CODES.has(code)).toBe(true);
    expect(RESPONSE_CODES.get(RC.readerNotSignedOn)?.retry).toBe(true);
    expect(TAG.enrolmentCode).toBe(0xdf42);
    expect(TAG.readerPublicKey).toBe(0xdf43);
  });
  it('the test MAC key is deriveTerminalKey(TEST master, mac, id, 1)', () => {
    expect(testTerminalMacKey('T1')).toEqual(deriveTerminalKey(fromHex(TEST_HOST_MAC_MASTER_HEX), 'mac', 'T1', 1));
  });
});
