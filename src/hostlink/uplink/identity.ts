/**
 * The reader's identity on the host link: its P-256 key pair (reader-auth.ts), made once on the
 * reader and kept in the uplink state file (store.ts, mode 0600), never sent anywhere but its public
 * half. The key is stored BEFORE the enrolment that registers it goes out, so a crash between the
 * host's "enrolled" and our note of it cannot leave the host with a key the reader no longer has;
 * whether the host knows the key is found out by signing on (the store's `enrolledAt` is a note, the
 * host is the authority).
 */
import { generateReaderKeyPair, isReaderPublicKey, readerPublicKey, READER_PRIVATE_KEY_LENGTH } from '../reader-auth.js';
import { HiltError } from '../../util/errors.js';
import { bytesEqual } from '../../util/bytes.js';
import type { UplinkStore } from './store.js';

export interface ReaderKeyPair {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** The host confirmed this key at least once. */
  readonly enrolled: boolean;
}

/** The stored key pair, or a new one (generated, stored, not enrolled). STORE_CORRUPT on a damaged key. */
export function readerKeyPair(store: UplinkStore, generate: () => { privateKey: Uint8Array; publicKey: Uint8Array } = generateReaderKeyPair): ReaderKeyPair {
  const stored = store.readerKey();
  if (stored !== null) {
    let derived: Uint8Array | null = null;
    try {
      if (stored.privateKey.length === READER_PRIVATE_KEY_LENGTH) derived = readerPublicKey(stored.privateKey);
    } catch {
      derived = null;
    }
    if (derived === null || !isReaderPublicKey(stored.publicKey) || !bytesEqual(derived, stored.publicKey)) {
      throw new HiltError('STORE_CORRUPT', `${store.path}: the stored reader key pair is damaged (its halves do not match); re-key the reader and enrol it again`);
    }
    return { privateKey: stored.privateKey, publicKey: stored.publicKey, enrolled: stored.enrolledAt !== null };
  }
  const fresh = generate();
  store.saveReaderKey(fresh.privateKey, fresh.publicKey);
  return { privateKey: fresh.privateKey, publicKey: fresh.publicKey, enrolled: false };
}

/** Replaces the reader's key pair with a new one (after a compromise): it must be enrolled again. */
export function rekeyReader(store: UplinkStore, generate: () => { privateKey: Uint8Array; publicKey: Uint8Array } = generateReaderKeyPair): ReaderKeyPair {
  const fresh = generate();
  store.saveReaderKey(fresh.privateKey, fresh.publicKey);
  return { privateKey: fresh.privateKey, publicKey: fresh.publicKey, enrolled: false };
}
