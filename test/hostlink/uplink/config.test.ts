/** Uplink configuration checks and the backoff schedule. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BACKOFF_BASE_MS, BACKOFF_MAX_MS, DEFAULT_BACKOFF, backoffDelay, backoffPolicy, uplinkConfig } from '../../../src/hostlink/uplink/index.js';
import { testConfig } from './helpers.js';

describe('uplink configuration', () => {
  it('fills the defaults and copies the key', () => {
    const input = testConfig(4000, { backoff: undefined, requestTimeoutMs: undefined });
    const c = uplinkConfig(input);
    expect(c.keyVersion).toBe(1);
    expect(c.backoff).toEqual(DEFAULT_BACKOFF);
    input.macKey.fill(0);
    expect(c.macKey.some((b) => b !== 0)).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    ['terminalId', { terminalId: 'TOO-LONG-ID' }, /terminalId/],
    ['terminalId', { terminalId: ' T1' }, /terminalId/],
    ['readerId', { readerId: 'R'.repeat(16) }, /readerId/],
    ['port', { port: 0 }, /port/],
    ['macKey', { macKey: new Uint8Array(15) }, /macKey: expected 16, 24 or 32 bytes, got 15/],
    ['keyVersion', { keyVersion: 256 }, /keyVersion/],
    ['backoff', { backoff: { baseMs: 100, maxMs: 50 } }, /backoff.maxMs/],
    ['backoff', { backoff: { jitter: 2 } }, /backoff.jitter/],
  ])('refuses a bad %s', (_name, override, message) => {
    expect(() => uplinkConfig({ ...testConfig(4000), ...override })).toThrow(message);
  });
});

describe('backoff', () => {
  it('doubles from the base up to the cap, without jitter', () => {
    const p = backoffPolicy({ jitter: 0 });
    expect([0, 1, 2, 3, 4].map((n) => backoffDelay(p, n))).toEqual([250, 500, 1000, 2000, 4000]);
    expect(backoffDelay(p, 8)).toBe(BACKOFF_MAX_MS);
    expect(backoffDelay(p, 10_000)).toBe(BACKOFF_MAX_MS);
  });

  it('jitter only takes off, at most its share', () => {
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
        const full = backoffDelay(backoffPolicy({ jitter: 0 }), n);
        const d = backoffDelay(DEFAULT_BACKOFF, n, () => r);
        return d <= full && d >= Math.floor(full * (1 - DEFAULT_BACKOFF.jitter)) && d >= 1;
      }),
    );
    expect(backoffDelay(DEFAULT_BACKOFF, 0, () => 0)).toBe(BACKOFF_BASE_MS);
  });
});
