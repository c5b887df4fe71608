/**
 * The hosts' storage is durable: close and start again on the same folder, and everything is as it
 * was (readers, keys, sessions, advices, shadow balances, anomalies, negative card file, blocked
 * readers, key versions), and a resent advice is still a duplicate. And an advice the issuer
 * acknowledged survives the host process being killed (SIGKILL) right after the answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RC, echoRequest, keyChangeRequest, loadAuthorizationRequest, negativeListRequest, parseLoadAuthorizationResponse, parseNegativeListResponse, parseNetworkResponse } from '../../src/hostlink/messages.js';
import { unwrapKey } from '../../src/hostlink/iso8583/mac.js';
import { testTerminalKek } from '../../src/hostlink/test-keys.js';
import { toHex } from '../../src/util/bytes.js';
import { JPY, LOCAL, SERIAL, adminGet, adminPost, completedAdvice, enrolledTerminal, startTestHosts, TestTerminal, type TestHosts } from './helpers.js';

const dirs: string[] = [];
const open: TestHosts[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hilt-hosts-durable-'));
  dirs.push(d);
  return d;
}

async function start(dir: string): Promise<TestHosts> {
  const h = await startTestHosts({ dir });
  open.push(h);
  return h;
}

describe('close and start again', () => {
  it('keeps everything, and a resent advice is still a duplicate', async () => {
    const dir = tempDir();
    let h = await start(dir);
    const t = await enrolledTerminal(h, 'TERM0001', 'READER01');
    const auth = parseLoadAuthorizationResponse(
      await t.request(loadAuthorizationRequest(t.header(1), { serial: SERIAL, amount: { minor: 4000, currency: JPY }, cardCounter: 0, dateTime: LOCAL })),
    );
    expect(auth.responseCode).toBe(RC.approved);
    expect((await t.request(completedAdvice(t, { stan: 1, kind: 'load', counter: 1, amount: 4000, balanceAfter: 4000 }))).responseCode()).toBe(RC.approved);
    expect((await t.request(completedAdvice(t, { stan: 3, counter: 2, amount: 500, balanceAfter: 3500 }))).responseCode()).toBe(RC.approved); // reader gap: 2
    await adminPost(h, '/negative-cards', { add: [{ serial: 'AB01', reason: 'lost' }] });
    const other = await enrolledTerminal(h, 'TERM0002', 'READER02');
    await adminPost(h, '/readers/READER02/block', { reason: 'stolen' });
    const kc = parseNetworkResponse(await t.request(keyChangeRequest(t.header(t.nextStan()))));
    const key2 = unwrapKey(testTerminalKek('TERM0001'), kc.keyChange!.key.wrapped, kc.keyChange!.key.kcv);
    await Promise.all([t.close(), other.close()]);
    const readersBefore = (await adminGet(h, '/readers')).body;
    const anomaliesBefore = (await adminGet(h, '/anomalies')).body;
    await h.close();

    h = await start(dir);
    expect((await adminGet(h, '/readers')).body).toEqual(readersBefore);
    expect((await adminGet(h, '/anomalies')).body).toEqual(anomaliesBefore);
    expect((await adminGet<{ anomalies: { kind: string }[] }>(h, '/anomalies')).body.anomalies.map((a) => a.kind)).toEqual(['reader-gap']);
    expect((await adminGet(h, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 3500, lastCounter: 2, records: 2 });
    expect((await adminGet(h, '/negative-cards')).body).toMatchObject({ version: 1, cards: [{ serial: 'AB01', reason: 'lost' }] });
    expect(h.registry.keyVersions('TERM0001')).toEqual({ current: 1, pending: 2 });

    // The session survived; the key change too: the terminal moves to version 2.
    const t2 = await TestTerminal.connect(h, 'TERM0001', 'READER01', new Map([[2, key2]]));
    t2.keyVersion = 2;
    expect((await t2.request(echoRequest(t2.header(t2.nextStan())))).responseCode()).toBe(RC.approved);
    expect((await t2.request(completedAdvice(t2, { stan: 3, counter: 2, amount: 500, balanceAfter: 3500, repeat: true }))).responseCode()).toBe(RC.duplicate);
    const again = parseLoadAuthorizationResponse(
      await t2.request(loadAuthorizationRequest(t2.header(1), { serial: SERIAL, amount: { minor: 4000, currency: JPY }, cardCounter: 0, dateTime: LOCAL })),
    );
    expect(again.loadCryptogram).toEqual(auth.loadCryptogram);
    expect(parseNegativeListResponse(await t2.request(negativeListRequest(t2.header(t2.nextStan()), { version: 0, chunk: 0 }))).update?.toVersion).toBe(1);
    const blocked = await TestTerminal.connect(h, 'TERM0002', 'READER02');
    expect((await blocked.request(echoRequest(blocked.header(1)))).responseCode()).toBe(RC.blockedReader);
    expect((await adminGet<{ records: number }>(h, `/cards/${toHex(SERIAL)}`)).body.records).toBe(2);
    await Promise.all([t2.close(), blocked.close()]);
  });

  it('refuses a folder whose files belong to something else', async () => {
    const dir = tempDir();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'issuer.sqlite'), 'not a database at all, just text that is long enough to be looked at');
    await expect(startTestHosts({ dir })).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
  });
});

describe('a crash right after the answer', () => {
  it('an acknowledged advice is on disk after SIGKILL of the host process', async () => {
    const dir = tempDir();
    const child = spawn(join('node_modules', '.bin', 'vite-node'), [join('test', 'hosts', 'fixtures', 'run-hosts.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout! });
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`host process exited with ${code}`)));
        setTimeout(() => reject(new Error('host process did not start')), 20_000);
      });
      const info = JSON.parse(line) as { gatewayPort: number; adminUrl: string; host: string };
      const remote = info;
      const code = (await adminPost<{ code: string }>(remote, '/readers', { terminalId: 'TK', readerId: 'RK' })).body.code;
      const t = await TestTerminal.connect(remote, 'TK', 'RK');
      expect(await t.enrol(code)).toBe(RC.approved);
      const answers = [];
      for (let s = 1; s <= 20; s++) answers.push((await t.request(completedAdvice(t, { stan: s, counter: s, amount: 10, balanceAfter: 1000 - 10 * s }))).responseCode());
      expect(answers.every((rc) => rc === RC.approved)).toBe(true);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      await t.close();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    const h = await start(dir);
    expect((await adminGet(h, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 800, lastCounter: 20, records: 20 });
    expect((await adminGet<{ readers: { status: string }[] }>(h, '/readers')).body.readers[0].status).toBe('enrolled');
  }, 60_000);
});
