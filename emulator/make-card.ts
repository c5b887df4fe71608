/**
 * Builds an emulated card from a short description: serial, applets by catalog name (optionally at
 * another AID), card image file (tear-safe) or memory, ATR.
 */
import { BadInputError } from '../src/util/errors.js';
import { CardOs, type AppletEntry, type OsLogger } from './os/index.js';
import { MemoryStore } from './store/memory.js';
import { openFileStore } from './store/file-store.js';
import type { PersistentStore } from './store/types.js';
import { APPLET_CATALOG, APPLET_NAMES } from './catalog.js';
import { DEFAULT_ATR } from './atr.js';

export interface AppletChoice {
  name: string;
  aid?: Uint8Array;
}

export interface CardSpec {
  serial: Uint8Array;
  applets: AppletChoice[];
  /** Card image file; absent = memory only (state lost when the process ends). */
  image?: string;
  atr?: Uint8Array;
  maxChannels?: number;
  logger?: OsLogger;
}

export interface EmulatedCard {
  os: CardOs;
  store: PersistentStore;
  spec: CardSpec;
}

export function makeCard(spec: CardSpec): EmulatedCard {
  const entries: AppletEntry[] = spec.applets.map((choice) => {
    const entry = APPLET_CATALOG[choice.name];
    if (!entry) throw new BadInputError(`unknown applet "${choice.name}" (known: ${APPLET_NAMES.join(', ')})`);
    return { aid: choice.aid ?? entry.aid, name: choice.name, applet: entry.create() };
  });
  const store = spec.image ? openFileStore(spec.image) : new MemoryStore();
  const os = new CardOs({
    atr: spec.atr ?? DEFAULT_ATR,
    serial: spec.serial,
    store,
    applets: entries,
    maxChannels: spec.maxChannels,
    logger: spec.logger,
  });
  return { os, store, spec };
}
