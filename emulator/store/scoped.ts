/**
 * A scoped view of a PersistentStore, for the applet firewall: each applet gets
 * `scopeStore(cardStore, appletName)` and can only see and write records under `appletName + "/"`.
 *
 * Why a key cannot escape: every key the view touches is `prefix + "/" + key`, so it starts with the
 * view's namespace whatever the key contains ("/", "..", NUL are plain characters here). Prefixes may
 * not contain the separator, so two different prefixes never share a namespace: if "p/" and "q/" both
 * began the same string, the shorter would end where the longer still has a prefix character, and
 * that character would have to be "/". Scopes nest (`scopeStore(scopeStore(s, "a"), "b")` owns
 * "a/b/..."), which only ever narrows what is reachable.
 *
 * Transactions are the card's: begin/commit/abort/inTransaction go to the underlying store, so a
 * transaction opened through one view covers the changes made through every view.
 */
import { BadInputError } from '../../src/util/errors.js';
import type { PersistentStore } from './types.js';

export const SCOPE_SEPARATOR = '/';

class ScopedStore implements PersistentStore {
  private readonly base: PersistentStore;
  private readonly ns: string;

  constructor(base: PersistentStore, prefix: string) {
    this.base = base;
    this.ns = prefix + SCOPE_SEPARATOR;
  }

  get inTransaction(): boolean {
    return this.base.inTransaction;
  }

  get(key: string): Uint8Array | undefined {
    return this.base.get(this.full(key));
  }

  keys(prefix = ''): string[] {
    const ns = this.ns;
    return this.base
      .keys(ns + prefix)
      .filter((k) => k.startsWith(ns))
      .map((k) => k.slice(ns.length));
  }

  put(key: string, value: Uint8Array): void {
    this.base.put(this.full(key), value);
  }

  delete(key: string): void {
    this.base.delete(this.full(key));
  }

  begin(): void {
    this.base.begin();
  }

  commit(): void {
    this.base.commit();
  }

  abort(): void {
    this.base.abort();
  }

  private full(key: string): string {
    if (typeof key !== 'string') throw new BadInputError(`store key: expected a string, got ${typeof key}`);
    return this.ns + key;
  }
}

/**
 * A view of `store` that sees only keys under `prefix + "/"`, returned without that namespace.
 * `prefix` must be non-empty and must not contain "/".
 */
export function scopeStore(store: PersistentStore, prefix: string): PersistentStore {
  if (typeof prefix !== 'string' || prefix.length === 0) throw new BadInputError('scopeStore: the prefix must be a non-empty string');
  if (prefix.includes(SCOPE_SEPARATOR)) {
    throw new BadInputError(`scopeStore: the prefix ${JSON.stringify(prefix)} contains the separator "${SCOPE_SEPARATOR}"`);
  }
  return new ScopedStore(store, prefix);
}
