/**
 * Negative card file sync (0300/0310) against the fake gateway: deltas in several chunks applied in
 * one journal transaction, snapshots, the "unknown version" answer, an update that changes between
 * chunks, and nothing half applied when the link breaks mid-way.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Journal } from '../../../src/terminal/journal/index.js';
import { foldNegativeChanges, type Uplink } from '../../../src/hostlink/uplink/index.js';
import type { NegativeListChange } from '../../../src/hostlink/messages.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import type { FakeHost } from './fake-host.js';
import { useFakeHostWorld } from './fake-host-world.js';
import { cardSerial } from './helpers.js';

const world = useFakeHostWorld();
let host: FakeHost;
let journal: Journal;
let u: Uplink;

beforeEach(() => {
  ({ host, journal } = world);
  u = world.uplink();
});

const add = (i: number, reason = `lost ${i}`): NegativeListChange => ({ action: 'add', serial: fromHex(cardSerial(i)), reason });
const remove = (i: number): NegativeListChange => ({ action: 'remove', serial: fromHex(cardSerial(i)) });

/** The journal's list as the host's state map. */
function journalState(): Map<string, string> {
  return new Map(journal.negativeList().map((e) => [e.cardSerial, e.reason]));
}

describe('negative card file sync', () => {
  it('up to date at version 0: one request, nothing changes', async () => {
    const r = await u.syncNegativeList();
    expect(r).toMatchObject({ fromVersion: 0, toVersion: 0, deltas: 0, snapshots: 0, requests: 1 });
  });

  it('first sync gets a snapshot, later ones deltas in chunks, applied whole', async () => {
    host.chunkBytes = 120; // a few entries per chunk
    host.publish(Array.from({ length: 30 }, (_, i) => add(i)));
    const first = await u.syncNegativeList();
    expect(first).toMatchObject({ fromVersion: 0, toVersion: 1, snapshots: 1, added: 30 });
    expect(journalState()).toEqual(host.negativeState());

    host.publish([remove(3), remove(4), add(40), add(41)]);
    host.publish([add(3, 'found again, then stolen'), remove(40), ...Array.from({ length: 20 }, (_, i) => add(100 + i))]);
    const second = await u.syncNegativeList();
    expect(second.fromVersion).toBe(1);
    expect(second.toVersion).toBe(3);
    expect(second.deltas).toBe(1);
    expect(second.requests).toBeGreaterThan(3); // several chunks, then "up to date"
    expect(journal.negativeListVersion()).toBe(3);
    expect(journalState()).toEqual(host.negativeState());
    expect(journal.isBlocked(cardSerial(3))).toBe(true);
    expect(journal.negativeEntry(cardSerial(3))?.reason).toBe('found again, then stolen');
    expect(journal.isBlocked(cardSerial(40))).toBe(false);
  });

  it('a version the host cannot make a delta from gets a snapshot', async () => {
    host.publish([add(1), add(2)]);
    await u.syncNegativeList();
    host.publish([remove(1)]);
    host.publish([add(9)]);
    host.deltaFloor = 2; // deltas only from version 2 on
    const r = await u.syncNegativeList();
    expect(r).toMatchObject({ fromVersion: 1, toVersion: 3, snapshots: 1, deltas: 0 });
    expect(journalState()).toEqual(host.negativeState());
  });

  it('a version the host never issued (25): asks again from 0 and takes the snapshot', async () => {
    host.publish([add(1)]);
    journal.applyNegativeDelta({ fromVersion: 0, toVersion: 7, add: [{ cardSerial: cardSerial(5), reason: 'stale' }], remove: [] });
    const r = await u.syncNegativeList();
    expect(r).toMatchObject({ fromVersion: 7, toVersion: 1, snapshots: 1 });
    expect(journalState()).toEqual(host.negativeState());
  });

  it('the host publishes between two chunks: the round starts again and ends consistent', async () => {
    host.chunkBytes = 60;
    host.publish(Array.from({ length: 10 }, (_, i) => add(i)));
    await u.syncNegativeList();
    host.publish(Array.from({ length: 10 }, (_, i) => add(50 + i)));
    let published = false;
    // Publish a new version right after the host served the first chunk of the delta.
    const session = await u.link.session();
    const request = session.request.bind(session);
    session.request = async (build, o) => {
      const answer = await request(build, o);
      if (!published && answer.mti === '0310') {
        published = true;
        host.publish([remove(0)]);
      }
      return answer;
    };
    const r = await u.syncNegativeList();
    expect(published).toBe(true);
    expect(r.toVersion).toBe(3);
    expect(journalState()).toEqual(host.negativeState());
  });

  it('a link cut in the middle of the chunks changes nothing in the journal', async () => {
    host.chunkBytes = 60;
    host.publish(Array.from({ length: 10 }, (_, i) => add(i)));
    const session = await u.link.session();
    const request = session.request.bind(session);
    let n = 0;
    session.request = async (build, o) => {
      if (++n === 3) host.cutConnections();
      return request(build, o);
    };
    await expect(u.syncNegativeList()).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' });
    expect(journal.negativeListVersion()).toBe(0);
    expect(journal.negativeList()).toEqual([]);
    // The next sync opens a new session and completes.
    const r = await u.syncNegativeList();
    expect(r.toVersion).toBe(1);
    expect(journalState()).toEqual(host.negativeState());
  });

  it('folds changes in order: the last change of a card wins', () => {
    const folded = foldNegativeChanges([add(1, 'a'), remove(1), add(2, 'b'), add(1, 'c'), remove(2)]);
    expect(folded.add.map((e) => [toHex(e.cardSerial).toUpperCase(), e.reason])).toEqual([[cardSerial(1), 'c']]);
    expect(folded.remove.map((s) => toHex(s).toUpperCase())).toEqual([cardSerial(2)]);
  });
});
