/**
 * `hilt hosts`: runs the mock hosts (src/hosts: gateway, reader registry, e-money issuer, admin API)
 * on durable SQLite files in --dir, and stays until interrupted (SIGINT, SIGTERM, or the context's
 * abort signal). Prints where it listens, then one line per connection and refusal (JSON lines with
 * --json). The keys are the published TEST keys: demos and tests only.
 *
 *   hilt hosts [--dir .hilt/hosts] [--port 8583] [--admin-port 8080] [--host 127.0.0.1] [--json]
 *
 * Port 0 picks a free port (printed).
 */
import type { RegisterCommand } from './types.js';
import type { CliContext } from '../context.js';
import { parseIntOption } from '../options.js';
import { DEFAULT_ADMIN_PORT, DEFAULT_GATEWAY_PORT, HOST_FILES, startHosts } from '../../hosts/index.js';
import type { GatewayEvent } from '../../hosts/gateway.js';
import { RESPONSE_CODES } from '../../hostlink/messages.js';
import { untilStopped } from '../until-stopped.js';

export const DEFAULT_HOSTS_DIR = '.hilt/hosts';

interface HostsOptions {
  dir: string;
  port: number;
  adminPort: number;
  host: string;
  json: boolean;
}

export const registerHosts: RegisterCommand = (program, ctx) => {
  program
    .command('hosts')
    .description('run the mock hosts: gateway (ISO 8583), reader registry, e-money issuer, HTTP admin API (TEST keys)')
    .option('--dir <folder>', 'folder of the hosts\u2019 SQLite files', DEFAULT_HOSTS_DIR)
    .option('--port <n>', `gateway port, terminals connect here (0: any free port)`, parseIntOption('--port', 0, 65535), DEFAULT_GATEWAY_PORT)
    .option('--admin-port <n>', 'admin API port (0: any free port)', parseIntOption('--admin-port', 0, 65535), DEFAULT_ADMIN_PORT)
    .option('--host <address>', 'address both servers bind to', '127.0.0.1')
    .option('--json', 'print events as JSON lines', false)
    .action(async (opts: HostsOptions) => {
      await runHosts(opts, ctx);
    });
};

function describe(e: GatewayEvent): string {
  const who = [e.terminalId && `terminal ${e.terminalId}`, e.readerId && `reader ${e.readerId}`].filter(Boolean).join(' ');
  switch (e.event) {
    case 'refused': {
      const meaning = e.responseCode === undefined ? '' : (RESPONSE_CODES.get(e.responseCode)?.meaning ?? '');
      return `refused ${e.mti ?? ''} from ${who || e.remote || '?'}: ${e.responseCode ?? '?'} ${meaning}`.trim();
    }
    case 'bad-mac':
      return `bad MAC on ${e.mti ?? '?'} from ${who || e.remote || '?'}${e.reason ? ` (${e.reason})` : ''}`;
    case 'provider-error':
      return `provider failed on ${e.mti ?? '?'} from ${who || '?'}: ${e.reason ?? ''}`;
    default:
      return `${e.event} ${e.remote ?? ''}${e.reason ? ` (${e.reason})` : ''}`.trim();
  }
}

async function runHosts(opts: HostsOptions, ctx: CliContext): Promise<void> {
  const say = (event: string, fields: Record<string, unknown>, text: string) => ctx.io.out(opts.json ? JSON.stringify({ time: new Date().toISOString(), event, ...fields }) : text);
  const hosts = await startHosts({
    dir: opts.dir,
    gatewayPort: opts.port,
    adminPort: opts.adminPort,
    host: opts.host,
    onEvent: (e) => {
      if (e.event !== 'listening') say(e.event, { ...e }, describe(e));
    },
    onAdminError: (e) => ctx.io.err(`hilt hosts: admin API: ${e instanceof Error ? e.message : String(e)}`),
  });
  ctx.io.err('hilt hosts: TEST KEYS (purse master, host MAC and KEK masters): publicly known, demos and tests only');
  say(
    'ready',
    { gateway: `${hosts.host}:${hosts.gatewayPort}`, admin: hosts.adminUrl, dir: opts.dir, files: Object.values(HOST_FILES) },
    `gateway on ${hosts.host}:${hosts.gatewayPort}, admin API on ${hosts.adminUrl}, storage in ${opts.dir}; Ctrl-C stops`,
  );
  const { stopped } = untilStopped(ctx);
  try {
    await stopped;
  } finally {
    await hosts.close();
  }
  say('stopped', {}, 'hosts stopped');
}
