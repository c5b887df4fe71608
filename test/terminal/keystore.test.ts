/**
 * The terminal key store (src/terminal/keystore.ts, keystore-file.ts): isolation between provider
 * domains, the three sources (key file, environment, built-in test keys) and caller-supplied keys,
 * zeroization, and authentication end to end against the card-side SCP03 session personalised
 * with diversified keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KeyAccessError,
  KeyFileError,
  KeyStore,
  TEST_KEYS_LABEL,
  envVarName,
  formatDomain,
  type CardKeys,
  type KeySource,
  type ProviderDomain,
} from '../../src/terminal/keystore.js';
import { parseKeyFile } from '../../src/terminal/keystore-file.js';
import { TEST_KEY_SETS, diversifyStaticKeys, kcvHex, kddFromSerial, testStaticKeys } from '../../src/crypto/diversify.js';
import { AuthError, SECURITY_LEVEL, type StaticKeys } from '../../src/crypto/scp03.js';
import type { CardChannel } from '../../src/reader/channel.js';
import { Scp03CardSession } from '../../emulator/security/scp03-card.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

// ------------------------------------------------------------------------------------------------
// Helpers

const ALL_TEST_KEY_HEX = TEST_KEY_SETS.flatMap((s) => [s.enc, s.mac, s.dek]).map((h) => h.toLowerCase());

async function caught(run: () => unknown): Promise<HiltError> {
  try {
    await run();
  } catch (e) {
    if (e instanceof HiltError) return e;
    throw e;
  }
  throw new Error('expected an error, none was thrown');
}

async function openTest(providers?: readonly string[], warnings: string[] = []): Promise<KeyStore> {
  return KeyStore.open({ sources: [{ kind: 'test', providers }], warn: (m) => warnings.push(m) });
}

/** Every string and byte array reachable from `value` through enumerable properties and toJSON. */
function reachable(value: unknown, seen = new Set<unknown>()): { strings: string[]; bytes: Uint8Array[] } {
  const out = { strings: [] as string[], bytes: [] as Uint8Array[] };
  const walk = (v: unknown): void => {
    if (v === null || v === undefined || seen.has(v)) return;
    if (typeof v === 'string') return void out.strings.push(v);
    if (typeof v !== 'object' && typeof v !== 'function') return;
    seen.add(v);
    if (v instanceof Uint8Array) return void out.bytes.push(v);
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (d && 'value' in d) walk(d.value);
    }
  };
  walk(value);
  walk(JSON.parse(JSON.stringify(value ?? null)) as unknown);
  out.strings.push(inspect(value, { showHidden: true, depth: 10 }));
  return out;
}

function assertNoKeyMaterial(value: unknown, keysHex: readonly string[]): void {
  const { strings, bytes } = reachable(value);
  for (const k of keysHex) {
    for (const s of strings) expect(s.toLowerCase().replace(/[^0-9a-f]/g, '')).not.toContain(k.toLowerCase().slice(0, 16));
    for (const b of bytes) expect(toHex(b)).not.toContain(k.toLowerCase().slice(0, 16));
  }
}

const AID = fromHex('a000000151000000');

/** A card with one security domain: the card-side SCP03 session, and an echo applet behind it. */
class Card implements CardChannel {
  readonly scp: Scp03CardSession;
  readonly wire: string[] = [];
  counter = 0;
  onTransmit: (() => void) | undefined;
  tamperIuResponse: ((data: Uint8Array) => Uint8Array) | undefined;

  constructor(keys: StaticKeys, kdd: Uint8Array, i = 0x70) {
    this.scp = new Scp03CardSession({
      keys,
      i,
      keyDiversificationData: kdd,
      aid: AID,
      sequenceCounter: { get: () => this.counter, set: (n) => (this.counter = n) },
    });
  }

  static personalised(provider: string, serial: Uint8Array, i?: number): Card {
    const master = testStaticKeys(provider);
    const set = TEST_KEY_SETS.find((s) => s.provider === provider);
    const kdd = kddFromSerial(serial);
    return new Card(set?.diversify === false ? master : diversifyStaticKeys(master, kdd), kdd, i);
  }

  async transmit(bytes: Uint8Array): Promise<Uint8Array> {
    await Promise.resolve();
    this.onTransmit?.();
    const cmd = CommandApdu.decode(bytes);
    this.wire.push(toHex(bytes.subarray(0, 2)));
    let resp: ResponseApdu;
    if ((cmd.cla & 0x80) !== 0 && cmd.ins === 0x50) {
      resp = this.scp.initializeUpdate(cmd);
      if (this.tamperIuResponse && resp.sw === 0x9000) resp = new ResponseApdu(this.tamperIuResponse(resp.data), resp.sw);
    } else if ((cmd.cla & 0x80) !== 0 && cmd.ins === 0x82) {
      resp = this.scp.externalAuthenticate(cmd);
    } else {
      const plain = this.scp.unwrapCommand(cmd);
      resp = plain instanceof ResponseApdu ? plain : this.scp.wrapResponse(new ResponseApdu(plain.data.slice().reverse(), 0x9000));
    }
    return resp.encode();
  }
  async reset(): Promise<Uint8Array> {
    this.scp.reset();
    return fromHex('3b00');
  }
  async close(): Promise<void> {}
}

const SERIAL_A = fromHex('48494c5430303030303031'); // "HILT0000001"
const SERIAL_B = fromHex('48494c5430303030303032'); // "HILT0000002"
const LEVEL = SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC;

async function echo(ch: CardChannel, data: Uint8Array): Promise<ResponseApdu> {
  return ResponseApdu.decode(await ch.transmit(new CommandApdu({ cla: 0x80, ins: 0x10, p1: 0, p2: 0, data, ne: 256 }).encode()));
}

// ------------------------------------------------------------------------------------------------
// Files

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hilt-keystore-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileNo = 0;
async function keyFile(text: string, mode = 0o600): Promise<string> {
  const path = join(dir, `keys-${fileNo++}.ini`);
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

const K16_A = '00112233445566778899AABBCCDDEEFF';
const K16_B = '0F1E2D3C4B5A69788796A5B4C3D2E1F0';
const K16_C = 'F0E1D2C3B4A5968778695A4B3C2D1E0F';
const K32 = '000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F';

const GOOD_FILE = [
  '# terminal keys',
  '; also a comment',
  '',
  '[acme-transit]',
  'kvn = 2A',
  `enc = ${K16_A}`,
  `mac = ${K16_B.match(/../g)?.join(' ')}`,
  `dek = ${K16_C.match(/../g)?.join(':')}`,
  `enc.kcv = ${kcvHex(fromHex(K16_A))}`,
  `MAC.KCV = ${kcvHex(fromHex(K16_B)).toLowerCase()}`,
  '',
  '  [ parking ]  ',
  'kvn=01',
  `enc=${K32}`,
  `mac=${K32.replace(/^00/, '01')}`,
  `dek=${K32.replace(/^00/, '02')}`,
  'diversify = no',
].join('\r\n');

// ------------------------------------------------------------------------------------------------

describe('built-in test keys', () => {
  it('lists gp-test, emoney, bank, credit with KCVs, never key bytes, labelled TEST KEYS', async () => {
    const warnings: string[] = [];
    const store = await openTest(undefined, warnings);
    const list = store.list();
    expect(list.map((d) => d.provider)).toEqual(['bank', 'credit', 'emoney', 'gp-test']);
    const gp = store.describe('gp-test');
    expect(gp).toMatchObject({ kvn: 0x30, keyLength: 16, kcv: { enc: '504A77', mac: '504A77', dek: '504A77' }, source: 'test', diversify: false, testKeys: true, label: TEST_KEYS_LABEL });
    expect(store.describe('bank')).toMatchObject({ keyLength: 32, kcv: { enc: '486FD1' }, diversify: true });
    expect(store.describe('credit')).toMatchObject({ keyLength: 24 });
    for (const d of list) {
      expect(d.testKeys).toBe(true);
      expect(formatDomain(d)).toMatch(/^\*\*\* TEST KEYS/);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/TEST KEYS.*bank, credit, emoney, gp-test/);
    expect(inspect(store)).toMatch(/TEST KEYS/);
    assertNoKeyMaterial(store, ALL_TEST_KEY_HEX);
    assertNoKeyMaterial(list, ALL_TEST_KEY_HEX);
    store.close();
  });

  it('a subset can be loaded; an unknown test provider is refused', async () => {
    const store = await openTest(['emoney']);
    expect(store.list().map((d) => d.provider)).toEqual(['emoney']);
    expect((await caught(() => openTest(['nobody']))).code).toBe('BAD_INPUT');
  });

  it('a key equal to a built-in test key is labelled TEST KEYS whatever its source', async () => {
    const warnings: string[] = [];
    const env = { HILT_KEYS_LAB_ENC: '404142434445464748494A4B4C4D4E4F', HILT_KEYS_LAB_MAC: K16_B, HILT_KEYS_LAB_DEK: K16_C, HILT_KEYS_LAB_KVN: '01' };
    const store = await KeyStore.open({ sources: [{ kind: 'env', env }], warn: (m) => warnings.push(m) });
    expect(store.describe('lab')).toMatchObject({ source: 'env', testKeys: true, label: TEST_KEYS_LABEL });
    expect(warnings.join('\n')).toMatch(/'lab'.*publicly known test key/);
  });
});

describe('isolation between provider domains', () => {
  it('a domain is handed out once; unknown providers get KEY_ACCESS', async () => {
    const store = await openTest();
    const bank = store.domain('bank');
    expect(bank.provider).toBe('bank');
    const again = await caught(() => store.domain('bank'));
    expect(again).toBeInstanceOf(KeyAccessError);
    expect(again.code).toBe('KEY_ACCESS');
    expect((await caught(() => store.domain('nobody'))).code).toBe('KEY_ACCESS');
    expect((await caught(() => store.describe('nobody'))).code).toBe('KEY_ACCESS');
  });

  it("a domain asked to serve another provider refuses with KEY_ACCESS, and nothing reaches the card", async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const card = Card.personalised('bank', SERIAL_A);
    const e1 = await caught(() => emoney.openScp03(card, { provider: 'bank', securityLevel: LEVEL }));
    expect(e1.code).toBe('KEY_ACCESS');
    expect(e1.message).toMatch(/'emoney' cannot serve provider 'bank'/);
    expect(card.wire).toEqual([]);
    expect((await caught(() => emoney.cardKeys({ provider: 'bank', diversificationData: SERIAL_A }))).code).toBe('KEY_ACCESS');
    expect((await caught(() => emoney.cardKeys(undefined as unknown as { provider: string }))).code).toBe('KEY_ACCESS');
  });

  it("a card-key handle of domain A used in domain B → KEY_ACCESS, nothing sent", async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const bank = store.domain('bank');
    const handle = emoney.cardKeys({ provider: 'emoney', diversificationData: kddFromSerial(SERIAL_A) });
    const card = Card.personalised('emoney', SERIAL_A);
    const err = await caught(() => bank.openScp03(card, { provider: 'bank', securityLevel: LEVEL, cardKeys: handle }));
    expect(err.code).toBe('KEY_ACCESS');
    expect(err.message).toMatch(/card keys of provider 'emoney' cannot be used in the key domain of 'bank'/);
    expect(card.wire).toEqual([]);
    // The right domain accepts it.
    const ch = await emoney.openScp03(card, { provider: 'emoney', securityLevel: LEVEL, cardKeys: handle });
    expect(toHex((await echo(ch, fromHex('010203'))).data)).toBe('030201');
  });

  it('the provider a domain or handle serves cannot be rewritten', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const handle = emoney.cardKeys({ provider: 'emoney', diversificationData: SERIAL_A });
    expect(() => Object.assign(emoney, { provider: 'bank' })).toThrow(TypeError);
    expect(() => Object.assign(handle, { provider: 'bank' })).toThrow(TypeError);
    expect((await caught(() => emoney.cardKeys({ provider: 'bank', diversificationData: SERIAL_A }))).code).toBe('KEY_ACCESS');
  });

  it('a look-alike handle is refused', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const real = emoney.cardKeys({ provider: 'emoney', diversificationData: SERIAL_A });
    const fake: CardKeys = { ...real, provider: 'emoney', kvn: 1, diversified: true, diversificationData: SERIAL_A, kcv: real.kcv, closed: false, close: () => undefined };
    const err = await caught(() => emoney.openScp03(Card.personalised('emoney', SERIAL_A), { provider: 'emoney', securityLevel: LEVEL, cardKeys: fake }));
    expect(err.code).toBe('KEY_ACCESS');
    expect(err.message).toMatch(/not a card key handle issued by/);
  });

  it('no public route from a domain, a handle or the store leads to key bytes', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const handle = emoney.cardKeys({ provider: 'emoney', diversificationData: kddFromSerial(SERIAL_A) });
    const card = diversifyStaticKeys(testStaticKeys('emoney'), kddFromSerial(SERIAL_A));
    const secrets = [...ALL_TEST_KEY_HEX, toHex(card.enc), toHex(card.mac), toHex(card.dek)];
    // The whole public surface, pinned: a new member must be reviewed for what it hands out.
    const members = (o: object): string[] => Object.getOwnPropertyNames(Object.getPrototypeOf(o)).concat(Object.keys(o)).filter((n) => n !== 'constructor').sort();
    expect(members(emoney)).toEqual(['cardKeys', 'close', 'closed', 'describe', 'openScp03', 'provider', 'toJSON'].sort());
    expect(members(handle)).toEqual(['close', 'closed', 'diversificationData', 'diversified', 'kcv', 'kvn', 'provider', 'toJSON'].sort());
    expect(members(store)).toEqual(['close', 'closed', 'describe', 'domain', 'has', 'list', 'toJSON'].sort());
    for (const v of [store, emoney, handle, emoney.describe(), store.list(), handle.diversificationData, handle.kcv]) assertNoKeyMaterial(v, secrets);
    expect(handle.kcv).toEqual({ enc: kcvHex(card.enc), mac: kcvHex(card.mac), dek: kcvHex(card.dek) });
  });
});

describe('end to end: the domain authenticates to a card personalised with diversified keys', () => {
  it('diversifies from the KDD of the one INITIALIZE UPDATE of the handshake; protected commands flow', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const card = Card.personalised('emoney', SERIAL_A);
    const ch = await emoney.openScp03(card, { provider: 'emoney', securityLevel: LEVEL });
    expect(card.wire).toEqual(['8050', '8482']);
    expect(toHex(ch.info.keyDiversificationData)).toBe(toHex(kddFromSerial(SERIAL_A)));
    expect(toHex((await echo(ch, fromHex('a1b2c3d4'))).data)).toBe('d4c3b2a1');
    expect(card.scp.state).toBe('authenticated');
  });

  it('with the diversification data known, only the real handshake is sent', async () => {
    const store = await openTest();
    const card = Card.personalised('credit', SERIAL_B);
    const ch = await store.domain('credit').openScp03(card, { provider: 'credit', securityLevel: LEVEL, diversificationData: kddFromSerial(SERIAL_B) });
    expect(card.wire).toEqual(['8050', '8482']);
    expect((await echo(ch, fromHex('00'))).sw).toBe(0x9000);
  });

  it('a card-key handle serves several sessions with one card, S16 too', async () => {
    const store = await openTest();
    const bank = store.domain('bank');
    const handle = bank.cardKeys({ provider: 'bank', diversificationData: kddFromSerial(SERIAL_A) });
    expect(handle.diversified).toBe(true);
    const card = Card.personalised('bank', SERIAL_A, 0x71);
    for (let run = 0; run < 2; run++) {
      const ch = await bank.openScp03(card, { provider: 'bank', securityLevel: LEVEL, s16: true, cardKeys: handle });
      expect((await echo(ch, fromHex('0102'))).data).toEqual(fromHex('0201'));
    }
    expect(card.wire).toEqual(['8050', '8482', '8410', '8050', '8482', '8410']);
  });

  it('gp-test keys are used undiversified, as a factory GP card holds them', async () => {
    const store = await openTest(['gp-test']);
    const card = Card.personalised('gp-test', SERIAL_A);
    const ch = await store.domain('gp-test').openScp03(card, { provider: 'gp-test', securityLevel: SECURITY_LEVEL.C_MAC });
    expect(card.wire).toEqual(['8050', '8482']);
    expect((await echo(ch, fromHex('55'))).sw).toBe(0x9000);
  });

  it("a card personalised for provider A refuses the terminal's provider-B domain (AuthError on the card cryptogram)", async () => {
    const store = await openTest();
    const bank = store.domain('bank');
    const card = Card.personalised('emoney', SERIAL_A); // same kvn 01 as bank: the keys decide
    const err = await caught(() => bank.openScp03(card, { provider: 'bank', securityLevel: LEVEL }));
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).reason).toBe('card-cryptogram');
    expect(card.wire).toEqual(['8050']); // no EXTERNAL AUTHENTICATE
  });

  it("one card's keys do not open another card: keys of serial A on a card that says serial B fail", async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const master = testStaticKeys('emoney');
    const clone = new Card(diversifyStaticKeys(master, kddFromSerial(SERIAL_A)), kddFromSerial(SERIAL_B));
    const err = await caught(() => emoney.openScp03(clone, { provider: 'emoney', securityLevel: LEVEL }));
    expect((err as AuthError).reason).toBe('card-cryptogram');
    // and a card holding the undiversified master keys is refused too
    const raw = new Card(testStaticKeys('emoney'), kddFromSerial(SERIAL_A));
    expect(((await caught(() => emoney.openScp03(raw, { provider: 'emoney', securityLevel: LEVEL }))) as AuthError).reason).toBe('card-cryptogram');
  });

  it('an unknown key version: the card refuses INITIALIZE UPDATE (6A88)', async () => {
    const store = await KeyStore.open({ sources: [{ kind: 'keys', provider: 'emoney', keys: { ...testStaticKeys('emoney'), kvn: 0x02 } }], warn: () => undefined });
    const err = await caught(() => store.domain('emoney').openScp03(Card.personalised('emoney', SERIAL_A), { provider: 'emoney', securityLevel: LEVEL }));
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).reason).toBe('card-refused');
    expect((err as AuthError).sw).toBe(0x6a88);
  });

  it('a key-file domain authenticates to a card personalised from the same master keys', async () => {
    const path = await keyFile(GOOD_FILE);
    const store = await KeyStore.open({ sources: [{ kind: 'file', path }] });
    const master = { enc: fromHex(K16_A), mac: fromHex(K16_B), dek: fromHex(K16_C), kvn: 0x2a };
    const kdd = kddFromSerial(SERIAL_B);
    const card = new Card(diversifyStaticKeys(master, kdd), kdd, 0x00);
    const ch = await store.domain('acme-transit').openScp03(card, { provider: 'acme-transit', securityLevel: SECURITY_LEVEL.C_MAC_C_DEC });
    expect((await echo(ch, fromHex('0a0b'))).sw).toBe(0x9000);
  });
});

describe('zeroization on close', () => {
  it('a closed handle, domain or store can no longer be used (KEY_ACCESS)', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const credit = store.domain('credit');
    const h1 = emoney.cardKeys({ provider: 'emoney', diversificationData: kddFromSerial(SERIAL_A) });
    const h2 = emoney.cardKeys({ provider: 'emoney', diversificationData: kddFromSerial(SERIAL_A) });
    h1.close();
    expect(h1.closed).toBe(true);
    const e1 = await caught(() => emoney.openScp03(Card.personalised('emoney', SERIAL_A), { provider: 'emoney', securityLevel: LEVEL, cardKeys: h1 }));
    expect(e1.code).toBe('KEY_ACCESS');
    expect(e1.message).toMatch(/closed/);

    emoney.close();
    expect(h2.closed).toBe(true);
    expect(emoney.closed).toBe(true);
    expect(emoney.describe().closed).toBe(true);
    const card = Card.personalised('emoney', SERIAL_A);
    expect((await caught(() => emoney.openScp03(card, { provider: 'emoney', securityLevel: LEVEL }))).code).toBe('KEY_ACCESS');
    expect((await caught(() => emoney.cardKeys({ provider: 'emoney', diversificationData: SERIAL_A }))).code).toBe('KEY_ACCESS');
    expect(card.wire).toEqual([]);
    // other domains are untouched until the store closes
    await credit.openScp03(Card.personalised('credit', SERIAL_A), { provider: 'credit', securityLevel: LEVEL });
    store.close();
    expect(credit.closed).toBe(true);
    expect((await caught(() => credit.openScp03(Card.personalised('credit', SERIAL_A), { provider: 'credit', securityLevel: LEVEL }))).code).toBe('KEY_ACCESS');
    expect((await caught(() => store.domain('bank'))).code).toBe('KEY_ACCESS');
  });

  it('a domain closed while the probe awaits the card does not derive from wiped keys', async () => {
    const store = await openTest();
    const emoney = store.domain('emoney');
    const card = Card.personalised('emoney', SERIAL_A);
    card.onTransmit = () => emoney.close();
    const err = await caught(() => emoney.openScp03(card, { provider: 'emoney', securityLevel: LEVEL }));
    expect(err.code).toBe('KEY_ACCESS');
    expect(card.wire).toEqual(['8050']);
  });

  it('caller-supplied key arrays are owned by the store: zeroed on close, and on a failed open', async () => {
    const keys = { enc: fromHex(K16_A), mac: fromHex(K16_B), dek: fromHex(K16_C), kvn: 1 };
    const store = await KeyStore.open({ sources: [{ kind: 'keys', provider: 'hsm', keys }] });
    expect(store.describe('hsm')).toMatchObject({ source: 'keys', testKeys: false, diversify: true, kcv: { enc: kcvHex(fromHex(K16_A)) } });
    expect(toHex(keys.enc)).toBe(K16_A.toLowerCase());
    store.close();
    for (const k of [keys.enc, keys.mac, keys.dek]) expect(k.every((b) => b === 0)).toBe(true);

    const keys2 = { enc: fromHex(K16_A), mac: fromHex(K16_B), dek: fromHex(K16_C), kvn: 1 };
    const err = await caught(() => KeyStore.open({ sources: [{ kind: 'keys', provider: 'hsm', keys: keys2 }, { kind: 'test', providers: ['hsm-missing'] }], warn: () => undefined }));
    expect(err.code).toBe('BAD_INPUT');
    for (const k of [keys2.enc, keys2.mac, keys2.dek]) expect(k.every((b) => b === 0)).toBe(true);
  });
});

describe('checks across sources', () => {
  it('a provider from two sources is refused', async () => {
    const env = { HILT_KEYS_EMONEY_ENC: K16_A, HILT_KEYS_EMONEY_MAC: K16_B, HILT_KEYS_EMONEY_DEK: K16_C, HILT_KEYS_EMONEY_KVN: '01' };
    const err = await caught(() => KeyStore.open({ sources: [{ kind: 'test' }, { kind: 'env', env }], warn: () => undefined }));
    expect(err.code).toBe('BAD_INPUT');
    expect(err.message).toMatch(/'emoney' has two key sets: built-in test keys and environment/);
  });

  it('two providers sharing a master key are refused (they would not be isolated)', async () => {
    const env = { HILT_KEYS_A_ENC: K16_A, HILT_KEYS_A_MAC: K16_B, HILT_KEYS_A_DEK: K16_C, HILT_KEYS_A_KVN: '01' };
    const k = { enc: fromHex(K32.slice(0, 32)), mac: fromHex(K16_A), dek: fromHex(K32.slice(32)), kvn: 1 };
    const err = await caught(() => KeyStore.open({ sources: [{ kind: 'env', env }, { kind: 'keys', provider: 'b', keys: k }] }));
    expect(err.message).toMatch(/'a' and 'b' share a master key \(enc of one = mac of the other, KCV [0-9A-F]{6}\)/);
    expect(err.message).not.toContain(K16_A);
  });

  it('an empty set of sources, or sources without keys, is refused', async () => {
    expect((await caught(() => KeyStore.open({ sources: [] }))).message).toMatch(/no key set/);
    expect((await caught(() => KeyStore.open({ sources: [{ kind: 'env', env: { PATH: '/bin' } }] }))).message).toMatch(/no key set/);
    expect((await caught(() => KeyStore.open({ sources: [{ kind: 'nope' } as unknown as KeySource] }))).code).toBe('BAD_INPUT');
  });
});

describe('environment variables', () => {
  it('names', () => {
    expect(envVarName('gp-test', 'ENC')).toBe('HILT_KEYS_GP_TEST_ENC');
    expect(envVarName('bank', 'MAC_KCV')).toBe('HILT_KEYS_BANK_MAC_KCV');
  });

  it('loads a key set with optional KCVs and DIVERSIFY', async () => {
    const env = {
      HILT_KEYS_CITY_BUS_ENC: K16_A.toLowerCase(),
      HILT_KEYS_CITY_BUS_MAC: K16_B,
      HILT_KEYS_CITY_BUS_DEK: K16_C,
      HILT_KEYS_CITY_BUS_KVN: '0b',
      HILT_KEYS_CITY_BUS_ENC_KCV: kcvHex(fromHex(K16_A)),
      HILT_KEYS_CITY_BUS_DIVERSIFY: 'no',
      HILT_OTHER: 'ignored',
    };
    const store = await KeyStore.open({ sources: [{ kind: 'env', env }] });
    expect(store.describe('city-bus')).toMatchObject({ kvn: 0x0b, source: 'env', origin: 'environment (HILT_KEYS_CITY_BUS_*)', diversify: false, testKeys: false, label: '' });
    expect(formatDomain(store.describe('city-bus'))).not.toMatch(/TEST/);
  });

  const base = { HILT_KEYS_BANK_ENC: K16_A, HILT_KEYS_BANK_MAC: K16_B, HILT_KEYS_BANK_DEK: K16_C, HILT_KEYS_BANK_KVN: '01' };
  const bad: readonly [string, Record<string, string>, RegExp][] = [
    ['a missing key', { ...base, HILT_KEYS_BANK_MAC: undefined as unknown as string }, /provider 'bank': missing HILT_KEYS_BANK_MAC/],
    ['a mistyped name', { ...base, HILT_KEYS_BANK_ENCC: K16_A }, /HILT_KEYS_BANK_ENCC is not a key variable/],
    ['bad hex', { ...base, HILT_KEYS_BANK_DEK: K16_C.slice(0, 30) + 'zz' }, /HILT_KEYS_BANK_DEK: not hex \(character 31 of the value\)/],
    ['a short key', { ...base, HILT_KEYS_BANK_ENC: K16_A.slice(0, 30) }, /HILT_KEYS_BANK_ENC: expected a key of 16, 24 or 32 bytes, got 15/],
    ['a KCV mismatch', { ...base, HILT_KEYS_BANK_MAC_KCV: '000000' }, /HILT_KEYS_BANK_MAC_KCV: key check value mismatch: the key's KCV is [0-9A-F]{6}, expected 000000/],
    ['kvn 00', { ...base, HILT_KEYS_BANK_KVN: '00' }, /HILT_KEYS_BANK_KVN: key version: 00 means "any/],
    ['kvn in decimal', { ...base, HILT_KEYS_BANK_KVN: '1' }, /two hex digits/],
    ['DIVERSIFY', { ...base, HILT_KEYS_BANK_DIVERSIFY: 'maybe' }, /expected yes or no, got 'maybe'/],
    ['empty', { ...base, HILT_KEYS_BANK_ENC: ' ' }, /HILT_KEYS_BANK_ENC is empty/],
    ['mixed lengths', { ...base, HILT_KEYS_BANK_DEK: K32 }, /same length, got enc 16, mac 16, dek 32/],
    ['a bad provider', { HILT_KEYS__X_ENC: K16_A }, /'-x' is not a provider id/],
  ];
  for (const [name, env, message] of bad) {
    it(`refuses ${name}, without quoting key values`, async () => {
      const err = await caught(() => KeyStore.open({ sources: [{ kind: 'env', env }] }));
      expect(err).toBeInstanceOf(KeyFileError);
      expect(err.code).toBe('BAD_INPUT');
      expect(err.message).toMatch(message);
      for (const k of [K16_A, K16_B, K16_C, K32]) expect(err.message.toUpperCase()).not.toContain(k.slice(0, 12));
    });
  }
});

describe('key file', () => {
  it('parses sections, comments, CRLF, separators in hex, KCVs, diversify; no warning at mode 600', async () => {
    const warnings: string[] = [];
    const path = await keyFile('\ufeff' + GOOD_FILE);
    const store = await KeyStore.open({ sources: [{ kind: 'file', path }], warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([]);
    expect(store.list()).toEqual([
      expect.objectContaining({ provider: 'acme-transit', kvn: 0x2a, keyLength: 16, source: 'file', origin: `${path}:4`, diversify: true, kcv: { enc: kcvHex(fromHex(K16_A)), mac: kcvHex(fromHex(K16_B)), dek: kcvHex(fromHex(K16_C)) } }),
      expect.objectContaining({ provider: 'parking', kvn: 0x01, keyLength: 32, origin: `${path}:12`, diversify: false }),
    ]);
  });

  it('warns when the file is accessible to group or others, except on win32', async () => {
    for (const [mode, platform, expected] of [
      [0o644, 'linux', 1],
      [0o640, 'linux', 1],
      [0o604, 'linux', 1],
      [0o600, 'linux', 0],
      [0o400, 'linux', 0],
      [0o644, 'win32', 0],
    ] as const) {
      const warnings: string[] = [];
      const path = await keyFile(GOOD_FILE, mode);
      const store = await KeyStore.open({ sources: [{ kind: 'file', path }], warn: (m) => warnings.push(m), platform });
      expect(warnings, `mode ${mode.toString(8)} on ${platform}`).toHaveLength(expected);
      if (expected) expect(warnings[0]).toMatch(new RegExp(`mode ${mode.toString(8)}.*chmod 600`));
      store.close();
    }
  });

  it('a missing file is a clear error', async () => {
    const err = await caught(() => KeyStore.open({ sources: [{ kind: 'file', path: join(dir, 'absent.ini') }] }));
    expect(err).toBeInstanceOf(KeyFileError);
    expect(err.message).toMatch(/absent\.ini: cannot open the key file \(ENOENT\)/);
  });

  const section = (body: string[]): string => ['[p]', 'kvn = 01', ...body].join('\n');
  const keys3 = [`enc = ${K16_A}`, `mac = ${K16_B}`, `dek = ${K16_C}`];
  const MALFORMED: readonly [string, string, number | undefined, RegExp][] = [
    ['no equals sign', section([...keys3, 'diversify']), 6, /expected '\[provider\]', 'name = value' or a comment/],
    ['an unknown field', section([...keys3, 'kek = 00']), 6, /unknown field 'kek'/],
    ['a field before any section', `kvn = 01\n${section(keys3)}`, 1, /'kvn' outside a section/],
    ['a bad section name', '[Bank_1]\n', 1, /'Bank_1' is not a provider id/],
    ['an unclosed section header', '[bank\n', 1, /must end with '\]'/],
    ['a section twice', `${section(keys3)}\n[p]`, 6, /\[p\] appears twice \(first at line 1\)/],
    ['a field twice', section([...keys3, `enc = ${K16_A}`]), 6, /'enc' given twice in \[p\] \(first at line 3\)/],
    ['bad hex', section([`enc = ${K16_A.slice(0, 20)}#${K16_A.slice(21)}`, keys3[1], keys3[2]]), 3, /enc: not hex \(character 21 of the value\)/],
    ['odd hex digits', section([`enc = ${K16_A}0`, keys3[1], keys3[2]]), 3, /odd number of hex digits \(33\)/],
    ['a 20-byte key', section([`enc = ${K16_A}00112233`, keys3[1], keys3[2]]), 3, /expected a key of 16, 24 or 32 bytes, got 20/],
    ['mixed key lengths', section([keys3[0], keys3[1], `dek = ${K32}`]), 1, /same length, got enc 16, mac 16, dek 32/],
    ['missing keys', section([keys3[0]]), 1, /\[p\]: missing mac, dek/],
    ['missing kvn', ['[p]', ...keys3].join('\n'), 1, /\[p\]: missing kvn/],
    ['a bad kvn', section(keys3).replace('kvn = 01', 'kvn = 1'), 2, /key version: expected two hex digits/],
    ['a bad KCV', section([...keys3, 'mac.kcv = 12345']), 6, /mac.kcv: key check value: expected six hex digits/],
    ['a KCV mismatch', section([...keys3, 'dek.kcv = ABCDEF']), 6, /dek.kcv: key check value mismatch: the key's KCV is [0-9A-F]{6}, expected ABCDEF/],
    ['a bad diversify', section([...keys3, 'diversify = sometimes']), 6, /diversify: expected yes or no/],
    ['an empty value', section([...keys3, 'enc.kcv =']), 6, /'enc.kcv' has no value/],
    ['a non-ASCII byte', section([...keys3, '# café']), 6, /non-ASCII or control byte at column 6/],
    ['no sections at all', '# nothing\n\n', undefined, /no key sets/],
    ['a very long line', `${'#'.repeat(2000)}\n${section(keys3)}`, 1, /line of 2000 bytes/],
  ];
  for (const [name, text, line, message] of MALFORMED) {
    it(`refuses ${name} (line ${String(line)}), naming file and line, never a key`, async () => {
      const path = await keyFile(text);
      const err = await caught(() => KeyStore.open({ sources: [{ kind: 'file', path }] }));
      expect(err).toBeInstanceOf(KeyFileError);
      expect(err.code).toBe('BAD_INPUT');
      expect((err as KeyFileError).line).toBe(line);
      expect(err.message).toMatch(message);
      expect(err.message.startsWith(line === undefined ? `${path}: ` : `${path}:${line}: `)).toBe(true);
      for (const k of [K16_A, K16_B, K16_C, K32]) expect(err.message.toUpperCase()).not.toContain(k.slice(0, 12));
    });
  }

  it('zeroizes the keys of earlier sections when a later one is malformed', () => {
    // parseKeyFile builds the key arrays itself; what can be observed is that an error leaves no
    // entry behind, and that a good file's entries are exactly its keys.
    const good = parseKeyFile(new TextEncoder().encode(section(keys3)), 'mem');
    expect(good.map((e) => [e.provider, toHex(e.keys.enc), e.keys.kvn])).toEqual([['p', K16_A.toLowerCase(), 1]]);
    expect(() => parseKeyFile(new TextEncoder().encode(`${section(keys3)}\n[q]\nkvn = 01`), 'mem')).toThrow(/mem:6: \[q\]: missing enc, mac, dek/);
  });
});

describe('descriptions for people and scripts', () => {
  it('formatDomain shows version, size, KCVs, diversification and origin', async () => {
    const path = await keyFile(GOOD_FILE);
    const store = await KeyStore.open({ sources: [{ kind: 'file', path }] });
    const line = formatDomain(store.describe('parking'));
    expect(line).toMatch(new RegExp(`^parking  kvn 01  AES-256  KCV enc [0-9A-F]{6} mac [0-9A-F]{6} dek [0-9A-F]{6}  not diversified  from ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:12$`));
    const d: ProviderDomain = store.domain('parking');
    expect(inspect(d)).toContain('parking  kvn 01');
    expect(JSON.parse(JSON.stringify(d))).toMatchObject({ provider: 'parking', kvn: 1, closed: false });
  });
});
