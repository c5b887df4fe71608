/**
 * The mock hosts, started together: the reader registry and the e-money issuer on their SQLite files
 * in `dir`, the gateway terminals connect to, and the admin API. Started by `hilt hosts` and by the
 * demo; tests start them on ephemeral ports (0) in a temporary folder.
 *
 * Durable: close() and startHosts() again on the same `dir` finds every reader, key, advice, balance,
 * anomaly and negative-list version as it was (sign-on sessions too, until they expire).
 *
 * Keys: the issuer's purse master key and the host MAC / KEK master keys default to the published
 * TEST keys (TEST_PURSE_MASTER_HEX, src/hostlink/test-keys.ts): for demos and tests only.
 */
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ReaderRegistry, type RegistryOptions } from './registry.js';
import { IssuerHost, type IssuerLimits } from './issuer.js';
import { Gateway, type GatewayEvent, type Route } from './gateway.js';
import { AdminServer } from './admin.js';
import { testPurseMasterKey } from '../crypto/purse-certificate.js';
import { testHostKekMaster, testHostMacMaster } from '../hostlink/test-keys.js';
import { BadInputError } from '../util/errors.js';
import { zeroize } from '../util/bytes.js';

export { ReaderRegistry } from './registry.js';
export { IssuerHost } from './issuer.js';
export { Gateway, DEFAULT_ROUTES } from './gateway.js';
export { AdminServer } from './admin.js';

/** File names inside `dir`. */
export const HOST_FILES = { registry: 'registry.sqlite', issuer: 'issuer.sqlite' } as const;
/** The ports `hilt hosts` listens on unless told otherwise. */
export const DEFAULT_GATEWAY_PORT = 8583;
export const DEFAULT_ADMIN_PORT = 8080;

export interface StartHostsOptions {
  /** Folder of the hosts' SQLite files (created). */
  dir: string;
  /** Default 0 (ephemeral). */
  gatewayPort?: number;
  /** Default 0 (ephemeral). */
  adminPort?: number;
  /** Default 127.0.0.1, for both servers. */
  host?: string;
  /** Purse master key; default the TEST key. */
  issuerMaster?: Uint8Array;
  /** Master of the terminals' MAC keys; default TEST_HOST_MAC_MASTER_HEX. */
  hostMacMaster?: Uint8Array;
  /** Master of the terminals' KEKs; default TEST_HOST_KEK_MASTER_HEX. */
  hostKekMaster?: Uint8Array;
  limits?: Partial<IssuerLimits>;
  routes?: readonly Route[];
  sessionMs?: RegistryOptions['sessionMs'];
  challengeTtlMs?: RegistryOptions['challengeTtlMs'];
  idleTimeoutMs?: number;
  clock?: () => number;
  onEvent?: (e: GatewayEvent) => void;
  onAdminError?: (e: unknown) => void;
}

export interface RunningHosts {
  host: string;
  gatewayPort: number;
  adminPort: number;
  adminUrl: string;
  dir: string;
  registry: ReaderRegistry;
  issuer: IssuerHost;
  gateway: Gateway;
  admin: AdminServer;
  /** Stops the servers, lets the issuer commit what it holds, closes the files. */
  close(): Promise<void>;
}

export async function startHosts(o: StartHostsOptions): Promise<RunningHosts> {
  if (typeof o !== 'object' || o === null || typeof o.dir !== 'string' || o.dir.trim() === '') throw new BadInputError('startHosts: dir is required');
  mkdirSync(o.dir, { recursive: true });
  const host = o.host ?? '127.0.0.1';
  const purseMaster = o.issuerMaster ?? testPurseMasterKey();
  const macMaster = o.hostMacMaster ?? testHostMacMaster();
  const kekMaster = o.hostKekMaster ?? testHostKekMaster();
  const opened: { close(): unknown }[] = [];
  try {
    const registry = ReaderRegistry.open(join(o.dir, HOST_FILES.registry), { clock: o.clock, sessionMs: o.sessionMs, challengeTtlMs: o.challengeTtlMs });
    opened.push(registry);
    const issuer = IssuerHost.open(join(o.dir, HOST_FILES.issuer), { master: purseMaster, limits: o.limits, clock: o.clock });
    opened.push(issuer);
    const gateway = await Gateway.start({
      registry,
      providers: [issuer],
      routes: o.routes,
      macMaster,
      kekMaster,
      host,
      port: o.gatewayPort ?? 0,
      clock: o.clock,
      idleTimeoutMs: o.idleTimeoutMs,
      onEvent: o.onEvent,
    });
    opened.push(gateway);
    const admin = await AdminServer.start({ registry, issuer, gateway, host, port: o.adminPort ?? 0, onError: o.onAdminError });
    opened.push(admin);
    let closing: Promise<void> | null = null;
    return {
      host,
      gatewayPort: gateway.port,
      adminPort: admin.port,
      adminUrl: admin.url,
      dir: o.dir,
      registry,
      issuer,
      gateway,
      admin,
      close: () => {
        closing ??= (async () => {
          await admin.close();
          await gateway.close();
          await issuer.close();
          registry.close();
        })();
        return closing;
      },
    };
  } catch (e) {
    for (const x of opened.reverse()) await x.close();
    throw e;
  } finally {
    // The hosts keep their own copies.
    if (o.issuerMaster === undefined) zeroize(purseMaster);
    if (o.hostMacMaster === undefined) zeroize(macMaster);
    if (o.hostKekMaster === undefined) zeroize(kekMaster);
  }
}
