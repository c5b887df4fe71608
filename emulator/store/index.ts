/** The card's persistent store: the contract, its errors, and the implementations. */
export type { PersistentStore } from './types.js';
export { StoreError, type StoreErrorReason } from './errors.js';
export { MemoryStore } from './memory.js';
export { FileStore, openFileStore, crc32, FILE_STORE_FORMAT, type FileStoreOptions } from './file-store.js';
export {
  FileMedium,
  RamMedium,
  TearingMedium,
  PowerLostError,
  TEAR_MODES,
  MAX_MEDIUM_SIZE,
  type Medium,
  type TearMode,
  type TearingOptions,
  type WriteEvent,
} from './medium.js';
export { scopeStore, SCOPE_SEPARATOR } from './scoped.js';
