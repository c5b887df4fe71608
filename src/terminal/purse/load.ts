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
 *   the issuer does not answer (timeout, link  → the row fails, IssuerUnavailableError; no LOAD. The
 *   lost, reader refused, broken answer)         issuer may have approved: the authorization is
 *                                                reversed (0400) through the reversal seam below
 *   LOAD answered 90 00, well formed          → complete; the receipt
 *   LOAD answered an error status word         → the card did nothing: the row fails, CardRefusedError
 *   (69 88: the cryptogram does not verify)      (command LOAD); the unused authorization is reversed
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
import type { LoadAuthorization, Uplink } from '../../hostlink/uplink/index.js';
import { MAX_CARD_SEQUENCE, formatLocalTime, purseDateTime, terminalIdBytes, type PurseTerminalConfig } from './config.js';
import { formatAmount } from './currency.js';
import { CardRefusedError, IssuerUnavailableError, LoadDeclinedError, LoadInterruptedError, PurseRefusedError } from './errors.js';
import { checkAmount, checkLoadPolicy, type PolicyVerdict } from './policy.js';
import { decodeDebitAnswer, loadCommand, purseSwText, type DebitAnswer } from './protocol.js';
import { recoverPending, type RecoveryOutcome } from './recovery.js';
import { openPurseSession, type PurseSession } from './session.js';
import type { PurchaseReceipt, PurseTerminal } from './purchase.js';

/** What the load flow asks of the uplink: the 0200 of a pending load row (Uplink.authorizeLoad). */
export type LoadUplink = Pick<Uplink, 'authorizeLoad'>;

/** The receipt of a load: a purchase receipt's fields (amount credited) and the issuer's authorization. */
export interface LoadReceipt extends PurchaseReceipt {
  balanceBefore: number;
  /** 0210 field 37, 12 characters: the issuer's reference of this load (the cryptogram covers it). */
  issuerReference: string;
  /** 0210 field 38. */
  authorizationId: string;
}

/** Why an authorization the issuer may hold went unused. */
export type LoadReversalReason = 'no-answer' | 'not-sent' | 'card-refused';

/** An authorization to give back to the issuer (0400): the 0200 of reader sequence `readerSeq`. */
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
 * THE REVERSAL SEAM. Called when the issuer may hold an approved authorization that will never be
 * used: the 0200 got no answer, the terminal did not send the LOAD, or the card refused it. The row
 * has already failed (its 0220 tells the issuer nothing was loaded); a 0400 also frees the amount the
 * issuer counted against the card's daily load limit. The call must not throw for a host that does
 * not answer: a reversal it cannot send now is its own business to store and forward.
 *
 * The uplink has no 0400 yet (src/hostlink/uplink, issue 7 follow-up): until it does, the default
 * (`noReversalYet`) only logs that none was sent. Pass the uplink's reversal as `reverse` once it exists.
 */
export type LoadReversal = (request: LoadReversalRequest) => Promise<void>;

export interface LoadOptions {
  /** The 0400 for an unused authorization (the seam above); default: logged, not sent. */
  reverse?: LoadReversal;
}

export interface LoadResult {
  receipt: LoadReceipt;
  /** Pending rows of this card (purchases or loads) resolved before the load. */
  recovered: RecoveryOutcome[];
  policy: PolicyVerdict;
}

/** The default reversal seam: says in the log that no 0400 went out (the uplink has none yet). */
function noReversalYet(config: PurseTerminalConfig): LoadReversal {
  return async (r) => {
    config.log({
      level: 'warn',
      kind: 'reversal',
      code: r.reason,
      message: `no reversal sent for the load authorization of reader seq ${r.readerSeq} (${r.reason}): the uplink has no 0400; the row's failed advice tells the issuer nothing was loaded`,
      cardSerial: r.cardSerial,
      journalId: r.journalId,
      readerSeq: r.readerSeq,
    });
  };
}

/**
 * Runs one load of `amount` minor units of the terminal's currency onto the card in `terminal`,
 * authorized by the issuer through `uplink`. See the module comment.
 */
export async function loadPurse(terminal: PurseTerminal, uplink: LoadUplink, amount: number, o: LoadOptions = {}): Promise<LoadResult> {
  const { channel, domain, journal, config } = terminal;
  checkAmount(config, amount);
  const reverse = o.reverse ?? noReversalYet(config);
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

/** The row's failure, logged, and the unused authorization given back. */
async function failAndReverse(journal: Journal, config: PurseTerminalConfig, reverse: LoadReversal, row: JournalRow, reason: LoadReversalReason, error: string): Promise<void> {
  journal.fail(row.id, { error, cardCounter: row.counterBefore });
  try {
    await reverse({ reason, journalId: row.id, readerSeq: row.readerSeq, cardSerial: row.cardSerial, amount: row.amount, currency: row.currency });
  } catch (e) {
    config.log({
      level: 'warn',
      kind: 'reversal',
      code: reason,
      message: `reversal of the load authorization of reader seq ${row.readerSeq} failed: ${e instanceof Error ? e.message : String(e)}`,
      cardSerial: row.cardSerial,
      journalId: row.id,
      readerSeq: row.readerSeq,
    });
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
  const { id, readerSeq } = journal.beginTransaction({ provider: config.provider, type: 'load', cardSerial: serial, cardCounter: status.counter, amount, currency: cur.alpha });
  if (readerSeq > MAX_CARD_SEQUENCE) {
    journal.fail(id, { error: `reader sequence ${readerSeq} does not fit the card's 4 bytes`, cardCounter: status.counter });
    throw new PurseRefusedError('reader-sequence-exhausted', `reader sequence ${readerSeq} is above ${MAX_CARD_SEQUENCE}: this reader needs a new identity`, serial);
  }
  const row = journal.get(id);
  if (row === null) throw new ProtocolError(`journal row ${id} vanished after it was written`);
  const dateTime = purseDateTime(row.createdAt, config.utcOffsetMinutes);

  // The issuer.
  let auth: LoadAuthorization;
  try {
    auth = await uplink.authorizeLoad(id);
  } catch (e) {
    const err = new IssuerUnavailableError(id, readerSeq, e);
    await failAndReverse(journal, config, reverse, row, 'no-answer', `no load authorization: ${e instanceof Error ? e.message : String(e)}`);
    say({ level: 'warn', kind: 'host-unavailable', code: err.code, message: err.message, cardSerial: serial, journalId: id, readerSeq });
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
  let answer: DebitAnswer;
  try {
    const resp = await session.exchange(command);
    if (resp.sw !== 0x9000) {
      const err = new CardRefusedError(resp.sw, id, readerSeq, 'LOAD');
      await failAndReverse(journal, config, reverse, row, 'card-refused', `card answered ${purseSwText(resp.sw)}`);
      say({ level: 'warn', kind: 'card-refused', code: err.swHex, message: err.message, cardSerial: serial, journalId: id, readerSeq });
      throw err;
    }
    answer = decodeDebitAnswer(resp.data);
    if (answer.counter <= status.counter) throw new ProtocolError(`LOAD answered counter ${answer.counter}, not above ${status.counter}`);
  } catch (e) {
    if (e instanceof CardRefusedError) throw e;
    const err = new LoadInterruptedError(id, readerSeq, e);
    say({ level: 'warn', kind: 'interrupted', code: err.code, message: err.message, cardSerial: serial, journalId: id, readerSeq });
    throw err;
  }

  journal.complete(id, { cardCounter: answer.counter, certificate: answer.certificate, balanceAfter: answer.balanceAfter });
  if (answer.counter !== status.counter + 1 || answer.balanceAfter !== status.balance + amount) {
    journal.recordAnomaly({
      kind: 'other',
      cardSerial: serial,
      counter: answer.counter,
      lastCounter: status.counter,
      transactionId: id,
      details: { problem: 'LOAD answer does not follow READ STATUS', balanceBefore: status.balance, balanceAfter: answer.balanceAfter, amount },
    });
  }
  const receipt: LoadReceipt = {
    terminalId: config.terminalId,
    readerId: config.readerId,
    journalId: id,
    readerSeq,
    cardSerial: serial,
    counter: answer.counter,
    amount,
    currency: cur.alpha,
    balanceBefore: status.balance,
    balanceAfter: answer.balanceAfter,
    certificate: answer.certificate,
    time: row.createdAt,
    localTime: formatLocalTime(row.createdAt, config.utcOffsetMinutes),
    dateTime,
    amountText: formatAmount(amount, cur),
    balanceText: formatAmount(answer.balanceAfter, cur),
    issuerReference: auth.issuerReference,
    authorizationId: auth.authorizationId,
  };
  say({
    level: 'info',
    kind: 'complete',
    message: `load ${receipt.amountText}, card ${serial} counter ${answer.counter}, balance ${receipt.balanceText}, issuer reference ${auth.issuerReference} (journal row ${id}, reader seq ${readerSeq})`,
    cardSerial: serial,
    journalId: id,
    readerSeq,
  });
  return receipt;
}
