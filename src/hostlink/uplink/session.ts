/**
 * One signed-on connection to the gateway: TCP + IsoChannel (channel.ts), MACed with the terminal's
 * key, and the reader authenticated by its P-256 key (reader-auth.ts).
 *
 * Opening, in order:
 *   1. connect (bounded by connectTimeoutMs);
 *   2. sign on:
 *      - the reader's key pair is taken from the uplink store, or made and stored first (identity.ts);
 *      - a key the host has not confirmed yet, with an enrolment code given: enrolment
 *        (0800 62 {code, public key, signature}); 00 = enrolled and signed on. 77 (code used or
 *        unknown) may mean our own enrolment went through and its answer was lost: the key is then
 *        tried with a challenge sign-on before giving up;
 *      - otherwise challenge (0800 → 0810 62 {challenge}) and proof (0800 62 {challenge, signature});
 *        81 (stale challenge) asks for a new one, at most MAX_CHALLENGE_RETRIES times;
 *   3. a background loop answers what the host sends on its own: echo (0800 301) with 00, anything
 *      else with 40, a message that does not authenticate with 63. It ends with the channel.
 *
 * Every request goes through `request()`: 76 (not signed on, or the session expired) signs on again
 * and sends the message once more (MAX_SIGN_ON_RETRIES); 80 (blocked reader) and 79 (unknown reader)
 * throw ReaderRefusedError, at sign-on as at any other message. Other answers are the caller's.
 *
 * Field 11: a transaction's message carries its reader sequence number (the caller passes it); a
 * message without a journal row takes the next number of the store's own counter.
 */
import { connectIsoChannel, type IsoChannel } from '../channel.js';
import type { IsoMessage } from '../iso8583/message.js';
import { IsoMacError } from '../iso8583/mac.js';
import { RC, RESPONSE_CODES, echoRequest, networkResponse, parseNetworkResponse, refusal, type NetworkResponse, type RequestHeader } from '../messages.js';
import { challengeOf, enrolmentRequest, signOnChallengeRequest, signOnProofRequest } from '../reader-auth.js';
import { MAX_CHALLENGE_RETRIES, MAX_SIGN_ON_RETRIES, MAX_WINDOW, type UplinkConfig } from './config.js';
import { readerKeyPair, type ReaderKeyPair } from './identity.js';
import { READER_REFUSALS, ReaderRefusedError, UplinkError } from './errors.js';
import type { UplinkStore } from './store.js';
import { MacKeyRing } from './keys.js';
import { BadInputError } from '../../util/errors.js';

export interface UplinkSessionOptions {
  config: UplinkConfig;
  store: UplinkStore;
  /** The operator's one-time enrolment code; used only while the host has not confirmed the reader's key. */
  enrolmentCode?: string;
  /** Milliseconds since the epoch, for field 7; default Date.now. */
  clock?: () => number;
  /** The MAC key and its version (keys.ts); default the configuration's. A key change updates it in place. */
  keys?: MacKeyRing;
}

/** Requests the channel lets wait at once: the forwarder's window plus a sign-on and an echo. */
const SESSION_MAX_IN_FLIGHT = MAX_WINDOW + 2;

function refusalText(rc: string): string {
  return RESPONSE_CODES.get(rc)?.meaning ?? `response code ${rc}`;
}

/** The error for a reader-authentication refusal, or null when `rc` is not one. */
function readerRefusal(rc: string, config: UplinkConfig, during: string): ReaderRefusedError | null {
  const reason = READER_REFUSALS.get(rc);
  if (reason === undefined) return null;
  const hint =
    reason === 'unknown' ? ': enrol it with an operator-issued code' : reason === 'blocked' ? ' (negative reader list)' : '';
  return new ReaderRefusedError(reason, rc, `${during}: the host refused reader ${config.readerId} of terminal ${config.terminalId}: ${refusalText(rc)}${hint}`);
}

export class UplinkSession {
  readonly config: UplinkConfig;
  private readonly channel: IsoChannel;
  private readonly store: UplinkStore;
  private readonly enrolmentCode: string | undefined;
  private readonly clock: () => number;
  /** The MAC key and version this session signs with (shared with the link: a key change applies at once). */
  readonly keys: MacKeyRing;
  private signOns = 0;
  /** The sign-on under way: requests that meet 76 together wait for one sign-on, not one each. */
  private signingOn: Promise<void> | null = null;

  private constructor(channel: IsoChannel, o: UplinkSessionOptions, keys: MacKeyRing) {
    this.channel = channel;
    this.keys = keys;
    this.config = o.config;
    this.store = o.store;
    this.enrolmentCode = o.enrolmentCode;
    this.clock = o.clock ?? Date.now;
  }

  /** Connects and signs on (see the top of this file). The channel is closed again on any failure. */
  static async open(o: UplinkSessionOptions): Promise<UplinkSession> {
    if (typeof o !== 'object' || o === null) throw new BadInputError('uplink session: expected { config, store }');
    if (o.store.terminalId !== o.config.terminalId || o.store.readerId !== o.config.readerId) {
      throw new UplinkError('identity', `the uplink store ${o.store.path} belongs to ${o.store.terminalId}/${o.store.readerId}, not ${o.config.terminalId}/${o.config.readerId}`);
    }
    const { config } = o;
    const keys = o.keys ?? new MacKeyRing(config.terminalId, config.keyVersion, config.macKey, 'configured');
    const channel = await connectIsoChannel({
      host: config.host,
      port: config.port,
      connectTimeoutMs: config.connectTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      maxInFlight: SESSION_MAX_IN_FLIGHT,
      macKey: (m) => keys.keyFor(m.terminalId(), m.keyVersion()),
    });
    const session = new UplinkSession(channel, o, keys);
    try {
      await session.signOn();
    } catch (e) {
      await channel.close();
      throw e;
    }
    void session.serveHost();
    return session;
  }

  /** True once the connection is gone (closed by either side, or broken). */
  get closed(): boolean {
    return this.channel.closed;
  }

  /** Sign-ons done on this connection (the first one included). */
  get signOnCount(): number {
    return this.signOns;
  }

  whenClosed(): Promise<unknown> {
    return this.channel.whenClosed();
  }

  /** The common fields of a request with STAN `stan`. */
  header(stan: number): RequestHeader {
    const h: RequestHeader = { terminalId: this.config.terminalId, readerId: this.config.readerId, stan, at: new Date(this.clock()), keyVersion: this.keys.version };
    if (this.config.nii !== undefined) h.nii = this.config.nii;
    return h;
  }

  /** Closes the connection (waiting calls reject with ChannelClosedError). */
  async close(): Promise<void> {
    await this.channel.close();
  }

  /** A STAN for a message without a journal row. */
  nextStan(): number {
    return this.store.nextStan();
  }

  /**
   * Sends the message `build` makes for STAN `stan` (default: a fresh one) and resolves with the
   * host's answer, signing on again when the host says the session is over (see the top of the file).
   */
  async request(build: (h: RequestHeader) => IsoMessage, o: { stan?: number; timeoutMs?: number } = {}): Promise<IsoMessage> {
    const stan = o.stan ?? this.nextStan();
    for (let attempt = 0; ; attempt++) {
      const answer = await this.channel.request(build(this.header(stan)), o.timeoutMs ?? this.config.requestTimeoutMs);
      const rc = answer.responseCode() ?? '';
      if (rc === RC.readerNotSignedOn && attempt < MAX_SIGN_ON_RETRIES) {
        await this.signOn();
        continue;
      }
      const refused = rc === RC.blockedReader || rc === RC.unknownReader ? readerRefusal(rc, this.config, `${answer.mti} STAN ${stan}`) : null;
      if (refused !== null) throw refused;
      return answer;
    }
  }

  /** 0800 echo (301); resolves when the host answered 00. */
  async echo(): Promise<void> {
    const answer = parseNetworkResponse(await this.request((h) => echoRequest(h)));
    if (answer.responseCode !== RC.approved) throw new UplinkError('protocol', `echo refused: ${refusalText(answer.responseCode)}`);
  }

  /** Signs the reader on (again): enrolment or challenge/proof, see the top of the file. */
  signOn(): Promise<void> {
    this.signingOn ??= this.signOnNow().finally(() => (this.signingOn = null));
    return this.signingOn;
  }

  // -------------------------------------------------------------------------------------------

  private async signOnNow(): Promise<void> {
    const key = readerKeyPair(this.store);
    if (!key.enrolled && this.enrolmentCode !== undefined) {
      const code = this.enrolmentCode;
      const rc = (await this.signOnStep((h) => enrolmentRequest(h, { code, publicKey: key.publicKey, privateKey: key.privateKey }))).responseCode;
      if (rc === RC.approved) {
        this.store.markEnrolled();
        this.signOns++;
        return;
      }
      if (rc !== RC.badEnrolmentCode) throw this.signOnFailure(rc, 'enrolment');
      // The code is spent: perhaps by our own enrolment, whose answer was lost. The host knows then.
      try {
        await this.challengeSignOn(key);
      } catch (e) {
        if (e instanceof ReaderRefusedError && e.reason === 'unknown') throw this.signOnFailure(rc, 'enrolment');
        throw e;
      }
      return;
    }
    await this.challengeSignOn(key);
  }

  private async challengeSignOn(key: ReaderKeyPair): Promise<void> {
    for (let attempt = 0; attempt <= MAX_CHALLENGE_RETRIES; attempt++) {
      const first = await this.signOnStep((h) => signOnChallengeRequest(h));
      if (first.responseCode !== RC.approved) throw this.signOnFailure(first.responseCode, 'sign-on (challenge)');
      const challenge = challengeOf(first);
      if (challenge === null) throw new UplinkError('protocol', 'sign-on: the host approved the challenge request without a challenge');
      const rc2 = (await this.signOnStep((h) => signOnProofRequest(h, challenge, key.privateKey))).responseCode;
      if (rc2 === RC.approved) {
        if (!key.enrolled) this.store.markEnrolled();
        this.signOns++;
        return;
      }
      if (rc2 !== RC.badChallenge) throw this.signOnFailure(rc2, 'sign-on (proof)');
    }
    throw new UplinkError('protocol', `sign-on: the host refused ${MAX_CHALLENGE_RETRIES + 1} fresh challenges in a row`);
  }

  /** One sign-on exchange (never re-signs on: 76 here is an answer like any other). */
  private async signOnStep(build: (h: RequestHeader) => IsoMessage): Promise<NetworkResponse> {
    return parseNetworkResponse(await this.channel.request(build(this.header(this.nextStan())), this.config.requestTimeoutMs));
  }

  private signOnFailure(rc: string, during: string): Error {
    return readerRefusal(rc, this.config, during) ?? new UplinkError('protocol', `${during}: the host answered ${rc} (${refusalText(rc)})`);
  }

  /** Answers what the host sends on its own, until the channel closes. */
  private async serveHost(): Promise<void> {
    // Bounded by the channel: receive() rejects once it is closed, which ends the loop.
    for (;;) {
      let request: IsoMessage;
      try {
        request = await this.channel.receive();
      } catch (e) {
        if (e instanceof IsoMacError && e.isoMessage !== null && !this.channel.closed) {
          await this.answer(e.isoMessage, RC.securityViolation);
          continue;
        }
        return;
      }
      if (request.mti === '0800' && request.text(70) === '301') {
        await this.send(() => networkResponse(request, { responseCode: RC.approved, at: new Date(this.clock()) }));
      } else {
        await this.answer(request, RC.notSupported);
      }
    }
  }

  private async answer(request: IsoMessage, responseCode: typeof RC.securityViolation | typeof RC.notSupported): Promise<void> {
    await this.send(() => refusal(request, { responseCode, at: new Date(this.clock()) }));
  }

  /** Sends an answer; one that cannot be built (the request lacks 11, 41...) or sent is dropped. */
  private async send(build: () => IsoMessage): Promise<void> {
    try {
      await this.channel.send(build());
    } catch {
      // Nothing to do: the host's request timed out on its side, or the channel is closing.
    }
  }
}
