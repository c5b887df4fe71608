/**
 * Store-and-forward over a real loopback socket against the fake gateway (fake-host.ts): order,
 * exactly once, 0221 after a lost answer, retry with backoff while the host is down, a network cut
 * mid-upload, abort, refusals, anomalies, and a record that cannot be sent.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { ReaderRefusedError, UplinkError, backoffDelay, backoffPolicy, type ForwarderEvent, type Uplink, type UplinkConfigInput } from '../../../src/hostlink/uplink/index.js';
import { RC } from '../../../src/hostlink/messages.js';
import type { FakeHost } from './fake-host.js';
import { useFakeHostWorld, type FakeHostWorld } from './fake-host-world.js';
import { PROVIDER, READER, TERMINAL, cardSerial, fillPurchases, openJournal, openUplink } from './helpers.js';

const world = useFakeHostWorld();
let work: FakeHostWorld['work'];
let host: FakeHost;
let journal: Journal;

beforeEach(() => {
  ({ work, host, journal } = world);
});

function uplink(o: { code?: boolean; config?: Partial<UplinkConfigInput> } = {}): Uplink {
  return world.uplink({ enrolmentCode: o.code === false ? null : undefined, config: o.config });
}

/** Every transaction row of the journal, by reader sequence, must be applied exactly once. */
function expectExactlyOnce(seqs: number[]): { lost: number; appliedTwice: number } {
  const keys = seqs.map((s) => `${TERMINAL}/${s}`);
  const lost = keys.filter((k) => !host.applied.has(k)).length;
  const appliedTwice = [...host.applied.values()].filter((n) => n > 1).length + (host.applied.size - new Set(host.appliedOrder).size);
  const strangers = [...host.applied.keys()].filter((k) => !keys.includes(k));
  expect(strangers).toEqual([]);
  expect(lost).toBe(0);
  expect(appliedTwice).toBe(0);
  expect(journal.outboundCount()).toBe(0);
  return { lost, appliedTwice };
}

describe('forwarder', () => {
  it('sends the outbox in order, each record once, and empties it', async () => {
    const seqs = fillPurchases(journal, 150, { failEvery: 7 });
    const u = uplink();
    const stats = await u.forward({ untilEmpty: true });
    expectExactlyOnce(seqs);
    expect(host.appliedOrder).toEqual(seqs.map((s) => `${TERMINAL}/${s}`));
    expect(host.received.every((r) => r.mti === '0220')).toBe(true);
    expect(host.badCertificates).toBe(0);
    expect(stats).toMatchObject({ delivered: 150, duplicates: 0, refused: 0, repeats: 0, deferred: 0 });
    for (const e of journal.outbox({ limit: 1000 })) expect(e.hostReference).toBe('0230 00');
    // The send notes are pruned once everything is acknowledged.
    expect(u.store.sendCount(journal.outbox({ limit: 1 })[0].id)).toBe(0);
  });

  it('keeps the order with a window of 4 on one connection', async () => {
    const seqs = fillPurchases(journal, 120);
    const u = uplink();
    await u.forward({ untilEmpty: true, window: 4 });
    expectExactlyOnce(seqs);
    expect(host.appliedOrder).toEqual(seqs.map((s) => `${TERMINAL}/${s}`));
    expect(host.connections).toBe(1);
  });

  it('an answer lost after the host applied the record: sent again as 0221, answered 94, marked sent', async () => {
    const seqs = fillPurchases(journal, 10);
    const lostAt = `${TERMINAL}/${seqs[3]}`;
    let faulted = false;
    host.hooks.advice = (_a, key) => {
      if (key === lostAt && !faulted) {
        faulted = true;
        return 'close-after-commit';
      }
      return undefined;
    };
    const u = uplink();
    const stats = await u.forward({ untilEmpty: true });
    expectExactlyOnce(seqs);
    expect(host.received.filter((r) => r.key === lostAt).map((r) => r.mti)).toEqual(['0220', '0221']);
    expect(host.duplicates).toBe(1);
    expect(stats).toMatchObject({ delivered: 9, duplicates: 1, repeats: 1, deferred: 1 });
    expect(journal.outbox({ limit: 100 }).find((e) => e.key === `txn/${lostAt}`)?.hostReference).toBe('0230 94');
  });

  it('no answer at all (timeout): deferred, repeated as 0221, applied once', async () => {
    const seqs = fillPurchases(journal, 5);
    const silentAt = `${TERMINAL}/${seqs[1]}`;
    let silent = true;
    host.hooks.advice = (_a, key) => {
      if (key === silentAt && silent) {
        silent = false;
        return 'no-answer';
      }
      return undefined;
    };
    const u = uplink({ config: { requestTimeoutMs: 300 } });
    await u.forward({ untilEmpty: true });
    expectExactlyOnce(seqs);
    expect(host.received.filter((r) => r.key === silentAt).map((r) => r.mti)).toEqual(['0220', '0221']);
  });

  it('host down: retries with growing backoff, delivers everything once it is back', async () => {
    const seqs = fillPurchases(journal, 30);
    const port = host.port;
    await host.stop();
    const events: ForwarderEvent[] = [];
    const u = uplink({ config: { backoff: { baseMs: 20, maxMs: 160, jitter: 0 } } });
    const run = u.forward({ untilEmpty: true, log: (e) => events.push(e), idlePollMs: 20 });
    await new Promise((r) => setTimeout(r, 700));
    const head = journal.outbox({ waitingOnly: true, limit: 1 })[0];
    expect(head.attempts).toBeGreaterThanOrEqual(3);
    expect(head.lastError).toMatch(/CHANNEL_CLOSED|TIMEOUT/);
    const deferrals = events.filter((e): e is Extract<ForwarderEvent, { kind: 'deferred' }> => e.kind === 'deferred');
    // The n-th retry comes no sooner than the policy's delay for n after the one before: 20, 40, 80, 160, 160...
    const policy = backoffPolicy({ baseMs: 20, maxMs: 160, jitter: 0 });
    expect(deferrals.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < deferrals.length; i++) {
      const gap = deferrals[i].untilMs - deferrals[i - 1].untilMs;
      expect(gap).toBeGreaterThanOrEqual(backoffDelay(policy, i));
      expect(gap).toBeLessThan(backoffDelay(policy, i) + 150);
    }
    expect(host.applied.size).toBe(0);
    await host.listen(port);
    const stats = await run;
    expectExactlyOnce(seqs);
    expect(host.appliedOrder).toEqual(seqs.map((s) => `${TERMINAL}/${s}`));
    expect(stats.sessionFailures).toBeGreaterThanOrEqual(3);
  });

  it('network cut mid-upload, several times: nothing lost, nothing applied twice', async () => {
    const seqs = fillPurchases(journal, 200);
    const cutAfter = new Set([17, 60, 61, 140]);
    let count = 0;
    host.hooks.advice = () => {
      count++;
      if (cutAfter.has(count)) setImmediate(() => host.cutConnections());
      return undefined;
    };
    const u = uplink();
    const stats = await u.forward({ untilEmpty: true, window: 2 });
    expectExactlyOnce(seqs);
    expect(host.connections).toBeGreaterThanOrEqual(4);
    expect(stats.delivered + stats.duplicates).toBe(200);
  });

  it('stops cleanly on abort, and a later run goes on where it stopped', async () => {
    const seqs = fillPurchases(journal, 100);
    const abort = new AbortController();
    let n = 0;
    host.hooks.advice = () => {
      if (++n === 40) abort.abort();
      return undefined;
    };
    const u = uplink();
    await u.forward({ signal: abort.signal });
    const left = journal.outboundCount();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(100);
    expect(host.applied.size).toBe(100 - left);
    host.hooks.advice = undefined;
    await u.forward({ untilEmpty: true });
    expectExactlyOnce(seqs);
  });

  it('a retry code (96) defers, a final refusal (12) is recorded as refused', async () => {
    const seqs = fillPurchases(journal, 4);
    const answers = new Map<string, string[]>([
      [`${TERMINAL}/${seqs[0]}`, [RC.systemMalfunction, RC.systemMalfunction]],
      [`${TERMINAL}/${seqs[2]}`, [RC.invalidTransaction]],
    ]);
    host.hooks.advice = (_a, key) => answers.get(key)?.shift() as never;
    const u = uplink();
    const stats = await u.forward({ untilEmpty: true });
    expect(stats).toMatchObject({ delivered: 3, refused: 1, deferred: 2 });
    const byKey = new Map(journal.outbox({ limit: 10 }).map((e) => [e.key, e]));
    expect(byKey.get(`txn/${TERMINAL}/${seqs[0]}`)).toMatchObject({ hostReference: '0230 00', attempts: 2 });
    expect(byKey.get(`txn/${TERMINAL}/${seqs[2]}`)?.hostReference).toBe('0230 12 refused');
    expect(host.applied.has(`${TERMINAL}/${seqs[2]}`)).toBe(false);
  });

  it('anomaly records go to the host as 0620, in their place in the queue, once each', async () => {
    const first = fillPurchases(journal, 2);
    const a = journal.recordAnomaly({ kind: 'gap', cardSerial: cardSerial(3), counter: 9, lastCounter: 4, details: { missingCount: 4 } });
    const second = fillPurchases(journal, 2, { seed: 99 });
    const u = uplink();
    const stats = await u.forward({ untilEmpty: true });
    expect(stats).toMatchObject({ delivered: 5, anomalies: 1, duplicates: 0 });
    expect(journal.outbox({ limit: 10 }).find((e) => e.record.kind === 'anomaly')?.hostReference).toBe('0630 00');
    expectExactlyOnce([...first, ...second]);
    const key = `${TERMINAL}/${a.id}`;
    expect([...host.reports]).toEqual([[key, 1]]);
    expect(host.arrivals).toEqual([...first.map((s) => `txn/${TERMINAL}/${s}`), `anomaly/${key}`, ...second.map((s) => `txn/${TERMINAL}/${s}`)]);
    expect(host.reportsReceived[0].report).toMatchObject({ kind: 'gap', cardCounter: 9, lastCounter: 4, details: { missingCount: 4 }, repeat: false });
  });

  it('a record the message set cannot carry stops the forwarder and stays queued', async () => {
    fillPurchases(journal, 2);
    const { id } = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: cardSerial(1), cardCounter: 99, amount: 100, currency: 'JPY' });
    journal.complete(id, { cardCounter: 100, certificate: new Uint8Array(8), balanceAfter: 1 }); // not a 16-byte purse certificate
    fillPurchases(journal, 2, { seed: 3 });
    const u = uplink();
    const error = await u.forward({ untilEmpty: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UplinkError);
    expect((error as UplinkError).reason).toBe('unsendable');
    expect(host.applied.size).toBe(2);
    expect(journal.outboundCount()).toBe(3);
  });

  it('a blocked reader is refused at the next message: the forwarder stops, the outbox stays', async () => {
    const seqs = fillPurchases(journal, 20);
    let n = 0;
    host.hooks.advice = () => {
      if (++n === 5) host.block(TERMINAL, READER);
      return undefined;
    };
    const u = uplink();
    const error = await u.forward({ untilEmpty: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReaderRefusedError);
    expect((error as ReaderRefusedError).reason).toBe('blocked');
    expect(host.applied.size).toBe(5);
    expect(journal.outboundCount()).toBe(15);
    expect(host.appliedOrder).toEqual(seqs.slice(0, 5).map((s) => `${TERMINAL}/${s}`));
  });

  it('refuses a journal of another terminal', async () => {
    const other = openJournal(join(work.dir, 'other.db'), 'TOTHER01', READER);
    try {
      expect(() => openUplink(other, host.port)).toThrow(UplinkError);
    } finally {
      other.close();
    }
  });
});
