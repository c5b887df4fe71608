/**
 * The negative card file, brought up to the host's version through 0300 / 0310 (messages.ts).
 *
 * One round: ask for chunk 0 from the journal's version (48 DF10). The host answers one of
 *   - up to date: a delta with from = to, one chunk, no changes: done;
 *   - a delta from our version to its own, in `chunkCount` chunks: chunks 1, 2, ... are asked for
 *     with the same version, each must describe the same update (from, to, kind, count) and be the
 *     chunk asked for; once all are in, the changes are folded in order (the last change of a card
 *     wins) and applied in one journal transaction (applyNegativeDelta: all or nothing, refused
 *     unless it starts at the journal's version);
 *   - a snapshot (the host cannot make a delta from our version): the same chunking; the list is
 *     replaced in one transaction (replaceNegativeList);
 *   - 25 (our version is unknown to the host): the next round asks from version 0, which gets a
 *     snapshot.
 * If the host's update changes between two chunks (the host's list moved on), or the journal's
 * version moved under us, the round starts again. Rounds repeat until the host says up to date, at
 * most MAX_NEGATIVE_SYNC_ROUNDS; chunks per update at most MAX_NEGATIVE_LIST_CHUNKS. A failure
 * before the apply changes nothing in the journal.
 */
import { RC, negativeListRequest, parseNegativeListResponse, type NegativeListChange, type NegativeListUpdate } from '../messages.js';
import { toHex } from '../../util/bytes.js';
import { HiltError } from '../../util/errors.js';
import { UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';
import type { UplinkLink } from './link.js';
import type { UplinkSession } from './session.js';

/** Rounds of one sync (each applies one update, or finds the list up to date). */
export const MAX_NEGATIVE_SYNC_ROUNDS = 16;
/** Chunks of one update. */
export const MAX_NEGATIVE_LIST_CHUNKS = 4096;

export interface NegativeSyncResult {
  /** The journal's version before and after. */
  fromVersion: number;
  toVersion: number;
  /** Updates applied: deltas and snapshots. */
  deltas: number;
  snapshots: number;
  /** Cards added or re-listed, and cards taken off (as the journal counted them). */
  added: number;
  removed: number;
  /** 0300 requests sent. */
  requests: number;
}

export interface NegativeSyncOptions {
  journal: UplinkJournal;
  link: UplinkLink;
}

/** True when two chunks belong to the same update. */
function sameUpdate(a: NegativeListUpdate, b: NegativeListUpdate): boolean {
  return a.kind === b.kind && a.fromVersion === b.fromVersion && a.toVersion === b.toVersion && a.chunkCount === b.chunkCount;
}

/** The changes in order, folded: per card, the last change wins (the journal refuses a card twice). */
export function foldNegativeChanges(changes: readonly NegativeListChange[]): { add: { cardSerial: Uint8Array; reason: string }[]; remove: Uint8Array[] } {
  const last = new Map<string, NegativeListChange>();
  for (const c of changes) {
    const key = toHex(c.serial).toUpperCase();
    last.delete(key); // keep the order of the last change
    last.set(key, c);
  }
  const add: { cardSerial: Uint8Array; reason: string }[] = [];
  const remove: Uint8Array[] = [];
  for (const c of last.values()) {
    if (c.action === 'add') add.push({ cardSerial: c.serial, reason: c.reason });
    else remove.push(c.serial);
  }
  return { add, remove };
}

type Fetched = { kind: 'up-to-date' } | { kind: 'unknown-version' } | { kind: 'moved' } | { kind: 'update'; update: NegativeListUpdate; changes: NegativeListChange[] };

/** Brings the journal's negative card file up to the host's version (see the top of this file). */
export async function syncNegativeList(o: NegativeSyncOptions): Promise<NegativeSyncResult> {
  const { journal, link } = o;
  const result: NegativeSyncResult = { fromVersion: journal.negativeListVersion(), toVersion: 0, deltas: 0, snapshots: 0, added: 0, removed: 0, requests: 0 };
  let askFromZero = false;
  let session: UplinkSession;
  try {
    session = await link.session();
  } catch (e) {
    await link.drop();
    throw e;
  }
  try {
    for (let round = 0; round < MAX_NEGATIVE_SYNC_ROUNDS; round++) {
      const version = askFromZero ? 0 : journal.negativeListVersion();
      const fetched = await fetchUpdate(session, version, result);
      if (fetched.kind === 'up-to-date') {
        result.toVersion = journal.negativeListVersion();
        return result;
      }
      if (fetched.kind === 'unknown-version') {
        if (askFromZero) throw new UplinkError('protocol', 'negative list: the host answered 25 to a request from version 0');
        askFromZero = true;
        continue;
      }
      if (fetched.kind === 'moved') continue;
      askFromZero = false;
      const { update, changes } = fetched;
      try {
        if (update.kind === 'snapshot') {
          const folded = foldNegativeChanges(changes);
          const r = journal.replaceNegativeList(update.toVersion, folded.add);
          result.snapshots++;
          result.added += r.added;
          result.removed += r.removed;
        } else {
          if (update.fromVersion !== version) throw new UplinkError('protocol', `negative list: asked for a delta from version ${version}, got one from ${update.fromVersion}`);
          const folded = foldNegativeChanges(changes);
          const r = journal.applyNegativeDelta({ fromVersion: update.fromVersion, toVersion: update.toVersion, add: folded.add, remove: folded.remove });
          result.deltas++;
          result.added += r.added;
          result.removed += r.removed;
        }
      } catch (e) {
        // Someone else moved the journal's list meanwhile: start over from its version.
        if (e instanceof HiltError && e.name === 'NegativeListVersionError') continue;
        throw e;
      }
    }
  } catch (e) {
    if (!(e instanceof UplinkError)) await link.drop();
    throw e;
  }
  throw new UplinkError('protocol', `negative list: still not up to date after ${MAX_NEGATIVE_SYNC_ROUNDS} updates`);
}

/** All chunks of the host's update from `version`. */
async function fetchUpdate(session: UplinkSession, version: number, result: NegativeSyncResult): Promise<Fetched> {
  let first: NegativeListUpdate | null = null;
  const changes: NegativeListChange[] = [];
  for (let chunk = 0; chunk < (first?.chunkCount ?? 1); chunk++) {
    if (chunk >= MAX_NEGATIVE_LIST_CHUNKS) throw new UplinkError('protocol', `negative list: more than ${MAX_NEGATIVE_LIST_CHUNKS} chunks`);
    result.requests++;
    const answer = parseNegativeListResponse(await session.request((h) => negativeListRequest(h, { version, chunk })));
    if (answer.responseCode === RC.recordNotFound) return { kind: 'unknown-version' };
    if (answer.responseCode !== RC.approved || answer.update === undefined) {
      throw new UplinkError('protocol', `negative list: the host answered ${answer.responseCode} to version ${version}, chunk ${chunk}`);
    }
    const u = answer.update;
    if (u.chunk !== chunk) throw new UplinkError('protocol', `negative list: asked for chunk ${chunk}, got chunk ${u.chunk}`);
    if (first === null) {
      if (u.kind === 'delta' && u.fromVersion === u.toVersion) return { kind: 'up-to-date' };
      if (u.chunkCount > MAX_NEGATIVE_LIST_CHUNKS) throw new UplinkError('protocol', `negative list: ${u.chunkCount} chunks, more than ${MAX_NEGATIVE_LIST_CHUNKS}`);
      first = u;
    } else if (!sameUpdate(first, u)) {
      return { kind: 'moved' };
    }
    changes.push(...u.changes);
  }
  return { kind: 'update', update: first as NegativeListUpdate, changes };
}
