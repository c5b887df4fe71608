/**
 * One terminal's uplink, assembled: the configuration, the state file next to the journal, the link
 * (one signed-on session at a time) and the operations over it. Close it when done: it closes the
 * session and the state file, not the journal (the terminal owns that).
 */
import { uplinkConfig, type UplinkConfig, type UplinkConfigInput } from './config.js';
import { UplinkStore, uplinkStorePathFor } from './store.js';
import { UplinkLink } from './link.js';
import { forwardOutbox, type ForwarderOptions, type ForwarderStats } from './forwarder.js';
import { syncNegativeList, type NegativeSyncResult } from './negative-sync.js';
import { authorizeLoad, type LoadAuthorization } from './load.js';
import { UplinkError } from './errors.js';
import type { UplinkJournal } from './contract.js';

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

  private constructor(config: UplinkConfig, journal: UplinkJournal, store: UplinkStore, link: UplinkLink) {
    this.config = config;
    this.journal = journal;
    this.store = store;
    this.link = link;
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
    const link = new UplinkLink({ config, store, enrolmentCode: o.enrolmentCode, clock: o.clock });
    return new Uplink(config, o.journal, store, link);
  }

  /** Store-and-forward of the journal's outbox (forwarder.ts). */
  forward(o: Omit<ForwarderOptions, 'journal' | 'link'> = {}): Promise<ForwarderStats> {
    return forwardOutbox({ ...o, journal: this.journal, link: this.link });
  }

  /** Brings the negative card file up to date (negative-sync.ts). */
  syncNegativeList(): Promise<NegativeSyncResult> {
    return syncNegativeList({ journal: this.journal, link: this.link });
  }

  /** 0200 for the pending load `transactionId` (load.ts). */
  authorizeLoad(transactionId: number): Promise<LoadAuthorization> {
    return authorizeLoad({ journal: this.journal, link: this.link, transactionId });
  }

  /** Connects and signs on now (instead of at the first need), e.g. to enrol the reader. */
  async connect(): Promise<void> {
    await this.link.session();
  }

  async close(): Promise<void> {
    try {
      await this.link.close();
    } finally {
      this.store.close();
    }
  }
}
