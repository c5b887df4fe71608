/**
 * `hilt balance [--reader R] [--trace] [--json]`: what the e-money purse in a reader shows to anyone:
 * serial, balance, transaction counter, limits and its log (the last 10 transactions, newest first).
 *
 * No keys and no journal: READ STATUS and READ LOG need no secure channel, and what is read in the
 * clear is not evidence (src/terminal/purse/balance.ts). `hilt pay` reads the same inside the session.
 */
import type { RegisterCommand } from './types.js';
import { table, toJson } from '../output.js';
import { addCardOptions, describeSession, openCardSession, type CardCommandOptions } from './send.js';
import { toHex } from '../../util/bytes.js';
import {
  PURSE_LIFE_CYCLE,
  currencyByNumeric,
  currencyLabel,
  formatAmount,
  formatPurseDateTime,
  readPurseBalance,
  type CardLogEntry,
  type PurseBalance,
} from '../../terminal/purse/index.js';

/** What `--json` prints. */
export interface BalanceReport {
  reader: string;
  serial: string;
  lifeCycle: 'issuance' | 'active';
  counter: number;
  balance: number;
  /** ISO 4217 alphabetic when known, else the numeric code; null before personalization. */
  currency: string | null;
  currencyNumeric: number | null;
  balanceText: string | null;
  maxBalance: number;
  maxPerTransaction: number;
  logCapacity: number;
  log: LogLine[];
}

export interface LogLine {
  counter: number;
  type: 'debit' | 'load';
  amount: number;
  currency: string;
  terminalId: string;
  terminalSequence: number;
  dateTime: string;
  balanceAfter: number;
  certificate: string;
}

/** The 8-byte terminal id as text when it is printable ASCII (trailing spaces dropped), else hex. */
export function terminalIdText(b: Uint8Array): string {
  const printable = b.every((x) => x >= 0x20 && x < 0x7f);
  return printable ? String.fromCharCode(...b).trimEnd() : toHex(b).toUpperCase();
}

function logLine(e: CardLogEntry): LogLine {
  return {
    counter: e.counter,
    type: e.type,
    amount: e.amount,
    currency: currencyLabel(e.currency),
    terminalId: terminalIdText(e.terminalId),
    terminalSequence: e.terminalSequence,
    dateTime: formatPurseDateTime(e.dateTime),
    balanceAfter: e.balanceAfter,
    certificate: toHex(e.certificate).toUpperCase(),
  };
}

export function balanceReport(reader: string, b: PurseBalance): BalanceReport {
  const s = b.status;
  return {
    reader,
    serial: toHex(s.serial).toUpperCase(),
    lifeCycle: s.lifeCycle === PURSE_LIFE_CYCLE.active ? 'active' : 'issuance',
    counter: s.counter,
    balance: s.balance,
    currency: s.currency === null ? null : currencyLabel(s.currency),
    currencyNumeric: s.currency,
    balanceText: s.currency === null ? null : formatAmount(s.balance, s.currency),
    maxBalance: s.maxBalance,
    maxPerTransaction: s.maxPerTransaction,
    logCapacity: s.logCapacity,
    log: b.log.map(logLine),
  };
}

/** The human form. */
export function formatBalance(r: BalanceReport): string {
  const money = (n: number): string => (r.currencyNumeric === null ? String(n) : formatAmount(n, r.currencyNumeric));
  const head: [string, string][] = [
    ['card', r.serial],
    ['balance', r.balanceText ?? `${r.balance} (not personalized)`],
    ['counter', String(r.counter)],
    ['purse', `${r.lifeCycle}, max balance ${money(r.maxBalance)}, max per transaction ${money(r.maxPerTransaction)}`],
    ['log', `${r.log.length} of ${r.logCapacity} records, newest first`],
  ];
  const w = Math.max(...head.map(([k]) => k.length));
  const lines = head.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  if (r.log.length > 0) {
    const known = r.currencyNumeric !== null && currencyByNumeric(r.currencyNumeric) !== undefined;
    lines.push(
      table(
        ['counter', 'type', 'amount', 'balance after', 'terminal', 'seq', 'date-time', 'certificate'],
        r.log.map((e) => [
          String(e.counter),
          e.type,
          known ? money(e.amount) : `${e.amount} ${e.currency}`,
          known ? money(e.balanceAfter) : String(e.balanceAfter),
          e.terminalId,
          String(e.terminalSequence),
          e.dateTime,
          e.certificate,
        ]),
      ),
    );
  }
  return lines.join('\n');
}

export const registerBalance: RegisterCommand = (program, ctx) => {
  const cmd = program.command('balance').description("the e-money purse in a reader: balance, counter, serial, limits and the card's log");
  addCardOptions(cmd)
    .option('--json', 'print one JSON document')
    .action(async (opts: CardCommandOptions) => {
      const session = await openCardSession(opts, ctx, false);
      let report: BalanceReport;
      try {
        report = balanceReport(session.reader.name, await readPurseBalance(session.channel));
        if (!opts.json) ctx.io.out(describeSession(session.reader));
      } finally {
        await session.close();
      }
      ctx.io.out(opts.json ? toJson(report) : formatBalance(report));
    });
};
