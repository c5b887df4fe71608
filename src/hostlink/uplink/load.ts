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
 * No answer (timeout, connection lost): the link is dropped and the error thrown. The caller must
 * not send LOAD; it fails the row, and that row's advice tells the issuer nothing was loaded.
 */
import { RC, RESPONSE_CODES, currencyNumeric, loadAuthorizationRequest, parseLoadAuthorizationResponse } from '../messages.js';
import { encodePurseDateTime } from '../../crypto/purse-certificate.js';
import { BadInputError } from '../../util/errors.js';
import { assertInt } from '../../util/assert.js';
import { fromHex } from '../../util/bytes.js';
import { field41Bytes, localDateTime } from './records.js';
import { UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';

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
  const dt = localDateTime(row.createdAt, journal.dayOffsetMinutes);
  const input = { serial: fromHex(row.cardSerial), amount: { minor: row.amount, currency: currencyNumeric(row.currency) }, cardCounter: row.counterBefore, dateTime: dt };
  let answer;
  try {
    const session = await link.session();
    answer = await session.request((h) => loadAuthorizationRequest(h, input), { stan: row.readerSeq });
  } catch (e) {
    await link.drop();
    throw e;
  }
  const parsed = parseLoadAuthorizationResponse(answer);
  if (parsed.responseCode !== RC.approved) {
    return { approved: false, responseCode: parsed.responseCode, meaning: RESPONSE_CODES.get(parsed.responseCode)?.meaning ?? 'unknown' };
  }
  const echoed = answer.amount();
  if (echoed !== undefined && (echoed.minor !== input.amount.minor || echoed.currency !== input.amount.currency)) {
    throw new UplinkError('protocol', `load authorization: the issuer approved ${echoed.minor} ${echoed.currency}, not ${input.amount.minor} ${input.amount.currency}`);
  }
  const issuerReference = parsed.issuerReference as string;
  const authorizationId = parsed.authorizationId as string;
  link.store.recordLoadAuthorization({ readerSeq: row.readerSeq, issuerReference, authorizationId });
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
