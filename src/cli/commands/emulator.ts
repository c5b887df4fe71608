/**
 * `hilt emulator`: runs emulated cards that plug into a vpcd reader (pcscd's vpcd driver, hilt's own
 * vpcd server, or anything else that speaks the protocol) and stays until interrupted.
 * Control while running: lines on stdin (`remove [n]`, `insert [n]`, `status`, `quit`), or the
 * signals SIGUSR1 (remove every card) and SIGUSR2 (insert every card).
 *
 * `--purse` makes every card an issued e-money purse, through the card bureau (emulator/bureau.ts):
 * the 'emoney' security domain with the TEST master keys diversified for the card's serial, the
 * purse personalized with the TEST purse issuer master key (`--currency`, `--max-balance`,
 * `--max-per-transaction`), and `--balance` loaded with an issuer cryptogram. Each card has its own
 * serial and image (`--cards`, `--image`); a card whose image holds an issued purse is kept as it
 * is (not issued again, not loaded again). All of these keys are public: demo and test cards only.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { parseEndpoint, parseHexOption, parseIntOption, type Endpoint } from '../options.js';
import { BadInputError } from '../../util/errors.js';
import { toHex, toSpacedHex } from '../../util/bytes.js';
// The CLI command that starts the emulator is the one place src/ may import emulator/ (DESIGN.md).
import { makeCard, type AppletChoice, type EmulatedCard } from '../../../emulator/make-card.js';
import { APPLET_NAMES } from '../../../emulator/catalog.js';
import { parseJcardsimConfig } from '../../../emulator/config/jcardsim.js';
import { VpcdCardClient, VPCD_DEFAULT_PORT } from '../../../emulator/vpcd/client.js';
import { issuePurseCard, type BureauCard } from '../../../emulator/bureau.js';
import { openScp03 } from '../../reader/scp03.js';
import { testStaticKeys, TEST_KEYS_LABEL } from '../../crypto/diversify.js';
import { PURSE_U32_MAX, testPurseMasterKey } from '../../crypto/purse-certificate.js';
import { zeroize } from '../../util/bytes.js';
import { currencyByAlpha, formatAmount } from '../../terminal/purse/currency.js';
import { warningsTo } from '../../util/logger.js';
import { untilStopped } from '../until-stopped.js';

interface EmulatorOptions {
  vpcd?: Endpoint;
  cards: number;
  serial: Uint8Array;
  image?: string;
  config?: string;
  applets: string;
  atr?: Uint8Array;
  channels: number;
  removed: boolean;
  testKeys: boolean;
  json: boolean;
  purse: boolean;
  balance?: number;
  currency: string;
  maxBalance: number;
  maxPerTransaction: number;
}

/** Purse card defaults of `--purse` (minor units of the currency). */
export const PURSE_CARD_DEFAULTS = Object.freeze({ currency: 'JPY', maxBalance: 100_000, maxPerTransaction: 50_000 });

export const DEFAULT_SERIAL = '48494C5400000001';

/** Serial of card i: the base serial plus i, as a big-endian number of the same width. */
export function nthSerial(base: Uint8Array, i: number): Uint8Array {
  const out = base.slice();
  let carry = i;
  for (let j = out.length - 1; j >= 0 && carry > 0; j--) {
    const v = out[j] + carry;
    out[j] = v & 0xff;
    carry = Math.floor(v / 256);
  }
  return out;
}

/** Image path of card i: the path itself for one card, `name-<i>.ext` for several. */
export function nthImage(path: string | undefined, i: number, count: number): string | undefined {
  if (!path || count === 1) return path;
  const m = /^(.*?)(\.[^./]*)?$/.exec(path)!;
  return `${m[1]}-${i}${m[2] ?? ''}`;
}

export const registerEmulator: RegisterCommand = (program, ctx) => {
  program
    .command('emulator')
    .description('run emulated cards in vpcd readers (pcscd + vsmartcard-vpcd, or `hilt` vpcd server)')
    .option('--vpcd <host:port>', `vpcd server to plug into (default 127.0.0.1:${VPCD_DEFAULT_PORT})`, parseEndpoint('--vpcd', '127.0.0.1'))
    .option('--cards <n>', 'number of cards, on consecutive ports, serials and image files', parseIntOption('--cards', 1, 16), 1)
    .option('--serial <hex>', 'serial of the (first) card', parseHexOption('--serial', 1, 32), undefined)
    .option('--image <file>', 'card image file (tear-safe; created if missing); default: memory only')
    .option('--config <file>', 'jCardSim properties file (ATR, applets, vsmartcard host/port)')
    .option('--applets <names>', `applets to install, comma-separated (known: ${APPLET_NAMES.join(', ')})`, 'diagnostic')
    .option('--atr <hex>', 'ATR to answer with', parseHexOption('--atr', 2, 33))
    .option('--channels <n>', 'logical channels the card offers', parseIntOption('--channels', 1, 20), 4)
    .option('--removed', 'start with the card(s) out of the reader', false)
    .option('--no-test-keys', 'leave out the issuer security domain with the GlobalPlatform TEST KEYS (40..4F, kvn 30)')
    .option('--json', 'print events as JSON lines', false)
    .option('--purse', 'issue each card as an e-money purse (card bureau, TEST keys) unless its image holds one', false)
    .option('--balance <minor>', '--purse: initial balance in minor units, loaded with a TEST issuer cryptogram', parseIntOption('--balance', 0, PURSE_U32_MAX))
    .option('--currency <code>', "--purse: the purse's currency, ISO 4217", (v: string) => currencyByAlpha(v).alpha, PURSE_CARD_DEFAULTS.currency)
    .option('--max-balance <minor>', '--purse: maximum balance, minor units', parseIntOption('--max-balance', 1, PURSE_U32_MAX), PURSE_CARD_DEFAULTS.maxBalance)
    .option('--max-per-transaction <minor>', "--purse: the card's maximum debit, minor units", parseIntOption('--max-per-transaction', 1, PURSE_U32_MAX), PURSE_CARD_DEFAULTS.maxPerTransaction)
    .action(async (raw: Omit<EmulatorOptions, 'serial'> & { serial?: Uint8Array }) => {
      await runEmulator({ ...raw, serial: raw.serial ?? parseHexOption('--serial')(DEFAULT_SERIAL) }, ctx);
    });
};

async function runEmulator(opts: EmulatorOptions, ctx: CliContext): Promise<void> {
  let applets: AppletChoice[] = opts.applets
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => ({ name }));
  let atr = opts.atr;
  let endpoint: Endpoint = opts.vpcd ?? { host: '127.0.0.1', port: VPCD_DEFAULT_PORT };
  if (opts.config) {
    let text: string;
    try {
      text = readFileSync(opts.config, 'utf8');
    } catch (e) {
      throw new BadInputError(`--config: cannot read ${opts.config}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const cfg = parseJcardsimConfig(text, { known: APPLET_NAMES });
    if (cfg.applets.length > 0) applets = cfg.applets.map((a) => ({ name: a.applet, aid: a.aid }));
    atr = opts.atr ?? cfg.atr;
    if (!opts.vpcd) endpoint = { host: cfg.vsmartcard.host ?? endpoint.host, port: cfg.vsmartcard.port ?? endpoint.port };
    for (const k of cfg.ignored) ctx.io.err(`hilt emulator: ignoring ${k} (not used by hilt)`);
  }
  if (applets.length === 0) throw new BadInputError('no applets to install (--applets is empty)');
  if (endpoint.port + opts.cards - 1 > 65535) throw new BadInputError(`--cards ${opts.cards} from port ${endpoint.port} runs past 65535`);

  const say = (event: string, fields: Record<string, unknown>, text: string) =>
    ctx.io.out(opts.json ? JSON.stringify({ time: new Date().toISOString(), event, ...fields }) : text);

  if (!opts.purse && opts.balance !== undefined) throw new BadInputError('--balance needs --purse');
  if (opts.purse) {
    if (opts.maxPerTransaction > opts.maxBalance) throw new BadInputError(`--max-per-transaction ${opts.maxPerTransaction} is above --max-balance ${opts.maxBalance}`);
    if ((opts.balance ?? 0) > opts.maxBalance) throw new BadInputError(`--balance ${opts.balance} is above --max-balance ${opts.maxBalance}`);
  }

  const purseCurrency = currencyByAlpha(opts.currency);
  const built: { serial: Uint8Array; card: EmulatedCard; purse: BureauCard | null }[] = [];
  for (let i = 0; i < opts.cards; i++) {
    const serial = nthSerial(opts.serial, i);
    const image = nthImage(opts.image, i, opts.cards);
    if (!opts.purse) {
      built.push({ serial, card: makeCard({ serial, applets, image, atr, maxChannels: opts.channels, testKeys: opts.testKeys }), purse: null });
      continue;
    }
    const masterKeys = testStaticKeys('emoney');
    const issuerMaster = testPurseMasterKey();
    try {
      const purse = await issuePurseCard(
        {
          serial,
          provider: 'emoney',
          masterKeys,
          issuerMaster,
          currency: purseCurrency.numeric,
          maxBalance: opts.maxBalance,
          maxPerTransaction: opts.maxPerTransaction,
          initialLoad: opts.balance ?? 0,
          image,
          atr,
          maxChannels: opts.channels,
          testKeys: opts.testKeys,
          applets,
        },
        openScp03,
      );
      built.push({ serial, card: purse, purse });
    } finally {
      zeroize(masterKeys.enc, masterKeys.mac, masterKeys.dek, issuerMaster);
    }
  }
  if (opts.purse) ctx.io.err(`hilt emulator: purse cards use the e-money ${TEST_KEYS_LABEL}, and the TEST purse issuer master key`);

  const cards = built.map(({ serial, card, purse }, i) => {
    const port = endpoint.port + i;
    const client = new VpcdCardClient(card.os, {
      host: endpoint.host,
      port,
      logger: warningsTo((line) => ctx.io.err(line), `hilt emulator: card ${i}`),
    });
    client.on('connected', () => say('inserted', { card: i, port }, `card ${i} (serial ${toHex(serial)}) in reader ${endpoint.host}:${port}`));
    client.on('disconnected', (reason) => say('removed', { card: i, port, reason }, `card ${i} out of reader ${endpoint.host}:${port} (${reason})`));
    return { i, serial, card, client, port, purse };
  });

  for (const c of cards) {
    const names = c.purse ? [...applets.map((a) => a.name).filter((n) => n !== 'emoney-purse'), 'emoney-purse'] : applets.map((a) => a.name);
    say(
      'card',
      { card: c.i, serial: c.serial, atr: c.card.os.atr, applets: names, image: c.card.spec.image ?? null, vpcd: `${endpoint.host}:${c.port}`, testKeys: opts.testKeys },
      `card ${c.i}: serial ${toHex(c.serial)}, ATR ${toSpacedHex(c.card.os.atr)}, applets ${names.join(', ')}, image ${c.card.spec.image ?? '(memory)'}` +
        (opts.testKeys ? ', ISD with GlobalPlatform TEST KEYS (40..4F, kvn 30)' : ''),
    );
    if (c.purse) {
      const p = c.purse;
      const cur = p.status.currency ?? purseCurrency.numeric;
      say(
        'purse',
        { card: c.i, serial: c.serial, issued: p.issued, loaded: p.loaded, counter: p.status.counter, balance: p.status.balance, currency: cur, purseKeyKcv: p.purseKeyKcv },
        `card ${c.i}: e-money purse ${p.issued ? `issued now (purse key KCV ${p.purseKeyKcv ?? '?'})` : 'already issued on its image'}, ` +
          `balance ${formatAmount(p.status.balance, cur)}, counter ${p.status.counter}${p.loaded > 0 ? `, loaded ${formatAmount(p.loaded, cur)}` : ''}`,
      );
    }
    if (!opts.removed) c.client.insertCard();
  }
  say('ready', { quickAck: cards[0].client.quickAckStatus }, `plugging into vpcd at ${endpoint.host}:${endpoint.port}${opts.cards > 1 ? `..${endpoint.port + opts.cards - 1}` : ''}; type "remove", "insert", "status" or "quit"; Ctrl-C stops`);

  const pick = (arg: string | undefined) => {
    if (arg === undefined) return cards;
    const n = Number(arg);
    const c = cards.find((x) => x.i === n);
    if (!c) {
      ctx.io.err(`hilt emulator: no card ${arg} (cards 0..${cards.length - 1})`);
      return [];
    }
    return [c];
  };

  const remove = () => cards.forEach((c) => c.client.removeCard());
  const insert = () => cards.forEach((c) => c.client.insertCard());
  const input = ctx.input ?? process.stdin;
  const lines = createInterface({ input, terminal: false });
  const { stop, stopped } = untilStopped(ctx, { SIGUSR1: remove, SIGUSR2: insert });
  lines.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    switch (cmd) {
      case '':
        return;
      case 'remove':
        pick(arg).forEach((c) => c.client.removeCard());
        return;
      case 'insert':
        pick(arg).forEach((c) => c.client.insertCard());
        return;
      case 'status':
        for (const c of cards) say('status', { card: c.i, state: c.client.state }, `card ${c.i}: ${c.client.state}`);
        return;
      case 'quit':
      case 'exit':
        stop();
        return;
      default:
        ctx.io.err(`hilt emulator: unknown control "${cmd}" (remove [n], insert [n], status, quit)`);
    }
  });
  // stdin closing (</dev/null, a finished pipe) does not stop the emulator: it runs like a daemon.
  try {
    await stopped;
  } finally {
    lines.close();
    if (input === process.stdin) process.stdin.pause();
  }
  await Promise.all(cards.map((c) => c.client.close()));
  say('stopped', {}, 'emulator stopped');
}

