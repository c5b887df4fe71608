/**
 * `hilt pay <amount> [--currency JPY] [--config file] [--db file] [--keys file] [--reader R] [--trace] [--json]`:
 * one e-money purchase on the purse in a reader, with a receipt.
 *
 * <amount> is written in the currency's units: 1250 (JPY), 12.50 (EUR). Before the purchase, the
 * card's pending rows in this terminal's journal (a purchase or load whose answer was lost) are
 * resolved from the card's log (tear recovery) and printed. A refusal (terminal policy, negative
 * card file, a rolled-back card, the card's own status word) is one line `hilt: refused …` and exit
 * code 1; a lost answer says which journal row waits for the card.
 *
 * The terminal, its keys and its journal: purse-terminal.ts (shared with `hilt load`).
 */
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import { toHex } from '../../util/bytes.js';
import { parseAmount, purchase, type PurchaseReceipt, type PurseEvent, type RecoveryOutcome } from '../../terminal/purse/index.js';
import {
  DEFAULT_PURSE_CLI_CONFIG,
  addPurseTerminalOptions,
  formatRows,
  printAnomalies,
  purseCliConfig,
  recoveryLine,
  withPurseTerminal,
  type PurseTerminalOptions,
} from './purse-terminal.js';

/** The terminal `hilt pay` is without --config. */
export const DEFAULT_PAY_CONFIG = DEFAULT_PURSE_CLI_CONFIG;

export interface PayReport {
  reader: string;
  journal: string;
  recovered: RecoveryOutcome[];
  receipt: PurchaseReceipt;
}

/** The receipt for people. */
export function formatReceipt(r: PurchaseReceipt): string {
  return formatRows('=== e-money purchase: RECEIPT ===', [
    ['terminal', `${r.terminalId} (reader ${r.readerId})`],
    ['reader seq', String(r.readerSeq)],
    ['card', r.cardSerial],
    ['card counter', String(r.counter)],
    ['amount', r.amountText],
    ['balance after', r.balanceText],
    ['certificate', toHex(r.certificate).toUpperCase()],
    ['time', r.localTime],
    ['journal row', `${r.journalId} (complete, queued for the issuer)`],
  ]);
}

export const registerPay: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('pay')
    .description('one e-money purchase on the purse in a reader: tear recovery first, terminal policy, a receipt')
    .argument('<amount>', "amount in the currency's units: 1250 (JPY), 12.50 (EUR)");
  addPurseTerminalOptions(cmd).action(async (amountText: string, opts: PurseTerminalOptions) => {
    await runPay(amountText, opts, ctx);
  });
};

async function runPay(amountText: string, opts: PurseTerminalOptions, ctx: CliContext): Promise<void> {
  const events: PurseEvent[] = [];
  const config = purseCliConfig(opts, events);
  const amount = parseAmount(amountText, config.currency);
  await withPurseTerminal(opts, ctx, config, async (t) => {
    const result = await purchase(t.terminal, amount);
    printAnomalies(events, ctx);
    if (opts.json) {
      const report: PayReport = { reader: t.readerName, journal: t.journalPath, recovered: result.recovered, receipt: result.receipt };
      ctx.io.out(toJson(report));
    } else {
      ctx.io.out(t.readerLine);
      for (const o of result.recovered) ctx.io.out(recoveryLine(o));
      ctx.io.out(formatReceipt(result.receipt));
    }
  });
}
