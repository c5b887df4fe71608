/**
 * The life of a load authorization at the issuer (issuer.ts): approved → completed (its certified
 * load), reversed (0400) or lapsed (its advice says the load failed or never happened). A lapsed
 * authorization no longer counts for the daily load limit and cannot be completed; the 0500 totals
 * stay what the terminal counts, whichever of a failed load's advice and its reversal comes first.
 * And schema step 2 (status 'lapsed', terminal reports, anomaly source) on a file written by step 1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  RC,
  adviceRequest,
  loadAuthorizationRequest,
  parseLoadAuthorizationResponse,
  reversalRequest,
  transmissionDateTime,
  type AdviceOutcome,
  type ReconciliationTotals,
} from '../../src/hostlink/messages.js';
import { ISSUER_SCHEMA, IssuerHost } from '../../src/hosts/issuer.js';
import { openHostDb } from '../../src/hosts/store.js';
import { testPurseMasterKey } from '../../src/crypto/purse-certificate.js';
import { toHex } from '../../src/util/bytes.js';
import { AT, JPY, LOCAL, SERIAL, adminGet, completedAdvice, enrolledTerminal, startTestHosts, type TestHosts, type TestTerminal } from './helpers.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';

let h: TestHosts | null = null;
afterEach(async () => {
  await h?.cleanup();
  h = null;
});

const T = 'TA';
const LIMITS = { maxLoad: 1_000, maxBalance: 10_000, dailyLoadLimit: 1_000 };

async function setup(): Promise<{ hosts: TestHosts; t: TestTerminal }> {
  const hosts = await startTestHosts({ limits: LIMITS });
  h = hosts;
  return { hosts, t: await enrolledTerminal(hosts, T, 'RA') };
}

const rc = async (t: TestTerminal, m: IsoMessage) => (await t.request(m)).responseCode();

/** 0200 for `minor` on SERIAL at `stan`: the response. */
async function authorize(t: TestTerminal, stan: number, minor: number, cardCounter = 0) {
  return parseLoadAuthorizationResponse(await t.request(loadAuthorizationRequest(t.header(stan), { serial: SERIAL, amount: { minor, currency: JPY }, cardCounter, dateTime: LOCAL })));
}

/** The advice of a load that moved no value. */
function noLoadAdvice(t: TestTerminal, stan: number, minor: number, outcome: AdviceOutcome, retrievalReference?: string, repeat = false): IsoMessage {
  return adviceRequest(t.header(stan), { kind: 'load', outcome, serial: SERIAL, amount: { minor, currency: JPY }, dateTime: LOCAL, cardCounter: 0, note: 'LOAD not sent', ...(retrievalReference ? { retrievalReference } : {}), repeat });
}

function reversal(t: TestTerminal, stan: number, originalStan: number, minor: number): IsoMessage {
  return reversalRequest(t.header(stan), { kind: 'load', serial: SERIAL, amount: { minor, currency: JPY }, original: { mti: '0200', stan: originalStan, transmitted: transmissionDateTime(AT), acquirer: '' } });
}

function status(hosts: TestHosts, stan: number): string | undefined {
  return hosts.issuer.db.prepare('SELECT status FROM authorizations WHERE terminal_id = ? AND reader_seq = ?').pluck().get(T, stan) as string | undefined;
}

async function totals(hosts: TestHosts): Promise<ReconciliationTotals> {
  return (await adminGet<{ totals: { totals: ReconciliationTotals }[] }>(hosts, `/totals?terminalId=${T}`)).body.totals[0].totals;
}

async function anomalyKinds(hosts: TestHosts): Promise<unknown[]> {
  return (await adminGet<{ anomalies: { kind: string; details: unknown }[] }>(hosts, '/anomalies')).body.anomalies.map((a) => [a.kind, a.details]);
}

describe('a load that never happened', () => {
  it('lapses its authorization (failed and never-happened alike): the daily limit is free again; a repeat changes nothing', async () => {
    const { hosts, t } = await setup();
    const first = await authorize(t, 1, 800);
    expect(first.responseCode).toBe(RC.approved);
    expect((await authorize(t, 2, 500)).responseCode).toBe(RC.exceedsLimit); // 800 + 500 > 1000 today
    expect(await rc(t, noLoadAdvice(t, 1, 800, 'failed', first.issuerReference))).toBe(RC.approved);
    expect(status(hosts, 1)).toBe('lapsed');
    expect(await rc(t, noLoadAdvice(t, 1, 800, 'failed', first.issuerReference, true))).toBe(RC.duplicate);
    expect(status(hosts, 1)).toBe('lapsed');
    expect((await authorize(t, 3, 500)).responseCode).toBe(RC.approved); // the lapsed 800 no longer counts
    expect(await rc(t, noLoadAdvice(t, 3, 500, 'never-happened'))).toBe(RC.approved);
    expect(status(hosts, 3)).toBe('lapsed');
    expect((await authorize(t, 4, 1_000)).responseCode).toBe(RC.approved);
    // (No advice for the declined STAN 2: a reader gap, nothing else.)
    expect(await anomalyKinds(hosts)).toEqual([['reader-gap', { from: 2, to: 2 }]]);
    // 0500: three 0200s approved or not are three authorizations; a lapse is neither a load nor a reversal.
    expect(await totals(hosts)).toEqual({ loads: { count: 0, amount: 0 }, loadReversals: { count: 0, amount: 0 }, purchases: { count: 0, amount: 0 }, purchaseReversals: { count: 0, amount: 0 }, authorizations: 4 });
  });

  it('does not lapse what it does not describe: a purchase, another amount, a declined or completed authorization', async () => {
    const { hosts, t } = await setup();
    expect((await authorize(t, 1, 300)).responseCode).toBe(RC.approved);
    expect(await rc(t, noLoadAdvice(t, 1, 299, 'failed'))).toBe(RC.approved);
    expect(status(hosts, 1)).toBe('approved');
    expect((await authorize(t, 2, 300)).responseCode).toBe(RC.approved);
    expect(await rc(t, adviceRequest(t.header(2), { kind: 'purchase', outcome: 'failed', serial: SERIAL, amount: { minor: 300, currency: JPY }, dateTime: LOCAL }))).toBe(RC.approved);
    expect(status(hosts, 2)).toBe('approved');
    expect((await authorize(t, 3, 5_000)).responseCode).toBe(RC.exceedsLimit);
    expect(await rc(t, noLoadAdvice(t, 3, 5_000, 'failed'))).toBe(RC.approved);
    expect(status(hosts, 3)).toBe('declined');
  });

  it('a certified load under a lapsed authorization is an unauthorized load; at the lapsing STAN it is a reader repeat (12)', async () => {
    const { hosts, t } = await setup();
    const auth = await authorize(t, 1, 400);
    expect(await rc(t, noLoadAdvice(t, 1, 400, 'failed', auth.issuerReference))).toBe(RC.approved);
    // The advice that lapsed it holds the key (terminal, STAN 1): a certified load there is refused.
    expect(await rc(t, completedAdvice(t, { stan: 1, kind: 'load', counter: 1, amount: 400, balanceAfter: 400, retrievalReference: auth.issuerReference }))).toBe(RC.invalidTransaction);
    expect(status(hosts, 1)).toBe('lapsed');
    expect((await anomalyKinds(hosts)).map((a) => (a as unknown[])[0])).toEqual(['reader-repeat']);
    // An authorization found lapsed when its certified load arrives (as a lapse before the advice
    // would leave it): accepted (the value moved), reported, and completed.
    const other = await authorize(t, 2, 300);
    hosts.issuer.db.prepare("UPDATE authorizations SET status = 'lapsed' WHERE terminal_id = ? AND reader_seq = 2").run(T);
    expect(await rc(t, completedAdvice(t, { stan: 2, kind: 'load', counter: 1, amount: 300, balanceAfter: 300, retrievalReference: other.issuerReference }))).toBe(RC.approved);
    const anomalies = (await adminGet<{ anomalies: { kind: string; details: { authorization: { status: string } | null } }[] }>(hosts, '/anomalies?kind=unauthorized-load')).body.anomalies;
    expect(anomalies.map((a) => a.details.authorization?.status)).toEqual(['lapsed']);
    expect(status(hosts, 2)).toBe('completed');
    expect((await adminGet(hosts, `/cards/${toHex(SERIAL)}`)).body).toMatchObject({ balance: 300, records: 1 });
  });

  it('its reversal reverses it whichever comes first, counted once in 75/87 as the terminal counts it', async () => {
    const { hosts, t } = await setup();
    const a = await authorize(t, 1, 200);
    const b = await authorize(t, 2, 300);
    // Advice first, then the reversal.
    expect(await rc(t, noLoadAdvice(t, 1, 200, 'failed', a.issuerReference))).toBe(RC.approved);
    expect(await rc(t, reversal(t, 100, 1, 200))).toBe(RC.approved);
    expect(status(hosts, 1)).toBe('reversed');
    // Reversal first, then the advice.
    expect(await rc(t, reversal(t, 101, 2, 300))).toBe(RC.approved);
    expect(await rc(t, noLoadAdvice(t, 2, 300, 'failed', b.issuerReference))).toBe(RC.approved);
    expect(status(hosts, 2)).toBe('reversed');
    expect((await totals(hosts)).loadReversals).toEqual({ count: 2, amount: 500 });
    expect((await totals(hosts)).authorizations).toBe(2);
  });
});

describe('issuer schema step 2', () => {
  it('migrates a file written by step 1: authorizations and anomalies kept (source issuer), lapsed allowed, reports stored', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hilt-issuer-v1-'));
    try {
      const path = join(dir, 'issuer.sqlite');
      const v1 = openHostDb(path, { ...ISSUER_SCHEMA, migrations: ISSUER_SCHEMA.migrations.slice(0, 1) });
      expect(v1.pragma('user_version', { simple: true })).toBe(1);
      const auth = v1.prepare(
        "INSERT INTO authorizations (id, terminal_id, reader_id, reader_seq, content_hash, serial, amount, currency, card_counter, response_code, issuer_reference, authorization_id, cryptogram, status, received_at) VALUES (?, 'TA', 'RA', ?, x'00', 'AB', ?, '392', 0, ?, ?, ?, ?, ?, 1)",
      );
      auth.run(7, 1, 500, '00', '000000000007', '000007', Buffer.alloc(16), 'approved');
      auth.run(8, 2, 900, '61', null, null, null, 'declined');
      v1.prepare("INSERT INTO anomalies (at, kind, serial, terminal_id, reader_id, details) VALUES (1, 'card-gap', 'AB', 'TA', 'RA', '{\"from\":2,\"to\":3}')").run();
      expect(() => v1.prepare("UPDATE authorizations SET status = 'lapsed' WHERE id = 7").run()).toThrow(/CHECK/);
      v1.close();

      const issuer = IssuerHost.open(path, { master: testPurseMasterKey() });
      try {
        const db = issuer.db;
        expect(db.pragma('user_version', { simple: true })).toBe(2);
        expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual([1, 2]);
        expect(db.prepare('SELECT id, reader_seq, status, issuer_reference FROM authorizations ORDER BY id').all()).toEqual([
          { id: 7, reader_seq: 1, status: 'approved', issuer_reference: '000000000007' },
          { id: 8, reader_seq: 2, status: 'declined', issuer_reference: null },
        ]);
        db.prepare("UPDATE authorizations SET status = 'lapsed' WHERE id = 7").run();
        expect(() => db.prepare("UPDATE authorizations SET status = 'expired' WHERE id = 7").run()).toThrow(/CHECK/);
        expect(issuer.anomalies()).toEqual([{ id: 1, at: 1, source: 'issuer', kind: 'card-gap', serial: 'AB', terminalId: 'TA', readerId: 'RA', readerSequence: null, counter: null, details: { from: 2, to: 3 } }]);
        // The kinds stay tied to their source.
        expect(() => db.prepare("INSERT INTO anomalies (at, source, kind, terminal_id, reader_id, details) VALUES (1, 'issuer', 'rollback', 'TA', 'RA', '{}')").run()).toThrow(/CHECK/);
        expect(() => db.prepare("INSERT INTO anomalies (at, source, kind, terminal_id, reader_id, details) VALUES (1, 'terminal', 'rollback', 'TA', 'RA', '{}')").run()).toThrow(/CHECK/);
        expect(db.pragma('foreign_key_check')).toEqual([]);
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(db.prepare("SELECT count(*) FROM sqlite_schema WHERE name IN ('authorizations_card', 'anomalies_kind', 'anomalies_serial')").pluck().get()).toBe(3);
      } finally {
        void issuer.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
