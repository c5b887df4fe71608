/**
 * The terminal's key store: one isolated domain per service provider (DESIGN.md "Security model",
 * applets-spec/security.md "Terminal key store").
 *
 * Isolation is a property of the API, not a convention:
 * - Nothing returns key bytes. KeyStore.list()/describe() give provider, key version, key length,
 *   key check values, source and labels. Master keys live in #private fields of objects this module
 *   never exports as classes; util.inspect and JSON show descriptions only.
 * - KeyStore.domain(provider) hands out a provider's ProviderDomain exactly once (a capability):
 *   configuration code claims each domain and passes it to the code serving that provider; a second
 *   claim, from anywhere, throws KEY_ACCESS. A ProviderDomain has no route to the store or to any
 *   other domain.
 * - Every operation of a domain names the provider the caller acts for (`provider`); a domain asked
 *   to serve another provider throws KEY_ACCESS, so a flow wired to the wrong domain fails loudly
 *   instead of trying another provider's keys on a card.
 * - Card keys derived by a domain are opaque handles (CardKeys) that only the issuing domain can
 *   use; any other domain, or a look-alike object, gets KEY_ACCESS.
 * - close() zeroizes: a handle's card keys, a domain's master keys and handles, or the whole store.
 *   A closed domain or handle throws KEY_ACCESS on use.
 *
 * Sources, combined in one store: a key file (keystore-file.ts), environment variables
 * (HILT_KEYS_<PROVIDER>_ENC/_MAC/_DEK/_KVN, optional _DIVERSIFY and _ENC_KCV/_MAC_KCV/_DEK_KCV),
 * the built-in TEST keys (src/crypto/diversify.ts, TEST_KEY_SETS), and key sets handed over by the
 * caller (an HSM or secret manager), which the store takes ownership of. A provider may come from
 * one source only; two providers may never share a master key; a key equal to a built-in test key
 * is labelled TEST KEYS whatever its source.
 */
import {
  diversifyStaticKeys,
  kcvHex,
  KEY_TYPES,
  TEST_KEY_SETS,
  TEST_KEYS_LABEL,
  type KeyType,
} from '../crypto/diversify.js';
import { assertStaticKeys, type StaticKeys } from '../crypto/scp03.js';
import { openScp03, type Scp03Channel, type Scp03Options } from '../reader/scp03.js';
import type { CardChannel } from '../reader/channel.js';
import { BadInputError, HiltError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { constantTimeEqual, fromHex, hexByte, zeroize } from '../util/bytes.js';
import {
  assertProviderId,
  checkKcv,
  checkKeyLengths,
  isProviderId,
  KeyFileError,
  parseAt,
  parseKcv,
  parseKvn,
  parseSwitch,
  readKeyFile,
  secretHexFromString,
  zeroizeEntries,
  type KeyEntry,
  type KeySourceKind,
} from './keystore-file.js';

export { KeyFileError, TEST_KEYS_LABEL, type KeySourceKind };

// ---------------------------------------------------------------------------------------------
// Public shapes

/** A key was asked for outside the domain that owns it, or after it was zeroized. */
export class KeyAccessError extends HiltError {
  constructor(message: string) {
    super('KEY_ACCESS', message);
  }
}

export type KeySource =
  /** A key file (format in keystore-file.ts and applets-spec/security.md). */
  | { kind: 'file'; path: string }
  /** HILT_KEYS_* variables of `env` (default process.env). */
  | { kind: 'env'; env?: Readonly<Record<string, string | undefined>> }
  /** Built-in TEST keys; default all of TEST_KEY_SETS (gp-test, emoney, bank, credit). */
  | { kind: 'test'; providers?: readonly string[] }
  /**
   * A key set the caller already holds. The store takes ownership of the arrays: it zeroizes them
   * on close() (or at once when open() fails); do not keep or reuse them. Diversify defaults to true.
   */
  | { kind: 'keys'; provider: string; keys: StaticKeys; diversify?: boolean };

export interface KeyStoreOptions {
  sources: readonly KeySource[];
  /** Warnings (test keys loaded, key file permissions); default process.emitWarning, code HILT_KEYSTORE. */
  warn?: (message: string) => void;
  /** Platform whose file permission bits apply; default process.platform. */
  platform?: NodeJS.Platform;
}

export interface KeyCheckValues {
  enc: string;
  mac: string;
  dek: string;
}

/** What may be shown about a domain: never key bytes. */
export interface DomainDescription {
  provider: string;
  kvn: number;
  /** Bytes per key: 16, 24 or 32 (AES-128/192/256). */
  keyLength: number;
  /** Key check values of the master keys, 6 upper-case hex digits each. */
  kcv: KeyCheckValues;
  source: KeySourceKind;
  origin: string;
  /** Whether cards hold keys diversified from these master keys (else the master keys themselves). */
  diversify: boolean;
  /** Built-in test keys, or keys equal to one of them. */
  testKeys: boolean;
  /** TEST_KEYS_LABEL for test keys, '' otherwise. */
  label: string;
  closed: boolean;
}

/** An opaque handle on one card's static keys, usable only by the domain that derived them. */
export interface CardKeys {
  readonly provider: string;
  readonly kvn: number;
  /** False when the domain does not diversify (the card keys are the master keys). */
  readonly diversified: boolean;
  /** A copy of the diversification data the keys were derived with (undefined when not diversified). */
  readonly diversificationData: Uint8Array | undefined;
  /** Key check values of the card keys (safe to log; they identify the keys without revealing them). */
  readonly kcv: KeyCheckValues;
  readonly closed: boolean;
  /** Zeroizes the card keys. Idempotent. */
  close(): void;
}

export interface DomainScp03Options extends Omit<Scp03Options, 'keys'> {
  /** The provider whose security domain the caller addresses on the card; must be this domain's. */
  provider: string;
  /** Card keys derived earlier by this domain. */
  cardKeys?: CardKeys;
  /**
   * The card's diversification data when already known (1..32 bytes). Without it (and without
   * cardKeys) a diversifying domain diversifies from the key diversification data the card returns in
   * the handshake's own INITIALIZE UPDATE (no extra command). A domain that does not diversify
   * ignores it.
   */
  diversificationData?: Uint8Array;
}

/** What the code serving one provider holds. It reaches that provider's keys and nothing else. */
export interface ProviderDomain {
  readonly provider: string;
  readonly closed: boolean;
  describe(): DomainDescription;
  /**
   * Derives one card's keys: diversified with `diversificationData` (required) when the domain
   * diversifies, else a copy of the master keys (the data is then ignored).
   */
  cardKeys(options: { provider: string; diversificationData?: Uint8Array }): CardKeys;
  /** Authenticates to the card's security domain of this provider with SCP03; see DomainScp03Options. */
  openScp03(channel: CardChannel, options: DomainScp03Options): Promise<Scp03Channel>;
  /** Zeroizes the master keys and every card key handed out. Idempotent. */
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Environment variables

export const ENV_PREFIX = 'HILT_KEYS_';
/** Field suffixes, longest first so HILT_KEYS_X_ENC_KCV reads as provider X, field ENC_KCV. */
export const ENV_FIELDS = ['ENC_KCV', 'MAC_KCV', 'DEK_KCV', 'ENC', 'MAC', 'DEK', 'KVN', 'DIVERSIFY'] as const;
export type EnvField = (typeof ENV_FIELDS)[number];
const ENV_NAME = new RegExp(`^${ENV_PREFIX}([A-Z0-9_]+?)_(${ENV_FIELDS.join('|')})$`);
const ENV_ORIGIN = 'environment';

/** The variable holding `field` of `provider`: envVarName('gp-test', 'ENC') === 'HILT_KEYS_GP_TEST_ENC'. */
export function envVarName(provider: string, field: EnvField): string {
  assertProviderId(provider);
  if (!(ENV_FIELDS as readonly string[]).includes(field)) throw new BadInputError(`key variable field: expected ${ENV_FIELDS.join(', ')}, got ${String(field)}`);
  return `${ENV_PREFIX}${provider.toUpperCase().replace(/-/g, '_')}_${field}`;
}

function _readEnv(env: Readonly<Record<string, string | undefined>>): KeyEntry[] {
  const byProvider = new Map<string, Map<EnvField, { name: string; value: string }>>();
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX)) continue;
    const value = env[name];
    if (value === undefined) continue;
    const m = ENV_NAME.exec(name);
    if (m === null) {
      throw new KeyFileError(ENV_ORIGIN, undefined, `${name} is not a key variable (expected ${ENV_PREFIX}<PROVIDER>_{${ENV_FIELDS.join(',')}})`);
    }
    const provider = m[1].toLowerCase().replace(/_/g, '-');
    if (!isProviderId(provider)) throw new KeyFileError(ENV_ORIGIN, undefined, `${name}: '${provider}' is not a provider id`);
    if (value.trim().length === 0) throw new KeyFileError(ENV_ORIGIN, undefined, `${name} is empty`);
    let fields = byProvider.get(provider);
    if (fields === undefined) byProvider.set(provider, (fields = new Map()));
    fields.set(m[2] as EnvField, { name, value });
  }
  const entries: KeyEntry[] = [];
  try {
    for (const [provider, fields] of byProvider) {
      const origin = `${ENV_ORIGIN} (${envVarName(provider, 'ENC').replace(/ENC$/, '*')})`;
      const missing = (['ENC', 'MAC', 'DEK', 'KVN'] as const).filter((f) => !fields.has(f)).map((f) => envVarName(provider, f));
      if (missing.length > 0) throw new KeyFileError(ENV_ORIGIN, undefined, `provider '${provider}': missing ${missing.join(', ')}`);
      const get = (f: EnvField): { name: string; value: string } => fields.get(f) as { name: string; value: string };
      const keys: Partial<Record<KeyType, Uint8Array>> = {};
      try {
        for (const t of KEY_TYPES) {
          const v = get(t.toUpperCase() as EnvField);
          keys[t] = parseAt(ENV_ORIGIN, undefined, v.name, () => secretHexFromString(v.value));
        }
        const set = { enc: keys.enc as Uint8Array, mac: keys.mac as Uint8Array, dek: keys.dek as Uint8Array };
        checkKeyLengths(origin, undefined, set);
        for (const t of KEY_TYPES) {
          const v = fields.get(`${t.toUpperCase()}_KCV` as EnvField);
          if (v !== undefined) checkKcv(ENV_ORIGIN, undefined, v.name, set[t], parseAt(ENV_ORIGIN, undefined, v.name, () => parseKcv(v.value)));
        }
        const kvnVar = get('KVN');
        const kvn = parseAt(ENV_ORIGIN, undefined, kvnVar.name, () => parseKvn(kvnVar.value));
        const div = fields.get('DIVERSIFY');
        const diversify = div === undefined ? true : parseAt(ENV_ORIGIN, undefined, div.name, () => parseSwitch(div.value));
        entries.push({ provider, keys: { ...set, kvn }, diversify, source: 'env', origin });
      } catch (e) {
        zeroize(...Object.values(keys));
        throw e;
      }
    }
    return entries;
  } catch (e) {
    zeroizeEntries(entries);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Test keys and caller-supplied keys

function _readTestKeys(providers: readonly string[] | undefined): KeyEntry[] {
  const wanted = providers ?? TEST_KEY_SETS.map((s) => s.provider);
  return wanted.map((p) => {
    const set = TEST_KEY_SETS.find((s) => s.provider === p);
    if (set === undefined) {
      throw new BadInputError(`test keys: no built-in test key set for provider '${String(p)}' (have ${TEST_KEY_SETS.map((s) => s.provider).join(', ')})`);
    }
    return {
      provider: set.provider,
      keys: { enc: fromHex(set.enc), mac: fromHex(set.mac), dek: fromHex(set.dek), kvn: set.kvn },
      diversify: set.diversify,
      source: 'test' as const,
      origin: 'built-in test keys',
    };
  });
}

function _takeKeys(source: { provider: string; keys: StaticKeys; diversify?: boolean }): KeyEntry {
  assertProviderId(source.provider);
  assertStaticKeys(source.keys);
  assertInt(source.keys.kvn, 'key version number', 1, 0xff);
  checkKeyLengths(`key set of '${source.provider}'`, undefined, source.keys);
  if (source.diversify !== undefined && typeof source.diversify !== 'boolean') {
    throw new BadInputError(`diversify: expected a boolean, got ${String(source.diversify)}`);
  }
  return { provider: source.provider, keys: source.keys, diversify: source.diversify ?? true, source: 'keys', origin: 'supplied by the caller' };
}

function _isTestKey(key: Uint8Array): boolean {
  for (const set of TEST_KEY_SETS) {
    for (const t of KEY_TYPES) {
      const k = fromHex(set[t]);
      const same = constantTimeEqual(k, key);
      zeroize(k);
      if (same) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Card keys and domains (not exported: only the store creates them)

function _copyKeys(k: StaticKeys): StaticKeys {
  return { enc: k.enc.slice(), mac: k.mac.slice(), dek: k.dek.slice(), kvn: k.kvn };
}

function _zeroizeKeys(k: StaticKeys): void {
  zeroize(k.enc, k.mac, k.dek);
}

function _kcvs(k: Pick<StaticKeys, 'enc' | 'mac' | 'dek'>): KeyCheckValues {
  return { enc: kcvHex(k.enc), mac: kcvHex(k.mac), dek: kcvHex(k.dek) };
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** The issuing domain's side of a handle: closures over its private map, nothing else. */
interface _HandleOwner {
  release(h: _CardKeys): void;
  holds(h: _CardKeys): boolean;
}

/** A handle only: the keys stay in the issuing domain's private map. */
class _CardKeys implements CardKeys {
  readonly provider: string;
  readonly kvn: number;
  readonly diversified: boolean;
  readonly kcv: KeyCheckValues;
  readonly #data: Uint8Array | undefined;
  readonly #owner: _HandleOwner;

  constructor(provider: string, kvn: number, data: Uint8Array | undefined, kcv: KeyCheckValues, owner: _HandleOwner) {
    this.provider = provider;
    this.kvn = kvn;
    this.diversified = data !== undefined;
    this.#data = data?.slice();
    this.kcv = Object.freeze({ ...kcv });
    this.#owner = owner;
    Object.freeze(this); // `provider` and the rest cannot be rewritten to mislead a check or a log
  }

  get diversificationData(): Uint8Array | undefined {
    return this.#data?.slice();
  }

  get closed(): boolean {
    return !this.#owner.holds(this);
  }

  close(): void {
    this.#owner.release(this);
  }

  toJSON(): object {
    return { provider: this.provider, kvn: this.kvn, diversified: this.diversified, kcv: this.kcv, closed: this.closed };
  }

  [INSPECT](): string {
    return `CardKeys { ${this.provider}, kvn ${hexByte(this.kvn)}, KCV enc ${this.kcv.enc} mac ${this.kcv.mac} dek ${this.kcv.dek}${this.closed ? ', closed' : ''} }`;
  }
}

class _Domain implements ProviderDomain {
  readonly provider: string;
  readonly #master: StaticKeys;
  readonly #desc: Omit<DomainDescription, 'closed'>;
  readonly #issued = new Map<_CardKeys, StaticKeys>();
  #closed = false;

  constructor(entry: KeyEntry, testKeys: boolean) {
    this.provider = entry.provider;
    this.#master = entry.keys;
    this.#desc = Object.freeze({
      provider: entry.provider,
      kvn: entry.keys.kvn,
      keyLength: entry.keys.enc.length,
      kcv: Object.freeze(_kcvs(entry.keys)),
      source: entry.source,
      origin: entry.origin,
      diversify: entry.diversify,
      testKeys,
      label: testKeys ? TEST_KEYS_LABEL : '',
    });
    Object.freeze(this); // `provider` is what every check compares with: it must not be rewritable
  }

  get closed(): boolean {
    return this.#closed;
  }

  describe(): DomainDescription {
    return { ...this.#desc, kcv: { ...this.#desc.kcv }, closed: this.#closed };
  }

  #assertUsable(provider: unknown): void {
    if (this.#closed) throw new KeyAccessError(`the key domain of '${this.provider}' is closed; its keys were zeroized`);
    if (provider !== this.provider) {
      throw new KeyAccessError(`the key domain of '${this.provider}' cannot serve provider '${String(provider)}': each provider's keys are reachable only through its own domain`);
    }
  }

  #derive(data: Uint8Array | undefined): { keys: StaticKeys; data: Uint8Array | undefined } {
    if (!this.#desc.diversify) return { keys: _copyKeys(this.#master), data: undefined };
    if (data === undefined) {
      throw new BadInputError(`the key domain of '${this.provider}' diversifies per card: give the card's diversification data`);
    }
    return { keys: diversifyStaticKeys(this.#master, data), data };
  }

  readonly #owner: _HandleOwner = {
    release: (handle) => {
      const keys = this.#issued.get(handle);
      if (keys === undefined) return;
      _zeroizeKeys(keys);
      this.#issued.delete(handle);
    },
    holds: (handle) => this.#issued.has(handle),
  };

  /** The keys behind a handle this domain issued; KEY_ACCESS for anything else. */
  #keysOf(handle: unknown): StaticKeys {
    const keys = handle instanceof _CardKeys ? this.#issued.get(handle) : undefined;
    if (keys !== undefined) return keys;
    if (handle instanceof _CardKeys) {
      if (handle.provider !== this.provider) {
        throw new KeyAccessError(`card keys of provider '${handle.provider}' cannot be used in the key domain of '${this.provider}'`);
      }
      throw new KeyAccessError(`these card keys of '${this.provider}' were closed; their keys were zeroized`);
    }
    throw new KeyAccessError(`not a card key handle issued by the key domain of '${this.provider}'`);
  }

  cardKeys(options: { provider: string; diversificationData?: Uint8Array }): CardKeys {
    this.#assertUsable(options?.provider);
    const { keys, data } = this.#derive(options.diversificationData);
    const handle = new _CardKeys(this.provider, keys.kvn, data, _kcvs(keys), this.#owner);
    this.#issued.set(handle, keys);
    return handle;
  }

  async openScp03(channel: CardChannel, options: DomainScp03Options): Promise<Scp03Channel> {
    this.#assertUsable(options?.provider);
    const { provider: _provider, cardKeys, diversificationData, ...scp } = options;
    if (cardKeys !== undefined && diversificationData !== undefined) {
      throw new BadInputError('give cardKeys or diversificationData, not both');
    }
    if (cardKeys !== undefined || !this.#desc.diversify || diversificationData !== undefined) {
      const keys =
        cardKeys !== undefined ? _copyKeys(this.#keysOf(cardKeys)) : !this.#desc.diversify ? _copyKeys(this.#master) : this.#derive(diversificationData).keys;
      try {
        return await openScp03(channel, { ...scp, keys });
      } finally {
        _zeroizeKeys(keys);
      }
    }
    // Per-card keys from the card's own answer: diversified once INITIALIZE UPDATE has told the
    // key diversification data, inside the same handshake (no extra command).
    const provider = options.provider;
    return openScp03(channel, {
      ...scp,
      keys: {
        kvn: this.#master.kvn,
        resolve: ({ keyDiversificationData }) => {
          // The card was awaited: the domain may have been closed meanwhile.
          this.#assertUsable(provider);
          return this.#derive(keyDiversificationData).keys;
        },
      },
    });
  }



  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const handle of [...this.#issued.keys()]) this.#owner.release(handle);
    _zeroizeKeys(this.#master);
  }

  toJSON(): DomainDescription {
    return this.describe();
  }

  [INSPECT](): string {
    return `ProviderDomain { ${formatDomain(this.describe())} }`;
  }
}

// ---------------------------------------------------------------------------------------------
// The store

function _defaultWarn(message: string): void {
  process.emitWarning(message, { code: 'HILT_KEYSTORE' });
}

/** One line for people: provider, version, size, KCVs, diversification, origin, and the TEST KEYS label. */
export function formatDomain(d: DomainDescription): string {
  const parts = [
    d.provider,
    `kvn ${hexByte(d.kvn)}`,
    `AES-${d.keyLength * 8}`,
    `KCV enc ${d.kcv.enc} mac ${d.kcv.mac} dek ${d.kcv.dek}`,
    d.diversify ? 'diversified per card' : 'not diversified',
    `from ${d.origin}`,
  ];
  if (d.closed) parts.push('closed');
  const line = parts.join('  ');
  return d.testKeys ? `*** ${d.label} *** ${line}` : line;
}

export class KeyStore {
  readonly #domains: ReadonlyMap<string, _Domain>;
  readonly #handedOut = new Set<string>();
  #closed = false;

  private constructor(domains: ReadonlyMap<string, _Domain>) {
    this.#domains = domains;
  }

  /**
   * Loads every source, checks them together (one source per provider, no master key shared
   * between providers), and labels test keys. Warns once when test keys are loaded. On any error
   * every key already loaded is zeroized.
   */
  static async open(options: KeyStoreOptions): Promise<KeyStore> {
    if (typeof options !== 'object' || options === null || !Array.isArray(options.sources)) {
      throw new BadInputError(`key store: expected { sources: [...] }, got ${String(options)}`);
    }
    const warn = options.warn ?? _defaultWarn;
    const entries: KeyEntry[] = [];
    // Caller-supplied key sets belong to the store from here on, whatever happens.
    const owned = options.sources.flatMap((s) => (s?.kind === 'keys' && typeof s.keys === 'object' && s.keys !== null ? [s.keys] : []));
    try {
      for (const source of options.sources) {
        switch (source.kind) {
          case 'file':
            entries.push(...(await readKeyFile(source.path, { warn, platform: options.platform })));
            break;
          case 'env':
            entries.push(..._readEnv(source.env ?? process.env));
            break;
          case 'test':
            entries.push(..._readTestKeys(source.providers));
            break;
          case 'keys':
            entries.push(_takeKeys(source));
            break;
          default:
            throw new BadInputError(`key source: expected kind 'file', 'env', 'test' or 'keys', got ${String((source as { kind?: unknown }).kind)}`);
        }
      }
      if (entries.length === 0) throw new BadInputError('key store: the sources hold no key set');
      KeyStore.#checkTogether(entries);
      const domains = new Map<string, _Domain>();
      const testProviders: string[] = [];
      for (const e of [...entries].sort((a, b) => (a.provider < b.provider ? -1 : 1))) {
        const test = e.source === 'test' || KEY_TYPES.some((t) => _isTestKey(e.keys[t]));
        if (test) testProviders.push(e.provider);
        if (test && e.source !== 'test') warn(`provider '${e.provider}' (${e.origin}) uses a publicly known test key: it is labelled TEST KEYS`);
        domains.set(e.provider, new _Domain(e, test));
      }
      if (testProviders.length > 0) warn(`${TEST_KEYS_LABEL}. Loaded for: ${testProviders.join(', ')}`);
      return new KeyStore(domains);
    } catch (e) {
      zeroizeEntries(entries);
      for (const k of owned) {
        for (const t of KEY_TYPES) {
          const v: unknown = (k as unknown as Record<string, unknown>)[t];
          if (v instanceof Uint8Array) zeroize(v);
        }
      }
      throw e;
    }
  }

  static #checkTogether(entries: readonly KeyEntry[]): void {
    const seen = new Map<string, KeyEntry>();
    for (const e of entries) {
      const first = seen.get(e.provider);
      if (first !== undefined) throw new BadInputError(`provider '${e.provider}' has two key sets: ${first.origin} and ${e.origin}; keep one`);
      seen.set(e.provider, e);
    }
    for (let a = 0; a < entries.length; a++) {
      for (let b = a + 1; b < entries.length; b++) {
        for (const ta of KEY_TYPES) {
          for (const tb of KEY_TYPES) {
            if (constantTimeEqual(entries[a].keys[ta], entries[b].keys[tb])) {
              throw new BadInputError(
                `providers '${entries[a].provider}' and '${entries[b].provider}' share a master key ` +
                  `(${ta} of one = ${tb} of the other, KCV ${kcvHex(entries[a].keys[ta])}); each provider needs keys of its own`,
              );
            }
          }
        }
      }
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Every domain, sorted by provider id: descriptions only, never key bytes. */
  list(): DomainDescription[] {
    return [...this.#domains.values()].map((d) => d.describe());
  }

  has(provider: string): boolean {
    return this.#domains.has(provider);
  }

  describe(provider: string): DomainDescription {
    return this.#get(provider).describe();
  }

  #get(provider: string): _Domain {
    if (this.#closed) throw new KeyAccessError('the key store is closed; its keys were zeroized');
    const d = this.#domains.get(provider);
    if (d === undefined) {
      throw new KeyAccessError(`no key domain for provider '${String(provider)}' (have ${[...this.#domains.keys()].join(', ')})`);
    }
    return d;
  }

  /**
   * Hands out the domain of `provider`, once: pass it to the code serving that provider. Asking
   * again throws KEY_ACCESS, so code that gets hold of the store later cannot reach a domain
   * already given to its owner.
   */
  domain(provider: string): ProviderDomain {
    const d = this.#get(provider);
    if (this.#handedOut.has(provider)) {
      throw new KeyAccessError(`the key domain of '${provider}' was already handed out; only the code it was given to may use it`);
    }
    this.#handedOut.add(provider);
    return d;
  }

  /** Zeroizes every domain's master keys and card keys. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of this.#domains.values()) d.close();
  }

  toJSON(): DomainDescription[] {
    return [...this.#domains.values()].map((d) => d.describe());
  }

  [INSPECT](): string {
    return `KeyStore {${[...this.#domains.values()].map((d) => `\n  ${formatDomain(d.describe())}`).join('')}\n}`;
  }
}

export { assertProviderId, isProviderId };
