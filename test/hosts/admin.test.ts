/**
 * The admin API (src/hosts/admin.ts) over real HTTP: every route, and the JSON errors of bad requests
 * (bad JSON, bad fields, unknown objects and routes, wrong methods, oversized bodies).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RC } from '../../src/hostlink/messages.js';
import { adminGet, adminPost, completedAdvice, enrolledTerminal, startTestHosts, TestTerminal, type TestHosts } from './helpers.js';

let h: TestHosts;
beforeAll(async () => {
  h = await startTestHosts();
});
afterAll(async () => {
  await h.cleanup();
});

type Err = { error: { code: string; message: string } };

describe('readers', () => {
  it('POST /readers issues a 16-character code; GET /readers and /readers/:id show the reader pending, then enrolled', async () => {
    const r = await adminPost<{ terminalId: string; readerId: string; code: string; expiresAt: number }>(h, '/readers', { terminalId: 'T1', readerId: 'R1', ttlSeconds: 600 });
    expect(r.status).toBe(201);
    expect(r.body.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{16}$/);
    expect(r.body.expiresAt).toBeGreaterThan(Date.now() + 590_000);
    expect((await adminGet<{ status: string }>(h, '/readers/R1')).body.status).toBe('pending');
    const t = await TestTerminal.connect(h, 'T1', 'R1');
    expect(await t.enrol(r.body.code)).toBe(RC.approved);
    const list = await adminGet<{ readers: { readerId: string; status: string; sequence: unknown }[] }>(h, '/readers');
    expect(list.body.readers.find((x) => x.readerId === 'R1')).toMatchObject({ status: 'enrolled', sequence: null });
    await t.close();
  });

  it('block and unblock: the negative reader list', async () => {
    const t = await enrolledTerminal(h, 'T2', 'R2');
    const b = await adminPost<{ status: string; blockedReason: string; signedOnUntil: number | null }>(h, '/readers/R2/block', { reason: 'lost in shop 7' });
    expect(b.status).toBe(200);
    expect(b.body).toMatchObject({ status: 'blocked', blockedReason: 'lost in shop 7', signedOnUntil: null });
    expect((await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 1, balanceAfter: 1 }))).responseCode()).toBe(RC.blockedReader);
    const u = await adminPost<{ status: string }>(h, '/readers/R2/unblock', {});
    expect(u.body.status).toBe('enrolled');
    // Unblocked, but its session ended with the block: sign on again.
    expect((await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 1, balanceAfter: 1 }))).responseCode()).toBe(RC.readerNotSignedOn);
    expect(await t.signOn()).toBe(RC.approved);
    expect((await t.request(completedAdvice(t, { stan: 1, counter: 1, amount: 1, balanceAfter: 1 }))).responseCode()).toBe(RC.approved);
    await t.close();
  });

  it('refuses bad fields (400), unknown readers (404)', async () => {
    for (const body of [{}, { terminalId: 'T1' }, { terminalId: 'TOOLONGID', readerId: 'R' }, { terminalId: 'T1', readerId: ' R' }, { terminalId: 'T1', readerId: 'R', ttlSeconds: 0 }, { terminalId: 'T1', readerId: 'R', ttlSeconds: 'x' }]) {
      const r = await adminPost<Err>(h, '/readers', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('BAD_INPUT');
    }
    expect((await adminPost<Err>(h, '/readers/NOPE/block', {})).status).toBe(404);
    expect((await adminPost<Err>(h, '/readers/NOPE/unblock', {})).status).toBe(404);
    expect((await adminGet<Err>(h, '/readers/NOPE')).status).toBe(404);
    expect((await adminPost<Err>(h, '/readers/R1/block', { reason: 7 })).status).toBe(400);
  });
});

describe('negative cards', () => {
  it('each edit that changes something is a new version; no-op changes do not make one', async () => {
    const v0 = (await adminGet<{ version: number }>(h, '/negative-cards')).body.version;
    const a = await adminPost<{ version: number; added: number; removed: number }>(h, '/negative-cards', { add: [{ serial: 'c0ffee', reason: 'lost' }] });
    expect(a.body).toEqual({ version: v0 + 1, added: 1, removed: 0 });
    const again = await adminPost(h, '/negative-cards', { add: [{ serial: 'C0FFEE', reason: 'lost' }], remove: ['DEAD'] });
    expect(again.body).toEqual({ version: v0 + 1, added: 0, removed: 0 });
    const list = await adminGet<{ version: number; cards: { serial: string; reason: string; addedVersion: number }[] }>(h, '/negative-cards');
    expect(list.body.cards.find((c) => c.serial === 'C0FFEE')).toEqual({ serial: 'C0FFEE', reason: 'lost', addedVersion: v0 + 1 });
    const r = await adminPost(h, '/negative-cards', { remove: ['c0ffee'] });
    expect(r.body).toEqual({ version: v0 + 2, added: 0, removed: 1 });
  });

  it('refuses bad edits with 400 and changes nothing', async () => {
    const v = (await adminGet<{ version: number }>(h, '/negative-cards')).body.version;
    for (const body of [
      {},
      { add: [] },
      { add: [{ serial: 'XYZ', reason: 'x' }] },
      { add: [{ serial: 'AB', reason: '' }] },
      { add: [{ serial: 'AB', reason: 'x'.repeat(101) }] },
      { add: [{ serial: 'AB', reason: 'a' }], remove: ['ab'] },
      { add: 'AB' },
      { remove: ['00'.repeat(33)] },
    ]) {
      const r = await adminPost<Err>(h, '/negative-cards', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect((await adminGet<{ version: number }>(h, '/negative-cards')).body.version).toBe(v);
  });
});

describe('views', () => {
  it('GET /health, /anomalies, /totals, /cards/:serial, /sequences', async () => {
    const t = await enrolledTerminal(h, 'T3', 'R3');
    expect((await t.request(completedAdvice(t, { stan: 2, counter: 1, amount: 250, balanceAfter: 750, serial: Uint8Array.of(0xca, 0xfe) }))).responseCode()).toBe(RC.approved);
    const health = await adminGet<{ status: string; gateway: { port: number; messages: number }; issuer: { negativeCardVersion: number } }>(h, '/health');
    expect(health.status).toBe(200);
    expect(health.body.status).toBe('ok');
    expect(health.body.gateway.port).toBe(h.gatewayPort);
    expect(health.body.gateway.messages).toBeGreaterThan(0);
    const an = await adminGet<{ anomalies: { kind: string; terminalId: string }[] }>(h, '/anomalies?terminalId=T3&kind=reader-gap&limit=5');
    expect(an.body.anomalies).toMatchObject([{ kind: 'reader-gap', terminalId: 'T3' }]);
    const totals = await adminGet<{ totals: { terminalId: string; currency: string; totals: { purchases: unknown } }[] }>(h, '/totals?terminalId=T3&currency=392');
    expect(totals.body.totals).toMatchObject([{ terminalId: 'T3', currency: '392', totals: { purchases: { count: 1, amount: 250 } } }]);
    expect((await adminGet<{ totals: unknown[] }>(h, '/totals?terminalId=NOBODY')).body.totals).toEqual([]);
    expect((await adminGet(h, '/cards/cafe')).body).toMatchObject({ serial: 'CAFE', balance: 750, lastCounter: 1, currency: 392 });
    const seq = await adminGet<{ sequences: { terminalId: string; missing: unknown }[] }>(h, '/sequences');
    expect(seq.body.sequences.find((s) => s.terminalId === 'T3')?.missing).toEqual([{ from: 1, to: 1 }]);
    await t.close();
  });

  it('refuses bad queries and unknown cards', async () => {
    expect((await adminGet<Err>(h, '/anomalies?kind=bogus')).status).toBe(400);
    expect((await adminGet<Err>(h, '/anomalies?limit=abc')).status).toBe(400);
    expect((await adminGet<Err>(h, '/anomalies?limit=0')).status).toBe(400);
    expect((await adminGet<Err>(h, '/cards/zz')).status).toBe(400);
    expect((await adminGet<Err>(h, '/cards/0123')).status).toBe(404);
  });
});

describe('index', () => {
  it('GET / lists every route with its methods, so an operator can find them', async () => {
    const r = await adminGet<{ service: string; routes: { path: string; methods: string[] }[] }>(h, '/');
    expect(r.status).toBe(200);
    const paths = Object.fromEntries(r.body.routes.map((x) => [x.path, x.methods.join(',')]));
    expect(paths).toMatchObject({ '/': 'GET', '/health': 'GET', '/readers': 'GET,POST', '/readers/:param/block': 'POST', '/negative-cards': 'GET,POST', '/cards/:param': 'GET' });
    for (const route of r.body.routes.filter((x) => !x.path.includes(':') && x.methods.includes('GET'))) {
      expect((await adminGet(h, route.path)).status, route.path).toBe(200);
    }
  });
});

describe('HTTP errors', () => {
  it('bad JSON 400, a JSON array 400, unknown route 404, wrong method 405 with Allow, oversized body 413, bad percent-encoding 400', async () => {
    const bad = await adminPost<Err>(h, '/readers', '{"terminalId": ');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('BAD_JSON');
    expect((await adminPost<Err>(h, '/readers', '[1,2]')).status).toBe(400);
    const nf = await adminGet<Err>(h, '/nowhere');
    expect(nf.status).toBe(404);
    expect(nf.body.error.code).toBe('NOT_FOUND');
    const del = await fetch(h.adminUrl + '/readers', { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET, POST');
    expect(((await del.json()) as Err).error.code).toBe('METHOD_NOT_ALLOWED');
    const big = await adminPost<Err>(h, '/negative-cards', JSON.stringify({ add: [{ serial: 'AB', reason: 'x'.repeat(70_000) }] }));
    expect(big.status).toBe(413);
    expect((await adminGet<Err>(h, '/readers/%E0%A4%A')).status).toBe(400);
    // Still serving.
    expect((await adminGet(h, '/health')).status).toBe(200);
  });
});
