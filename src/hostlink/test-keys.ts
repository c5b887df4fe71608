/**
 * TEST KEYS. NOT SECRET. NEVER USE IN PRODUCTION.
 *
 * The host master keys hilt's mock hosts (src/hosts) use unless they are given others, and the
 * terminals that talk to them derive their own keys from. They are published here so that tests,
 * the demo and `hilt hosts` agree without configuration. A real host keeps its master keys in an
 * HSM and a real terminal holds only its own derived keys, injected at personalisation.
 *
 * Per-terminal keys: deriveTerminalKey(master, usage, terminalId, keyVersion) (iso8583/mac.ts);
 * terminals start at key version TEST_INITIAL_KEY_VERSION.
 */
import { deriveTerminalKey } from './iso8583/mac.js';
import { fromHex } from '../util/bytes.js';

/** TEST ONLY: the host master key from which every terminal's MAC keys are derived. */
export const TEST_HOST_MAC_MASTER_HEX = '54455354204d4143204d415354455221'; // "TEST MAC MASTER!"
/** TEST ONLY: the host master key from which every terminal's key-encryption keys (key change) are derived. */
export const TEST_HOST_KEK_MASTER_HEX = '54455354204b454b204d415354455221'; // "TEST KEK MASTER!"
/** The MAC key version a terminal starts with. */
export const TEST_INITIAL_KEY_VERSION = 1;

/** TEST ONLY: the MAC master key as bytes (a fresh copy each call). */
export function testHostMacMaster(): Uint8Array {
  return fromHex(TEST_HOST_MAC_MASTER_HEX);
}

/** TEST ONLY: the KEK master key as bytes (a fresh copy each call). */
export function testHostKekMaster(): Uint8Array {
  return fromHex(TEST_HOST_KEK_MASTER_HEX);
}

/** TEST ONLY: a terminal's MAC key under the test master, `deriveTerminalKey(master, 'mac', id, version)`. */
export function testTerminalMacKey(terminalId: string, keyVersion = TEST_INITIAL_KEY_VERSION): Uint8Array {
  return deriveTerminalKey(testHostMacMaster(), 'mac', terminalId, keyVersion);
}

/**
 * TEST ONLY: a terminal's key-encryption key under the test KEK master. The hosts wrap a new MAC key
 * (0800 key change) under KEK version TEST_INITIAL_KEY_VERSION, whatever the MAC key version.
 */
export function testTerminalKek(terminalId: string, keyVersion = TEST_INITIAL_KEY_VERSION): Uint8Array {
  return deriveTerminalKey(testHostKekMaster(), 'kek', terminalId, keyVersion);
}
