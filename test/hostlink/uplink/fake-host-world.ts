/**
 * The per-test world of the uplink unit tests: a temporary folder, a FakeHost on loopback, the
 * terminal's journal, and the uplinks the test opens, all made before each test and closed after it.
 * `useFakeHostWorld()` registers the hooks; read its fields inside tests and later hooks.
 */
import { afterEach, beforeEach } from 'vitest';
import { join } from 'node:path';
import type { Journal } from '../../../src/terminal/journal/index.js';
import type { Uplink, UplinkConfigInput } from '../../../src/hostlink/uplink/index.js';
import { FakeHost } from './fake-host.js';
import { READER, TERMINAL, openJournal, openUplink, tempDir } from './helpers.js';

export interface FakeHostWorld {
  readonly work: { dir: string; remove(): void };
  readonly host: FakeHost;
  /** `journal.db` in `work`, for TERMINAL / READER. */
  readonly journal: Journal;
  /**
   * An uplink on the journal and the fake host, closed after the test. `enrolmentCode`: a code
   * (string), none (null), or by default a fresh one the host issues for TERMINAL / READER.
   */
  uplink(o?: { enrolmentCode?: string | null; config?: Partial<UplinkConfigInput> }): Uplink;
}

export function useFakeHostWorld(): FakeHostWorld {
  let current: { work: FakeHostWorld['work']; host: FakeHost; journal: Journal } | null = null;
  const uplinks: Uplink[] = [];
  const now = () => {
    if (current === null) throw new Error('the fake-host world exists only inside a test');
    return current;
  };
  beforeEach(async () => {
    const work = tempDir();
    const host = await FakeHost.start();
    current = { work, host, journal: openJournal(join(work.dir, 'journal.db')) };
  });
  afterEach(async () => {
    const { work, host, journal } = now();
    for (const u of uplinks.splice(0)) await u.close();
    journal.close();
    await host.stop();
    work.remove();
    current = null;
  });
  return {
    get work() {
      return now().work;
    },
    get host() {
      return now().host;
    },
    get journal() {
      return now().journal;
    },
    uplink(u = {}) {
      const { host, journal } = now();
      const enrolmentCode = u.enrolmentCode === undefined ? host.issueCode(TERMINAL, READER) : (u.enrolmentCode ?? undefined);
      const up = openUplink(journal, host.port, { enrolmentCode, config: u.config });
      uplinks.push(up);
      return up;
    },
  };
}
