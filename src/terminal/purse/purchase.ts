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
import type { Journal } from '../journal/index.js';
import type { ProviderDomain } from '../keystore.js';
import { terminalIdBytes, type PurseTerminalConfig } from './config.js';
import { CardRefusedError } from './errors.js';
import { checkAmount, checkPolicy, type PolicyVerdict } from './policy.js';
import { debitCommand, purseSwText } from './protocol.js';
import { beginValueRow, sendValueCommand } from './value-command.js';
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
  const pending = beginValueRow(session, journal, config, 'purchase', amount);
  const { id, readerSeq, dateTime } = pending;
  const command = debitCommand({ amount, currency: config.currency.numeric, terminalId: terminalIdBytes(config.terminalId), terminalSequence: readerSeq, dateTime });
  const receipt = await sendValueCommand({
    session,
    journal,
    config,
    pending,
    name: 'DEBIT',
    command,
    amount,
    refused: async (sw) => {
      journal.fail(id, { error: `card answered ${purseSwText(sw)}`, cardCounter: session.status.counter });
      return new CardRefusedError(sw, id, readerSeq);
    },
  });
  config.log({
    level: 'info',
    kind: 'complete',
    message: `purchase ${receipt.amountText}, card ${receipt.cardSerial} counter ${receipt.counter}, balance ${receipt.balanceText} (journal row ${id}, reader seq ${readerSeq})`,
    cardSerial: receipt.cardSerial,
    journalId: id,
    readerSeq,
  });
  return receipt;
}
