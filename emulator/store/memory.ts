/**
 * A PersistentStore held in memory: for in-process cards that need no image file. Transactions keep
 * a shadow of the changed keys and apply it at commit.
 */
import type { PersistentStore } from './types.js';
import { StoreError } from './errors.js';

const DELETED = Symbol('deleted');

export class MemoryStore implements PersistentStore {
  private readonly records = new Map<string, Uint8Array>();
  private pending: Map<string, Uint8Array | typeof DELETED> | null = null;

  get inTransaction(): boolean {
    return this.pending !== null;
  }

  get(key: string): Uint8Array | undefined {
    const p = this.pending?.get(key);
    if (p === DELETED) return undefined;
    const v = p ?? this.records.get(key);
    return v?.slice();
  }

  keys(prefix = ''): string[] {
    const all = new Set(this.records.keys());
    for (const [k, v] of this.pending ?? []) {
      if (v === DELETED) all.delete(k);
      else all.add(k);
    }
    return [...all].filter((k) => k.startsWith(prefix)).sort();
  }

  put(key: string, value: Uint8Array): void {
    if (this.pending) this.pending.set(key, value.slice());
    else this.records.set(key, value.slice());
  }

  delete(key: string): void {
    if (this.pending) this.pending.set(key, DELETED);
    else this.records.delete(key);
  }

  begin(): void {
    if (this.pending) throw new StoreError('IN_PROGRESS', 'a transaction is already in progress');
    this.pending = new Map();
  }

  commit(): void {
    if (!this.pending) throw new StoreError('NOT_IN_PROGRESS', 'commit without a transaction');
    for (const [k, v] of this.pending) {
      if (v === DELETED) this.records.delete(k);
      else this.records.set(k, v);
    }
    this.pending = null;
  }

  abort(): void {
    if (!this.pending) throw new StoreError('NOT_IN_PROGRESS', 'abort without a transaction');
    this.pending = null;
  }
}
