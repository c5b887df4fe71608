/**
 * One load on an e-money purse (value onto the card; applets-spec/emoney-purse.md "Terminal flows";
 * issue 7), the purchase flow's twin with the issuer in the middle:
 *
 *   amount check (no APDU)
 *   SELECT → mutual authentication (SCP03 level 33) → READ STATUS (session.ts)
 *   tear recovery of this card's pending rows, purchases and loads (READ LOG only when there are some)
 *   policy: negative card file, counter coherence, currency, the card's maximum balance, the
 *     terminal's load limits (checkLoadPolicy)
 *   journal.beginTransaction type 'load': the pending row and its reader sequence number, durable
 *     BEFORE the issuer is asked
 *   uplink.authorizeLoad (0200 → 0210): the issuer's reference and load cryptogram over the card's
 *     serial, its counter before the load, the amount, currency, terminal id, reader sequence and
 *     the row's createdAt in local time
 *   LOAD (the same fields, the reference, the cryptogram)
 *   journal.complete with counter, certificate, balance after (the same commit queues the 0220
 *     advice; the uplink's forwarder takes it to the issuer, which reconciles it with the 0200)
 *   → the receipt
 *
 * APDUs of a load with nothing pending, 5: SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE,
 * READ STATUS, LOAD. Host messages: one 0200 (plus the sign-on when the link has no session yet).
 *
 * Outcomes:
 *   the issuer declines (0210 with a refusal)  → the row fails with the response code,
 *                                                LoadDeclinedError; no LOAD
 *   the issuer does not answer (timeout, link  → the row fails, IssuerUnavailableError; no LOAD. When
 *   lost, reader refused, broken answer)         the 0200 went out, the issuer may have approved: the
 *                                                uplink has recorded the authorization's reversal
 *                                                (0400) and sent it once (LoadInDoubtError; forward()
 *                                                retries it until answered); when nothing went out
 *                                                (no connection, sign-on refused) there is nothing
 *                                                to reverse
 *   LOAD answered 90 00, well formed          → complete; the receipt
 *   LOAD answered an error status word         → the card did nothing: the row fails, CardRefusedError
 *   (69 88: the cryptogram does not verify)      (command LOAD); the unused authorization is reversed
 *                                                (Uplink.reverseLoad: recorded, sent once, retried)
 *   anything else (card pulled, power cut,     → the card may or may not have credited: the row stays
 *   an answer that does not verify)              PENDING, LoadInterruptedError; recoverPending decides
 *                                                from the card's log the next time (the LOAD with this
 *                                                terminal id and reader sequence, or none). A LOAD is
 *                                                never sent twice for one row, and a replayed one
 *                                                could not credit: its cryptogram covers the counter.
 *
 * The failed row is uplinked like every final row (its advice tells the issuer nothing was loaded).
 */
import { ProtocolError } from '../../util/errors.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import type { Journal, JournalRow } from '../journal/index.js';
import { LoadInDoubtError, type LoadAuthorization, type ReversalRecord, type Uplink } from '../../hostlink/uplink/index.js';
import { terminalIdBytes, type PurseTerminalConfig } from './config.js';
import { CardRefusedError, IssuerUnavailableError, LoadDeclinedError } from './errors.js';
import { checkAmount, checkLoadPolicy, type PolicyVerdict } from './policy.js';
import { loadCommand, purseSwText } from './protocol.js';
import { beginValueRow, sendValueCommand } from './value-command.js';
import { recoverPending, type RecoveryOutcome } from './recovery.js';
import { openPurseSession, type PurseSession } from './session.js';
import type { PurchaseReceipt, PurseTerminal } from './purchase.js';

/**
 * What the load flow asks of the uplink: the 0200 of a pending load row (Uplink.authorizeLoad), and
 * the reversal of an approved authorization whose LOAD it will not send or the card refused
 * (Uplink.reverseLoad).
 */
export type LoadUplink = Pick<Uplink, 'authorizeLoad' | 'reverseLoad'>;

/** The receipt of a load: a purchase receipt's fields (amount credited) and the issuer's authorization. */
export interface LoadReceipt extends PurchaseReceipt {
  balanceBefore: number;
  /** 0210 field 37, 12 characters: the issuer's reference of this load (the cryptogram covers it). */
  issuerReference: string;
  /** 0210 field 38. */
  authorizationId: string;
}

/** Why an approved authorization went unused: the terminal did not send the LOAD, or the card refused it. */
export type LoadReversalReason = 'not-sent' | 'card-refused';

/** An approved authorization to give back to the issuer (0400): the 0200 of reader sequence `readerSeq`. */
export interface LoadReversalRequest {
  reason: LoadReversalReason;
  journalId: number;
  readerSeq: number;
  /** Upper-case hex. */
  cardSerial: string;
  amount: number;
  /** ISO 4217 alphabetic. */
  currency: string;
}

/**
 * Gives back an approved authorization that will never be used (the terminal did not send the LOAD,
 * or the card refused it). The row has already failed (its 0220 tells the issuer nothing was
 * loaded); the 0400 also frees the amount the issuer counts against the card's daily load limit.
 * The default is the uplink's: recorded durably, sent once now, retried by forward() until the host
 * answers. Returns the reversal's state after that attempt.
 */
export type LoadReversal = (request: LoadReversalRequest) => Promise<ReversalRecord>;

export interface LoadOptions {
  /** Replaces `uplink.reverseLoad(journalId)` for unused authorizations. */
  reverse?: LoadReversal;
}

export interface LoadResult {
  receipt: LoadReceipt;
  /** Pending rows of this card (purchases or loads) resolved before the load. */
  recovered: RecoveryOutcome[];
  policy: PolicyVerdict;
}

/** What became of a reversal, for the log. */
function reversalText(r: ReversalRecord): string {
  return r.status === 'pending' ? `pending, retried until the host answers${r.lastError ? ` (${r.lastError})` : ''}` : `${r.status}${r.responseCode ? ` (${r.responseCode})` : ''}`;
}

/**
 * Runs one load of `amount` minor units of the terminal's currency onto the card in `terminal`,
 * authorized by the issuer through `uplink`. See the module comment.
 */
export async function loadPurse(terminal: PurseTerminal, uplink: LoadUplink, amount: number, o: LoadOptions = {}): Promise<LoadResult> {
  const { channel, domain, journal, config } = terminal;
  checkAmount(config, amount);
  const reverse = o.reverse ?? ((r: LoadReversalRequest) => uplink.reverseLoad(r.journalId));
  const session = await openPurseSession(channel, domain, config.provider);
  try {
    const recovered = await recoverPending(session, journal, config);
    const policy = checkLoadPolicy(journal, config, session.serialHex, session.status, amount);
    const receipt = await load(session, terminal, uplink, reverse, amount);
    return { receipt, recovered, policy };
  } finally {
    await session.close();
  }
}

/**
 * The row's failure, then the unused authorization given back; what became of the reversal is
 * logged. A reversal that cannot be recorded or sent is logged, never thrown: the caller's error
 * (the card's refusal, the bad authorization) is the one that matters.
 */
async function failAndReverse(journal: Journal, config: PurseTerminalConfig, reverse: LoadReversal, row: JournalRow, reason: LoadReversalReason, error: string): Promise<void> {
  journal.fail(row.id, { error, cardCounter: row.counterBefore });
  const where = { cardSerial: row.cardSerial, journalId: row.id, readerSeq: row.readerSeq };
  try {
    const r = await reverse({ reason, journalId: row.id, readerSeq: row.readerSeq, cardSerial: row.cardSerial, amount: row.amount, currency: row.currency });
    config.log({ level: 'info', kind: 'reversal', code: reason, message: `load authorization of reader seq ${row.readerSeq} reversed (${reason}): ${reversalText(r)}`, ...where });
  } catch (e) {
    config.log({ level: 'warn', kind: 'reversal', code: reason, message: `reversal of the load authorization of reader seq ${row.readerSeq} failed: ${e instanceof Error ? e.message : String(e)}`, ...where });
  }
}

/** The fields the 0210 says the LOAD must carry, checked against the row they were asked for. */
function checkAuthorization(auth: Extract<LoadAuthorization, { approved: true }>, row: JournalRow, config: PurseTerminalConfig, dateTime: Uint8Array): void {
  const problems: string[] = [];
  if (auth.terminalSequence !== row.readerSeq) problems.push(`terminal sequence ${auth.terminalSequence}, not ${row.readerSeq}`);
  if (!bytesEqual(auth.terminalId, terminalIdBytes(config.terminalId))) problems.push(`terminal id ${toHex(auth.terminalId)}`);
  if (!bytesEqual(auth.dateTime, dateTime)) problems.push(`date-time ${toHex(auth.dateTime)}, not ${toHex(dateTime)}`);
  if (!/^[\x20-\x7e]{12}$/.test(auth.issuerReference)) problems.push(`issuer reference ${JSON.stringify(auth.issuerReference)} is not 12 characters`);
  if (auth.loadCryptogram.length !== 16) problems.push(`a cryptogram of ${auth.loadCryptogram.length} bytes`);
  if (problems.length > 0) throw new ProtocolError(`load authorization for journal row ${row.id} does not fit the row: ${problems.join('; ')}`);
}

/**
 * Journal first, then the issuer, then the card: the pending row, the 0200, the LOAD, and the
 * resolution of the row by what the issuer and the card answered.
 */
async function load(session: PurseSession, terminal: PurseTerminal, uplink: LoadUplink, reverse: LoadReversal, amount: number): Promise<LoadReceipt> {
  const { journal, config } = terminal;
  const status = session.status;
  const serial = session.serialHex;
  const cur = config.currency;
  const say = config.log;
  const pending = beginValueRow(session, journal, config, 'load', amount);
  const { id, readerSeq, row, dateTime } = pending;

  // The issuer.
  let auth: LoadAuthorization;
  try {
    auth = await uplink.authorizeLoad(id);
  } catch (e) {
    // In doubt (the 0200 went out): the uplink recorded its reversal and sent it once; otherwise nothing went out.
    const reversal = e instanceof LoadInDoubtError ? e.reversal : null;
    journal.fail(id, { error: `no load authorization: ${e instanceof Error ? e.message : String(e)}`, cardCounter: status.counter });
    const err = new IssuerUnavailableError(id, readerSeq, e, reversal);
    say({ level: 'warn', kind: 'host-unavailable', code: err.code, message: err.message, cardSerial: serial, journalId: id, readerSeq });
    if (reversal !== null) {
      say({ level: 'info', kind: 'reversal', code: 'no-answer', message: `load authorization of reader seq ${readerSeq} in doubt: reversal ${reversalText(reversal)}`, cardSerial: serial, journalId: id, readerSeq });
    }
    throw err;
  }
  if (!auth.approved) {
    journal.fail(id, { error: `declined by the issuer: ${auth.responseCode} ${auth.meaning}`, cardCounter: status.counter });
    const err = new LoadDeclinedError(auth.responseCode, auth.meaning, id, readerSeq);
    say({ level: 'warn', kind: 'declined', code: auth.responseCode, message: err.message, cardSerial: serial, journalId: id, readerSeq });
    throw err;
  }
  try {
    checkAuthorization(auth, row, config, dateTime);
  } catch (e) {
    await failAndReverse(journal, config, reverse, row, 'not-sent', (e as Error).message);
    throw e;
  }

  // The card.
  const command = loadCommand({
    amount,
    currency: cur.numeric,
    terminalId: auth.terminalId,
    terminalSequence: readerSeq,
    dateTime,
    issuerReference: Uint8Array.from(auth.issuerReference, (c) => c.charCodeAt(0)),
    cryptogram: auth.loadCryptogram,
  });
  const common = await sendValueCommand({
    session,
    journal,
    config,
    pending,
    name: 'LOAD',
    command,
    amount,
    refused: async (sw) => {
      await failAndReverse(journal, config, reverse, row, 'card-refused', `card answered ${purseSwText(sw)}`);
      return new CardRefusedError(sw, id, readerSeq, 'LOAD');
    },
  });
  const receipt: LoadReceipt = { ...common, balanceBefore: status.balance, issuerReference: auth.issuerReference, authorizationId: auth.authorizationId };
  say({
    level: 'info',
    kind: 'complete',
    message: `load ${receipt.amountText}, card ${serial} counter ${receipt.counter}, balance ${receipt.balanceText}, issuer reference ${auth.issuerReference} (journal row ${id}, reader seq ${readerSeq})`,
    cardSerial: serial,
    journalId: id,
    readerSeq,
  });
  return receipt;
}
