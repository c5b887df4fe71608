/**
 * The reader registry's clocks, with a clock the test moves: enrolment codes expire, challenges
 * expire, sign-on sessions expire ("periodically thereafter"), each refused with its own code.
 * And the registry file refuses what is not a registry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RC, echoRequest, parseNetworkResponse } from '../../src/hostlink/messages.js';
import { challengeOf, signOnChallengeRequest, signOnProofRequest } from '../../src/hostlink/reader-auth.js';
import { ReaderRegistry } from '../../src/hosts/registry.js';
import { IssuerHost } from '../../src/hosts/issuer.js';
import { testPurseMasterKey } from '../../src/crypto/purse-certificate.js';
import { adminPost, enrolledTerminal, startTestHosts, TestTerminal, type TestHosts } from './helpers.js';

let h: TestHosts | null = null;
afterEach(async () => {
  await h?.cleanup();
  h = null;
});

describe('expiry', () => {
  it('codes, challenges and sessions expire', async () => {
    let now = Date.UTC(2025, 0, 1);
    const hosts = await startTestHosts({ clock: () => now, sessionMs: 60_000, challengeTtlMs: 5_000 });
    h = hosts;
    // A code good for 60 s, used after 61 s: 77.
    const code = (await adminPost<{ code: string }>(hosts, '/readers', { terminalId: 'T1', readerId: 'R1', ttlSeconds: 60 })).body.code;
    now += 61_000;
    const t = await TestTerminal.connect(hosts, 'T1', 'R1');
    expect(await t.enrol(code)).toBe(RC.badEnrolmentCode);
    await t.close();

    const u = await enrolledTerminal(hosts, 'T2', 'R2');
    const echo = async () => parseNetworkResponse(await u.request(echoRequest(u.header(u.nextStan())))).responseCode;
    expect(await echo()).toBe(RC.approved);
    now += 60_001;
    expect(await echo()).toBe(RC.readerNotSignedOn);
    // A challenge answered too late: 81, and it is gone.
    const challenge = challengeOf(parseNetworkResponse(await u.request(signOnChallengeRequest(u.header(u.nextStan())))));
    now += 5_001;
    expect((await u.request(signOnProofRequest(u.header(u.nextStan()), challenge as Uint8Array, u.privateKey as Uint8Array))).responseCode()).toBe(RC.badChallenge);
    expect(await u.signOn()).toBe(RC.approved);
    expect(await echo()).toBe(RC.approved);
    // A new challenge replaces the outstanding one.
    const c1 = challengeOf(parseNetworkResponse(await u.request(signOnChallengeRequest(u.header(u.nextStan())))));
    const c2 = challengeOf(parseNetworkResponse(await u.request(signOnChallengeRequest(u.header(u.nextStan())))));
    expect(c1).not.toEqual(c2);
    expect((await u.request(signOnProofRequest(u.header(u.nextStan()), c1 as Uint8Array, u.privateKey as Uint8Array))).responseCode()).toBe(RC.badChallenge);
    expect((await u.request(signOnProofRequest(u.header(u.nextStan()), c2 as Uint8Array, u.privateKey as Uint8Array))).responseCode()).toBe(RC.approved);
    await u.close();
  });

  it('re-keying: a new code for an enrolled reader replaces its key when used', async () => {
    const hosts = await startTestHosts();
    h = hosts;
    const t = await enrolledTerminal(hosts, 'T1', 'R1');
    const oldKey = t.publicKey;
    const code = (await adminPost<{ code: string }>(hosts, '/readers', { terminalId: 'T1', readerId: 'R1' })).body.code;
    expect(hosts.registry.reader('R1')?.publicKey).not.toBeNull();
    expect(await t.enrol(code)).toBe(RC.approved);
    expect(t.publicKey).not.toEqual(oldKey);
    expect(await t.signOn()).toBe(RC.approved);
    await t.close();
  });
});

describe('files', () => {
  it('a registry file is not an issuer file, and the other way round', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hilt-registry-'));
    try {
      const r = ReaderRegistry.open(join(dir, 'a.sqlite'));
      r.close();
      expect(() => IssuerHost.open(join(dir, 'a.sqlite'), { master: testPurseMasterKey() })).toThrow(/not a hilt e-money issuer store/);
      const again = ReaderRegistry.open(join(dir, 'a.sqlite'));
      again.close();
      expect(() => ReaderRegistry.open(':memory:')).toThrow(/durable/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
