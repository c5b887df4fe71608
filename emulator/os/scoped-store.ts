/**
 * The views of the card's persistent store that an applet gets: a prefix view of the records
 * (ScopedStore) and a named key slot built on one (KeySlot).
 *
 * The firewall rests on the prefix: every name an applet passes is appended to a fixed prefix that
 * ends in '/', and `keys()` only lists names under it, so no name ("../x", "", a longer AID) reaches
 * outside. Transactions stay card-wide (begin/commit/abort go to the underlying store), as in Java Card.
 * `guard` runs before every operation; the OS uses it to make a stale context (power cut) inert.
 */
import type { PersistentStore } from '../store/types.js';
import { assertBytes } from '../../src/util/assert.js';
import { BadInputError } from '../../src/util/errors.js';

export class ScopedStore implements PersistentStore {
  private readonly inner: PersistentStore;
  private readonly prefix: string;
  private readonly guard: () => void;

  constructor(inner: PersistentStore, prefix: string, guard: () => void = () => undefined) {
    if (!prefix.endsWith('/')) throw new BadInputError(`ScopedStore: the prefix must end with '/', got "${prefix}"`);
    this.inner = inner;
    this.prefix = prefix;
    this.guard = guard;
  }

  get inTransaction(): boolean {
    this.guard();
    return this.inner.inTransaction;
  }

  get(key: string): Uint8Array | undefined {
    this.guard();
    return this.inner.get(this.prefix + key);
  }

  keys(prefix = ''): string[] {
    this.guard();
    return this.inner.keys(this.prefix + prefix).map((k) => k.slice(this.prefix.length));
  }

  put(key: string, value: Uint8Array): void {
    this.guard();
    assertBytes(value, 'value');
    this.inner.put(this.prefix + key, value);
  }

  delete(key: string): void {
    this.guard();
    this.inner.delete(this.prefix + key);
  }

  begin(): void {
    this.guard();
    this.inner.begin();
  }

  commit(): void {
    this.guard();
    this.inner.commit();
  }

  abort(): void {
    this.guard();
    this.inner.abort();
  }
}

/** An applet's named secret keys (persistent, copied in and out). */
export class KeySlot {
  private readonly store: PersistentStore;

  constructor(store: PersistentStore) {
    this.store = store;
  }

  get(name: string): Uint8Array | undefined {
    return this.store.get(name);
  }

  has(name: string): boolean {
    return this.store.get(name) !== undefined;
  }

  set(name: string, key: Uint8Array): void {
    assertBytes(key, `key "${name}"`);
    if (name.length === 0) throw new BadInputError('key name: expected a non-empty string');
    this.store.put(name, key);
  }

  delete(name: string): void {
    this.store.delete(name);
  }

  /** Key names in ascending order. */
  names(): string[] {
    return this.store.keys();
  }
}
