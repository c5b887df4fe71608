/**
 * `hilt auth`: mutual authentication with a card's security domain over GlobalPlatform SCP03, with the
 * keys of one provider's domain of the terminal key store. Prints the key version, the card's
 * sequence counter, the negotiated level and the key check values (never the keys). `--send` sends
 * further APDUs through the secure channel (wrapped, MACed, and encrypted as the level says).
 *
 * Keys come from `--keys FILE`, from HILT_KEYS_* variables, and (unless --no-test-keys) from the
 * built-in TEST keys, which are always labelled as such: `gp-test` holds the GlobalPlatform default
 * 40..4F, the keys of a factory-fresh GP card and of `hilt emulator`'s issuer security domain.
 */
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { addCardOptions, openCardSession, type CardCommandOptions } from './send.js';
import { parseHexOption } from '../options.js';
import { table, toJson } from '../output.js';
import { KeyStore, ENV_PREFIX, formatDomain, type KeySource, type DomainDescription } from '../../terminal/keystore.js';
import { TEST_KEY_SETS } from '../../crypto/diversify.js';
import { SECURITY_LEVEL, type SecurityLevel } from '../../crypto/scp03.js';
import type { Scp03Channel } from '../../reader/scp03.js';
import type { CardChannel } from '../../reader/channel.js';
import { CommandApdu } from '../../apdu/command.js';
import { ResponseApdu } from '../../apdu/response.js';
import { describeSw } from '../../apdu/sw.js';
import { BadInputError, HiltError } from '../../util/errors.js';
import { fromHex, hexByte, toHex, toSpacedHex } from '../../util/bytes.js';

/** Security domains tried, in order, when no --aid is given: the default-selected applet, then the GP ISD AIDs. */
export const ISD_CANDIDATES: readonly (Uint8Array | null)[] = [null, fromHex('A000000151000000'), fromHex('A000000003000000')];

const LEVELS: Readonly<Record<string, SecurityLevel>> = {
  '01': SECURITY_LEVEL.C_MAC,
  '03': SECURITY_LEVEL.C_MAC_C_DEC,
  '11': SECURITY_LEVEL.C_MAC_R_MAC,
  '13': SECURITY_LEVEL.C_MAC_C_DEC_R_MAC,
  '33': SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC,
};

export function parseLevel(v: string): SecurityLevel {
  const key = v.trim().toLowerCase().replace(/^0x/, '').padStart(2, '0');
  const level = LEVELS[key];
  if (level === undefined) throw new BadInputError(`--level: expected one of 0x01, 0x03, 0x11, 0x13, 0x33, got "${v}"`);
  return level;
}

interface AuthOptions extends CardCommandOptions {
  domain: string;
  level: SecurityLevel;
  keys?: string;
  testKeys: boolean;
  aid?: Uint8Array;
  send?: Uint8Array[];
}

export const registerAuth: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('auth')
    .description("authenticate to the card's security domain with SCP03 (keys from the terminal key store)")
    .option('--domain <provider>', 'key-store domain (provider) whose keys to use', 'gp-test')
    .option('--level <level>', 'SCP03 security level: 0x01, 0x03, 0x11, 0x13 or 0x33', parseLevel, SECURITY_LEVEL.C_MAC)
    .option('--keys <file>', 'key file (format in applets-spec/security.md); HILT_KEYS_* variables are read too')
    .option('--no-test-keys', 'do not load the built-in TEST keys')
    .option('--aid <hex>', 'applet or security domain to select first (default: the card default, then the GP ISD)', parseHexOption('--aid', 5, 16))
    .option('--send <apdu>', 'an APDU to send through the secure channel after authentication (repeatable)', (v: string, prev: Uint8Array[] | undefined) => [
      ...(prev ?? []),
      parseHexOption('--send', 4, 65544)(v),
    ])
    .option('--json', 'print one JSON document');
  addCardOptions(cmd).action(async (opts: AuthOptions) => runAuth(opts, ctx));
};

async function openKeyStore(opts: AuthOptions): Promise<KeyStore> {
  const sources: KeySource[] = [];
  if (opts.keys) sources.push({ kind: 'file', path: opts.keys });
  if (Object.keys(process.env).some((k) => k.startsWith(ENV_PREFIX))) sources.push({ kind: 'env' });
  if (!opts.testKeys) {
    if (sources.length === 0) throw new BadInputError(`no keys: give --keys FILE or ${ENV_PREFIX}* variables, or drop --no-test-keys`);
    return KeyStore.open({ sources });
  }
  // Test keys only for providers that no file or variable defines (a provider has one source).
  const taken = new Set<string>();
  if (sources.length > 0) {
    const own = await KeyStore.open({ sources });
    for (const d of own.list()) taken.add(d.provider);
    own.close();
  }
  const providers = TEST_KEY_SETS.map((s) => s.provider).filter((p) => !taken.has(p));
  return KeyStore.open({ sources: [...sources, { kind: 'test', providers }], warn: () => undefined });
}

async function select(channel: CardChannel, aid: Uint8Array | null): Promise<ResponseApdu> {
  const cmd = new CommandApdu({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: aid ?? undefined, ne: 256 });
  return ResponseApdu.decode(await channel.transmit(cmd.encode()));
}

async function runAuth(opts: AuthOptions, ctx: CliContext): Promise<void> {
  const store = await openKeyStore(opts);
  try {
    if (!store.has(opts.domain)) {
      const known = store.list().map((d) => d.provider);
      throw new BadInputError(`--domain: no keys for "${opts.domain}" (key store has: ${known.join(', ') || 'nothing'})`);
    }
    const domain = store.domain(opts.domain);
    const description: DomainDescription = domain.describe();
    // SCP03 collects 61xx itself and must not see a 6Cxx re-issue (it would replay a MAC): no GET RESPONSE wrapper.
    const session = await openCardSession(opts, ctx, false);
    try {
      let selected: Uint8Array | null = null;
      let sw = 0;
      for (const aid of opts.aid ? [opts.aid] : ISD_CANDIDATES) {
        const r = await select(session.channel, aid);
        sw = r.sw;
        if (r.sw === 0x9000 || r.sw1 === 0x61) {
          selected = aid ?? new Uint8Array(0);
          break;
        }
      }
      if (selected === null) {
        throw new HiltError('SW', `no security domain to select (${opts.aid ? toHex(opts.aid) : 'default applet, A000000151000000, A000000003000000'}): ${describeSw(sw).hex} ${describeSw(sw).meaning}`);
      }
      const t0 = process.hrtime.bigint();
      const secure: Scp03Channel = await domain.openScp03(session.channel, { provider: opts.domain, securityLevel: opts.level });
      const micros = Number((process.hrtime.bigint() - t0) / 1000n);
      const answers: { command: string; response: string; sw: string; meaning: string }[] = [];
      for (const apdu of opts.send ?? []) {
        const r = ResponseApdu.decode(await secure.transmit(apdu));
        answers.push({ command: toHex(apdu).toUpperCase(), response: toHex(r.data).toUpperCase(), sw: r.swHex, meaning: describeSw(r.sw).meaning });
      }
      const info = secure.info;
      const result = {
        reader: session.reader.name,
        selected: selected.length ? toHex(selected).toUpperCase() : '(default applet)',
        domain: opts.domain,
        keys: { kvn: hexByte(description.kvn), aes: description.keyLength * 8, kcv: description.kcv, diversified: description.diversify, source: description.origin, testKeys: description.testKeys },
        card: {
          kvn: hexByte(info.kvn),
          iParameter: hexByte(info.iParameter),
          sequenceCounter: info.sequenceCounter ?? null,
          keyDiversificationData: toHex(info.keyDiversificationData).toUpperCase(),
        },
        securityLevel: hexByte(info.securityLevel),
        handshakeMicros: micros,
        answers,
      };
      await secure.close();
      if (opts.json) {
        ctx.io.out(toJson(result));
        return;
      }
      if (description.testKeys) ctx.io.out(`*** ${description.label} ***`);
      ctx.io.out(
        table(
          ['', ''],
          [
            ['reader', result.reader],
            ['selected', result.selected],
            ['key domain', formatDomain(description)],
            ['card key version', result.card.kvn],
            ['i parameter', result.card.iParameter],
            ['sequence counter', result.card.sequenceCounter === null ? '(random challenge)' : String(result.card.sequenceCounter)],
            ['key diversification data', toSpacedHex(info.keyDiversificationData)],
            ['security level', `${result.securityLevel} (${levelName(info.securityLevel)})`],
            ['handshake', `${micros} µs`],
          ],
        )
          .split('\n')
          .slice(2)
          .join('\n'),
      );
      for (const a of answers) ctx.io.out(`> ${a.command}\n< ${a.response}${a.response ? ' ' : ''}${a.sw} (${a.meaning})`);
      ctx.io.out('authenticated');
    } finally {
      await session.close();
    }
  } finally {
    store.close();
  }
}

function levelName(level: number): string {
  return (
    { 0x01: 'C-MAC', 0x03: 'C-MAC + C-DECRYPTION', 0x11: 'C-MAC + R-MAC', 0x13: 'C-MAC + C-DECRYPTION + R-MAC', 0x33: 'C-MAC + C-DECRYPTION + R-MAC + R-ENCRYPTION' } as Record<number, string>
  )[level] ?? 'unknown';
}
