/**
 * What a purchase (DEBIT) and a load (LOAD) do alike once the policy has passed: the journal's
 * pending row before the card moves value, the one value command, the row resolved by the card's
 * answer, and the receipt. The flows (purchase.ts, load.ts) put their own steps around it (the
 * issuer's authorization sits between the row and the command of a load).
 *
 *   90 00 with a well-formed answer → journal.complete (which queues the advice); an answer that does
 *     not follow READ STATUS (counter + 1, balance ± amount) is kept as an anomaly, the card is the truth
 *   an error status word → the card did nothing: `refused` fails the row and gives the error to throw
 *   anything else → the row stays PENDING, the interrupted error tells to present the card again
 */
import { ProtocolError } from '../../util/errors.js';
import type { Journal, JournalRow } from '../journal/index.js';
import type { CommandApdu } from '../../apdu/command.js';
import { MAX_CARD_SEQUENCE, formatLocalTime, purseDateTime, type PurseTerminalConfig } from './config.js';
import { formatAmount } from './currency.js';
import { CardRefusedError, LoadInterruptedError, PurchaseInterruptedError, PurseRefusedError, type PurseValueCommand } from './errors.js';
import { decodeDebitAnswer, type DebitAnswer } from './protocol.js';
import type { PurseSession } from './session.js';
import type { PurchaseReceipt } from './purchase.js';

/** A pending row of this terminal, durable, with what the value command will carry. */
export interface PendingValueRow {
  id: number;
  readerSeq: number;
  row: JournalRow;
  /** The row's createdAt in the terminal's local time, 7 BCD bytes: what the card certifies. */
  dateTime: Uint8Array;
}

/** journal.beginTransaction for the card of `session`; refuses a reader sequence the card cannot carry. */
export function beginValueRow(session: PurseSession, journal: Journal, config: PurseTerminalConfig, type: 'purchase' | 'load', amount: number): PendingValueRow {
  const status = session.status;
  const serial = session.serialHex;
  const { id, readerSeq } = journal.beginTransaction({ provider: config.provider, type, cardSerial: serial, cardCounter: status.counter, amount, currency: config.currency.alpha });
  if (readerSeq > MAX_CARD_SEQUENCE) {
    journal.fail(id, { error: `reader sequence ${readerSeq} does not fit the card's 4 bytes`, cardCounter: status.counter });
    throw new PurseRefusedError('reader-sequence-exhausted', `reader sequence ${readerSeq} is above ${MAX_CARD_SEQUENCE}: this reader needs a new identity`, serial);
  }
  const row = journal.get(id);
  if (row === null) throw new ProtocolError(`journal row ${id} vanished after it was written`);
  return { id, readerSeq, row, dateTime: purseDateTime(row.createdAt, config.utcOffsetMinutes) };
}

export interface ValueCommandInput {
  session: PurseSession;
  journal: Journal;
  config: PurseTerminalConfig;
  pending: PendingValueRow;
  name: PurseValueCommand;
  command: CommandApdu;
  amount: number;
  /** The card refused (an error status word): fail the row (and whatever else) and give the error to throw. */
  refused: (sw: number) => Promise<CardRefusedError>;
}

/** Sends the value command and resolves the row by the answer (module comment); returns the receipt's common part. */
export async function sendValueCommand(i: ValueCommandInput): Promise<PurchaseReceipt> {
  const { session, journal, config, pending, name, amount } = i;
  const { id, readerSeq, row, dateTime } = pending;
  const status = session.status;
  const serial = session.serialHex;
  const where = { cardSerial: serial, journalId: id, readerSeq };
  let answer: DebitAnswer;
  try {
    const resp = await session.exchange(i.command);
    if (resp.sw !== 0x9000) {
      const err = await i.refused(resp.sw);
      config.log({ level: 'warn', kind: 'card-refused', code: err.swHex, message: err.message, ...where });
      throw err;
    }
    answer = decodeDebitAnswer(resp.data);
    if (answer.counter <= status.counter) throw new ProtocolError(`${name} answered counter ${answer.counter}, not above ${status.counter}`);
  } catch (e) {
    if (e instanceof CardRefusedError) throw e;
    const err = name === 'LOAD' ? new LoadInterruptedError(id, readerSeq, e) : new PurchaseInterruptedError(id, readerSeq, e);
    config.log({ level: 'warn', kind: 'interrupted', code: err.code, message: err.message, ...where });
    throw err;
  }

  journal.complete(id, { cardCounter: answer.counter, certificate: answer.certificate, balanceAfter: answer.balanceAfter });
  const expected = name === 'LOAD' ? status.balance + amount : status.balance - amount;
  if (answer.counter !== status.counter + 1 || answer.balanceAfter !== expected) {
    journal.recordAnomaly({
      kind: 'other',
      cardSerial: serial,
      counter: answer.counter,
      lastCounter: status.counter,
      transactionId: id,
      details: { problem: `${name} answer does not follow READ STATUS`, balanceBefore: status.balance, balanceAfter: answer.balanceAfter, amount },
    });
  }
  const cur = config.currency;
  return {
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
}
