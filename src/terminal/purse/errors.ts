/**
 * What the purse terminal refuses, and how. Callers branch on `code` (and `reason` for POLICY), never
 * on message text:
 *
 *   POLICY        PurseRefusedError: the terminal's own rules (amount, currency, negative card file,
 *                 limits, a pending transaction that cannot be resolved, a card not issued)
 *   CARD_ROLLBACK CardRollbackError: the card shows a counter lower than this terminal saw
 *   SW            CardRefusedError: the card refused the DEBIT or LOAD with a status word (nothing moved)
 *   (cause's)     PurchaseInterruptedError / LoadInterruptedError: the DEBIT / LOAD was sent but its
 *                 answer was lost; the journal row stays pending until the card is presented again
 *                 (tear recovery)
 *   POLICY        LoadDeclinedError: the issuer declined the load authorization (its response code)
 *   (cause's)     IssuerUnavailableError: the issuer did not answer the load authorization (or the
 *                 uplink refused to ask); the row failed, no LOAD was sent
 */
import { HiltError, type ErrorCode } from '../../util/errors.js';
import { hexWord } from '../../util/bytes.js';
import { purseSwText } from './protocol.js';
import type { ReversalRecord } from '../../hostlink/uplink/store.js';

/** Why the terminal's policy refused, one stable word each, with what it means. */
export const REFUSAL_REASONS = {
  amount: 'the amount is not 1 to 4294967295 minor units',
  currency: "the currency is not the terminal's or not the card's",
  'card-not-active': 'the purse is not issued (life cycle not active)',
  'negative-file': 'the card is on the negative card file',
  'limit-per-transaction': "above the terminal's maximum per transaction",
  'limit-per-card-day': "above the terminal's maximum per card per day",
  'limit-per-reader-day': "above the terminal's maximum per reader per day",
  'max-balance': "the load would take the card above its maximum balance",
  'pending-undecidable': "a pending transaction of this card can no longer be decided from the card's log",
  'reader-sequence-exhausted': 'the reader sequence number no longer fits the card (4 bytes)',
} as const;
export type RefusalReason = keyof typeof REFUSAL_REASONS;

export class PurseRefusedError extends HiltError {
  readonly reason: RefusalReason;
  /** Upper-case hex, when the card was read. */
  readonly cardSerial: string | null;
  constructor(reason: RefusalReason, message: string, cardSerial: string | null = null) {
    super('POLICY', `refused (${reason}): ${message}`);
    this.reason = reason;
    this.cardSerial = cardSerial;
  }
}

export class CardRollbackError extends HiltError {
  /** 'repeat': back exactly to the state before a debit completed here; 'rollback': any older state. */
  readonly kind: 'rollback' | 'repeat';
  readonly cardSerial: string;
  readonly counter: number;
  readonly lastCounter: number;
  constructor(kind: 'rollback' | 'repeat', cardSerial: string, counter: number, lastCounter: number) {
    super(
      'CARD_ROLLBACK',
      `refused: card ${cardSerial} shows counter ${counter} but this terminal saw ${lastCounter}: ` +
        `${kind === 'repeat' ? 'its state before a debit made here (replayed image or clone)' : 'an older state (restored image or clone)'}; flagged`,
    );
    this.kind = kind;
    this.cardSerial = cardSerial;
    this.counter = counter;
    this.lastCounter = lastCounter;
  }
}

/** The value-moving commands of the purse, as the errors name them. */
export type PurseValueCommand = 'DEBIT' | 'LOAD';

export class CardRefusedError extends HiltError {
  readonly sw: number;
  readonly journalId: number;
  readonly readerSeq: number;
  readonly command: PurseValueCommand;
  constructor(sw: number, journalId: number, readerSeq: number, command: PurseValueCommand = 'DEBIT') {
    super('SW', `refused by the card: ${command} answered ${purseSwText(sw)} (journal row ${journalId}, reader seq ${readerSeq}: failed, nothing moved)`);
    this.sw = sw;
    this.journalId = journalId;
    this.readerSeq = readerSeq;
    this.command = command;
  }

  get swHex(): string {
    return hexWord(this.sw);
  }
}

/**
 * The answer to a value command (DEBIT, LOAD) was lost: the card may or may not have moved value. The
 * row stays pending; recovery decides from the card's log when it is presented again. The code is the
 * cause's (CARD_REMOVED, TIMEOUT, ...), PROTOCOL for an answer that does not verify or decode.
 */
export class ValueCommandInterruptedError extends HiltError {
  readonly journalId: number;
  readonly readerSeq: number;
  readonly command: PurseValueCommand;
  constructor(command: PurseValueCommand, journalId: number, readerSeq: number, cause: unknown) {
    const code: ErrorCode = cause instanceof HiltError ? cause.code : 'PROTOCOL';
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      code,
      `the answer to ${command} was lost (${why}): journal row ${journalId} (reader seq ${readerSeq}) stays pending; present the card again to resolve it`,
      { cause },
    );
    this.journalId = journalId;
    this.readerSeq = readerSeq;
    this.command = command;
  }
}

export class PurchaseInterruptedError extends ValueCommandInterruptedError {
  constructor(journalId: number, readerSeq: number, cause: unknown) {
    super('DEBIT', journalId, readerSeq, cause);
  }
}

export class LoadInterruptedError extends ValueCommandInterruptedError {
  constructor(journalId: number, readerSeq: number, cause: unknown) {
    super('LOAD', journalId, readerSeq, cause);
  }
}

/** The issuer answered the load authorization (0210) with a refusal: the row failed, no LOAD was sent. */
export class LoadDeclinedError extends HiltError {
  /** Field 39 of the 0210. */
  readonly responseCode: string;
  readonly meaning: string;
  readonly journalId: number;
  readonly readerSeq: number;
  constructor(responseCode: string, meaning: string, journalId: number, readerSeq: number) {
    super('POLICY', `declined by the issuer: ${responseCode} ${meaning} (journal row ${journalId}, reader seq ${readerSeq}: failed, nothing loaded)`);
    this.responseCode = responseCode;
    this.meaning = meaning;
    this.journalId = journalId;
    this.readerSeq = readerSeq;
  }
}

/**
 * The load authorization got no usable answer (timeout, connection lost, the reader refused by the
 * host, an answer that breaks the exchange): the row failed, no LOAD was sent. The code is the
 * cause's (TIMEOUT, AUTH_FAILED, PROTOCOL, ...). `reversal`: when the 0200 went out (the issuer may
 * have approved it), the reversal the uplink recorded for it and its state; null when nothing went out.
 */
export class IssuerUnavailableError extends HiltError {
  readonly journalId: number;
  readonly readerSeq: number;
  readonly reversal: ReversalRecord | null;
  constructor(journalId: number, readerSeq: number, cause: unknown, reversal: ReversalRecord | null = null) {
    const code: ErrorCode = cause instanceof HiltError ? cause.code : 'PROTOCOL';
    const why = cause instanceof Error ? cause.message : String(cause);
    super(code, `no load authorization from the issuer (${why}): journal row ${journalId} (reader seq ${readerSeq}) failed, nothing loaded`, { cause });
    this.journalId = journalId;
    this.readerSeq = readerSeq;
    this.reversal = reversal;
  }
}
