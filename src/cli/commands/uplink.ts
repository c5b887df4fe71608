/**
 * `hilt uplink <sub-command>`: the terminal's host link (src/hostlink/uplink) from the command line,
 * on the terminal's journal, to a gateway (`hilt hosts`, or a real one).
 *
 *   hilt uplink sign-on    [--enrol-code CODE]   connect, enrol the reader once / sign on, echo
 *   hilt uplink sync                              negative card file to the host's version (0300)
 *   hilt uplink forward    [--max-wait MS]        drain the journal's outbox and pending reversals
 *   hilt uplink reconcile  [--currency C] [--first N] [--last N] [--allow-unsent] [--drain-timeout MS]
 *   hilt uplink key-change                        new MAC key (0800 161), stored before use
 *
 * Common options: --journal FILE (default $HILT_TERMINAL_DB, else .hilt/terminal.db; it must exist),
 * --gateway HOST:PORT (default 127.0.0.1:8583), --terminal ID / --reader ID (default: the journal's),
 * --utc-offset MINUTES (the terminal's local time, as its purse configuration: the advices' date-times
 * must be the ones the card certified), --timeout MS (one exchange), --keys FILE, --json.
 *
 * Keys (the terminal's own, never a host master): --keys FILE with lines `mac = <hex>`, `kek = <hex>`
 * and optionally `version = <n>` (field 53 of the MAC key; '#' or ';' comments, an `[uplink]` header
 * allowed); else HILT_UPLINK_MAC_KEY, HILT_UPLINK_KEK, HILT_UPLINK_KEY_VERSION; else the published
 * TEST keys derived for the terminal id (said on stderr). After a key change the uplink state file
 * (uplink.db next to the journal) holds the new key and wins over these. Key bytes are never printed.
 *
 * Exit codes: 0 done; 1 the host refused or could not be reached, records still waiting after
 * `forward`, or a reconciliation not in balance (the report is printed); 2 a usage mistake. Errors
 * are one `hilt: ...` line.
 */
import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import { parseEndpoint, parseIntOption, type Endpoint } from '../options.js';
import { defaultJournalPath, JOURNAL_PATH_ENV, DEFAULT_JOURNAL_PATH } from './journal.js';
import { DEFAULT_GATEWAY_PORT } from '../../hosts/index.js';
import { Journal } from '../../terminal/journal/index.js';
import { Uplink, DEFAULT_UPLINK_REQUEST_TIMEOUT_MS, DEFAULT_DRAIN_TIMEOUT_MS, type ReconciliationResult, type UplinkConfigInput } from '../../hostlink/uplink/index.js';
import { terminalHostKeys, UPLINK_KEK_ENV, UPLINK_MAC_KEY_ENV } from '../uplink-keys.js';
import { BadInputError } from '../../util/errors.js';
import { zeroize } from '../../util/bytes.js';

export { UPLINK_MAC_KEY_ENV, UPLINK_KEK_ENV, UPLINK_KEY_VERSION_ENV } from '../uplink-keys.js';
/** Default bound of `hilt uplink forward`. */
export const DEFAULT_FORWARD_MAX_WAIT_MS = 30_000;

interface CommonOptions {
  journal?: string;
  gateway: Endpoint;
  terminal?: string;
  reader?: string;
  utcOffset: number;
  timeout: number;
  keys?: string;
  json?: boolean;
}


function addCommon(cmd: Command): Command {
  return cmd
    .option('--journal <file>', `the terminal's journal (default $${JOURNAL_PATH_ENV}, else ${DEFAULT_JOURNAL_PATH})`)
    .addOption(new Option('--gateway <host:port>', 'the gateway').argParser(parseEndpoint('--gateway', '127.0.0.1')).default({ host: '127.0.0.1', port: DEFAULT_GATEWAY_PORT }, `127.0.0.1:${DEFAULT_GATEWAY_PORT}`))
    .option('--terminal <id>', "terminal id, field 41 (default: the journal's)")
    .option('--reader <id>', "reader id, field 42 (default: the journal's)")
    .option('--utc-offset <minutes>', "the terminal's local time, minutes from UTC (as its purse configuration)", parseIntOption('--utc-offset', -840, 840), 0)
    .option('--timeout <ms>', 'bound of one exchange with the gateway', parseIntOption('--timeout', 1, 600_000), DEFAULT_UPLINK_REQUEST_TIMEOUT_MS)
    .option('--keys <file>', `the terminal's keys: lines mac = <hex>, kek = <hex>, version = <n> (else $${UPLINK_MAC_KEY_ENV}, $${UPLINK_KEK_ENV}, else TEST keys)`)
    .option('--json', 'print one JSON document');
}

/** Opens the journal and the uplink, runs `work`, closes both (and zeroes the keys). */
async function withUplink<T>(opts: CommonOptions, ctx: CliContext, enrolmentCode: string | undefined, work: (u: Uplink, journal: Journal) => Promise<T>): Promise<T> {
  const path = opts.journal ?? defaultJournalPath();
  if (!existsSync(path)) throw new BadInputError(`no terminal journal at ${path} (give --journal <file> or set ${JOURNAL_PATH_ENV})`);
  const journal = Journal.open(path, { dayOffsetMinutes: opts.utcOffset });
  try {
    const identity = journal.identity;
    const terminalId = opts.terminal ?? identity?.terminalId;
    const readerId = opts.reader ?? identity?.readerId;
    if (terminalId === undefined || readerId === undefined) throw new BadInputError(`journal ${path} has no terminal yet: give --terminal and --reader`);
    const keys = await terminalHostKeys(opts.keys, terminalId, ctx);
    let uplink: Uplink;
    try {
      const config: UplinkConfigInput = { terminalId, readerId, host: opts.gateway.host, port: opts.gateway.port, macKey: keys.macKey, requestTimeoutMs: opts.timeout };
      if (keys.kek !== undefined) config.kek = keys.kek;
      if (keys.keyVersion !== undefined) config.keyVersion = keys.keyVersion;
      uplink = Uplink.open({ config, journal, enrolmentCode });
    } finally {
      zeroize(keys.macKey, ...(keys.kek === undefined ? [] : [keys.kek]));
    }
    try {
      return await work(uplink, journal);
    } finally {
      await uplink.close();
    }
  } finally {
    journal.close();
  }
}

function print(ctx: CliContext, opts: CommonOptions, value: unknown, text: string): void {
  ctx.io.out(opts.json ? toJson(value) : text);
}

const tally = (t: { count: number; amount: number }): string => `${t.count} / ${t.amount}`;

/** The reconciliation report for people. */
export function formatReconciliation(r: ReconciliationResult): string {
  const lines = [`reader sequences ${r.firstSequence}..${r.lastSequence}: ${r.status}`];
  if (r.status === 'unsent') lines.push(`not reconciled: ${r.unsent} journal record(s) and ${r.pendingReversals} reversal(s) still unsent after the drain`);
  for (const c of r.currencies) {
    lines.push(`${c.currencyName}: ${c.inBalance ? 'in balance (00)' : `OUT OF BALANCE (${c.responseCode})`}`);
    const rows: [string, string, string, string][] = [
      ['loads', tally(c.terminal.loads), tally(c.host.loads), tally(c.differences.loads)],
      ['load reversals', tally(c.terminal.loadReversals), tally(c.host.loadReversals), tally(c.differences.loadReversals)],
      ['purchases', tally(c.terminal.purchases), tally(c.host.purchases), tally(c.differences.purchases)],
      ['purchase reversals', tally(c.terminal.purchaseReversals), tally(c.host.purchaseReversals), tally(c.differences.purchaseReversals)],
      ['authorizations', String(c.terminal.authorizations), String(c.host.authorizations), String(c.differences.authorizations)],
    ];
    const w = [18, ...[1, 2, 3].map((i) => Math.max(...rows.map((x) => x[i].length), 8))];
    lines.push(`  ${'(count / amount)'.padEnd(w[0])}  ${'terminal'.padEnd(w[1])}  ${'host'.padEnd(w[2])}  host − terminal`);
    for (const x of rows) lines.push(`  ${x[0].padEnd(w[0])}  ${x[1].padEnd(w[1])}  ${x[2].padEnd(w[2])}  ${x[3]}`);
  }
  if (r.unansweredAuthorizations.length > 0) lines.push(`note: load authorizations without an answer (may be missing on the host): reader sequences ${r.unansweredAuthorizations.join(', ')}`);
  return lines.join('\n');
}

export const registerUplink: RegisterCommand = (program, ctx, setExit) => {
  const uplink = program.command('uplink').description("the terminal's host link: sign-on, negative list, store-and-forward, reconciliation, key change");

  addCommon(uplink.command('sign-on').description('connect and sign the reader on (enrol it once with an operator-issued code), then echo'))
    .option('--enrol-code <code>', 'the one-time enrolment code the operator issued for this reader')
    .action(async (opts: CommonOptions & { enrolCode?: string }) => {
      await withUplink(opts, ctx, opts.enrolCode, async (u) => {
        await u.connect();
        await u.echo();
        const report = { terminalId: u.config.terminalId, readerId: u.config.readerId, gateway: `${u.config.host}:${u.config.port}`, signedOn: true, keyVersion: u.keys.version };
        print(ctx, opts, report, `signed on: terminal ${report.terminalId}, reader ${report.readerId} at ${report.gateway} (MAC key version ${report.keyVersion}); echo answered`);
      });
    });

  addCommon(uplink.command('sync').description('bring the negative card file up to the host’s version (0300/0310)')).action(async (opts: CommonOptions) => {
    await withUplink(opts, ctx, undefined, async (u) => {
      const r = await u.syncNegativeList();
      print(ctx, opts, r, `negative card file: version ${r.fromVersion} → ${r.toVersion} (${r.deltas} delta(s), ${r.snapshots} snapshot(s), ${r.added} added, ${r.removed} removed)`);
    });
  });

  addCommon(uplink.command('forward').description('send the journal’s outbox and the pending reversals to the host until both are empty'))
    .option('--max-wait <ms>', `give up after this long (default ${DEFAULT_FORWARD_MAX_WAIT_MS})`, parseIntOption('--max-wait', 1, 86_400_000), DEFAULT_FORWARD_MAX_WAIT_MS)
    .action(async (opts: CommonOptions & { maxWait: number }) => {
      await withUplink(opts, ctx, undefined, async (u, journal) => {
        const stop = new AbortController();
        const timer = setTimeout(() => stop.abort(), opts.maxWait);
        const onAbort = (): void => stop.abort();
        ctx.signal?.addEventListener('abort', onAbort, { once: true });
        let stats;
        try {
          stats = await u.forward({ untilEmpty: true, signal: stop.signal });
        } finally {
          clearTimeout(timer);
          ctx.signal?.removeEventListener('abort', onAbort);
        }
        const waiting = journal.outboundCount();
        const pendingReversals = u.reversals({ pendingOnly: true }).length;
        const report = { ...stats, waiting, pendingReversals };
        print(
          ctx,
          opts,
          report,
          `forwarded: ${stats.delivered} delivered, ${stats.duplicates} already on the host, ${stats.refused} refused (${stats.anomalies} of them anomaly reports), ${stats.deferred} deferred; ` +
            `reversals: ${stats.reversals.reversed} done, ${stats.reversals.refused} refused; still waiting: ${waiting} record(s), ${pendingReversals} reversal(s)`,
        );
        if (waiting > 0 || pendingReversals > 0) setExit(1);
      });
    });

  addCommon(uplink.command('reconcile').description('compare the terminal’s totals with the host’s (0500/0510), after draining the outbox'))
    .option('--currency <code>', 'one currency (ISO 4217); default every currency used')
    .option('--first <n>', 'first reader sequence (default 1)', parseIntOption('--first', 1, 0xffffffff))
    .option('--last <n>', "last reader sequence (default the journal's last)", parseIntOption('--last', 1, 0xffffffff))
    .option('--drain-timeout <ms>', `bound of the drain first (default ${DEFAULT_DRAIN_TIMEOUT_MS})`, parseIntOption('--drain-timeout', 1, 3_600_000))
    .option('--no-drain', 'do not forward the outbox first')
    .option('--allow-unsent', 'send the totals even with records still unsent')
    .action(async (opts: CommonOptions & { currency?: string; first?: number; last?: number; drainTimeout?: number; drain: boolean; allowUnsent?: boolean }) => {
      await withUplink(opts, ctx, undefined, async (u) => {
        const r = await u.reconcile({
          currency: opts.currency,
          firstSequence: opts.first,
          lastSequence: opts.last,
          drain: opts.drain,
          drainTimeoutMs: opts.drainTimeout,
          allowUnsent: opts.allowUnsent === true,
        });
        print(ctx, opts, r, formatReconciliation(r));
        if (!r.inBalance) setExit(1);
      });
    });

  addCommon(uplink.command('key-change').description('get a new MAC key from the host (0800 161), unwrapped with the KEK, stored before use')).action(async (opts: CommonOptions) => {
    await withUplink(opts, ctx, undefined, async (u) => {
      const r = await u.changeKey();
      print(ctx, opts, r, `MAC key changed: version ${r.fromVersion} → ${r.toVersion} (KCV ${r.kcv}), stored in ${u.store.path}${r.confirmed ? '; echo under the new key answered' : ''}`);
    });
  });
};
