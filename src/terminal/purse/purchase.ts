/**
 * One purchase on an e-money purse (applets-spec/emoney-purse.md "Terminal flows"; issue 6):
 *
 *   amount check (no APDU)
 *   SELECT → mutual authentication (SCP03 level 33 through the provider's key domain) → READ STATUS
 *   tear recovery of this card's pending rows (READ LOG only when there are some)
 *   policy: negative card file, counter coherence, currency, limits
 *   journal.beginTransaction: the pending row and its reader sequence number, durable BEFORE the card moves value
 *   DEBIT (amount, currency, terminal id, reader sequence, date-time = the row's createdAt, local time)
 *   journal.complete with counter, certificate, balance after (the same commit queues the uplink record)
 *   → the receipt
 *
 * APDUs of a purchase with nothing pending, 5: SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE,
 * READ STATUS, DEBIT (the key domain diversifies the card keys from the KDD of INITIALIZE UPDATE).
 *
 * Outcomes of the DEBIT:
 *   90 00 with a well-formed answer → complete; the receipt
 *   an error status word → the card did nothing: the row fails, CardRefusedError (code SW)
 *   anything else (the card left, a timeout, a power cut, a response that does not verify or
 *   decode) → the card may or may not have debited: the row stays PENDING and
 *   PurchaseInterruptedError tells to present the card again; recoverPending decides from the card's
 *   log the next time. A debit is never sent twice for one row.
 */
import type { CardChannel } from '../../reader/channel.js';
import { ProtocolError } from '../../util/errors.js';
import type { Journal } from '../journal/index.js';
import type { ProviderDomain } from '../keystore.js';
import { MAX_CARD_SEQUENCE, formatLocalTime, purseDateTime, terminalIdBytes, type PurseTerminalConfig } from './config.js';
import { formatAmount } from './currency.js';
import { CardRefusedError, PurchaseInterruptedError, PurseRefusedError } from './errors.js';
import { checkAmount, checkPolicy, type PolicyVerdict } from './policy.js';
import { decodeDebitAnswer, debitCommand, purseSwText, type DebitAnswer } from './protocol.js';
import { recoverPending, type RecoveryOutcome } from './recovery.js';
import { openPurseSession, type PurseSession } from './session.js';

/** What the purchase flow works with: the card, the provider's key domain, the journal, the configuration. */
export interface PurseTerminal {
  /** The card's channel. No wrapper under it may re-issue commands on 6Cxx (see session.ts). */
  channel: CardChannel;
  /** The key domain of `config.provider`, claimed from the terminal's KeyStore. */
  domain: ProviderDomain;
  /** Opened for this terminal (openPurseJournal). */
  journal: Journal;
  config: PurseTerminalConfig;
}

export interface PurchaseReceipt {
  terminalId: string;
  readerId: string;
  journalId: number;
  readerSeq: number;
  /** Upper-case hex. */
  cardSerial: string;
  /** The card transaction counter of this purchase. */
  counter: number;
  amount: number;
  /** ISO 4217 alphabetic. */
  currency: string;
  balanceAfter: number;
  /** 16 bytes, the card's transaction certificate (the issuer verifies it). */
  certificate: Uint8Array;
  /** The journal row's createdAt, ms. */
  time: number;
  /** The same instant in the terminal's local time, offset shown. */
  localTime: string;
  /** The 7 BCD bytes the card certified. */
  dateTime: Uint8Array;
  /** "JPY 1,250". */
  amountText: string;
  balanceText: string;
}

export interface PurchaseResult {
  receipt: PurchaseReceipt;
  /** Pending rows of this card resolved before the purchase. */
  recovered: RecoveryOutcome[];
  policy: PolicyVerdict;
}

/** Runs one purchase of `amount` minor units of the terminal's currency. See the module comment. */
export async function purchase(terminal: PurseTerminal, amount: number): Promise<PurchaseResult> {
  const { channel, domain, journal, config } = terminal;
  checkAmount(config, amount);
  const session = await openPurseSession(channel, domain, config.provider);
  try {
    const recovered = await recoverPending(session, journal, config);
    const policy = checkPolicy(journal, config, session.serialHex, session.status, amount);
    const receipt = await debit(session, terminal, amount);
    return { receipt, recovered, policy };
  } finally {
    await session.close();
  }
}

/**
 * Journal first, then the card: the pending row with its reader sequence number, the DEBIT, and the
 * resolution of the row by what the card answered.
 */
async function debit(session: PurseSession, terminal: PurseTerminal, amount: number): Promise<PurchaseReceipt> {
  const { journal, config } = terminal;
  const status = session.status;
  const serial = session.serialHex;
  const cur = config.currency;
  const { id, readerSeq } = journal.beginTransaction({
    provider: config.provider,
    type: 'purchase',
    cardSerial: serial,
    cardCounter: status.counter,
    amount,
    currency: cur.alpha,
  });
  if (readerSeq > MAX_CARD_SEQUENCE) {
    journal.fail(id, { error: `reader sequence ${readerSeq} does not fit the card's 4 bytes`, cardCounter: status.counter });
    throw new PurseRefusedError('reader-sequence-exhausted', `reader sequence ${readerSeq} is above ${MAX_CARD_SEQUENCE}: this reader needs a new identity`, serial);
  }
  const row = journal.get(id);
  if (row === null) throw new ProtocolError(`journal row ${id} vanished after it was written`);
  const dateTime = purseDateTime(row.createdAt, config.utcOffsetMinutes);
  const command = debitCommand({ amount, currency: cur.numeric, terminalId: terminalIdBytes(config.terminalId), terminalSequence: readerSeq, dateTime });

  let answer: DebitAnswer;
  try {
    const resp = await session.exchange(command);
    if (resp.sw !== 0x9000) {
      journal.fail(id, { error: `card answered ${purseSwText(resp.sw)}`, cardCounter: status.counter });
      const err = new CardRefusedError(resp.sw, id, readerSeq);
      config.log({ level: 'warn', kind: 'card-refused', code: err.swHex, message: err.message, cardSerial: serial, journalId: id, readerSeq });
      throw err;
    }
    answer = decodeDebitAnswer(resp.data);
    if (answer.counter <= status.counter) throw new ProtocolError(`DEBIT answered counter ${answer.counter}, not above ${status.counter}`);
  } catch (e) {
    if (e instanceof CardRefusedError) throw e;
    const err = new PurchaseInterruptedError(id, readerSeq, e);
    config.log({ level: 'warn', kind: 'interrupted', code: err.code, message: err.message, cardSerial: serial, journalId: id, readerSeq });
    throw err;
  }

  journal.complete(id, { cardCounter: answer.counter, certificate: answer.certificate, balanceAfter: answer.balanceAfter });
  if (answer.counter !== status.counter + 1 || answer.balanceAfter !== status.balance - amount) {
    journal.recordAnomaly({
      kind: 'other',
      cardSerial: serial,
      counter: answer.counter,
      lastCounter: status.counter,
      transactionId: id,
      details: { problem: 'DEBIT answer does not follow READ STATUS', balanceBefore: status.balance, balanceAfter: answer.balanceAfter, amount },
    });
  }
  const receipt: PurchaseReceipt = {
    terminalId: config.terminalId,
    readerId: config.readerId,
    journalId: id,
    readerSeq,
    cardSerial: serial,
    counter: answer.counter,
    amount,
    currency: cur.alpha,
    balanceAfter: answer.balanceAfter,
    certificate: answer.certificate,
    time: row.createdAt,
    localTime: formatLocalTime(row.createdAt, config.utcOffsetMinutes),
    dateTime,
    amountText: formatAmount(amount, cur),
    balanceText: formatAmount(answer.balanceAfter, cur),
  };
  config.log({
    level: 'info',
    kind: 'complete',
    message: `purchase ${receipt.amountText}, card ${serial} counter ${answer.counter}, balance ${receipt.balanceText} (journal row ${id}, reader seq ${readerSeq})`,
    cardSerial: serial,
    journalId: id,
    readerSeq,
  });
  return receipt;
}
