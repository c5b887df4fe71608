/**
 * The demo's world, all in one temporary folder and on loopback:
 *
 *   hosts      the mock hosts (gateway, reader registry, e-money issuer, admin API) on their SQLite
 *              files, ephemeral ports; stopped and restarted on the same folder and ports for the outage
 *   bureau     purse cards issued by the card bureau (TEST keys), each on its own tear-safe image
 *              file, each behind a CardTap and a vpcd card client
 *   reader     hilt's own vpcd server: the terminal's one-slot reader; a card is "presented" by
 *              connecting its client, "taken away" by disconnecting it (no pcscd involved)
 *   terminal   TERM0001 / reader R-01: the key store (TEST keys, 'emoney' domain), the journal, the
 *              purse configuration (JPY, Japan time), and its uplink once enrolled
 *
 * Everything measured in the demo comes from these objects; nothing is faked around them.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { demoTempDir } from './temp-dir.js';
import { join } from 'node:path';
import { startHosts, type RunningHosts } from '../../hosts/index.js';
import { VpcdServer } from '../../reader/vpcd-server.js';
import { withGetResponse } from '../../reader/get-response.js';
import { openScp03 } from '../../reader/scp03.js';
import type { CardChannel } from '../../reader/channel.js';
import { KeyStore, type ProviderDomain } from '../../terminal/keystore.js';
import type { Journal } from '../../terminal/journal/index.js';
import { openPurseJournal, purseTerminalConfig, readPurseBalance, type PurseBalance, type PurseEvent, type PurseTerminal, type PurseTerminalConfig } from '../../terminal/purse/index.js';
import { Uplink, type UplinkConfigInput } from '../../hostlink/uplink/index.js';
import { testTerminalMacKey } from '../../hostlink/test-keys.js';
import { testStaticKeys } from '../../crypto/diversify.js';
import { testPurseMasterKey } from '../../crypto/purse-certificate.js';
import { fromHex, toHex, zeroize } from '../../util/bytes.js';
import { SILENT_LOGGER } from '../../util/logger.js';
// The demo issues and runs emulated cards in-process, like `hilt emulator` (DESIGN.md allows the CLI that).
import { buildPurseCard, issuePurseCard, type PurseCardOrder } from '../../../emulator/bureau.js';
import { VpcdCardClient } from '../../../emulator/vpcd/client.js';
import type { StaticKeys } from '../../crypto/scp03.js';
import { AdminClient } from './admin-client.js';
import { CardTap } from './card-tap.js';

/** The terminal of the day and its reader. */
export const DEMO_TERMINAL = Object.freeze({ terminalId: 'TERM0001', readerId: 'R-01', currency: 'JPY', utcOffsetMinutes: 540 });
/** The reader that gets stolen: another terminal's, enrolled the same way. */
export const STOLEN_TERMINAL = Object.freeze({ terminalId: 'TERM0002', readerId: 'R-02' });
export const JPY_NUMERIC = 392;

/** Loopback bounds: short, so a stopped host is noticed in milliseconds, not seconds. */
const UPLINK_BOUNDS = { requestTimeoutMs: 3_000, connectTimeoutMs: 500, backoff: { baseMs: 20, maxMs: 200, jitter: 0 } } as const;


export interface CardPlan {
  /** Short name in the tables: "A", "B", ... */
  label: string;
  /** What the day does with it. */
  role: string;
  /** Minor units the bureau loads at issuance (0: none). */
  issued: number;
}

export interface DemoCard extends CardPlan {
  serial: Uint8Array;
  /** Upper-case hex, the journal's and the host's form. */
  serialHex: string;
  image: string;
  tap: CardTap;
  client: VpcdCardClient;
  order: PurseCardOrder;
  /** Closes the card's image file. */
  closeStore: () => void;
  /** The card's state as last seen by the demo (bureau READ STATUS, then each flow's answer). */
  known: { balance: number; counter: number };
  /** The balance the bureau issued the card with (its READ STATUS after issuance). */
  issuedBalance: number;
  /**
   * Value the card shows above the ledger on purpose: a rolled-back image brings back what was
   * spent after the copy (the reconciliation expects exactly that much, and the card flagged).
   */
  rolledBackBy: number;
}

export interface World {
  dir: string;
  hosts: RunningHosts;
  admin: AdminClient;
  reader: VpcdServer;
  /** The terminal's channel to the card in the reader (no 6Cxx re-issue under the secure channel). */
  channel: CardChannel;
  keys: KeyStore;
  domain: ProviderDomain;
  config: PurseTerminalConfig;
  journal: Journal;
  /** Every log line of the purse flows (refusals, tears, recoveries), in order. */
  events: PurseEvent[];
  cards: DemoCard[];
  /** Set by the enrolment step. */
  uplink: Uplink | null;
  /** What the purse flows work with, on the card now in the reader. */
  terminal(): PurseTerminal;
  /** Connects the card to the reader and binds the terminal's channel to it. */
  present(card: DemoCard): Promise<void>;
  /** Disconnects the card (waits until the reader saw it leave). */
  takeAway(card: DemoCard): Promise<void>;
  /** READ STATUS and READ LOG in the clear, on the card in the reader. */
  readCard(): Promise<PurseBalance>;
  /** Opens TERM0001's uplink with an enrolment code. */
  openUplink(enrolmentCode: string | undefined): Uplink;
  /** Opens another terminal's journal and uplink (the stolen reader). */
  openOtherTerminal(code: string): { journal: Journal; uplink: Uplink; close(): Promise<void> };
  stopHosts(): Promise<void>;
  /** Starts the hosts again on the same folder and ports. */
  restartHosts(): Promise<void>;
  /** Copies the card's image file (the card must be out of the reader). */
  copyImage(card: DemoCard, to: string): void;
  /** Puts an image file back on the card (the card must be out of the reader): the card restarts from it. */
  restoreImage(card: DemoCard, from: string): void;
  close(): Promise<void>;
}

export interface WorldOptions {
  cards: readonly CardPlan[];
}

function cardSerial(i: number): Uint8Array {
  // "HILT" then 00 00 0A and the card's number.
  return fromHex(`48494C54 00 00 0A ${(i + 1).toString(16).padStart(2, '0')}`);
}

function orderFor(serial: Uint8Array, image: string, initialLoad: number, masterKeys: StaticKeys, issuerMaster: Uint8Array): PurseCardOrder {
  return {
    serial,
    provider: 'emoney',
    masterKeys,
    issuerMaster,
    currency: JPY_NUMERIC,
    maxBalance: 100_000,
    maxPerTransaction: 30_000,
    initialLoad,
    image,
  };
}

function storeCloser(store: unknown): () => void {
  return () => {
    if (typeof store === 'object' && store !== null && 'close' in store && typeof store.close === 'function') (store as { close(): void }).close();
  };
}

export async function buildWorld(o: WorldOptions): Promise<World> {
  const temp = demoTempDir('hilt-demo-');
  const dir = temp.dir;
  const hostsDir = join(dir, 'hosts');
  const closers: (() => Promise<void> | void)[] = [() => temp.remove()];
  const close = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // Best effort: the folder goes anyway.
      }
    }
  };
  try {
    let hosts = await startHosts({ dir: hostsDir });
    let hostsUp = true;
    closers.push(() => (hostsUp ? hosts.close() : undefined));
    const admin = new AdminClient(hosts.adminUrl);

    const reader = await VpcdServer.listen({ port: 0, logger: SILENT_LOGGER });
    closers.push(() => reader.close());
    const channel = withGetResponse({ reissueOn6C: false })(reader);

    const keys = await KeyStore.open({ sources: [{ kind: 'test', providers: ['emoney'] }], warn: () => undefined });
    closers.push(() => keys.close());
    const domain = keys.domain('emoney');
    const events: PurseEvent[] = [];
    const config = purseTerminalConfig({ ...DEMO_TERMINAL, log: (e) => events.push(e) });
    const journal = openPurseJournal(join(dir, 'terminal', 'journal.db'), config);
    closers.push(() => journal.close());

    // The bureau: the provider's and the issuer's master keys (TEST), one order per card.
    const masterKeys = testStaticKeys('emoney');
    const issuerMaster = testPurseMasterKey();
    const cards: DemoCard[] = [];
    try {
      mkdirSync(join(dir, 'cards'));
      for (const [i, plan] of o.cards.entries()) {
        const serial = cardSerial(i);
        const image = join(dir, 'cards', `${plan.label}.img`);
        const order = orderFor(serial, image, plan.issued, masterKeys, issuerMaster);
        const issued = await issuePurseCard(order, openScp03);
        const tap = new CardTap(issued.os);
        const client = new VpcdCardClient(tap, { port: reader.port, logger: SILENT_LOGGER, initialDelayMs: 5, maxDelayMs: 50 });
        const card: DemoCard = { ...plan, serial, serialHex: toHex(serial).toUpperCase(), image, tap, client, order: { ...order, masterKeys: testStaticKeys('emoney'), issuerMaster: testPurseMasterKey() }, closeStore: storeCloser(issued.store), known: { balance: issued.status.balance, counter: issued.status.counter }, issuedBalance: issued.status.balance, rolledBackBy: 0 };
        closers.push(() => card.closeStore());
        closers.push(() => client.close());
        cards.push(card);
      }
    } finally {
      zeroize(masterKeys.enc, masterKeys.mac, masterKeys.dek, issuerMaster);
    }
    closers.push(() => {
      for (const c of cards) zeroize(c.order.masterKeys.enc, c.order.masterKeys.mac, c.order.masterKeys.dek, c.order.issuerMaster);
    });

    const uplinkConfig = (t: { terminalId: string; readerId: string }): UplinkConfigInput => ({
      terminalId: t.terminalId,
      readerId: t.readerId,
      host: hosts.host,
      port: hosts.gatewayPort,
      macKey: testTerminalMacKey(t.terminalId),
      ...UPLINK_BOUNDS,
    });

    const world: World = {
      dir,
      get hosts() {
        return hosts;
      },
      admin,
      reader,
      channel,
      keys,
      domain,
      config,
      journal,
      events,
      cards,
      uplink: null,
      terminal: () => ({ channel, domain, journal, config }),
      async present(card) {
        card.client.insertCard();
        await reader.waitForCard(5_000);
        await channel.reset();
      },
      async takeAway(card) {
        await card.client.removeCard();
        await reader.waitForRemoval(5_000);
      },
      readCard: () => readPurseBalance(channel),
      openUplink(enrolmentCode) {
        const u = Uplink.open({ config: uplinkConfig(DEMO_TERMINAL), journal, enrolmentCode });
        closers.push(() => u.close());
        world.uplink = u;
        return u;
      },
      openOtherTerminal(code) {
        const other = purseTerminalConfig({ ...STOLEN_TERMINAL, currency: DEMO_TERMINAL.currency, utcOffsetMinutes: DEMO_TERMINAL.utcOffsetMinutes });
        const j = openPurseJournal(join(dir, 'terminal2', 'journal.db'), other);
        const u = Uplink.open({ config: uplinkConfig(STOLEN_TERMINAL), journal: j, enrolmentCode: code });
        let closed = false;
        const closeOther = async (): Promise<void> => {
          if (closed) return;
          closed = true;
          await u.close();
          j.close();
        };
        closers.push(closeOther);
        return { journal: j, uplink: u, close: closeOther };
      },
      async stopHosts() {
        if (!hostsUp) return;
        hostsUp = false;
        await hosts.close();
      },
      async restartHosts() {
        if (hostsUp) return;
        hosts = await startHosts({ dir: hostsDir, gatewayPort: hosts.gatewayPort, adminPort: hosts.adminPort });
        hostsUp = true;
        admin.retarget(hosts.adminUrl);
      },
      copyImage(card, to) {
        copyFileSync(card.image, to);
      },
      restoreImage(card, from) {
        card.closeStore();
        copyFileSync(from, card.image);
        const rebuilt = buildPurseCard(card.order);
        card.closeStore = storeCloser(rebuilt.store);
        card.tap.swap(rebuilt.os);
      },
      close,
    };
    return world;
  } catch (e) {
    await close();
    throw e;
  }
}
