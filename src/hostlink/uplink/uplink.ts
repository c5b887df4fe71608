/**
 * One terminal's uplink, assembled: the configuration, the state file next to the journal, the MAC
 * key ring (the configured key, or the one the last key change stored), the link (one signed-on
 * session at a time) and the operations over it. Close it when done: it closes the session and the
 * state file, not the journal (the terminal owns that).
 *
 * At open, a 0200 an earlier process left without an answer (it crashed while waiting) gets its
 * reversal recorded: that process never had the cryptogram, so no LOAD used it. forward() sends it.
 */
import { uplinkConfig, type UplinkConfig, type UplinkConfigInput } from './config.js';
import { UplinkStore, uplinkStorePathFor } from './store.js';
import { UplinkLink } from './link.js';
import { forwardOutbox, type ForwarderOptions, type ForwarderStats } from './forwarder.js';
import { syncNegativeList, type NegativeSyncResult } from './negative-sync.js';
import { authorizeLoad, type LoadAuthorization } from './load.js';
import { MacKeyRing } from './keys.js';
import { changeKey, type KeyChangeResult } from './key-change.js';
import { recordLoadReversal, reversalLoop, reverseUnanswered, sendReversal, type ReversalStats } from './reversal.js';
import { reconcile, type ReconcileOptions, type ReconciliationResult } from './reconcile.js';
import type { ReversalRecord } from './store.js';
import { UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';

/** What forward() did: the outbox (ForwarderStats) and the reversals. */
export interface UplinkForwardStats extends ForwarderStats {
  reversals: ReversalStats;
}

/** A 0200 left unanswered longer than this many request timeouts (plus a connect) belongs to no live request. */
const IN_DOUBT_AFTER_TIMEOUTS = 3;

export interface UplinkOptions {
  config: UplinkConfigInput;
  journal: UplinkJournal;
  /** The state file; default `uplink.db` next to the journal. */
  storePath?: string;
  /** The operator's one-time code, for the first sign-on of a reader the host does not know yet. */
  enrolmentCode?: string;
  clock?: () => number;
}

export class Uplink {
  readonly config: UplinkConfig;
  readonly journal: UplinkJournal;
  readonly store: UplinkStore;
  readonly link: UplinkLink;
  /** The MAC key version in use and where it came from (never the key). */
  readonly keys: MacKeyRing;
  private readonly clock: () => number;

  private constructor(config: UplinkConfig, journal: UplinkJournal, store: UplinkStore, link: UplinkLink, keys: MacKeyRing, clock: () => number) {
    this.config = config;
    this.journal = journal;
    this.store = store;
    this.link = link;
    this.keys = keys;
    this.clock = clock;
  }

  /** Checks the configuration against the journal's identity and opens the state file (no connection yet). */
  static open(o: UplinkOptions): Uplink {
    const config = uplinkConfig(o.config);
    const identity = o.journal.identity;
    if (identity === null || identity.terminalId !== config.terminalId || identity.readerId !== config.readerId) {
      throw new UplinkError(
        'identity',
        `journal ${o.journal.path} belongs to ${identity === null ? 'no terminal yet' : `${identity.terminalId}/${identity.readerId}`}, not ${config.terminalId}/${config.readerId}`,
      );
    }
    const store = UplinkStore.open(o.storePath ?? uplinkStorePathFor(o.journal.path), { terminalId: config.terminalId, readerId: config.readerId, clock: o.clock });
    let keys: MacKeyRing;
    try {
      keys = MacKeyRing.open(config, store);
    } catch (e) {
      store.close();
      throw e;
    }
    const clock = o.clock ?? Date.now;
    const link = new UplinkLink({ config, store, enrolmentCode: o.enrolmentCode, clock: o.clock, keys });
    const uplink = new Uplink(config, o.journal, store, link, keys, clock);
    uplink.reverseAbandoned();
    return uplink;
  }

  /**
   * Store-and-forward of the journal's outbox (forwarder.ts), and of the pending load reversals
   * (reversal.ts) beside it on the same link. With `untilEmpty` it returns once both are empty.
   */
  async forward(o: Omit<ForwarderOptions, 'journal' | 'link'> = {}): Promise<UplinkForwardStats> {
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) stop.abort();
    const failFast = <T>(p: Promise<T>): Promise<T> =>
      p.catch((e: unknown) => {
        stop.abort();
        throw e;
      });
    try {
      this.reverseAbandoned();
      const clock = o.clock ?? this.clock;
      const [outbox, reversals] = await Promise.all([
        failFast(forwardOutbox({ ...o, clock, signal: stop.signal, journal: this.journal, link: this.link })),
        failFast(reversalLoop({ link: this.link, backoff: o.backoff, clock, random: o.random, signal: stop.signal, untilDone: o.untilEmpty, idlePollMs: o.idlePollMs })),
      ]);
      return { ...outbox, reversals };
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Brings the negative card file up to date (negative-sync.ts). */
  syncNegativeList(): Promise<NegativeSyncResult> {
    return syncNegativeList({ journal: this.journal, link: this.link });
  }

  /**
   * 0200 for the pending load `transactionId` (load.ts). No answer: LoadInDoubtError, the
   * authorization's reversal recorded and sent once (forward() retries it until answered).
   */
  authorizeLoad(transactionId: number, o: { reverseNow?: boolean } = {}): Promise<LoadAuthorization> {
    return authorizeLoad({ journal: this.journal, link: this.link, transactionId, reverseNow: o.reverseNow });
  }

  /**
   * Reverses the approved load authorization of `transactionId`, whose LOAD the terminal decided not
   * to send: recorded durably, sent once now; its state after that attempt ('pending' when the host
   * did not answer: forward() / sendReversals() retry it). Idempotent per journal row.
   */
  async reverseLoad(transactionId: number): Promise<ReversalRecord> {
    const r = recordLoadReversal(this.journal, this.store, transactionId);
    if (r.status !== 'pending') return r;
    return sendReversal({ link: this.link, clock: this.clock }, r.readerSeq);
  }

  /** Sends the pending reversals with backoff until none is left (or `signal` aborts). */
  sendReversals(o: { signal?: AbortSignal } = {}): Promise<ReversalStats> {
    this.reverseAbandoned();
    return reversalLoop({ link: this.link, clock: this.clock, signal: o.signal, untilDone: true });
  }

  /** The recorded reversals (all, or those still pending), by reader sequence. */
  reversals(filter: { pendingOnly?: boolean } = {}): ReversalRecord[] {
    return this.store.reversals(filter);
  }

  /** The reversal of journal row `transactionId`'s load authorization, or null. */
  reversalOf(transactionId: number): ReversalRecord | null {
    const row = this.journal.get(transactionId);
    return row === null ? null : this.store.reversal(row.readerSeq);
  }

  /**
   * Changes the terminal's MAC key (0800 161, key-change.ts): unwrapped with config.kek, stored before
   * use, used by every later message and after a restart. KeyUnwrapError (wrong KEK): nothing changes.
   */
  changeKey(o: { confirm?: boolean } = {}): Promise<KeyChangeResult> {
    return changeKey({ link: this.link, keys: this.keys, confirm: o.confirm });
  }

  /** Reconciliation with the host (0500/0510, reconcile.ts); drains the outbox and reversals first. */
  reconcile(o: ReconcileOptions = {}): Promise<ReconciliationResult> {
    return reconcile({ journal: this.journal, link: this.link, drain: (signal) => this.forward({ untilEmpty: true, signal }) }, o);
  }

  /** 0800 echo (301) on the signed-on session; resolves when the host answered 00. */
  async echo(): Promise<void> {
    try {
      const session = await this.link.session();
      await session.echo();
    } catch (e) {
      if (!(e instanceof UplinkError)) await this.link.drop();
      throw e;
    }
  }

  /** Records reversals for 0200s an earlier process left without an answer (see the top of the file). */
  private reverseAbandoned(): void {
    const c = this.config;
    reverseUnanswered(this.store, this.clock() - (IN_DOUBT_AFTER_TIMEOUTS * c.requestTimeoutMs + c.connectTimeoutMs));
  }

  /** Connects and signs on now (instead of at the first need), e.g. to enrol the reader. */
  async connect(): Promise<void> {
    await this.link.session();
  }

  async close(): Promise<void> {
    try {
      await this.link.close();
    } finally {
      this.keys.destroy();
      this.store.close();
    }
  }
}
