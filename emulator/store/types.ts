/**
 * A card's persistent memory (its EEPROM) as named records.
 *
 * Semantics follow Java Card's transactions:
 * - Outside a transaction every `put`/`delete` is atomic on its own.
 * - `begin()` opens the (single, card-wide) transaction; a nested begin throws StoreError
 *   ('IN_PROGRESS'). Inside it, reads see the new values; `commit()` makes every change since
 *   `begin` durable at once; `abort()` (or a power loss before commit completes) discards them all.
 * - After a power cut at any point (any single low-level write), reopening the store yields either
 *   every change of the interrupted transaction or none of them — never a mix, never corruption.
 * - Values are copied in and out: callers may not keep aliases into the store.
 */
export interface PersistentStore {
  get(key: string): Uint8Array | undefined;
  /** Keys in ascending order, optionally only those starting with `prefix`. */
  keys(prefix?: string): string[];
  put(key: string, value: Uint8Array): void;
  delete(key: string): void;
  begin(): void;
  commit(): void;
  abort(): void;
  readonly inTransaction: boolean;
}
