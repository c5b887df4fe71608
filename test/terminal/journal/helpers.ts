/** Shared by the journal tests: temp folders, a journal with an identity, a fixed clock, certificates. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, type JournalOptions } from '../../../src/terminal/journal/index.js';

export const IDENTITY = { terminalId: 'T-0001', readerId: 'R-01' };

/** A fresh temp folder; remove() deletes it. */
export function tempDir(prefix = 'hilt-journal-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A clock the test moves by hand. */
export function manualClock(start = Date.UTC(2024, 4, 1, 12, 0, 0)): { now: () => number; set(ms: number): void; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

export function openJournal(path: string, options: JournalOptions = {}): Journal {
  return Journal.open(path, { identity: IDENTITY, ...options });
}

/** A recognisable certificate for a reader sequence number: 8 bytes, big-endian seq then A5 5A. */
export function certFor(seq: number): Uint8Array {
  const c = new Uint8Array(8);
  new DataView(c.buffer).setUint32(2, seq);
  c[6] = 0xa5;
  c[7] = 0x5a;
  return c;
}

export const PURCHASE = { provider: 'emoney', type: 'purchase' as const, currency: 'JPY' };
