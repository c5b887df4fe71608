/**
 * `hilt uplink` end to end through the CLI entry (src/cli/main.ts) against the real mock hosts on
 * loopback: enrolment and sign-on, store-and-forward, the negative card file, reconciliation, a key
 * change that a later invocation (a new process's view: a new Uplink on the same files) keeps using,
 * and the one-line errors of user mistakes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { startHosts, type RunningHosts } from '../../src/hosts/index.js';
import { testTerminalKek, testTerminalMacKey } from '../../src/hostlink/test-keys.js';
import { toHex } from '../../src/util/bytes.js';
import { OFFSET_MINUTES, READER, TERMINAL, cardSerial, fillPurchases, openJournal, tempDir } from '../hostlink/uplink/helpers.js';
import { adminPost, issueCode } from '../hostlink/uplink/real-hosts.js';

interface Captured {
  code: number;
  out: string;
  err: string[];
}

let work: { dir: string; remove(): void };
let hosts: RunningHosts;
let db: string;

async function hilt(...args: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const capture: Output = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await run(['node', 'hilt', 'uplink', ...args], capture);
  return { code, out: out.join('\n'), err };
}

/** The common options for the test terminal. */
const at = (...more: string[]): string[] => [...more, '--journal', db, '--gateway', `127.0.0.1:${hosts.gatewayPort}`, '--utc-offset', String(OFFSET_MINUTES), '--timeout', '2000'];

function expectOneErrorLine(r: Captured, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.out).toBe('');
  const errors = r.err.filter((l) => !l.includes('TEST KEYS'));
  expect(errors).toHaveLength(1);
  expect(errors[0].trimEnd()).not.toContain('\n');
  expect(errors[0]).toMatch(/^hilt: /);
  expect(errors[0]).toMatch(pattern);
}

beforeAll(async () => {
  work = tempDir('hilt-cli-uplink-');
  hosts = await startHosts({ dir: join(work.dir, 'hosts') });
  db = join(work.dir, 'terminal', 'journal.db');
  const j = openJournal(db);
  fillPurchases(j, 8, { failEvery: 4 });
  j.close();
});

afterAll(async () => {
  await hosts.close();
  work.remove();
});

describe('hilt uplink', () => {
  it('signs on with an enrolment code, forwards, syncs, reconciles in balance, changes the key', async () => {
    const none = await hilt('sign-on', ...at());
    expectOneErrorLine(none, /Unknown reader.*enrol it/);

    const code = await issueCode(hosts, TERMINAL, READER);
    const signOn = await hilt('sign-on', '--enrol-code', code, '--json', ...at());
    expect(signOn.code).toBe(0);
    expect(JSON.parse(signOn.out)).toEqual({ terminalId: TERMINAL, readerId: READER, gateway: `127.0.0.1:${hosts.gatewayPort}`, signedOn: true, keyVersion: 1 });
    expect(signOn.err.join('\n')).toMatch(/TEST KEYS/);

    const fwd = await hilt('forward', '--json', ...at());
    expect(fwd.code).toBe(0);
    expect(JSON.parse(fwd.out)).toMatchObject({ delivered: 8, waiting: 0, pendingReversals: 0, reversals: { reversed: 0 } });

    await adminPost(hosts, '/negative-cards', { add: [{ serial: cardSerial(3), reason: 'stolen' }] });
    const sync = await hilt('sync', ...at());
    expect(sync.code).toBe(0);
    expect(sync.out).toMatch(/version 0 → 1 \(0 delta\(s\), 1 snapshot\(s\), 1 added/);

    const rec = await hilt('reconcile', ...at());
    expect(rec.code).toBe(0);
    expect(rec.out).toMatch(/reader sequences 1\.\.8: in-balance/);
    expect(rec.out).toMatch(/JPY: in balance \(00\)/);
    const recJson = JSON.parse((await hilt('reconcile', '--json', '--currency', 'JPY', ...at())).out);
    expect(recJson).toMatchObject({ status: 'in-balance', currencies: [{ currency: '392', inBalance: true, terminal: { purchases: { count: 6 } } }] });

    const kc = await hilt('key-change', '--json', ...at());
    expect(kc.code).toBe(0);
    expect(JSON.parse(kc.out)).toMatchObject({ fromVersion: 1, toVersion: 2, confirmed: true });
    const text = [kc.out, ...kc.err].join('\n').toUpperCase();
    expect(text).not.toContain(toHex(testTerminalMacKey(TERMINAL, 2)).toUpperCase());
    expect(text).not.toContain(toHex(testTerminalKek(TERMINAL)).toUpperCase());

    // A later invocation, still configured with the version-1 key, uses the stored version 2.
    const j = openJournal(db);
    fillPurchases(j, 3, { seed: 99 });
    j.close();
    const again = await hilt('sign-on', '--json', ...at());
    expect(JSON.parse(again.out)).toMatchObject({ keyVersion: 2 });
    expect(JSON.parse((await hilt('forward', '--json', ...at())).out)).toMatchObject({ delivered: 3, waiting: 0 });
    expect(hosts.registry.keyVersions(TERMINAL)).toEqual({ current: 2, pending: null });
  });

  it('takes the keys from a key file or the environment, and names the place of a bad one without its value', async () => {
    const file = join(work.dir, 'uplink-keys.txt');
    const mac = toHex(testTerminalMacKey(TERMINAL, 1));
    writeFileSync(file, `# terminal ${TERMINAL}\n[uplink]\nmac = ${mac}\nversion = 1\n`);
    const ok = await hilt('sign-on', '--keys', file, ...at());
    expect(ok.code).toBe(0);
    expect(ok.err.join('\n')).not.toMatch(/TEST KEYS/);

    writeFileSync(file, `mac = ${mac.slice(0, 30)}ZZ\n`);
    const bad = await hilt('sign-on', '--keys', file, ...at());
    expectOneErrorLine(bad, /uplink-keys\.txt:1: mac: not hex/);
    expect(bad.err[0]).not.toContain(mac.slice(0, 30));

    process.env.HILT_UPLINK_MAC_KEY = '00112233';
    try {
      expectOneErrorLine(await hilt('sync', ...at()), /HILT_UPLINK_MAC_KEY.*16, 24 or 32 bytes/);
    } finally {
      delete process.env.HILT_UPLINK_MAC_KEY;
    }
  });

  it('user mistakes are one line and a non-zero exit', async () => {
    expectOneErrorLine(await hilt('sync', '--journal', join(work.dir, 'nope.db')), /no terminal journal at/);
    expectOneErrorLine(await hilt('sync', ...at('--gateway', 'nowhere')), /--gateway: expected host:port/);
    expectOneErrorLine(await hilt('sync', ...at(), '--terminal', 'OTHER'), /belongs to TUP00001\/RDR-01, not OTHER\/RDR-01/);
    const closed = await hilt('sync', '--journal', db, '--gateway', '127.0.0.1:1', '--timeout', '500');
    expectOneErrorLine(closed, /ECONNREFUSED|connect|refused/i);
    expectOneErrorLine(await hilt('reconcile', ...at('--first', '0')), /--first: expected an integer from 1/);
  });
});
