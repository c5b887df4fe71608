/**
 * Tear recovery: resolving this terminal's pending journal rows of a card when the card is presented
 * again (a DEBIT or a LOAD whose answer was lost: card pulled, timeout, power cut, process killed).
 * A purchase row looks for a DEBIT record, a load row for a LOAD record; the rules are the same.
 *
 * The card is the truth, read inside an authenticated session (R-MAC): its counter (READ STATUS) and
 * its log (READ LOG, the last 10 transactions). For each pending row, oldest first:
 *
 *   - the card shows a counter BELOW the counter the row started from: the card is older than what
 *     this terminal saw (restored image, clone). Nothing it says can resolve the row: anomaly
 *     'rollback', CardRollbackError, the row stays pending.
 *   - the log holds a DEBIT (LOAD for a load row) with this terminal's id and the row's reader
 *     sequence number: the transaction happened. The row becomes 'recovered' with the card's counter, balance after and certificate
 *     from the log (amount and currency must be the row's, else nothing is decided: anomaly, error).
 *   - otherwise, if the log covers every transaction since the row began (the counter did not move,
 *     or the oldest logged counter is at most the row's counter before + 1): the transaction never
 *     happened. The row becomes 'never-happened' with the card's counter now.
 *   - otherwise the card made more than 10 transactions since and the record may have left the log:
 *     undecidable here. Anomaly, PurseRefusedError('pending-undecidable'), the row stays pending
 *     (the issuer, who sees every certificate, decides).
 *
 * Recovery never sends a DEBIT or a LOAD: the same request again would be refused by the card (9406;
 * a LOAD's cryptogram covers the counter before it, so a replayed one answers 6988 once the counter
 * moved), and a new transaction always takes a new reader sequence number.
 */
import { ProtocolError } from '../../util/errors.js';
import { bytesEqual, toHex } from '../../util/bytes.js';
import type { Journal, JournalRow, TransactionType } from '../journal/index.js';
import type { PurseTransactionType } from '../../crypto/purse-certificate.js';
import { terminalIdBytes, type PurseTerminalConfig } from './config.js';
import { currencyByAlpha } from './currency.js';
import { CardRollbackError, PurseRefusedError } from './errors.js';
import type { CardLogEntry, CardStatus } from './protocol.js';
import { openPurseSession, type PurseSession } from './session.js';
import type { CardChannel } from '../../reader/channel.js';
import type { ProviderDomain } from '../keystore.js';

export interface RecoveryOutcome {
  journalId: number;
  readerSeq: number;
  /** The journal row's type: 'purchase' (a DEBIT) or 'load' (a LOAD). */
  type: TransactionType;
  amount: number;
  /** ISO 4217 alphabetic, as journaled. */
  currency: string;
  resolution: 'recovered' | 'never-happened';
  /** The transaction's counter (recovered), or the card's counter now (never-happened). */
  counter: number;
  certificate: Uint8Array | null;
  balanceAfter: number | null;
}

/** The purse command each journal row type stands for (refunds have none on the purse). */
const LOG_TYPE_OF_ROW: Readonly<Record<TransactionType, PurseTransactionType | null>> = { purchase: 'debit', load: 'load', refund: null };

function findRecord(log: readonly CardLogEntry[], row: JournalRow, terminalId: Uint8Array): CardLogEntry | undefined {
  const type = LOG_TYPE_OF_ROW[row.type];
  if (type === null) throw new ProtocolError(`journal row ${row.id} is a ${row.type}: the purse has no command for it, tear recovery cannot decide it`);
  return log.find((e) => e.type === type && e.terminalSequence === row.readerSeq && bytesEqual(e.terminalId, terminalId));
}

/** Resolves the card's pending rows (see the module comment). No APDU when there are none. */
export async function recoverPending(session: PurseSession, journal: Journal, config: PurseTerminalConfig): Promise<RecoveryOutcome[]> {
  const serial = session.serialHex;
  const rows = journal.pendingFor(serial);
  if (rows.length === 0) return [];
  const status = session.status;
  const say = config.log;

  for (const row of rows) {
    if (status.counter < row.counterBefore) {
      journal.recordAnomaly({
        kind: 'rollback',
        cardSerial: serial,
        counter: status.counter,
        lastCounter: row.counterBefore,
        transactionId: row.id,
        details: { during: 'tear recovery', readerSeq: row.readerSeq },
      });
      const err = new CardRollbackError('rollback', serial, status.counter, row.counterBefore);
      say({ level: 'warn', kind: 'anomaly', code: err.code, message: err.message, cardSerial: serial, journalId: row.id, readerSeq: row.readerSeq });
      throw err;
    }
  }

  const log = await session.readLog();
  if (log.length > 0 && log[0].counter !== status.counter) {
    throw new ProtocolError(`READ LOG: the newest record has counter ${log[0].counter}, READ STATUS said ${status.counter}`);
  }
  const terminalId = terminalIdBytes(config.terminalId);
  const oldestLogged = log.length > 0 ? log[log.length - 1].counter : status.counter + 1;
  const outcomes: RecoveryOutcome[] = [];

  for (const row of rows) {
    const entry = findRecord(log, row, terminalId);
    if (entry !== undefined) {
      outcomes.push(recovered(journal, config, serial, row, entry));
      continue;
    }
    if (status.counter === row.counterBefore || oldestLogged <= row.counterBefore + 1) {
      journal.neverHappened(row.id, { cardCounter: status.counter, note: `tear recovery: reader seq ${row.readerSeq} is not in the card's log (counter ${status.counter})` });
      if (status.counter > row.counterBefore) {
        journal.recordAnomaly({
          kind: 'gap',
          cardSerial: serial,
          counter: status.counter,
          lastCounter: row.counterBefore,
          transactionId: row.id,
          details: { during: 'tear recovery', note: 'the card transacted elsewhere while this terminal held a pending row' },
        });
      }
      say({
        level: 'info',
        kind: 'never-happened',
        message: `pending ${row.type} (journal row ${row.id}, reader seq ${row.readerSeq}) never reached the card: resolved as never-happened`,
        cardSerial: serial,
        journalId: row.id,
        readerSeq: row.readerSeq,
      });
      outcomes.push({
        journalId: row.id,
        readerSeq: row.readerSeq,
        type: row.type,
        amount: row.amount,
        currency: row.currency,
        resolution: 'never-happened',
        counter: status.counter,
        certificate: null,
        balanceAfter: null,
      });
      continue;
    }
    journal.recordAnomaly({
      kind: 'other',
      cardSerial: serial,
      counter: status.counter,
      lastCounter: row.counterBefore,
      transactionId: row.id,
      details: { during: 'tear recovery', problem: 'pending row older than the card log', oldestLogged },
    });
    const err = new PurseRefusedError(
      'pending-undecidable',
      `journal row ${row.id} (reader seq ${row.readerSeq}) began at counter ${row.counterBefore}; the card is at ${status.counter} and logs only from ${oldestLogged}: the issuer must resolve it`,
      serial,
    );
    say({ level: 'warn', kind: 'refused', code: err.reason, message: err.message, cardSerial: serial, journalId: row.id, readerSeq: row.readerSeq });
    throw err;
  }
  return outcomes;
}

function recovered(journal: Journal, config: PurseTerminalConfig, serial: string, row: JournalRow, entry: CardLogEntry): RecoveryOutcome {
  const numeric = currencyByAlpha(row.currency).numeric;
  if (entry.amount !== row.amount || entry.currency !== numeric || entry.counter <= row.counterBefore) {
    journal.recordAnomaly({
      kind: 'other',
      cardSerial: serial,
      counter: entry.counter,
      lastCounter: row.counterBefore,
      transactionId: row.id,
      details: { during: 'tear recovery', problem: 'log record disagrees with the journal', loggedAmount: entry.amount, loggedCurrency: entry.currency },
    });
    throw new ProtocolError(
      `card log record of reader seq ${row.readerSeq} (counter ${entry.counter}, amount ${entry.amount}) disagrees with journal row ${row.id} (counter before ${row.counterBefore}, amount ${row.amount}); left pending`,
    );
  }
  journal.recover(row.id, { cardCounter: entry.counter, certificate: entry.certificate, balanceAfter: entry.balanceAfter });
  config.log({
    level: 'info',
    kind: 'recovered',
    message: `pending ${row.type} (journal row ${row.id}, reader seq ${row.readerSeq}) found in the card's log at counter ${entry.counter}: recovered, certificate ${toHex(entry.certificate).toUpperCase()}`,
    cardSerial: serial,
    journalId: row.id,
    readerSeq: row.readerSeq,
  });
  return {
    journalId: row.id,
    readerSeq: row.readerSeq,
    type: row.type,
    amount: row.amount,
    currency: row.currency,
    resolution: 'recovered',
    counter: entry.counter,
    certificate: entry.certificate,
    balanceAfter: entry.balanceAfter,
  };
}

/**
 * Presents the card for tear recovery only: opens the session (SELECT, authentication, READ STATUS),
 * resolves the card's pending rows, ends the session. What the card shows is returned with them.
 */
export async function recoverCard(
  channel: CardChannel,
  domain: ProviderDomain,
  journal: Journal,
  config: PurseTerminalConfig,
): Promise<{ cardSerial: string; status: CardStatus; outcomes: RecoveryOutcome[] }> {
  const session = await openPurseSession(channel, domain, config.provider);
  try {
    const outcomes = await recoverPending(session, journal, config);
    return { cardSerial: session.serialHex, status: session.status, outcomes };
  } finally {
    await session.close();
  }
}
