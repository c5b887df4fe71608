/**
 * The terminal's MAC key as the uplink uses it: one current key and version (field 53 of every
 * message it sends), chosen at open between the configured key and the one the last key change
 * stored (store.ts): the stored key wins when its version is at least the configured one (a key
 * change moved the terminal on; a re-personalised terminal configured with a newer version moves it
 * on again). A key change installs the new key here only after the store has it on disk.
 *
 * Answers are checked under the key of the version they carry: the current one, or the one just
 * replaced in this process (the answer to a request sent just before the change). Key bytes never
 * leave this object but to the channel's MAC function; util.inspect and JSON show the version only.
 */
import { assertBytes, assertInt } from '../../util/assert.js';
import { zeroize } from '../../util/bytes.js';
import type { UplinkStore } from './store.js';

export type MacKeySource = 'configured' | 'stored';

export class MacKeyRing {
  readonly terminalId: string;
  #version: number;
  #key: Uint8Array;
  #source: MacKeySource;
  #previous: { version: number; key: Uint8Array } | null = null;

  constructor(terminalId: string, version: number, key: Uint8Array, source: MacKeySource) {
    assertInt(version, 'key version', 1, 255);
    assertBytes(key, 'MAC key', [16, 24, 32]);
    this.terminalId = terminalId;
    this.#version = version;
    this.#key = key.slice();
    this.#source = source;
  }

  /** The configured key, or the stored one when its version is at least the configured version. */
  static open(config: { terminalId: string; keyVersion: number; macKey: Uint8Array }, store: UplinkStore): MacKeyRing {
    const stored = store.macKey();
    if (stored !== null && stored.version >= config.keyVersion) {
      const ring = new MacKeyRing(config.terminalId, stored.version, stored.key, 'stored');
      zeroize(stored.key);
      return ring;
    }
    if (stored !== null) zeroize(stored.key);
    return new MacKeyRing(config.terminalId, config.keyVersion, config.macKey, 'configured');
  }

  /** Field 53 of the messages the terminal sends now. */
  get version(): number {
    return this.#version;
  }

  /** Where the current key came from. */
  get source(): MacKeySource {
    return this.#source;
  }

  /** The key of a message of this terminal under `version` (current, or the one just replaced). */
  keyFor(terminalId: string | undefined, version: number | undefined): Uint8Array | undefined {
    if (terminalId !== this.terminalId) return undefined;
    if (version === this.#version) return this.#key;
    if (this.#previous !== null && version === this.#previous.version) return this.#previous.key;
    return undefined;
  }

  /** Makes `key` of `version` the current key (the caller has stored it first). The key is copied. */
  install(version: number, key: Uint8Array): void {
    assertInt(version, 'key version', 1, 255);
    assertBytes(key, 'MAC key', [16, 24, 32]);
    if (this.#previous !== null) zeroize(this.#previous.key);
    this.#previous = { version: this.#version, key: this.#key };
    this.#version = version;
    this.#key = key.slice();
    this.#source = 'stored';
  }

  /** Zeroizes the keys (the uplink is closed). */
  destroy(): void {
    zeroize(this.#key);
    if (this.#previous !== null) zeroize(this.#previous.key);
    this.#previous = null;
  }

  toJSON(): { terminalId: string; version: number; source: MacKeySource } {
    return { terminalId: this.terminalId, version: this.#version, source: this.#source };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `MacKeyRing { terminal: ${this.terminalId}, version: ${this.#version}, source: ${this.#source} }`;
  }
}
