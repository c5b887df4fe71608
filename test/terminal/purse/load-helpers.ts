/**
 * Shared by the load tests: the real mock hosts (src/hosts) on loopback in a temp folder, a purse
 * terminal (helpers.ts) whose journal the uplink forwards, the terminal's Uplink enrolled with an
 * operator-issued code, and card serials one per card (the issuer keeps a history per serial).
 */
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import { Uplink } from '../../../src/hostlink/uplink/index.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import type { IssuerLimits } from '../../../src/hosts/issuer.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { readPurseBalance, type LoadUplink } from '../../../src/terminal/purse/index.js';
import type { EmulatedCard } from '../../../emulator/make-card.js';
import { adminGet, countOnHost, issueCode, startHosts, type HostCount, type RunningHosts } from '../../hostlink/uplink/real-hosts.js';
import { openTerminal, tempDir, Wire, type TerminalOptions, type TestTerminal } from './helpers.js';

export interface LoadBench {
  hosts: RunningHosts;
  term: TestTerminal;
  uplink: Uplink;
  /** Opens the uplink again (after `hosts` were restarted, or to replace a closed one). */
  reopenUplink(): Uplink;
  relay: DroppingRelay | null;
  close(): Promise<void>;
}

export interface LoadBenchOptions {
  issuerLimits?: Partial<IssuerLimits>;
  terminal?: TerminalOptions;
  requestTimeoutMs?: number;
  /** Put a DroppingRelay between the uplink and the gateway (bench.relay). */
  relay?: boolean;
}

/** Hosts, terminal and uplink, ready: the reader is enrolled on first use of the link. */
export async function openLoadBench(o: LoadBenchOptions = {}): Promise<LoadBench> {
  const work = tempDir('hilt-load-');
  const hosts = await startHosts({ dir: join(work.dir, 'hosts'), limits: o.issuerLimits });
  const term = await openTerminal({ ...o.terminal, dir: join(work.dir, 'terminal') });
  const enrolmentCode = await issueCode(hosts, term.config.terminalId, term.config.readerId);
  const relay = o.relay ? await startDroppingRelay(hosts.gatewayPort, hosts.host) : null;
  const open = (): Uplink =>
    Uplink.open({
      config: {
        terminalId: term.config.terminalId,
        readerId: term.config.readerId,
        host: hosts.host,
        port: relay?.port ?? hosts.gatewayPort,
        macKey: testTerminalMacKey(term.config.terminalId),
        requestTimeoutMs: o.requestTimeoutMs ?? 2_000,
        connectTimeoutMs: 1_000,
        backoff: { baseMs: 10, maxMs: 100 },
      },
      journal: term.journal,
      enrolmentCode,
    });
  const bench: LoadBench = {
    hosts,
    term,
    uplink: open(),
    reopenUplink: () => (bench.uplink = open()),
    relay,
    close: async () => {
      await bench.uplink.close().catch(() => undefined);
      await relay?.close();
      await hosts.close();
      term.close();
      work.remove();
    },
  };
  return bench;
}

/** Card serial i: 8 bytes, "HILT" then i. */
export function loadSerial(i: number): Uint8Array {
  return fromHex(`48494C54${i.toString(16).toUpperCase().padStart(8, '0')}`);
}

/** An uplink whose 0210 cryptograms arrive with one bit flipped (a forged or damaged authorization). */
export function tamperedUplink(uplink: LoadUplink): LoadUplink {
  return {
    authorizeLoad: async (id) => {
      const auth = await uplink.authorizeLoad(id);
      if (!auth.approved) return auth;
      const cryptogram = auth.loadCryptogram.slice();
      cryptogram[0] ^= 0x01;
      return { ...auth, loadCryptogram: cryptogram };
    },
    reverseLoad: (id) => uplink.reverseLoad(id),
  };
}

/**
 * A TCP relay in front of the gateway that can swallow the host's next answer: the request reaches
 * the host (which acts on it), its answer never reaches the terminal — a 0210 lost on the way back.
 */
export interface DroppingRelay {
  port: number;
  /** The next chunk the host sends is dropped. */
  dropNextAnswer(): void;
  /** Chunks dropped so far. */
  dropped: number;
  close(): Promise<void>;
}

export async function startDroppingRelay(targetPort: number, host = '127.0.0.1'): Promise<DroppingRelay> {
  let drop = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, host);
    sockets.add(client).add(upstream);
    client.on('data', (b) => upstream.write(b));
    upstream.on('data', (b) => {
      if (drop) {
        drop = false;
        relay.dropped++;
        return;
      }
      client.write(b);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  const relay: DroppingRelay = {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    dropNextAnswer: () => void (drop = true),
    dropped: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return relay;
}

export interface IssuerCardView {
  serial: string;
  balance: number | null;
  lastCounter: number;
  records: number;
}

export async function issuerCard(hosts: RunningHosts, serial: Uint8Array): Promise<IssuerCardView | null> {
  return adminGet<IssuerCardView>(hosts, `/cards/${toHex(serial).toUpperCase()}`).catch(() => null);
}

/** The card's balance as READ STATUS says it (no session). */
export async function cardBalance(card: EmulatedCard): Promise<number> {
  return (await readPurseBalance(new Wire(card))).status.balance;
}

/** Drains the outbox to the issuer and counts what it applied of the journal (lost and twice must be 0). */
export async function forwardAndCount(bench: LoadBench): Promise<HostCount> {
  await bench.uplink.forward({ untilEmpty: true });
  return countOnHost(bench.hosts, bench.term.journal);
}
