/**
 * `hilt load <amount> [--gateway host:port] [--enrol-code code] [--timeout ms] [--no-forward]
 *  [--currency JPY] [--config file] [--db file] [--keys file] [--reader R] [--trace] [--json]`:
 * one e-money load (value onto the purse in a reader), authorized by the issuer through the gateway,
 * with a receipt.
 *
 * <amount> is written in the currency's units, as for `hilt pay`. The flow is loadPurse
 * (src/terminal/purse/load.ts): tear recovery of the card's pending rows, terminal policy, the journal
 * row, the 0200 to the issuer, LOAD with the issuer's cryptogram, the journal's completion. Then the
 * load's advice (0220, the card's certificate) is forwarded to the issuer, waiting at most
 * --forward-wait ms (--no-forward leaves it queued in the journal's outbox for `hilt uplink` or the
 * next load). A decline by the issuer is one line `hilt: declined by the issuer: 61 …` and exit code 1.
 *
 * The terminal, its keys (--keys: the e-money provider's SCP03 keys) and its journal: as `hilt pay`
 * (purse-terminal.ts). The host link, as `hilt uplink` takes it: the gateway's address (default
 * 127.0.0.1:8583, where `hilt hosts` listens), --timeout, the operator's one-time code for the
 * reader's first sign-on (--enrol-code), and the terminal's host MAC key from $HILT_UPLINK_MAC_KEY
 * (version $HILT_UPLINK_KEY_VERSION, or --key-version), else the published TEST key derived for the
 * terminal id (said on stderr). Key bytes never go on the command line and are never printed; after
 * a key change (`hilt uplink key-change`) the uplink's state file holds the key and wins. The state
 * file (reader key pair, authorizations, reversals) is uplink.db next to the journal.
 */
import { Option } from 'commander';
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { toJson } from '../output.js';
import { parseEndpoint, parseIntOption, type Endpoint } from '../options.js';
import { toHex, zeroize } from '../../util/bytes.js';
import { Uplink } from '../../hostlink/uplink/index.js';
import { DEFAULT_UPLINK_REQUEST_TIMEOUT_MS } from '../../hostlink/uplink/config.js';
import { terminalHostKeys, UPLINK_KEY_VERSION_ENV, UPLINK_MAC_KEY_ENV } from '../uplink-keys.js';
import { TEST_INITIAL_KEY_VERSION } from '../../hostlink/test-keys.js';
import { currencyByAlpha, formatAmount, loadPurse, parseAmount, type LoadReceipt, type PurseEvent, type RecoveryOutcome } from '../../terminal/purse/index.js';
import { addPurseTerminalOptions, formatRows, printAnomalies, purseCliConfig, recoveryLine, withPurseTerminal, type PurseTerminalOptions } from './purse-terminal.js';

/** Where `hilt hosts` listens by default. */
export const DEFAULT_LOAD_GATEWAY = '127.0.0.1:8583';
/** How long `hilt load` tries to deliver the load's advice before leaving it queued. */
export const DEFAULT_FORWARD_WAIT_MS = 5_000;

interface LoadOptions extends PurseTerminalOptions {
  gateway: Endpoint;
  keyVersion?: number;
  uplinkKeys?: string;
  enrolCode?: string;
  timeout: number;
  forward: boolean;
  sync: boolean;
  forwardWait: number;
}

export interface LoadReport {
  reader: string;
  journal: string;
  gateway: string;
  recovered: RecoveryOutcome[];
  receipt: LoadReceipt;
  /** The load's advice: delivered to the issuer now, or still queued in the outbox. */
  advice: 'delivered' | 'queued';
}

/** The receipt for people. */
export function formatLoadReceipt(r: LoadReceipt, advice: LoadReport['advice']): string {
  return formatRows('=== e-money load: RECEIPT ===', [
    ['terminal', `${r.terminalId} (reader ${r.readerId})`],
    ['reader seq', String(r.readerSeq)],
    ['card', r.cardSerial],
    ['card counter', String(r.counter)],
    ['amount loaded', r.amountText],
    ['balance before', formatAmount(r.balanceBefore, currencyByAlpha(r.currency))],
    ['balance after', r.balanceText],
    ['issuer reference', r.issuerReference],
    ['authorization', r.authorizationId],
    ['certificate', toHex(r.certificate).toUpperCase()],
    ['time', r.localTime],
    ['journal row', `${r.journalId} (complete, ${advice === 'delivered' ? 'advice delivered to the issuer' : 'advice queued for the issuer'})`],
  ]);
}

export const registerLoad: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('load')
    .description('one e-money load onto the purse in a reader, authorized by the issuer through the gateway: tear recovery first, terminal policy, a receipt')
    .argument('<amount>', "amount in the currency's units: 5000 (JPY), 50.00 (EUR)");
  addPurseTerminalOptions(cmd)
    .addOption(new Option('--gateway <host:port>', 'the gateway (where hilt hosts listens)').argParser(parseEndpoint('--gateway', '127.0.0.1')).default(parseEndpoint('--gateway', '127.0.0.1')(DEFAULT_LOAD_GATEWAY), DEFAULT_LOAD_GATEWAY))
    .option('--key-version <n>', `the host MAC key's version, field 53 (default: the key file's or $${UPLINK_KEY_VERSION_ENV}, else ${TEST_INITIAL_KEY_VERSION})`, parseIntOption('--key-version', 1, 255))
    .option('--uplink-keys <file>', `the terminal's host keys (as hilt uplink --keys: mac = <hex>, version = <n>); else $${UPLINK_MAC_KEY_ENV}, else TEST keys`)
    .option('--enrol-code <code>', "the operator's one-time code, for the reader's first sign-on")
    .option('--timeout <ms>', 'bound of one exchange with the gateway', parseIntOption('--timeout', 1, 600_000), DEFAULT_UPLINK_REQUEST_TIMEOUT_MS)
    .option('--no-sync', 'skip bringing the negative card file up to date (0300) before the load')
    .option('--no-forward', "leave the load's advice queued instead of delivering it now")
    .option('--forward-wait <ms>', "how long to try delivering the load's advice", parseIntOption('--forward-wait', 1, 600_000), DEFAULT_FORWARD_WAIT_MS)
    .action(async (amountText: string, opts: LoadOptions) => {
      await runLoad(amountText, opts, ctx);
    });
};

async function runLoad(amountText: string, opts: LoadOptions, ctx: CliContext): Promise<void> {
  const events: PurseEvent[] = [];
  const config = purseCliConfig(opts, events);
  const amount = parseAmount(amountText, config.currency);
  const gateway = `${opts.gateway.host}:${opts.gateway.port}`;
  await withPurseTerminal(opts, ctx, config, async (t, journal) => {
    const keys = await terminalHostKeys(opts.uplinkKeys, config.terminalId, ctx, { option: '--uplink-keys', testKeyVersion: opts.keyVersion });
    const macKey = keys.macKey;
    const keyVersion = opts.keyVersion ?? keys.keyVersion;
    if (keys.kek !== undefined) zeroize(keys.kek); // a load never changes keys
    let uplink: Uplink;
    try {
      uplink = Uplink.open({
        config: {
          terminalId: config.terminalId,
          readerId: config.readerId,
          host: opts.gateway.host,
          port: opts.gateway.port,
          macKey,
          ...(keyVersion === undefined ? {} : { keyVersion }),
          requestTimeoutMs: opts.timeout,
        },
        journal,
        enrolmentCode: opts.enrolCode,
      });
    } finally {
      zeroize(macKey);
    }
    try {
      // An online load uses the issuer's newest negative card file: a card blocked since the last
      // update is refused here, before any 0200. No gateway: the error, before a row is begun.
      if (opts.sync) await uplink.syncNegativeList();
      const result = await loadPurse(t.terminal, uplink, amount);
      printAnomalies(events, ctx);
      let advice: LoadReport['advice'] = 'queued';
      if (opts.forward) {
        await uplink.forward({ untilEmpty: true, signal: AbortSignal.timeout(opts.forwardWait) }).catch((e: unknown) => {
          ctx.io.err(`hilt: note: the load's advice stays queued: ${e instanceof Error ? e.message : String(e)}`);
        });
        const queued = journal.outbox({ waitingOnly: true, limit: 100_000 }).some((x) => x.transactionId === result.receipt.journalId);
        advice = queued ? 'queued' : 'delivered';
        if (queued) ctx.io.err(`hilt: note: the load's advice (journal row ${result.receipt.journalId}) is queued: the issuer did not take it within ${opts.forwardWait} ms`);
      }
      if (opts.json) {
        const report: LoadReport = { reader: t.readerName, journal: t.journalPath, gateway, recovered: result.recovered, receipt: result.receipt, advice };
        ctx.io.out(toJson(report));
      } else {
        ctx.io.out(t.readerLine);
        for (const o of result.recovered) ctx.io.out(recoveryLine(o));
        ctx.io.out(formatLoadReceipt(result.receipt, advice));
      }
    } finally {
      await uplink.close();
    }
  });
}
