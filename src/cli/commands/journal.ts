/**
 * `hilt journal [--db <file>] [--status <s,...>] [--card <hex>] [--type <t>] [--since <date>] [--until <date>]
 *               [--limit <n>] [--json]`: the terminal's journal, newest first.
 *
 * The journal is opened read-only (never created, never migrated), so it is safe to run while the
 * terminal is writing. Pending rows (a debit whose answer was lost, waiting for tear recovery) are
 * marked with a leading `!` and the word PENDING, and, on a terminal, in colour. Below the table: how
 * many rows matched, how many are pending in the whole journal, how many records wait in the outbox,
 * and the negative list version. Dates are UTC unless they carry an offset.
 *
 * The file: --db, else $HILT_TERMINAL_DB, else `.hilt/terminal.db` in the current folder.
 */
import { existsSync } from 'node:fs';
import type { RegisterCommand } from './types.js';
import { parseHexOption, parseIntOption } from '../options.js';
import { processOutput, table, toJson, type Output } from '../output.js';
import { BadInputError } from '../../util/errors.js';
import { toHex } from '../../util/bytes.js';
import {
  Journal,
  TRANSACTION_STATUSES,
  TRANSACTION_TYPES,
  type JournalFilter,
  type JournalRow,
  type JournalSummary,
  type TransactionStatus,
  type TransactionType,
} from '../../terminal/journal/index.js';

export const DEFAULT_JOURNAL_PATH = '.hilt/terminal.db';
export const JOURNAL_PATH_ENV = 'HILT_TERMINAL_DB';
export const DEFAULT_JOURNAL_LIMIT = 50;
const MAX_JOURNAL_LIMIT = 100_000;

/** ANSI: bold yellow for pending rows; only when printing to a terminal and NO_COLOR is unset. */
const PENDING_COLOUR = '\x1b[1;33m';
const COLOUR_RESET = '\x1b[0m';

interface JournalOptions {
  db?: string;
  status?: TransactionStatus[];
  card?: Uint8Array;
  type?: TransactionType;
  since?: number;
  until?: number;
  limit: number;
  json?: boolean;
}

/** What `--json` prints. */
export interface JournalReport {
  db: string;
  filter: { status: TransactionStatus[] | null; card: string | null; type: TransactionType | null; since: string | null; until: string | null; limit: number };
  rows: JournalRow[];
  summary: JournalSummary & { rowsShown: number };
}

function parseStatuses(v: string): TransactionStatus[] {
  const parts = v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new BadInputError(`--status: expected one or more of ${TRANSACTION_STATUSES.join(', ')}`);
  for (const p of parts) {
    if (!(TRANSACTION_STATUSES as readonly string[]).includes(p)) {
      throw new BadInputError(`--status: expected one or more of ${TRANSACTION_STATUSES.join(', ')} (comma-separated), got "${p}"`);
    }
  }
  return [...new Set(parts)] as TransactionStatus[];
}

function parseType(v: string): TransactionType {
  const t = v.trim().toLowerCase();
  if (!(TRANSACTION_TYPES as readonly string[]).includes(t)) throw new BadInputError(`--type: expected one of ${TRANSACTION_TYPES.join(', ')}, got "${v}"`);
  return t as TransactionType;
}

const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** An ISO 8601 date or date-time; without an offset it is UTC. */
export function parseDateOption(name: string): (v: string) => number {
  return (v) => {
    const text = v.trim();
    const m = DATE_PATTERN.exec(text);
    let ms = NaN;
    if (m) {
      const iso = text.replace(' ', 'T');
      ms = Date.parse(iso.length > 10 && m[1] === undefined ? `${iso}Z` : iso);
      // Date.parse rolls 2024-02-30 over to March: refuse dates that do not exist.
      if (!Number.isNaN(ms) && text.length >= 10 && m[1] === undefined && new Date(ms).toISOString().slice(0, 10) !== text.slice(0, 10)) ms = NaN;
    }
    if (Number.isNaN(ms)) throw new BadInputError(`${name}: expected an ISO date such as 2024-05-01 or 2024-05-01T09:30:00+09:00, got "${v}"`);
    return ms;
  };
}

function shortTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

function counterCell(r: JournalRow): string {
  return `${r.counterBefore}→${r.counterAfter === null ? '?' : r.counterAfter}`;
}

function noteCell(r: JournalRow): string {
  if (r.certificate) return `cert ${r.certificate.length} bytes`;
  return r.error ?? '';
}

/** The human form: a table of rows (pending marked), then the footer. */
export function formatJournal(rows: readonly JournalRow[], summary: JournalSummary, colour: boolean): string {
  const footer = [
    `rows: ${rows.length} shown of ${summary.transactions} in the journal`,
    `pending: ${summary.byStatus.pending}${summary.byStatus.pending > 0 ? ' (present those cards again for tear recovery)' : ''}`,
    `outbox waiting: ${summary.outboxWaiting}`,
    `negative list: version ${summary.negativeListVersion}`,
  ].join(' | ');
  if (rows.length === 0) return `no journal rows match\n${footer}`;
  const body = table(
    ['!', 'id', 'seq', 'time (UTC)', 'status', 'type', 'provider', 'card', 'counter', 'amount', 'cur', 'balance', 'note'],
    rows.map((r) => [
      r.status === 'pending' ? '!' : '',
      String(r.id),
      String(r.readerSeq),
      shortTime(r.createdAt),
      r.status === 'pending' ? 'PENDING' : r.status,
      r.type,
      r.provider,
      r.cardSerial,
      counterCell(r),
      String(r.amount),
      r.currency,
      r.balanceAfter === null ? '' : String(r.balanceAfter),
      noteCell(r),
    ]),
  );
  const lines = body.split('\n');
  if (colour) {
    // Two header lines (names, rule), then one line per row in order.
    rows.forEach((r, i) => {
      if (r.status === 'pending') lines[i + 2] = `${PENDING_COLOUR}${lines[i + 2]}${COLOUR_RESET}`;
    });
  }
  return `${lines.join('\n')}\n${footer}`;
}

/** Colour only for a real terminal: a capturing Output, a pipe or NO_COLOR get plain text. */
function wantsColour(io: Output): boolean {
  return io === processOutput && process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
}

export function defaultJournalPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[JOURNAL_PATH_ENV];
  return fromEnv !== undefined && fromEnv.trim() !== '' ? fromEnv : DEFAULT_JOURNAL_PATH;
}

export const registerJournal: RegisterCommand = (program, ctx) => {
  program
    .command('journal')
    .description("show the terminal's transaction journal, pending rows (unresolved tears) marked")
    .option('--db <file>', `journal file (default $${JOURNAL_PATH_ENV}, else ${DEFAULT_JOURNAL_PATH})`)
    .option('--status <status,...>', `only rows in these states: ${TRANSACTION_STATUSES.join(', ')}`, parseStatuses)
    .option('--card <serial>', 'only rows of this card (serial in hex)', parseHexOption('--card', 1, 32))
    .option('--type <type>', `only rows of this type: ${TRANSACTION_TYPES.join(', ')}`, parseType)
    .option('--since <date>', 'only rows created at or after this ISO date/time (UTC unless an offset is given)', parseDateOption('--since'))
    .option('--until <date>', 'only rows created before this ISO date/time', parseDateOption('--until'))
    .option('--limit <n>', `at most n rows, newest first (default ${DEFAULT_JOURNAL_LIMIT})`, parseIntOption('--limit', 1, MAX_JOURNAL_LIMIT), DEFAULT_JOURNAL_LIMIT)
    .option('--json', 'print one JSON document')
    .action((opts: JournalOptions) => {
      const path = opts.db ?? defaultJournalPath();
      if (!existsSync(path)) throw new BadInputError(`no terminal journal at ${path} (give --db <file> or set ${JOURNAL_PATH_ENV})`);
      const journal = Journal.open(path, { readonly: true });
      try {
        const filter: JournalFilter = { limit: opts.limit, order: 'desc' };
        if (opts.status) filter.status = opts.status;
        if (opts.card) filter.cardSerial = opts.card;
        if (opts.type) filter.type = opts.type;
        if (opts.since !== undefined) filter.from = opts.since;
        if (opts.until !== undefined) filter.to = opts.until;
        const rows = journal.query(filter);
        const summary = journal.summary();
        if (opts.json) {
          const report: JournalReport = {
            db: path,
            filter: {
              status: opts.status ?? null,
              card: opts.card ? toHex(opts.card).toUpperCase() : null,
              type: opts.type ?? null,
              since: opts.since === undefined ? null : new Date(opts.since).toISOString(),
              until: opts.until === undefined ? null : new Date(opts.until).toISOString(),
              limit: opts.limit,
            },
            rows,
            summary: { ...summary, rowsShown: rows.length },
          };
          ctx.io.out(toJson(report));
        } else {
          ctx.io.out(formatJournal(rows, summary, wantsColour(ctx.io)));
        }
      } finally {
        journal.close();
      }
    });
};
