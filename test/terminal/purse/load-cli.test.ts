/**
 * `hilt load` through the CLI entry: the emulator's purse card on hilt's own vpcd reader (loopback,
 * no pcscd), the real mock hosts (gateway, reader registry, issuer, admin API) on ephemeral ports.
 * A load with a receipt and its advice delivered (the issuer's shadow balance follows), --json, a
 * purchase after it, declines and refusals as one line, a gateway that is not there, usage errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type { LoadReport } from '../../../src/cli/commands/load.js';
import type { BalanceReport } from '../../../src/cli/commands/balance.js';
import { adminGet, adminPost, issueCode, startHosts, type RunningHosts } from '../../hostlink/uplink/real-hosts.js';
import { tempDir } from './helpers.js';
import { freePort, hilt, startEmulator } from './cli-helpers.js';
import { UPLINK_MAC_KEY_ENV } from '../../../src/cli/commands/uplink.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { toHex } from '../../../src/util/bytes.js';

const SERIAL = '48494C5400000001';

describe('hilt load', () => {
  const tmp = tempDir('hilt-load-cli-');
  const db = join(tmp.dir, 'journal', 'terminal.db');
  let hosts: RunningHosts;
  let emulator: Awaited<ReturnType<typeof startEmulator>>;
  let reader: string;
  let gateway: string;
  let code: string;
  const load = (amount: string, ...more: string[]) => hilt(['load', amount, '--reader', reader, '--db', db, '--gateway', gateway, ...more]);
  const lines = (err: string[]) => err.filter((l) => !l.includes('TEST KEYS'));
  /** 0200s the issuer has received from TERM0001 (its totals, field 81). */
  const authorizationsAtIssuer = async (): Promise<number> => {
    const t = await adminGet<{ totals: { totals: { authorizations: number } }[] }>(hosts, '/totals?terminalId=TERM0001');
    return t.totals.reduce((n, x) => n + x.totals.authorizations, 0);
  };

  beforeAll(async () => {
    hosts = await startHosts({ dir: join(tmp.dir, 'hosts') });
    gateway = `127.0.0.1:${hosts.gatewayPort}`;
    code = await issueCode(hosts, 'TERM0001', 'R-01');
    const port = await freePort();
    reader = `vpcd://127.0.0.1:${port}`;
    emulator = await startEmulator(['--purse', '--balance', '5000', '--vpcd', `127.0.0.1:${port}`, '--image', join(tmp.dir, 'card.img')]);
  });
  afterAll(async () => {
    const r = await emulator.stop();
    await hosts.close();
    tmp.remove();
    expect(r.code, r.err.join('\n')).toBe(0);
  });

  it('enrols the reader, loads, prints the receipt, and delivers the advice: the issuer shadows the balance', async () => {
    const r = await load('2000', '--enrol-code', code);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out).toContain('=== e-money load: RECEIPT ===');
    expect(r.out).toMatch(/terminal\s+TERM0001 \(reader R-01\)/);
    expect(r.out).toMatch(/reader seq\s+1\n/);
    expect(r.out).toMatch(new RegExp(`card\\s+${SERIAL}`));
    expect(r.out).toMatch(/card counter\s+2\n/);
    expect(r.out).toMatch(/amount loaded\s+JPY 2,000/);
    expect(r.out).toMatch(/balance before\s+JPY 5,000/);
    expect(r.out).toMatch(/balance after\s+JPY 7,000/);
    expect(r.out).toMatch(/issuer reference\s+\d{12}\n/);
    expect(r.out).toMatch(/authorization\s+\d{6}\n/);
    expect(r.out).toMatch(/certificate\s+[0-9A-F]{32}/);
    expect(r.out).toMatch(/journal row\s+1 \(complete, advice delivered to the issuer\)/);
    expect(r.err.join('\n')).toMatch(/TEST KEYS: terminal TERM0001's host MAC key and KEK/);
    expect(await adminGet(hosts, `/cards/${SERIAL}`)).toMatchObject({ balance: 7000, lastCounter: 2, records: 1 });
  });

  it('--json; a purchase after it; the card log holds both', async () => {
    const r = await load('1000', '--json');
    expect(r.code, r.err.join('\n')).toBe(0);
    const report = JSON.parse(r.out) as LoadReport;
    expect(report).toMatchObject({ gateway, advice: 'delivered', recovered: [] });
    expect(report.receipt).toMatchObject({ readerSeq: 2, counter: 3, amount: 1000, balanceBefore: 7000, balanceAfter: 8000, currency: 'JPY' });
    const p = await hilt(['pay', '500', '--reader', reader, '--db', db]);
    expect(p.code, p.err.join('\n')).toBe(0);
    const b = await hilt(['balance', '--reader', reader, '--json']);
    const bal = JSON.parse(b.out) as BalanceReport;
    expect(bal.balance).toBe(7500);
    expect(bal.log.slice(0, 3).map((e) => [e.type, e.amount, e.terminalId, e.terminalSequence])).toEqual([
      ['debit', 500, 'TERM0001', 3],
      ['load', 1000, 'TERM0001', 2],
      ['load', 2000, 'TERM0001', 1],
    ]);
    // The purchase's advice goes with the next load (or hilt uplink); --no-forward leaves this one queued.
    const q = await load('100', '--json', '--no-forward');
    expect(q.code, q.err.join('\n')).toBe(0);
    expect((JSON.parse(q.out) as LoadReport).advice).toBe('queued');
  });

  it('a card blocked at the host: refused by the terminal after the negative-list sync (no 0200); with --no-sync, declined by the issuer (14)', async () => {
    await adminPost(hosts, '/negative-cards', { add: [{ serial: SERIAL, reason: 'lost' }] });
    const d = await load('100', '--no-sync');
    expect({ code: d.code, out: d.out, lines: lines(d.err) }).toEqual({
      code: 1,
      out: '',
      lines: [expect.stringMatching(/^hilt: declined by the issuer: 14 .*\(journal row \d+, reader seq \d+: failed, nothing loaded\)$/)],
    });
    const authorizationsBefore = await authorizationsAtIssuer();
    const t = await load('100');
    expect({ code: t.code, out: t.out, lines: lines(t.err) }).toEqual({
      code: 1,
      out: '',
      lines: [expect.stringMatching(/^hilt: refused \(negative-file\): card 48494C5400000001 is on the negative card file \(lost, list version \d+\)/)],
    });
    expect(await authorizationsAtIssuer(), 'no 0200 for a card the terminal refused').toBe(authorizationsBefore);
    await adminPost(hosts, '/negative-cards', { remove: [SERIAL] });
    // The emulator's purse holds at most 100,000 (the sync has taken the card off the list again).
    const m = await load('99000');
    expect({ code: m.code, lines: lines(m.err) }).toEqual({ code: 1, lines: [expect.stringMatching(/^hilt: refused \(max-balance\): JPY 99,000 on top of the balance JPY 7,600/)] });
    const b = await hilt(['balance', '--reader', reader, '--json']);
    expect((JSON.parse(b.out) as BalanceReport).balance).toBe(7600);
  });

  it('no gateway there: one line, nothing loaded (with --no-sync: the row begun and failed)', async () => {
    const nobody = `127.0.0.1:${await freePort()}`;
    const r = await hilt(['load', '300', '--reader', reader, '--db', db, '--gateway', nobody, '--timeout', '500']);
    expect(r.code).toBe(1);
    expect(lines(r.err)).toEqual([expect.stringMatching(/^hilt: .*(ECONNREFUSED|connection refused|cannot connect)/i)]);
    const n = await hilt(['load', '300', '--reader', reader, '--db', db, '--gateway', nobody, '--timeout', '500', '--no-sync']);
    expect(n.code).toBe(1);
    expect(lines(n.err)).toEqual([expect.stringMatching(/^hilt: no load authorization from the issuer \(.*\): journal row \d+ \(reader seq \d+\) failed, nothing loaded$/)]);
    const b = await hilt(['balance', '--reader', reader, '--json']);
    expect((JSON.parse(b.out) as BalanceReport).balance).toBe(7600);
  });

  it("the host MAC key from $HILT_UPLINK_MAC_KEY, as hilt uplink takes it (no TEST line for it)", async () => {
    process.env[UPLINK_MAC_KEY_ENV] = toHex(testTerminalMacKey('TERM0001'));
    try {
      const r = await load('10', '--json');
      expect(r.code, r.err.join('\n')).toBe(0);
      expect((JSON.parse(r.out) as LoadReport).advice).toBe('delivered');
      expect(r.err.join('\n')).not.toMatch(/host MAC key/);
    } finally {
      delete process.env[UPLINK_MAC_KEY_ENV];
    }
  });

  it('the host keys from a key file (--uplink-keys, the format of hilt uplink --keys); an unreadable one is one line', async () => {
    const keysDir = tempDir('hilt-load-keys-');
    const file = join(keysDir.dir, 'uplink.keys');
    writeFileSync(file, `# terminal TERM0001\nmac = ${toHex(testTerminalMacKey('TERM0001'))}\nversion = 1\n`, { mode: 0o600 });
    const r = await load('10', '--json', '--uplink-keys', file);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect((JSON.parse(r.out) as LoadReport).advice).toBe('delivered');
    expect(r.err.join('\n')).not.toMatch(/host MAC key/);
    const wrong = await load('10', '--uplink-keys', `${file}.missing`);
    expect(wrong.code).toBe(2);
    expect(lines(wrong.err).at(-1)).toMatch(/^hilt: --uplink-keys: cannot read .*uplink\.keys\.missing \(ENOENT\)$/);
    keysDir.remove();
  });

  it('usage errors exit 2', async () => {
    const r = await load('12.5');
    expect(r.code).toBe(2);
    expect(lines(r.err)).toEqual([expect.stringMatching(/^hilt: amount: JPY has 0 decimal place\(s\)/)]);
    process.env[UPLINK_MAC_KEY_ENV] = '0011';
    try {
      const k = await load('10');
      expect(k.code).toBe(2);
      expect(lines(k.err).at(-1)).toMatch(/^hilt: environment \(HILT_UPLINK_MAC_KEY\): /);
    } finally {
      delete process.env[UPLINK_MAC_KEY_ENV];
    }
    const g = await load('10', '--gateway', 'nowhere');
    expect(g.code).toBe(2);
    expect(lines(g.err).at(-1)).toMatch(/--gateway: expected host:port/);
  });
});
