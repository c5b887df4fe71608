/**
 * Builds an emulated card from a short description: serial, applets by catalog name (optionally at
 * another AID, optionally associated with a security domain), security domains, card image file
 * (tear-safe) or memory, ATR.
 *
 * `testKeys: true` adds an Issuer Security Domain holding the GlobalPlatform default TEST KEYS
 * (40 41 .. 4F for ENC, MAC and DEK, KVN 30, the `gp-test` set of src/crypto/diversify.ts, not
 * diversified, as factory-fresh GP cards carry it), SCP03 with i = 70 (pseudo-random challenges,
 * R-MAC and R-ENC: every security level), and advertises SCP03 i=70 in its Card Recognition Data.
 * These keys are public: such a card is for tests and demos only, and the card's logger says so.
 */
import { BadInputError } from '../src/util/errors.js';
import { testStaticKeys, TEST_KEYS_LABEL } from '../src/crypto/diversify.js';
import { zeroize } from '../src/util/bytes.js';
import { CardOs, type AppletEntry, type OsLogger } from './os/index.js';
import { DEFAULT_SCP03_I, GP_ISD_AID, type SecurityDomainConfig } from './os/security-domain.js';
import { MemoryStore } from './store/memory.js';
import { openFileStore } from './store/file-store.js';
import type { PersistentStore } from './store/types.js';
import { APPLET_CATALOG, APPLET_NAMES } from './catalog.js';
import { DEFAULT_ATR } from './atr.js';

export interface AppletChoice {
  name: string;
  aid?: Uint8Array;
  /**
   * AID of the security domain the applet belongs to. Default: the issuer security domain when the
   * card has one (the TEST KEYS ISD with `testKeys`); null: none.
   */
  securityDomain?: Uint8Array | null;
}

export interface CardSpec {
  serial: Uint8Array;
  applets: AppletChoice[];
  /** Card image file; absent = memory only (state lost when the process ends). */
  image?: string;
  atr?: Uint8Array;
  maxChannels?: number;
  logger?: OsLogger;
  /** Security domains of the card (see CardOsOptions.securityDomains). */
  securityDomains?: SecurityDomainConfig[];
  /** Adds TEST_KEYS_ISD: an ISD with the public GlobalPlatform test keys. Never for real value. */
  testKeys?: boolean;
}

export interface EmulatedCard {
  os: CardOs;
  store: PersistentStore;
  spec: CardSpec;
}

/** The built-in test ISD: name, AID, key set and i parameter. */
export const TEST_KEYS_ISD = Object.freeze({
  name: 'ISD TEST KEYS',
  aid: GP_ISD_AID,
  provider: 'gp-test',
  i: DEFAULT_SCP03_I,
});

/** A fresh configuration of the TEST KEYS ISD (the caller's copy of the public keys). */
export function testKeysIsd(): SecurityDomainConfig {
  return { aid: TEST_KEYS_ISD.aid.slice(), name: TEST_KEYS_ISD.name, keys: testStaticKeys(TEST_KEYS_ISD.provider), i: TEST_KEYS_ISD.i, issuer: true };
}

export function makeCard(spec: CardSpec): EmulatedCard {
  const entries: AppletEntry[] = spec.applets.map((choice) => {
    const entry = APPLET_CATALOG[choice.name];
    if (!entry) throw new BadInputError(`unknown applet "${choice.name}" (known: ${APPLET_NAMES.join(', ')})`);
    return { aid: choice.aid ?? entry.aid, name: choice.name, applet: entry.create(), securityDomain: choice.securityDomain };
  });
  const domains = [...(spec.securityDomains ?? [])];
  if (spec.testKeys === true) domains.unshift(testKeysIsd());
  const store = spec.image ? openFileStore(spec.image) : new MemoryStore();
  try {
    const os = new CardOs({
      atr: spec.atr ?? DEFAULT_ATR,
      serial: spec.serial,
      store,
      applets: entries,
      maxChannels: spec.maxChannels,
      logger: spec.logger,
      securityDomains: domains,
      productionData: spec.testKeys === true ? { recognition: { secureChannel: { scp: 0x03, i: TEST_KEYS_ISD.i } } } : undefined,
    });
    if (spec.testKeys === true) {
      spec.logger?.warn(`card ${TEST_KEYS_ISD.name}: GlobalPlatform default ${TEST_KEYS_LABEL}`, { aid: 'A000000151000000', kvn: 0x30 });
    }
    return { os, store, spec };
  } finally {
    if (spec.testKeys === true) zeroize(domains[0].keys.enc, domains[0].keys.mac, domains[0].keys.dek);
  }
}
