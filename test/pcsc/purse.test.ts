/**
 * The e-money purse end to end through the real PC/SC stack: pcscd with the vsmartcard vpcd driver,
 * `hilt emulator --purse --cards 2 --balance …` as two issued purse cards in the harness's two vpcd
 * readers, and `hilt pay` / `hilt load` / `hilt balance` / `hilt journal` through PcscChannel with
 * `--reader <reader name>`: purchases on both cards, balances, the card logs, the journal, the APDU
 * trace of one purchase (SCP03-wrapped READ STATUS and DEBIT on the wire), and a load authorized by
 * the real mock hosts on loopback (0200, LOAD, the advices delivered).
 *
 * Assumes registerPay, registerLoad and registerBalance are listed in src/cli/commands/index.ts.
 * Skipped, with the reason in its title, where the PC/SC stack is not installed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureIo, ensurePcscd, pcscStackMissing, runHilt, stopPcscd, waitForCardState, type CliResult, type PcscdInstance } from '../helpers/pcscd.js';
import type { PayReport } from '../../src/cli/commands/pay.js';
import type { BalanceReport } from '../../src/cli/commands/balance.js';
import type { LoadReport } from '../../src/cli/commands/load.js';
import { adminGet, countOnHost, issueCode, startHosts } from '../hostlink/uplink/real-hosts.js';
import { Journal } from '../../src/terminal/journal/index.js';

const SKIP = pcscStackMissing();

describe.skipIf(SKIP !== null)(`e-money purse through pcscd + vpcd + \`hilt emulator --purse\`${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: PcscdInstance;
  const dir = mkdtempSync(join(tmpdir(), 'hilt-purse-pcsc-'));
  const db = join(dir, 'terminal.db');
  const stop = new AbortController();
  const emulatorIo = captureIo();
  let emulator: Promise<CliResult>;

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    emulator = runHilt(
      ['emulator', '--purse', '--cards', '2', '--balance', '10000', '--vpcd', `127.0.0.1:${pcscd.ports[0]}`, '--image', join(dir, 'card.img')],
      { signal: stop.signal, input: new PassThrough() },
      emulatorIo,
    );
    await waitForCardState(pcscd.readers[0], true);
    await waitForCardState(pcscd.readers[1], true);
  });

  afterAll(async () => {
    stop.abort();
    const r = await emulator;
    if (pcscd) {
      await waitForCardState(pcscd.readers[0], false);
      await waitForCardState(pcscd.readers[1], false);
    }
    await stopPcscd();
    rmSync(dir, { recursive: true, force: true });
    expect(r.code, r.err).toBe(0);
  });

  const pay = (reader: string, amount: string, ...more: string[]) => runHilt(['pay', amount, '--reader', reader, '--db', db, ...more]);
  const balance = async (reader: string): Promise<BalanceReport> => {
    const r = await runHilt(['balance', '--reader', reader, '--json']);
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out) as BalanceReport;
  };

  it('the emulator issued two purse cards, each with its own serial and image', () => {
    const out = emulatorIo.outText();
    expect(out).toMatch(/card 0: e-money purse issued now .*balance JPY 10,000, counter 1/);
    expect(out).toMatch(/card 1: e-money purse issued now .*balance JPY 10,000, counter 1/);
    expect(out).toContain('card-0.img');
    expect(out).toContain('card-1.img');
  });

  it('purchases, balance and log on the first card', async () => {
    const reader = pcscd.readers[0];
    const first = await pay(reader, '1250');
    expect(first.code, first.err).toBe(0);
    expect(first.out).toContain(`reader ${reader} (pcsc`);
    expect(first.out).toMatch(/amount\s+JPY 1,250/);
    expect(first.out).toMatch(/balance after\s+JPY 8,750/);
    const second = await pay(reader, '500', '--json');
    expect(second.code, second.err).toBe(0);
    const report = JSON.parse(second.out) as PayReport;
    expect(report.receipt).toMatchObject({ readerSeq: 2, cardSerial: '48494C5400000001', counter: 3, amount: 500, balanceAfter: 8250 });

    const b = await balance(reader);
    expect(b).toMatchObject({ serial: '48494C5400000001', counter: 3, balance: 8250, currency: 'JPY', maxBalance: 100_000, maxPerTransaction: 50_000 });
    expect(b.log.map((e) => [e.counter, e.type, e.amount, e.terminalId, e.terminalSequence, e.balanceAfter])).toEqual([
      [3, 'debit', 500, 'TERM0001', 2, 8250],
      [2, 'debit', 1250, 'TERM0001', 1, 8750],
      [1, 'load', 10_000, 'BUREAU01', 1, 10_000],
    ]);
    expect(b.log[0].certificate).toBe(report.receipt.certificate as unknown as string);
  });

  it('the second card is another purse: its own counter, and one journal for the reader', async () => {
    const reader = pcscd.readers[1];
    const r = await pay(reader, '3000', '--json');
    expect(r.code, r.err).toBe(0);
    expect((JSON.parse(r.out) as PayReport).receipt).toMatchObject({ readerSeq: 3, cardSerial: '48494C5400000002', counter: 2, balanceAfter: 7000 });
    expect((await balance(reader)).balance).toBe(7000);
    expect((await balance(pcscd.readers[0])).balance).toBe(8250);
    const j = await runHilt(['journal', '--db', db, '--json']);
    const rows = (JSON.parse(j.out) as { rows: { status: string; readerSeq: number; cardSerial: string }[] }).rows;
    expect(rows.map((x) => [x.readerSeq, x.status, x.cardSerial])).toEqual([
      [3, 'complete', '48494C5400000002'],
      [2, 'complete', '48494C5400000001'],
      [1, 'complete', '48494C5400000001'],
    ]);
  });

  it('--trace: the purchase on the wire, protected from READ STATUS on', async () => {
    const io = captureIo();
    const r = await runHilt(['pay', '10', '--reader', pcscd.readers[0], '--db', db, '--trace'], {}, io);
    expect(r.code, r.err).toBe(0);
    const sent = io
      .errText()
      .split('\n')
      .filter((l) => / > /.test(l))
      .map((l) => / > ([0-9A-F]{4})/.exec(l)?.[1]);
    expect(sent).toEqual(['00A4', '8050', '8482', '84B4', '8454']);
  });

  it('a refusal through pcscd: one line, exit 1, the balance unchanged', async () => {
    const r = await pay(pcscd.readers[0], '9000');
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err.split('\n').filter((l) => l.startsWith('hilt: refused'))).toEqual([expect.stringMatching(/DEBIT answered 9401 amount above the balance/)]);
    expect((await balance(pcscd.readers[0])).balance).toBe(8240);
  });

  it('a load through pcscd, authorized by the mock issuer; the advices of the reader reach it once', async () => {
    const hosts = await startHosts({ dir: join(dir, 'hosts') });
    try {
      const code = await issueCode(hosts, 'TERM0001', 'R-01');
      const io = captureIo();
      const gateway = `127.0.0.1:${hosts.gatewayPort}`;
      const r = await runHilt(['load', '2000', '--reader', pcscd.readers[1], '--db', db, '--gateway', gateway, '--enrol-code', code, '--json', '--trace'], {}, io);
      expect(r.code, r.err).toBe(0);
      const report = JSON.parse(r.out) as LoadReport;
      expect(report.receipt).toMatchObject({ cardSerial: '48494C5400000002', counter: 3, amount: 2000, balanceBefore: 7000, balanceAfter: 9000 });
      expect(report.advice).toBe('delivered');
      const sent = io
        .errText()
        .split('\n')
        .filter((l) => / > /.test(l))
        .map((l) => / > ([0-9A-F]{4})/.exec(l)?.[1]);
      expect(sent).toEqual(['00A4', '8050', '8482', '84B4', '8452']);
      expect((await balance(pcscd.readers[1])).balance).toBe(9000);
      expect(await adminGet(hosts, '/cards/48494C5400000002')).toMatchObject({ balance: 9000, lastCounter: 3 });
      const journal = Journal.open(db, { readonly: true });
      try {
        expect(await countOnHost(hosts, journal)).toMatchObject({ lost: 0, appliedTwice: 0 });
      } finally {
        journal.close();
      }
    } finally {
      await hosts.close();
    }
  });
});
