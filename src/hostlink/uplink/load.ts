/**
 * The terminal side of a purse load (value onto the card), host part:
 *
 *   journal.beginTransaction({ type: 'load', ... })   pending row + reader sequence, BEFORE the host
 *   authorizeLoad(...)                                0200 → 0210: the issuer's load cryptogram
 *   (caller) LOAD to the card with the cryptogram      the card checks it and credits atomically
 *   journal.complete(...) / fail(...)                 the row's advice (0220, with the certificate)
 *   forwardOutbox                                     takes it to the issuer, which reconciles it
 *
 * The 0200 carries what the cryptogram covers: the card serial (2), the amount (4, 49), the card's
 * counter before the load (55 DF52), the terminal id (41), the terminal sequence = the row's reader
 * sequence (11) and the date-time the LOAD will carry (12, 13, 48 DF04) = the row's createdAt in the
 * terminal's local time, which is what the purse flow writes into its commands. The issuer's
 * reference (field 37, also covered) comes back in the 0210; it is kept in the uplink store so the
 * load's advice carries it in its field 37.
 *
 * Every 0200 is noted in the uplink store before the bytes leave (what it carried, its field 7),
 * and its answer code once it came (reconcile.ts counts them).
 *
 * No answer (timeout, connection lost, an answer that does not parse): the issuer may have approved
 * it. A reversal is recorded durably (reversal.ts) and sent once at once (`reverseNow`, default
 * true); one that is not answered stays pending and Uplink.forward / sendReversals retry it with
 * backoff. The error thrown is LoadInDoubtError, carrying the reversal's state. The caller must not
 * send LOAD; it fails the row, and that row's advice tells the issuer nothing was loaded. A row whose
 * authorization was reversed is never authorized again (BadInputError): begin a new load.
 *
 * Nothing sent (no connection, sign-on refused): the error of the link, no reversal.
 */
import { RC, RESPONSE_CODES, currencyNumeric, loadAuthorizationRequest, parseLoadAuthorizationResponse, transmissionDateTime } from '../messages.js';
import type { IsoMessage } from '../iso8583/message.js';
import { encodePurseDateTime } from '../../crypto/purse-certificate.js';
import { BadInputError } from '../../util/errors.js';
import { assertInt } from '../../util/assert.js';
import { fromHex } from '../../util/bytes.js';
import { field41Bytes, localDateTime } from './records.js';
import { LoadInDoubtError, ReaderRefusedError, UplinkError } from './errors.js';
import { sendReversal, type ReversalSenderOptions } from './reversal.js';
import type { UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';
import type { UplinkSession } from './session.js';

export type LoadAuthorization =
  | {
      approved: true;
      responseCode: '00';
      /** Field 37, 12 characters: covered by the cryptogram, given to the card with it. */
      issuerReference: string;
      /** Field 38. */
      authorizationId: string;
      /** 16 bytes for the card's LOAD. */
      loadCryptogram: Uint8Array;
      /** What the LOAD must carry for the cryptogram to verify. */
      terminalId: Uint8Array;
      terminalSequence: number;
      dateTime: Uint8Array;
    }
  | { approved: false; responseCode: string; meaning: string };

export interface AuthorizeLoadOptions {
  journal: UplinkJournal;
  link: UplinkLink;
  /** The journal row of the load: pending, type 'load'. */
  transactionId: number;
  /** Default true: on no answer, send the reversal once before throwing LoadInDoubtError. */
  reverseNow?: boolean;
  /** For the reversal's backoff. */
  reversal?: Omit<ReversalSenderOptions, 'link'>;
}

/** Asks the issuer to authorize the pending load `transactionId` (see the top of this file). */
export async function authorizeLoad(o: AuthorizeLoadOptions): Promise<LoadAuthorization> {
  const { journal, link } = o;
  assertInt(o.transactionId, 'transactionId', 1, Number.MAX_SAFE_INTEGER);
  const row = journal.get(o.transactionId);
  if (row === null) throw new BadInputError(`journal row ${o.transactionId} does not exist`);
  if (row.type !== 'load' || row.status !== 'pending') throw new BadInputError(`journal row ${row.id} is a ${row.status} ${row.type}, not a pending load`);
  const config = link.config;
  if (row.terminalId !== config.terminalId) throw new UplinkError('identity', `journal row ${row.id} belongs to terminal ${row.terminalId}, not ${config.terminalId}`);
  const store = link.store;
  const prior = store.reversal(row.readerSeq);
  if (prior !== null) {
    throw new BadInputError(`journal row ${row.id}: its load authorization was reversed (${prior.status}); begin a new load`);
  }
  const dt = localDateTime(row.createdAt, journal.dayOffsetMinutes);
  const input = { serial: fromHex(row.cardSerial), amount: { minor: row.amount, currency: currencyNumeric(row.currency) }, cardCounter: row.counterBefore, dateTime: dt };
  let session: UplinkSession;
  try {
    session = await link.session();
  } catch (e) {
    await link.drop();
    throw e; // nothing went out
  }
  let sent = false;
  const build = (h: Parameters<typeof loadAuthorizationRequest>[0]): IsoMessage => {
    const m = loadAuthorizationRequest(h, input);
    // Noted before the bytes leave: a crash from here on leaves an authorization in doubt, reversed later.
    store.noteAuthorizationSending({ readerSeq: row.readerSeq, serial: row.cardSerial, amount: row.amount, currency: input.amount.currency, transmitted: transmissionDateTime(h.at) });
    sent = true;
    return m;
  };
  const inDoubt = async (cause: unknown): Promise<never> => {
    await link.drop();
    if (!sent) throw cause;
    const a = store.authorizationSend(row.readerSeq);
    if (a === null) throw cause;
    let reversal = store.recordReversal({ readerSeq: row.readerSeq, serial: a.serial, amount: a.amount, currency: a.currency, originalTransmitted: a.transmitted, reason: 'no-answer' });
    if (o.reverseNow !== false) {
      try {
        reversal = await sendReversal({ ...o.reversal, link }, row.readerSeq);
      } catch {
        reversal = store.reversal(row.readerSeq) ?? reversal; // stays pending: forward() retries it
      }
    }
    throw new LoadInDoubtError(row.id, reversal, cause);
  };
  let answer: IsoMessage;
  try {
    answer = await session.request(build, { stan: row.readerSeq });
  } catch (e) {
    if (e instanceof ReaderRefusedError) {
      store.noteAuthorizationAnswer(row.readerSeq, e.responseCode);
      throw e;
    }
    return inDoubt(e);
  }
  let parsed;
  try {
    parsed = parseLoadAuthorizationResponse(answer);
  } catch (e) {
    return inDoubt(e);
  }
  store.noteAuthorizationAnswer(row.readerSeq, parsed.responseCode);
  if (parsed.responseCode !== RC.approved) {
    return { approved: false, responseCode: parsed.responseCode, meaning: RESPONSE_CODES.get(parsed.responseCode)?.meaning ?? 'unknown' };
  }
  const echoed = answer.amount();
  if (echoed !== undefined && (echoed.minor !== input.amount.minor || echoed.currency !== input.amount.currency)) {
    // An approval of something else must not stand: reversed like an unanswered one.
    store.recordReversal({ readerSeq: row.readerSeq, serial: row.cardSerial, amount: row.amount, currency: input.amount.currency, originalTransmitted: store.authorizationSend(row.readerSeq)?.transmitted ?? transmissionDateTime(new Date()), reason: 'not-loaded' });
    throw new UplinkError('protocol', `load authorization: the issuer approved ${echoed.minor} ${echoed.currency}, not ${input.amount.minor} ${input.amount.currency}`);
  }
  const issuerReference = parsed.issuerReference as string;
  const authorizationId = parsed.authorizationId as string;
  store.recordLoadAuthorization({ readerSeq: row.readerSeq, issuerReference, authorizationId });
  return {
    approved: true,
    responseCode: RC.approved,
    issuerReference,
    authorizationId,
    loadCryptogram: parsed.loadCryptogram as Uint8Array,
    terminalId: field41Bytes(config.terminalId),
    terminalSequence: row.readerSeq,
    dateTime: encodePurseDateTime(dt),
  };
}
