/**
 * What `hilt pay` and `hilt load` share: the purse terminal's options (--currency, --config, --db,
 * --keys on top of the card options), opening the terminal they describe (configuration, key store
 * domain, journal, a channel on the reader), and how a tear recovery is told to people.
 *
 * The terminal: --config (JSON: terminalId, readerId, provider, currency, limits, loadLimits,
 * utcOffsetMinutes), else DEFAULT_PURSE_CLI_CONFIG. Keys: --keys (a key file with the provider's
 * section), else the built-in TEST keys (labelled as such on stderr). The journal: --db, else
 * $HILT_TERMINAL_DB, else .hilt/terminal.db (created with its folder).
 *
 * The channel stack has no 6Cxx re-issue under the secure channel (src/reader/scp03.ts).
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { addCardOptions, describeSession, openCardSession, type CardCommandOptions } from './send.js';
import { defaultJournalPath, JOURNAL_PATH_ENV, DEFAULT_JOURNAL_PATH } from './journal.js';
import { withGetResponse } from '../../reader/get-response.js';
import { toHex } from '../../util/bytes.js';
import { KeyStore } from '../../terminal/keystore.js';
import type { Journal } from '../../terminal/journal/index.js';
import {
  currencyByAlpha,
  formatAmount,
  openPurseJournal,
  purseTerminalConfig,
  readPurseTerminalConfig,
  type PurseEvent,
  type PurseTerminal,
  type PurseTerminalConfig,
  type PurseTerminalConfigInput,
  type RecoveryOutcome,
} from '../../terminal/purse/index.js';

/** The terminal `hilt pay` and `hilt load` are without --config. */
export const DEFAULT_PURSE_CLI_CONFIG: Readonly<PurseTerminalConfigInput> = Object.freeze({ terminalId: 'TERM0001', readerId: 'R-01', currency: 'JPY' });

export interface PurseTerminalOptions extends CardCommandOptions {
  currency?: string;
  config?: string;
  db?: string;
  keys?: string;
}

/** The card options and the terminal's: --currency, --config, --db, --keys, --json. */
export function addPurseTerminalOptions(cmd: Command): Command {
  return addCardOptions(cmd)
    .option('--currency <code>', "the terminal's currency, ISO 4217 (default: the configuration's, JPY)")
    .option('--config <file>', 'terminal configuration (JSON: terminalId, readerId, currency, limits, loadLimits, utcOffsetMinutes)')
    .option('--db <file>', `journal file (default $${JOURNAL_PATH_ENV}, else ${DEFAULT_JOURNAL_PATH})`)
    .option('--keys <file>', "key file with the e-money provider's master keys (default: the built-in TEST keys)")
    .option('--json', 'print one JSON document');
}

/** The configuration the options describe, its log captured in `events`. */
export function purseCliConfig(opts: PurseTerminalOptions, events: PurseEvent[]): PurseTerminalConfig {
  const input: PurseTerminalConfigInput = { ...(opts.config ? readPurseTerminalConfig(opts.config) : DEFAULT_PURSE_CLI_CONFIG) };
  if (opts.currency !== undefined) input.currency = opts.currency;
  return purseTerminalConfig({ ...input, log: (e) => events.push(e) });
}

/** What `job` gets: the terminal on the reader's channel, the reader's description, the journal's path. */
export interface OpenedPurseTerminal {
  terminal: PurseTerminal;
  readerName: string;
  /** "reader … (transport, protocol), ATR …" */
  readerLine: string;
  journalPath: string;
}

/**
 * Opens the key store, the journal and the reader for `config`, runs `job`, and closes them all
 * (the reader first) whatever happens.
 */
export async function withPurseTerminal<T>(
  opts: PurseTerminalOptions,
  ctx: CliContext,
  config: PurseTerminalConfig,
  job: (t: OpenedPurseTerminal, journal: Journal) => Promise<T>,
): Promise<T> {
  const journalPath = opts.db ?? defaultJournalPath();
  const keys = await KeyStore.open({
    sources: [opts.keys ? { kind: 'file', path: opts.keys } : { kind: 'test', providers: [config.provider] }],
    warn: (m) => ctx.io.err(`hilt: ${m}`),
  });
  try {
    const domain = keys.domain(config.provider);
    const journal = openPurseJournal(journalPath, config);
    try {
      const session = await openCardSession(opts, ctx, false);
      try {
        const channel = withGetResponse({ reissueOn6C: false })(session.channel);
        return await job({ terminal: { channel, domain, journal, config }, readerName: session.reader.name, readerLine: describeSession(session.reader), journalPath }, journal);
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

/** One line per pending row resolved by tear recovery. */
export function recoveryLine(o: RecoveryOutcome): string {
  const what = `pending ${o.type} ${formatAmount(o.amount, currencyByAlpha(o.currency))} (journal row ${o.journalId}, reader seq ${o.readerSeq})`;
  const nothing = o.type === 'load' ? 'nothing was loaded' : 'nothing was charged';
  return o.resolution === 'recovered'
    ? `recovered: ${what} was made: card counter ${o.counter}, certificate ${toHex(o.certificate ?? new Uint8Array(0)).toUpperCase()}`
    : `resolved: ${what} never reached the card: ${nothing}`;
}

/** Anomalies the flow logged, as notes on stderr. */
export function printAnomalies(events: readonly PurseEvent[], ctx: CliContext): void {
  for (const e of events) if (e.kind === 'anomaly') ctx.io.err(`hilt: note: ${e.message}`);
}

/** "key   value" lines under a title, keys padded to one width. */
export function formatRows(title: string, rows: readonly [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return [title, ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`)].join('\n');
}
