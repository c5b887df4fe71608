/**
 * The fault tests of store-and-forward, each over at least 1,000 transactions, each ending with a
 * count of what was lost and what was applied twice (both must be 0):
 *
 * (a) host restarted mid-upload: the forwarder uploads a journal of purchases while the host is
 *     closed and started again on the same files and port, several times, at random points;
 * (b) terminal SIGKILLed mid-upload: the forwarder runs in a child process (the real sources,
 *     transpiled; see test/terminal/journal/compile.ts), killed with SIGKILL at random points, round
 *     after round, and started again until the outbox is empty.
 *
 * What is counted, on the host's side: every reader sequence number of the journal must be applied
 * (lost = those that are not), and applied once (applied twice = applications beyond the first of a
 * key, plus keys the journal never had).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transpileTree, childEnv, REPO_ROOT } from '../../terminal/journal/compile.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { toHex } from '../../../src/util/bytes.js';
import { OFFSET_MINUTES, READER, TERMINAL, fillPurchases, openJournal, openUplink, tempDir } from './helpers.js';
import { countOnHost, issueCode, startHosts } from './real-hosts.js';
import { runAndKill, type ChildRun } from '../../helpers/kill-child.js';

const CHILD = fileURLToPath(new URL('./fixtures/forward-child.mjs', import.meta.url));
const HOSTS_CHILD = fileURLToPath(new URL('./fixtures/hosts-child.mjs', import.meta.url));
/** Bound of a hosts process starting (READY) or closing (CLOSED). */
const HOSTS_START_BOUND_MS = 20_000;
/** Transactions per fault test. */
const TRANSACTIONS = 1_000;
/** Bound of one child run (start, sign-on, upload until killed or done). */
const CHILD_RUN_BOUND_MS = 30_000;
/** Kills at most: past this the test fails (the forwarder would not be making progress). */
const MAX_KILLS = 200;
/** Host restarts in test (a), each at a random point of the upload. */
const RESTARTS = 12;

let work: { dir: string; remove(): void };
let build: { uplink: string; journal: string; hosts: string };

beforeAll(() => {
  work = tempDir('hilt-uplink-faults-');
  const out = join(work.dir, 'build');
  build = {
    uplink: transpileTree(join(REPO_ROOT, 'src/hostlink/uplink/index.ts'), out),
    journal: transpileTree(join(REPO_ROOT, 'src/terminal/journal/index.ts'), out),
    hosts: transpileTree(join(REPO_ROOT, 'src/hosts/index.ts'), out),
  };
  // ESM resolves bare imports (@noble/curves) from node_modules folders above the importing file,
  // not from NODE_PATH: give the build folder the repository's.
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
});
afterAll(() => work.remove());

/** xorshift32, seeded: the kill points are random but reproducible. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** Runs the forwarder child until it has acknowledged `killAfter` entries (then SIGKILL, after a random µs-scale delay), or until it is done. */
function runChild(dbPath: string, port: number, killAfter: number, extraDelayMs: number): Promise<ChildRun> {
  const args = [CHILD, build.uplink, build.journal, dbPath, String(port), TERMINAL, READER, toHex(testTerminalMacKey(TERMINAL)), String(OFFSET_MINUTES)];
  return runAndKill(args, {
    counts: (line) => line.startsWith('D '),
    killAfter,
    killDelayMs: extraDelayMs,
    bound: { ms: CHILD_RUN_BOUND_MS, message: (stderr) => `child run took more than ${CHILD_RUN_BOUND_MS} ms: ${stderr}` },
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface HostsProcess {
  port: number;
  adminUrl: string;
  /** SIGTERM: a graceful close (the issuer commits what it holds); SIGKILL: a crash. */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

/** The real mock hosts (startHosts) in a child process, on `dir` and `port` (0: any). */
function spawnHosts(dir: string, port: number): Promise<HostsProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HOSTS_CHILD, build.hosts, dir, String(port)], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the hosts did not start within ${HOSTS_START_BOUND_MS} ms: ${stderr}`));
    }, HOSTS_START_BOUND_MS);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr += c));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      out += c;
      const m = /^READY (\d+) (\S+)$/m.exec(out);
      if (m === null) return;
      clearTimeout(bound);
      resolve({
        port: Number(m[1]),
        adminUrl: m[2],
        stop: async (signal) => {
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), HOSTS_START_BOUND_MS);
          await exited;
          clearTimeout(timer);
          if (signal === 'SIGTERM' && child.exitCode !== 0) throw new Error(`the hosts did not close cleanly: ${stderr}`);
        },
      });
    });
    child.on('error', reject);
    void exited.then(() => {
      clearTimeout(bound);
      reject(new Error(`the hosts exited before READY: ${stderr}`));
    });
  });
}

describe('store-and-forward fault tests', () => {
  it(`host restarted mid-upload, ${TRANSACTIONS} transactions: lost 0, applied twice 0`, async () => {
    const hostDir = join(work.dir, 'restart', 'hosts');
    let hosts = await spawnHosts(hostDir, 0);
    const port = hosts.port;
    const journal = openJournal(join(work.dir, 'restart', 'terminal', 'journal.db'));
    try {
      fillPurchases(journal, TRANSACTIONS, { failEvery: 13, seed: 1987 });
      const uplink = openUplink(journal, port, { enrolmentCode: await issueCode(hosts, TERMINAL, READER) });
      const random = rng(0x8583);
      let finished = false;
      const forwarding = uplink.forward({ untilEmpty: true, idlePollMs: 20 }).finally(() => (finished = true));
      const restarts = { SIGTERM: 0, SIGKILL: 0 };
      let midUpload = 0;
      while (!finished && midUpload < RESTARTS) {
        await sleep(20 + random(200)); // the upload runs
        if (finished) break;
        const signal = random(2) === 0 ? 'SIGTERM' : 'SIGKILL';
        const waiting = journal.outboundCount();
        await hosts.stop(signal);
        restarts[signal]++;
        if (waiting > 0 && waiting < TRANSACTIONS) midUpload++;
        await sleep(random(150)); // the host is down
        hosts = await spawnHosts(hostDir, port);
      }
      const stats = await forwarding;
      await uplink.close();
      const count = await countOnHost(hosts, journal);
      console.info(
        `fault (a) host restarted mid-upload: ${count.expected} transactions, ${restarts.SIGTERM} graceful restarts + ${restarts.SIGKILL} host crashes (${midUpload} mid-upload), ` +
          `lost ${count.lost}, applied twice ${count.appliedTwice}; ${stats.duplicates} repeats answered 94, ${stats.deferred} deferrals, ${stats.sessionFailures} failed connects`,
      );
      expect(journal.outboundCount()).toBe(0);
      expect({ transactions: count.expected, advices: count.advices, midUpload, lost: count.lost, appliedTwice: count.appliedTwice, anomalies: count.anomalies }).toEqual({
        transactions: TRANSACTIONS,
        advices: TRANSACTIONS,
        midUpload: RESTARTS,
        lost: 0,
        appliedTwice: 0,
        anomalies: {},
      });
      expect(restarts.SIGTERM).toBeGreaterThan(0);
      expect(restarts.SIGKILL).toBeGreaterThan(0);
    } finally {
      journal.close();
      await hosts.stop('SIGTERM');
    }
  }, 600_000);

  it(`terminal SIGKILLed mid-upload, ${TRANSACTIONS} transactions: lost 0, applied twice 0`, async () => {
    const hosts = await startHosts({ dir: join(work.dir, 'kill', 'hosts') });
    const dbPath = join(work.dir, 'kill', 'terminal', 'journal.db');
    const journal = openJournal(dbPath);
    try {
      fillPurchases(journal, TRANSACTIONS, { failEvery: 11, seed: 2024 });
      // Put the reader into service once (enrolment with the operator's code), as an installer would.
      const installer = openUplink(journal, hosts.gatewayPort, { enrolmentCode: await issueCode(hosts, TERMINAL, READER) });
      await installer.connect();
      await installer.close();
      journal.close(); // the child owns the journal from here on

      const random = rng(0xc0ffee);
      let kills = 0;
      let acknowledgedBeforeKills = 0;
      let repeatsAnswered94 = 0;
      for (;;) {
        expect(kills).toBeLessThan(MAX_KILLS);
        const run = await runChild(dbPath, hosts.gatewayPort, 1 + random(60), random(4));
        repeatsAnswered94 += run.lines.filter((l) => l.startsWith('D ') && l.endsWith(' 94')).length;
        if (run.signal === 'SIGKILL') {
          kills++;
          acknowledgedBeforeKills += run.lines.filter((l) => l.startsWith('D ')).length;
          continue;
        }
        expect(run.code, run.stderr).toBe(0);
        expect(run.lines.at(-1)).toMatch(/^DONE /);
        break;
      }
      const check = openJournal(dbPath);
      try {
        expect(check.outboundCount()).toBe(0);
        const count = await countOnHost(hosts, check);
        console.info(
          `fault (b) terminal SIGKILLed mid-upload: ${count.expected} transactions, ${kills} kills, lost ${count.lost}, applied twice ${count.appliedTwice}; ` +
            `${repeatsAnswered94} repeats answered 94 (a kill between the host's commit and markSent)`,
        );
        expect({ transactions: count.expected, advices: count.advices, killsAtLeast10: kills >= 10, lost: count.lost, appliedTwice: count.appliedTwice, anomalies: count.anomalies }).toEqual({
          transactions: TRANSACTIONS,
          advices: TRANSACTIONS,
          killsAtLeast10: true,
          lost: 0,
          appliedTwice: 0,
          anomalies: {},
        });
        expect(acknowledgedBeforeKills).toBeLessThan(TRANSACTIONS); // the kills fell mid-upload
      } finally {
        check.close();
      }
    } finally {
      if (journal.isOpen) journal.close();
      await hosts.close();
    }
  }, 600_000);
});
