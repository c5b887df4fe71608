/**
 * The gateway with providers assembled by hand: a provider that fails is answered 96 and the gateway
 * goes on; an issuer whose commit cannot happen (its file locked by another connection) answers 96
 * and stores nothing, and the same advice sent again once the lock is gone is applied, once. Plus the
 * routing table's checks and NII routing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { Gateway, DEFAULT_ROUTES } from '../../src/hosts/gateway.js';
import { ReaderRegistry } from '../../src/hosts/registry.js';
import { IssuerHost } from '../../src/hosts/issuer.js';
import type { ProviderHost, ProviderRequest } from '../../src/hosts/provider.js';
import { testHostKekMaster, testHostMacMaster } from '../../src/hostlink/test-keys.js';
import { testPurseMasterKey } from '../../src/crypto/purse-certificate.js';
import { RC, negativeListRequest, refusal } from '../../src/hostlink/messages.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { completedAdvice, TestTerminal } from './helpers.js';

const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string, o?: BetterSqlite3.Options) => BetterSqlite3.Database;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function assemble(providers: (dir: string) => ProviderHost[], routes = DEFAULT_ROUTES) {
  const dir = mkdtempSync(join(tmpdir(), 'hilt-gateway-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const registry = ReaderRegistry.open(join(dir, 'registry.sqlite'));
  cleanups.push(() => registry.close());
  const list = providers(dir);
  cleanups.push(async () => {
    for (const p of list) await p.close();
  });
  const gateway = await Gateway.start({ registry, providers: list, routes, macMaster: testHostMacMaster(), kekMaster: testHostKekMaster() });
  cleanups.push(() => gateway.close());
  const address = { host: '127.0.0.1', gatewayPort: gateway.port };
  const terminal = async (tid: string, rid: string) => {
    const { code } = registry.issueEnrolmentCode(tid, rid);
    const t = await TestTerminal.connect(address, tid, rid);
    cleanups.push(() => t.close());
    expect(await t.enrol(code)).toBe(RC.approved);
    return t;
  };
  return { dir, registry, gateway, terminal };
}

class Scripted implements ProviderHost {
  calls = 0;
  constructor(
    readonly name: string,
    private readonly answer: (req: ProviderRequest) => Promise<IsoMessage>,
  ) {}
  handle(req: ProviderRequest): Promise<IsoMessage> {
    this.calls++;
    return this.answer(req);
  }
  async close(): Promise<void> {}
}

describe('provider failures', () => {
  it('a provider that throws: 96, and the same connection is served after', async () => {
    let fail = true;
    const p = new Scripted('emoney', async (req) => {
      if (fail) throw new Error('provider down');
      return refusal(req.message, { responseCode: RC.approved, at: new Date() });
    });
    const { terminal } = await assemble(() => [p]);
    const t = await terminal('T1', 'R1');
    expect((await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 1, balanceAfter: 1 }))).responseCode()).toBe(RC.systemMalfunction);
    fail = false;
    expect((await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 1, balanceAfter: 1, repeat: true }))).responseCode()).toBe(RC.approved);
    expect(p.calls).toBe(2);
  });

  it('an issuer that cannot commit (file locked): 96, nothing stored; sent again later: applied once', async () => {
    let issuer: IssuerHost | null = null;
    const { dir, terminal } = await assemble((d) => [(issuer = IssuerHost.open(join(d, 'issuer.sqlite'), { master: testPurseMasterKey(), busyTimeoutMs: 50 }))]);
    const t = await terminal('T1', 'R1');
    const lock = new Database(join(dir, 'issuer.sqlite'));
    lock.exec('BEGIN IMMEDIATE');
    const advice = completedAdvice(t, { stan: 1, counter: 1, amount: 10, balanceAfter: 90 });
    expect((await t.request(advice)).responseCode()).toBe(RC.systemMalfunction);
    expect(lock.prepare('SELECT count(*) FROM advices').pluck().get()).toBe(0);
    lock.exec('ROLLBACK');
    lock.close();
    expect((await t.request(advice.withMti('0221'))).responseCode()).toBe(RC.approved);
    expect((await t.request(advice.withMti('0221'))).responseCode()).toBe(RC.duplicate);
    expect(issuer!.cardView('48494C5400000001')).toMatchObject({ records: 1, balance: 90 });
  });
});

describe('routing table', () => {
  it('refuses a route to a provider that does not exist', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hilt-gw-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const registry = ReaderRegistry.open(join(dir, 'r.sqlite'));
    cleanups.push(() => registry.close());
    await expect(Gateway.start({ registry, providers: [], routes: [{ provider: 'bank', mtis: ['0200'] }], macMaster: testHostMacMaster(), kekMaster: testHostKekMaster() })).rejects.toThrow(/no such provider/);
  });

  it('routes by NII (field 24) to a second provider', async () => {
    const emoney = new Scripted('emoney', async (req) => refusal(req.message, { responseCode: RC.approved, at: new Date() }));
    const bank = new Scripted('bank', async (req) => refusal(req.message, { responseCode: RC.doNotHonour, at: new Date() }));
    const routes = [{ provider: 'bank', mtis: ['0300'], nii: 2 }, ...DEFAULT_ROUTES];
    const { terminal } = await assemble(() => [emoney, bank], routes);
    const t = await terminal('T1', 'R1');
    expect((await t.request(negativeListRequest({ ...t.header(t.nextStan()), nii: 2 }, { version: 0, chunk: 0 }))).responseCode()).toBe(RC.doNotHonour);
    expect((await t.request(negativeListRequest(t.header(t.nextStan()), { version: 0, chunk: 0 }))).responseCode()).toBe(RC.approved);
    expect([emoney.calls, bank.calls]).toEqual([1, 1]);
  });
});
