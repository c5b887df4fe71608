/**
 * The uplink store's additions (MAC key, 0200 sends, reversals) and the MAC key ring: a state file of
 * schema 1 opens and gains them; the stored key wins over a configured key of a lower or equal
 * version only; reversals are recorded once per 0200, with a STAN of their own, and their sends and
 * deferrals counted; a 0200 left unanswered is found only once it is old enough.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { MacKeyRing, UplinkStore, UPLINK_STORE_SCHEMA_VERSION, reverseUnanswered } from '../../../src/hostlink/uplink/index.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { toHex } from '../../../src/util/bytes.js';
import { READER, TERMINAL, tempDir } from './helpers.js';

let work: { dir: string; remove(): void };
let now = 1_000_000;
const clock = () => now;
beforeEach(() => {
  work = tempDir('hilt-uplink-store-');
  now = 1_000_000;
});
afterEach(() => work.remove());

const open = (name = 'uplink.db') => UplinkStore.open(join(work.dir, name), { terminalId: TERMINAL, readerId: READER, clock });

describe('uplink store: MAC key', () => {
  it('a schema-1 file opens, gains the new tables, keeps what it had', () => {
    const path = join(work.dir, 'old.db');
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => { exec(s: string): void; pragma(s: string): unknown; close(): void };
    const db = new Database(path);
    db.exec(`CREATE TABLE owner (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), terminal_id TEXT NOT NULL, reader_id TEXT NOT NULL, created_at INTEGER NOT NULL) STRICT;
      CREATE TABLE stan (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), last INTEGER NOT NULL CHECK (last >= 0)) STRICT;
      INSERT INTO owner VALUES (1, '${TERMINAL}', '${READER}', 1); INSERT INTO stan VALUES (1, 41);`);
    db.pragma('application_id = 1212961877');
    db.pragma('user_version = 1');
    db.close();
    const store = UplinkStore.open(path, { terminalId: TERMINAL, readerId: READER });
    expect(store.nextStan()).toBe(42);
    expect(store.macKey()).toBeNull();
    store.saveMacKey(3, testTerminalMacKey(TERMINAL, 3));
    store.close();
    const again = UplinkStore.open(path, { terminalId: TERMINAL, readerId: READER });
    expect(again.macKey()?.version).toBe(3);
    again.close();
    expect(UPLINK_STORE_SCHEMA_VERSION).toBe(2);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('the stored key wins when its version is at least the configured one', () => {
    const store = open();
    const v1 = testTerminalMacKey(TERMINAL, 1);
    expect(MacKeyRing.open({ terminalId: TERMINAL, keyVersion: 1, macKey: v1 }, store).toJSON()).toEqual({ terminalId: TERMINAL, version: 1, source: 'configured' });
    store.saveMacKey(2, testTerminalMacKey(TERMINAL, 2));
    const ring = MacKeyRing.open({ terminalId: TERMINAL, keyVersion: 1, macKey: v1 }, store);
    expect(ring.toJSON()).toEqual({ terminalId: TERMINAL, version: 2, source: 'stored' });
    expect(toHex(ring.keyFor(TERMINAL, 2)!)).toBe(toHex(testTerminalMacKey(TERMINAL, 2)));
    expect(ring.keyFor(TERMINAL, 1)).toBeUndefined();
    expect(ring.keyFor('OTHER', 2)).toBeUndefined();
    // Re-personalised with a newer version: the configured key wins.
    expect(MacKeyRing.open({ terminalId: TERMINAL, keyVersion: 5, macKey: testTerminalMacKey(TERMINAL, 5) }, store).toJSON()).toMatchObject({ version: 5, source: 'configured' });
    store.close();
  });

  it('install keeps the replaced key for answers in flight, once; inspect and JSON never show a key', () => {
    const ring = new MacKeyRing(TERMINAL, 1, testTerminalMacKey(TERMINAL, 1), 'configured');
    ring.install(2, testTerminalMacKey(TERMINAL, 2));
    expect(ring.version).toBe(2);
    expect(ring.keyFor(TERMINAL, 1)).toBeDefined();
    ring.install(3, testTerminalMacKey(TERMINAL, 3));
    expect(ring.keyFor(TERMINAL, 1)).toBeUndefined();
    expect(ring.keyFor(TERMINAL, 2)).toBeDefined();
    const shown = `${inspect(ring)} ${JSON.stringify(ring)}`.toUpperCase();
    for (const v of [1, 2, 3]) expect(shown).not.toContain(toHex(testTerminalMacKey(TERMINAL, v)).toUpperCase());
    ring.destroy();
    expect(ring.keyFor(TERMINAL, 3)!.every((b) => b === 0)).toBe(true);
  });
});

describe('uplink store: 0200 sends and reversals', () => {
  const auth = { readerSeq: 7, serial: 'C400000000000001', amount: 500, currency: '392', transmitted: '0314093015' };

  it('records a reversal once, with its own STAN; counts sends and deferrals; finishes once', () => {
    const store = open();
    store.noteAuthorizationSending(auth);
    store.noteAuthorizationSending({ ...auth, transmitted: '0314093020' });
    expect(store.authorizationSend(7)).toMatchObject({ sends: 2, transmitted: '0314093020', responseCode: null });
    const r = store.recordReversal({ ...auth, originalTransmitted: '0314093020', reason: 'no-answer' });
    expect(r).toMatchObject({ readerSeq: 7, status: 'pending', sends: 0, attempts: 0, nextAttemptAt: now });
    expect(store.recordReversal({ ...auth, originalTransmitted: 'x', reason: 'not-loaded' })).toEqual(r);
    expect(store.nextStan()).toBe(r.stan + 1);
    expect(store.noteReversalSending(7)).toBe(0);
    expect(store.noteReversalSending(7)).toBe(1);
    store.deferReversal(7, now + 500, 'TIMEOUT: no answer');
    expect(store.reversal(7)).toMatchObject({ attempts: 1, nextAttemptAt: now + 500, lastError: 'TIMEOUT: no answer' });
    store.finishReversal(7, 'reversed', '00');
    store.finishReversal(7, 'refused', '12');
    expect(store.reversal(7)).toMatchObject({ status: 'reversed', responseCode: '00', lastError: null });
    expect(store.reversals({ pendingOnly: true })).toEqual([]);
    expect(() => store.noteReversalSending(8)).toThrow(/no reversal recorded/);
    store.close();
  });

  it('an unanswered 0200 is reversed only once it is older than the bound, and only once', () => {
    const store = open();
    store.noteAuthorizationSending(auth);
    store.noteAuthorizationSending({ ...auth, readerSeq: 8 });
    store.noteAuthorizationAnswer(8, '00');
    expect(reverseUnanswered(store, now)).toEqual([]);
    now += 10;
    expect(reverseUnanswered(store, now).map((r) => [r.readerSeq, r.reason])).toEqual([[7, 'no-answer']]);
    expect(reverseUnanswered(store, now + 1)).toEqual([]);
    store.close();
  });
});
