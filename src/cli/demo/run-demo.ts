/**
 * `hilt demo`, the main job on embedded defaults (no hardware, no system packages): the full
 * scripted day of a payment terminal (issue 7) against the mock hosts, with purse cards from the
 * card bureau in hilt's own vpcd reader over loopback.
 *
 *   1. reader check   the transport/SCP03/hot-plug steps on a diagnostic card (transport.ts): one
 *                     line in the day's table, the whole table with --transport
 *   2. the world      hosts, bureau cards, reader, terminal (world.ts)
 *   3. the day        day.ts: open, sales, blocked card, stolen reader, tear, rollback, outage
 *   4. close of day   reconciliation (reconcile.ts) and its verdict steps
 *
 * The report holds every step with what happened, what was expected and whether they agree; the
 * demo passes only when every step does. `faults` injects a defect (faults.ts) to show the checks
 * catch it.
 */
import { runTransportCheck, type TransportReport } from './transport.js';
import { buildWorld } from './world.js';
import { DAY_CARDS, runDay } from './day.js';
import { reconcile, type Reconciliation } from './reconcile.js';
import { Script, errorText, verdict, type DayStep } from './script.js';
import { money } from './till.js';
import { DELIVER_BOUND_MS, uplinkOf } from './day-morning.js';
import type { DemoFault } from './faults.js';
import type { PurseEvent } from '../../terminal/purse/index.js';

export type { DayStep } from './script.js';
export type { TransportReport, StepResult } from './transport.js';
export type { Reconciliation, CardReconciliation, LedgerReconciliation } from './reconcile.js';

export interface DemoOptions {
  /** Defects to inject (faults.ts); default none. */
  faults?: readonly DemoFault[];
  /** Skip the reader check (tests that only look at the day). */
  skipTransport?: boolean;
}

export interface DemoReport {
  ok: boolean;
  /** Names of the failed steps, in order ("section: step"). */
  failed: string[];
  faults: DemoFault[];
  transport: TransportReport | null;
  steps: DayStep[];
  reconciliation: Reconciliation | null;
  /** The terminal's own log lines of the day (refusals, tears, recoveries, anomalies), in order. */
  terminalLog: PurseEvent[];
  durationMs: number;
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoReport> {
  const t0 = Date.now();
  const faults = new Set(o.faults ?? []);
  const s = new Script();
  let transport: TransportReport | null = null;

  if (o.skipTransport !== true) {
    s.part('reader check');
    await s.step('transport + SCP03 on the vpcd reader', 'every step ok: cases 1-4, 61xx, 6Cxx, chaining, SCP03 level 33, hot-plug', async () => {
      transport = await runTransportCheck();
      const bad = transport.steps.filter((x) => !x.ok);
      const apdus = transport.trace.filter((r) => r.dir === '>').length;
      return { ok: bad.length === 0, happened: `${transport.steps.length - bad.length}/${transport.steps.length} steps ok, ${apdus} APDUs${bad.length ? `; failed: ${bad.map((x) => x.name).join(', ')}` : ''}` };
    });
  }

  let reconciliation: Reconciliation | null = null;
  const terminalLog: PurseEvent[] = [];
  let world: Awaited<ReturnType<typeof buildWorld>> | null = null;
  s.part('setup');
  await s.step('hosts up, cards issued', `mock hosts on loopback; the bureau issues ${DAY_CARDS.length} purse cards; terminal TERM0001 ready`, async () => {
    world = await buildWorld({ cards: DAY_CARDS });
    const serials = world.cards.map((c) => c.serialHex);
    return { ok: true, happened: `gateway :${world.hosts.gatewayPort}, admin :${world.hosts.adminPort}, vpcd reader :${world.reader.port}; cards ${world.cards.map((c) => c.label).join(', ')}: ${serials[0]}..${serials[serials.length - 1].slice(-2)}` };
  });
  const w = world as Awaited<ReturnType<typeof buildWorld>> | null;
  if (w !== null) {
    try {
      await runDay(w, s, faults);
      s.part('close of day');
      await s.step('cards reconciled', 'per card: issued + loaded − spent = card balance = issuer shadow balance', async () => {
        reconciliation = await reconcile(w);
        const bad = reconciliation.cards.filter((c) => !c.ok);
        return { ok: bad.length === 0, happened: `${reconciliation.cards.length - bad.length}/${reconciliation.cards.length} cards balance${bad.length ? `; NOT: ${bad.map((c) => `${c.card} (${c.note})`).join(', ')}` : ''}` };
      });
      await s.step('host ledger', "issuer's totals = journal's; Σ shadow balances = issued + loads − purchases", async () => {
        if (reconciliation === null) return { ok: false, happened: 'no reconciliation' };
        const l = reconciliation.ledger;
        return verdict(`host ${l.host.loads.count} loads ${money(l.host.loads.amount)}, ${l.host.purchases.count} purchases ${money(l.host.purchases.amount)}; Σ shadows ${money(l.shadows)}`, {
          'totals match the journal': l.host.loads.count === l.journal.loads.count && l.host.loads.amount === l.journal.loads.amount && l.host.purchases.count === l.journal.purchases.count && l.host.purchases.amount === l.journal.purchases.amount,
          'shadows add up': l.shadows === l.expectedShadows,
        });
      });
      await s.step('0500 reconciliation', "terminal's totals over every reader seq sent to the issuer: 0510 00, in balance", async () => {
        const r = await uplinkOf(w).reconcile({ drainTimeoutMs: DELIVER_BOUND_MS });
        if (reconciliation !== null) reconciliation.settlement = r;
        const per = r.currencies.map((c) => `${c.currencyName} ${c.responseCode}: ${c.terminal.loads.count} loads, ${c.terminal.purchases.count} purchases, ${c.terminal.authorizations} 0200s`);
        return verdict(`${r.status}, reader seq ${r.firstSequence}..${r.lastSequence}; ${per.join('; ') || 'no currency'}`, {
          'in balance': r.status === 'in-balance' && r.inBalance,
          'every currency answered 00': r.currencies.length > 0 && r.currencies.every((c) => c.responseCode === '00'),
          'nothing unsent': r.unsent === 0 && r.pendingReversals === 0,
        });
      });
    } catch (e) {
      await s.step('the day', 'runs to the end', async () => ({ ok: false, happened: errorText(e) }));
    } finally {
      terminalLog.push(...w.events);
      await w.close();
    }
  }
  const failed = s.failures.map((x) => `${x.section}: ${x.name}`);
  return { ok: failed.length === 0, failed, faults: [...faults], transport, steps: s.steps, reconciliation, terminalLog, durationMs: Date.now() - t0 };
}
