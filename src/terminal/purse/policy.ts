/**
 * The terminal's checks before value moves, in this order (each refusal a typed error, logged, and
 * recorded in the journal where there is something to record):
 *
 *   amount      1 ≤ amount ≤ 4294967295 minor units, an integer (before the card is touched)
 *               → PurseRefusedError 'amount'; log line only (no card, no journal row)
 *   life cycle  the purse is active → 'card-not-active'; log line
 *   negative    the card is not on the negative card file → 'negative-file'; anomaly 'blocked-card'
 *   coherence   the card's counter against this terminal's history (journal.checkCounter; pending
 *               rows resolved first): lower = a rolled-back or cloned card → CardRollbackError,
 *               anomaly 'rollback' or 'repeat'; higher = the card was used elsewhere → anomaly
 *               'gap', not a refusal
 *   currency    the card's currency is the terminal's → 'currency'
 *   limits      per transaction, per card per business day, per reader per business day, summed
 *               over the journal's completed and recovered purchases → 'limit-…'
 *
 * A refusal of the last two is a declined purchase: it is journaled as a row that goes straight to
 * 'failed' (it takes a reader sequence number and is uplinked, so the host sees declines as well
 * as gaps). The card's own limits (balance, its maximum per transaction) are the card's to enforce:
 * it refuses the DEBIT with its status word and the purchase journals that.
 *
 * A load (checkLoadPolicy) runs the same checks up to the currency, then
 *   max balance the card's balance + amount ≤ the card's maximum balance (READ STATUS) → 'max-balance'
 *               (checked here so that no authorization is asked of the issuer for a load the card
 *               would refuse with 94 03)
 *   limits      the terminal's load limits (config.loadLimits), summed over completed and recovered
 *               loads → 'limit-…'
 * each refusal a declined load row. The issuer applies its own limits when it authorizes.
 */
import { dayRange, type CounterCheck, type Journal, type TransactionType } from '../journal/index.js';
import { PURSE_U32_MAX } from '../../crypto/purse-certificate.js';
import { hexByte } from '../../util/bytes.js';
import type { PurseLimits, PurseTerminalConfig } from './config.js';
import { formatAmount, currencyLabel } from './currency.js';
import { CardRollbackError, PurseRefusedError, type RefusalReason } from './errors.js';
import type { CardStatus } from './protocol.js';

export interface PolicyVerdict {
  counterCheck: CounterCheck;
  /** Completed transactions of this type (purchases, or loads) of this card today, before this one. */
  cardSpentToday: number;
  /** Completed transactions of this type at this reader today, before this one. */
  readerSpentToday: number;
}

function refuse(config: PurseTerminalConfig, reason: RefusalReason, message: string, cardSerial: string | null): never {
  const err = new PurseRefusedError(reason, message, cardSerial);
  config.log({ level: 'warn', kind: 'refused', code: reason, message: err.message, ...(cardSerial ? { cardSerial } : {}) });
  throw err;
}

/** The amount alone, before any APDU: an integer of minor units that fits the card's 4 bytes and is not 0. */
export function checkAmount(config: PurseTerminalConfig, amount: number): void {
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > PURSE_U32_MAX) {
    refuse(config, 'amount', `amount ${String(amount)}: expected 1 to ${PURSE_U32_MAX} minor units of ${config.currency.alpha}`, null);
  }
}

/** A transaction refused by policy after the card was read: a journal row that goes straight to failed. */
function decline(
  journal: Journal,
  config: PurseTerminalConfig,
  type: TransactionType,
  serial: string,
  status: CardStatus,
  amount: number,
  reason: RefusalReason,
  message: string,
): never {
  const { id, readerSeq } = journal.beginTransaction({
    provider: config.provider,
    type,
    cardSerial: serial,
    cardCounter: status.counter,
    amount,
    currency: config.currency.alpha,
  });
  journal.fail(id, { error: `refused by terminal policy (${reason}): ${message}`, cardCounter: status.counter });
  const err = new PurseRefusedError(reason, `${message} (journal row ${id}, reader seq ${readerSeq}: declined)`, serial);
  config.log({ level: 'warn', kind: 'refused', code: reason, message: err.message, cardSerial: serial, journalId: id, readerSeq });
  throw err;
}

/**
 * The card itself: life cycle, negative card file, counter coherence (see the module comment).
 * For a card read in an authenticated session, after its pending rows were resolved.
 */
export function checkCard(journal: Journal, config: PurseTerminalConfig, serial: string, status: CardStatus): CounterCheck {
  const log = config.log;
  if (!status.active) refuse(config, 'card-not-active', `card ${serial} is not an issued purse (life cycle ${hexByte(status.lifeCycle)})`, serial);

  const blocked = journal.negativeEntry(serial);
  if (blocked !== null) {
    journal.recordAnomaly({ kind: 'blocked-card', cardSerial: serial, counter: status.counter, details: { reason: blocked.reason, listVersion: blocked.addedInVersion } });
    refuse(config, 'negative-file', `card ${serial} is on the negative card file (${blocked.reason}, list version ${blocked.addedInVersion})`, serial);
  }

  const check = journal.checkCounter(serial, status.counter);
  if (typeof check === 'object') {
    if (check.kind === 'rollback' || check.kind === 'repeat') {
      journal.recordAnomaly({
        kind: check.kind,
        cardSerial: serial,
        counter: status.counter,
        lastCounter: check.last,
        ...(check.kind === 'repeat' ? { transactionId: check.transactionId } : {}),
        details: { balance: status.balance },
      });
      const err = new CardRollbackError(check.kind, serial, status.counter, check.last);
      log({ level: 'warn', kind: 'anomaly', code: err.code, message: err.message, cardSerial: serial });
      throw err;
    }
    journal.recordAnomaly({ kind: 'gap', cardSerial: serial, counter: status.counter, lastCounter: check.last, details: { missingCount: check.missingCount } });
    log({
      level: 'info',
      kind: 'anomaly',
      code: 'gap',
      message: `card ${serial} made ${check.missingCount} transaction(s) elsewhere since this terminal saw it (counter ${check.last} → ${status.counter})`,
      cardSerial: serial,
    });
  }
  return check;
}

const WORDS: Record<TransactionType, { verb: string; sells: string }> = {
  purchase: { verb: 'purchase', sells: 'sells in' },
  load: { verb: 'load', sells: 'loads' },
  refund: { verb: 'refund', sells: 'refunds' },
};

/** The card's currency against the terminal's: a declined row of `type` when they differ. */
function checkCurrency(journal: Journal, config: PurseTerminalConfig, type: TransactionType, serial: string, status: CardStatus, amount: number): void {
  const cur = config.currency;
  if (status.currency !== cur.numeric) {
    const cardCurrency = status.currency === null ? 'none' : currencyLabel(status.currency);
    decline(journal, config, type, serial, status, amount, 'currency', `the card holds ${cardCurrency}, the terminal ${WORDS[type].sells} ${cur.alpha}`);
  }
}

/** The terminal's limits for transactions of `type`, summed over the journal's moved rows of that type. */
function checkLimits(
  journal: Journal,
  config: PurseTerminalConfig,
  type: TransactionType,
  limits: Readonly<PurseLimits>,
  serial: string,
  status: CardStatus,
  amount: number,
): { cardSpentToday: number; readerSpentToday: number } {
  const cur = config.currency;
  const what = type === 'purchase' ? '' : `${WORDS[type].verb} `;
  if (amount > limits.perTransaction) {
    decline(journal, config, type, serial, status, amount, 'limit-per-transaction', `${formatAmount(amount, cur)} is above the ${what}maximum per transaction ${formatAmount(limits.perTransaction, cur)}`);
  }
  const day = dayRange(config.clock(), config.utcOffsetMinutes);
  const cardSpentToday = journal.spent({ cardSerial: serial, currency: cur.alpha, fromMs: day.fromMs, toMs: day.toMs, type });
  if (cardSpentToday + amount > limits.perCardPerDay) {
    decline(
      journal,
      config,
      type,
      serial,
      status,
      amount,
      'limit-per-card-day',
      `${formatAmount(amount, cur)} on top of ${formatAmount(cardSpentToday, cur)} today passes the card's daily ${what}maximum ${formatAmount(limits.perCardPerDay, cur)}`,
    );
  }
  const readerSpentToday = journal.spent({ currency: cur.alpha, fromMs: day.fromMs, toMs: day.toMs, type });
  if (readerSpentToday + amount > limits.perReaderPerDay) {
    decline(
      journal,
      config,
      type,
      serial,
      status,
      amount,
      'limit-per-reader-day',
      `${formatAmount(amount, cur)} on top of ${formatAmount(readerSpentToday, cur)} today passes the reader's daily ${what}maximum ${formatAmount(limits.perReaderPerDay, cur)}`,
    );
  }
  return { cardSpentToday, readerSpentToday };
}

/**
 * Everything but the amount check for a purchase, for the card `status` read in an authenticated
 * session, after its pending rows were resolved. Returns what it found; throws the first refusal.
 */
export function checkPolicy(journal: Journal, config: PurseTerminalConfig, serial: string, status: CardStatus, amount: number): PolicyVerdict {
  const counterCheck = checkCard(journal, config, serial, status);
  checkCurrency(journal, config, 'purchase', serial, status, amount);
  return { counterCheck, ...checkLimits(journal, config, 'purchase', config.limits, serial, status, amount) };
}

/** The same for a load (see the module comment): card, currency, the card's maximum balance, load limits. */
export function checkLoadPolicy(journal: Journal, config: PurseTerminalConfig, serial: string, status: CardStatus, amount: number): PolicyVerdict {
  const counterCheck = checkCard(journal, config, serial, status);
  checkCurrency(journal, config, 'load', serial, status, amount);
  const cur = config.currency;
  if (status.balance + amount > status.maxBalance) {
    decline(
      journal,
      config,
      'load',
      serial,
      status,
      amount,
      'max-balance',
      `${formatAmount(amount, cur)} on top of the balance ${formatAmount(status.balance, cur)} passes the card's maximum balance ${formatAmount(status.maxBalance, cur)}`,
    );
  }
  return { counterCheck, ...checkLimits(journal, config, 'load', config.loadLimits, serial, status, amount) };
}
