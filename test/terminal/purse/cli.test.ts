/**
 * `hilt emulator --purse`, `hilt pay` and `hilt balance` through the CLI entry (src/cli/main.ts), the
 * emulator's purse card plugged into hilt's own vpcd reader on a loopback port (`--reader vpcd://`),
 * so no pcscd is needed (test/pcsc/purse.test.ts runs the same through pcscd). Assumes registerPay
 * and registerBalance are listed in src/cli/commands/index.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PayReport } from '../../../src/cli/commands/pay.js';
import type { BalanceReport } from '../../../src/cli/commands/balance.js';
import { tempDir } from './helpers.js';
import { freePort, hilt, startEmulator } from './cli-helpers.js';

describe('hilt emulator --purse / pay / balance over vpcd://', () => {
  const tmp = tempDir('hilt-purse-cli-');
  const db = join(tmp.dir, 'journal', 'terminal.db');
  const image = join(tmp.dir, 'card.img');
  let port: number;
  let reader: string;
  let emulator: Awaited<ReturnType<typeof startEmulator>>;

  beforeAll(async () => {
    port = await freePort();
    reader = `vpcd://127.0.0.1:${port}`;
    emulator = await startEmulator(['--purse', '--balance', '5000', '--vpcd', `127.0.0.1:${port}`, '--image', image]);
  });
  afterAll(async () => {
    const r = await emulator.stop();
    expect(r.code, r.err.join('\n')).toBe(0);
    tmp.remove();
  });

  it('the emulator issued the purse and loaded it', () => {
    expect(emulator.lines.join('\n')).toMatch(/card 0: e-money purse issued now \(purse key KCV [0-9A-F]{6}\), balance JPY 5,000, counter 1, loaded JPY 5,000/);
  });

  it('hilt pay: one purchase, a receipt', async () => {
    const r = await hilt(['pay', '1250', '--reader', reader, '--db', db]);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out).toContain('=== e-money purchase: RECEIPT ===');
    expect(r.out).toMatch(/terminal\s+TERM0001 \(reader R-01\)/);
    expect(r.out).toMatch(/reader seq\s+1\n/);
    expect(r.out).toMatch(/card\s+48494C5400000001/);
    expect(r.out).toMatch(/card counter\s+2/);
    expect(r.out).toMatch(/amount\s+JPY 1,250/);
    expect(r.out).toMatch(/balance after\s+JPY 3,750/);
    expect(r.out).toMatch(/certificate\s+[0-9A-F]{32}/);
    expect(existsSync(db)).toBe(true);
    expect(r.err.join('\n')).toContain('TEST KEYS');
  });

  it('hilt pay --json, then hilt balance --json shows balance, counter and the card log', async () => {
    const p = await hilt(['pay', '300', '--reader', reader, '--db', db, '--json']);
    expect(p.code, p.err.join('\n')).toBe(0);
    const pay = JSON.parse(p.out) as PayReport;
    expect(pay.receipt).toMatchObject({ readerSeq: 2, counter: 3, amount: 300, balanceAfter: 3450, currency: 'JPY' });
    expect(pay.recovered).toEqual([]);
    const b = await hilt(['balance', '--reader', reader, '--json']);
    expect(b.code, b.err.join('\n')).toBe(0);
    const bal = JSON.parse(b.out) as BalanceReport;
    expect(bal).toMatchObject({ serial: '48494C5400000001', lifeCycle: 'active', counter: 3, balance: 3450, currency: 'JPY', balanceText: 'JPY 3,450' });
    expect(bal.log.map((e) => [e.counter, e.type, e.amount, e.terminalId, e.terminalSequence])).toEqual([
      [3, 'debit', 300, 'TERM0001', 2],
      [2, 'debit', 1250, 'TERM0001', 1],
      [1, 'load', 5000, 'BUREAU01', 1],
    ]);
    expect(bal.log[0].certificate).toBe(pay.receipt.certificate as unknown as string);
  });

  it('hilt balance for people: a table of the log', async () => {
    const r = await hilt(['balance', '--reader', reader]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/balance\s+JPY 3,450/);
    expect(r.out).toMatch(/3\s+debit\s+JPY 300\s+JPY 3,450\s+TERM0001\s+2/);
  });

  it('refusals: one line, exit code 1, nothing charged', async () => {
    const pay = async (amount: string) => {
      const r = await hilt(['pay', amount, '--reader', reader, '--db', db]);
      return { code: r.code, out: r.out, lines: r.err.filter((l) => !l.includes('TEST KEYS')) };
    };
    expect(await pay('0')).toEqual({ code: 1, out: '', lines: [expect.stringMatching(/^hilt: refused \(amount\): amount 0/)] });
    // the terminal's default maximum per transaction is JPY 50,000
    expect(await pay('60000')).toEqual({
      code: 1,
      out: '',
      lines: [expect.stringMatching(/^hilt: refused \(limit-per-transaction\): JPY 60,000 is above the maximum per transaction JPY 50,000/)],
    });
    // the card refuses what it cannot pay
    expect(await pay('30000')).toEqual({ code: 1, out: '', lines: [expect.stringMatching(/^hilt: refused by the card: DEBIT answered 9401 amount above the balance/)] });
    // a malformed amount is a usage error
    expect(await pay('12.5')).toEqual({ code: 2, out: '', lines: [expect.stringMatching(/^hilt: amount: JPY has 0 decimal place\(s\)/)] });

    const b = await hilt(['balance', '--reader', reader, '--json']);
    expect((JSON.parse(b.out) as BalanceReport).balance).toBe(3450);
    const j = await hilt(['journal', '--db', db, '--json']);
    const rows = (JSON.parse(j.out) as { rows: { status: string; amount: number }[] }).rows;
    expect(rows.map((x) => [x.status, x.amount])).toEqual([
      ['failed', 30000],
      ['failed', 60000],
      ['complete', 300],
      ['complete', 1250],
    ]);
  });

  it('restarted on the same image, the emulator keeps the issued purse as it is', async () => {
    const r = await emulator.stop();
    expect(r.code).toBe(0);
    emulator = await startEmulator(['--purse', '--balance', '5000', '--vpcd', `127.0.0.1:${port}`, '--image', image]);
    expect(emulator.lines.join('\n')).toMatch(/card 0: e-money purse already issued on its image, balance JPY 3,450, counter 3/);
    const p = await hilt(['pay', '50', '--reader', reader, '--db', db]);
    expect(p.code, p.err.join('\n')).toBe(0);
    expect(p.out).toMatch(/reader seq\s+5\n/);
  });

  it('option errors of the emulator', async () => {
    const r = await hilt(['emulator', '--balance', '10', '--vpcd', `127.0.0.1:${port}`]);
    expect(r.code).toBe(2);
    expect(r.err.at(-1)).toBe('hilt: --balance needs --purse');
    const over = await hilt(['emulator', '--purse', '--balance', '200000', '--vpcd', `127.0.0.1:${port}`]);
    expect(over.code).toBe(2);
    expect(over.err.at(-1)).toMatch(/--balance 200000 is above --max-balance 100000/);
  });
});
