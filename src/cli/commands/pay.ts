/**
 * `hilt pay <amount> [--currency JPY] [--config file] [--db file] [--keys file] [--reader R] [--trace] [--json]`:
 * one e-money purchase on the purse in a reader, with a receipt.
 *
 * <amount> is written in the currency's units: 1250 (JPY), 12.50 (EUR). Before the purchase, the
 * card's pending rows in this terminal's journal (a purchase whose answer was lost) are resolved from
 * the card's log (tear recovery) and printed. A refusal (terminal policy, negative card file, a
 * rolled-back card, the card's own status word) is one line `hilt: refused …` and exit code 1; a
 * lost answer says which journal row waits for the card.
 *
 * The terminal: --config (JSON: terminalId, readerId, provider, currency, limits {perTransaction,
 * perCardPerDay, perReaderPerDay}, utcOffsetMinutes), else DEFAULT_PAY_CONFIG. Keys: --keys (a key
 * file with the provider's section), else the built-in TEST keys (labelled as such on stderr). The
 * journal: --db, else $HILT_TERMINAL_DB, else .hilt/terminal.db (created with its folder).
 *
 * The channel stack has no 6Cxx re-issue under the secure channel (src/reader/scp03.ts).
 */
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import { addCardOptions, describeSession, openCardSession, type CardCommandOptions } from './send.js';
import { defaultJournalPath, JOURNAL_PATH_ENV, DEFAULT_JOURNAL_PATH } from './journal.js';
import { withGetResponse } from '../../reader/get-response.js';
import { toHex } from '../../util/bytes.js';
import { KeyStore } from '../../terminal/keystore.js';
import {
  currencyByAlpha,
  formatAmount,
  openPurseJournal,
  parseAmount,
  purchase,
  purseTerminalConfig,
  readPurseTerminalConfig,
  type PurchaseReceipt,
  type PurseEvent,
  type PurseTerminalConfigInput,
  type RecoveryOutcome,
} from '../../terminal/purse/index.js';

/** The terminal `hilt pay` is without --config. */
export const DEFAULT_PAY_CONFIG: Readonly<PurseTerminalConfigInput> = Object.freeze({ terminalId: 'TERM0001', readerId: 'R-01', currency: 'JPY' });

interface PayOptions extends CardCommandOptions {
  currency?: string;
  config?: string;
  db?: string;
  keys?: string;
}

export interface PayReport {
  reader: string;
  journal: string;
  recovered: RecoveryOutcome[];
  receipt: PurchaseReceipt;
}

function recoveryLine(o: RecoveryOutcome): string {
  const what = `pending purchase ${formatAmount(o.amount, currencyByAlpha(o.currency))} (journal row ${o.journalId}, reader seq ${o.readerSeq})`;
  return o.resolution === 'recovered'
    ? `recovered: ${what} was made: card counter ${o.counter}, certificate ${toHex(o.certificate ?? new Uint8Array(0)).toUpperCase()}`
    : `resolved: ${what} never reached the card: nothing was charged`;
}

/** The receipt for people. */
export function formatReceipt(r: PurchaseReceipt): string {
  const rows: [string, string][] = [
    ['terminal', `${r.terminalId} (reader ${r.readerId})`],
    ['reader seq', String(r.readerSeq)],
    ['card', r.cardSerial],
    ['card counter', String(r.counter)],
    ['amount', r.amountText],
    ['balance after', r.balanceText],
    ['certificate', toHex(r.certificate).toUpperCase()],
    ['time', r.localTime],
    ['journal row', `${r.journalId} (complete, queued for the issuer)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return ['=== e-money purchase: RECEIPT ===', ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`)].join('\n');
}

export const registerPay: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('pay')
    .description('one e-money purchase on the purse in a reader: tear recovery first, terminal policy, a receipt')
    .argument('<amount>', "amount in the currency's units: 1250 (JPY), 12.50 (EUR)");
  addCardOptions(cmd)
    .option('--currency <code>', "the terminal's currency, ISO 4217 (default: the configuration's, JPY)")
    .option('--config <file>', 'terminal configuration (JSON: terminalId, readerId, currency, limits, utcOffsetMinutes)')
    .option('--db <file>', `journal file (default $${JOURNAL_PATH_ENV}, else ${DEFAULT_JOURNAL_PATH})`)
    .option('--keys <file>', "key file with the e-money provider's master keys (default: the built-in TEST keys)")
    .option('--json', 'print one JSON document')
    .action(async (amountText: string, opts: PayOptions) => {
      await runPay(amountText, opts, ctx);
    });
};

async function runPay(amountText: string, opts: PayOptions, ctx: CliContext): Promise<void> {
  const input: PurseTerminalConfigInput = { ...(opts.config ? readPurseTerminalConfig(opts.config) : DEFAULT_PAY_CONFIG) };
  if (opts.currency !== undefined) input.currency = opts.currency;
  const events: PurseEvent[] = [];
  const config = purseTerminalConfig({ ...input, log: (e) => events.push(e) });
  const amount = parseAmount(amountText, config.currency);
  const dbPath = opts.db ?? defaultJournalPath();

  const keys = await KeyStore.open({
    sources: [opts.keys ? { kind: 'file', path: opts.keys } : { kind: 'test', providers: [config.provider] }],
    warn: (m) => ctx.io.err(`hilt: ${m}`),
  });
  try {
    const domain = keys.domain(config.provider);
    const journal = openPurseJournal(dbPath, config);
    try {
      const session = await openCardSession(opts, ctx, false);
      try {
        const channel = withGetResponse({ reissueOn6C: false })(session.channel);
        const result = await purchase({ channel, domain, journal, config }, amount);
        for (const e of events) if (e.kind === 'anomaly') ctx.io.err(`hilt: note: ${e.message}`);
        if (opts.json) {
          const report: PayReport = { reader: session.reader.name, journal: dbPath, recovered: result.recovered, receipt: result.receipt };
          ctx.io.out(toJson(report));
        } else {
          ctx.io.out(describeSession(session.reader));
          for (const o of result.recovered) ctx.io.out(recoveryLine(o));
          ctx.io.out(formatReceipt(result.receipt));
        }
      } finally {
        await session.close();
      }
    } finally {
      journal.close();
    }
  } finally {
    keys.close();
  }
}
