/**
 * How the card OS routes the secure channel: which domain answers on a channel, what ends a
 * session, the domain itself as a selectable application, channels independent of each other, and
 * the configuration rules.
 */
import { describe, expect, it } from 'vitest';
import { openScp03, type Scp03Channel } from '../../../src/reader/scp03.js';
import { SECURITY_LEVEL, type SecurityLevel, type StaticKeys } from '../../../src/crypto/scp03.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { BadInputError } from '../../../src/util/errors.js';
import { CardOs } from '../../../emulator/os/card-os.js';
import { GP_ISD_AID, resolveSecurityDomains } from '../../../emulator/os/security-domain.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { DIAGNOSTIC_AID, diagnosticPattern } from '../../../emulator/applets/diagnostic.js';
import { ATR, ISD_AID, SELECT_DIAG, SERIAL, SSD_AID, Tap, buildCard, diagEntry, hexOf, isdConfig, keysOf, selectOn } from './helpers.js';

const DIAG2_AID = fromHex('F0 68 69 6C 74 44 49 41 48');

const open = (tap: Tap, keys: StaticKeys, level: SecurityLevel = SECURITY_LEVEL.C_MAC, channel = 0, aid = ISD_AID): Promise<Scp03Channel> =>
  openScp03(tap, { keys, securityLevel: level, channel, pseudoRandomCardChallenge: { aid } });

async function sessionOn(level: SecurityLevel = SECURITY_LEVEL.C_MAC_R_MAC): Promise<{ tap: Tap; keys: StaticKeys; ch: Scp03Channel; card: CardOs }> {
  const keys = keysOf(16);
  const { card } = buildCard({ keys });
  const tap = new Tap(card);
  await tap.send(SELECT_DIAG);
  const ch = await open(tap, keys, level);
  expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
  return { tap, keys, ch, card };
}

describe('what ends a session', () => {
  it('SELECT of another applet, and reselecting the same one', async () => {
    for (const select of [selectOn(0, ISD_AID), SELECT_DIAG]) {
      const { tap, ch } = await sessionOn();
      expect(await tap.send(select)).toBe('9000');
      expect(hexOf(await ch.transmit(fromHex('80 10 00 00'))), select).toBe('6982');
    }
  });

  it('a SELECT that finds nothing leaves the applet selected and its session open', async () => {
    const { tap, ch } = await sessionOn();
    expect(await tap.send('00 A4 04 0C 05 A0 00 00 00 99')).toBe('6A82');
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
  });

  it('MANAGE CHANNEL close ends the closed channel\'s session', async () => {
    const keys = keysOf(16);
    const { card } = buildCard({ keys });
    const tap = new Tap(card);
    expect(await tap.send(selectOn(1, DIAGNOSTIC_AID))).toBe('9000');
    const ch1 = await open(tap, keys, SECURITY_LEVEL.C_MAC, 1);
    expect(hexOf(await ch1.transmit(fromHex('81 10 00 00')))).toBe('9000');
    expect(await tap.send('00 70 80 01')).toBe('9000');
    expect(await tap.send(selectOn(1, DIAGNOSTIC_AID))).toBe('9000');
    expect(hexOf(await ch1.transmit(fromHex('81 10 00 00')))).toBe('6982');
  });

  it('reset and power off', async () => {
    for (const cut of ['reset', 'power'] as const) {
      const { tap, ch, card } = await sessionOn();
      if (cut === 'reset') card.reset();
      else {
        card.powerOff();
        card.powerOn();
      }
      expect(await tap.send(SELECT_DIAG)).toBe('9000');
      expect(await tap.send('84 10 00 00 08 0001020304050607')).toBe('6982');
      expect(ch.active).toBe(true); // the host learns it from the card (or from its own reset())
    }
  });

  it('a new INITIALIZE UPDATE: the old session is gone, the new one works', async () => {
    const { tap, keys, ch } = await sessionOn();
    const again = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('6982');
    // 6982 above ended the new session too: one session per channel, and it failed verification.
    expect(hexOf(await again.transmit(fromHex('80 10 00 00')))).toBe('6982');
    const third = await open(tap, keys, SECURITY_LEVEL.C_MAC);
    expect(hexOf(await third.transmit(fromHex('80 12 00 03 00')))).toBe('0001029000');
  });

  it('transport commands do not touch the session: GET RESPONSE, MANAGE CHANNEL open, GET RESPONSE with a wrong Le', async () => {
    const { tap, ch } = await sessionOn(SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    expect(await tap.send('00 70 00 00 01')).toBe('019000');
    expect(await tap.send('00 C0 00 00 08')).toBe('6985');
    expect(hexOf(await ch.transmit(fromHex('80 42 00 00 04')))).toBe('000000009000');
    expect(await tap.send('00 70 80 01')).toBe('9000');
    expect(hexOf(await ch.transmit(fromHex('80 12 00 05 00')))).toBe('00010203049000');
  });
});

describe('the security domain as an application', () => {
  it('is selectable by its AID, answers INITIALIZE UPDATE / EXTERNAL AUTHENTICATE, and GET DATA goes through the channel', async () => {
    const keys = keysOf(24);
    const { card } = buildCard({ keys });
    const tap = new Tap(card);
    expect(await tap.send(`00 A4 04 00 08 ${toHex(GP_ISD_AID)} 00`)).toBe('6F118408A000000151000000A5055003495344' + '9000');
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    const serial = await ch.transmit(fromHex('80 CA DF 01 00'));
    expect(hexOf(serial)).toBe(`DF0108${hexOf(SERIAL)}9000`);
    // The answer left the card encrypted and MACed.
    expect(tap.responses[tap.responses.length - 1]).not.toContain(hexOf(SERIAL));
    expect(hexOf(await ch.transmit(fromHex('80 CA 9F 7F 00')))).toMatch(/^9F7F2A[0-9A-F]{84}9000$/);
    expect(hexOf(await ch.transmit(fromHex('80 CA 00 E0 00')))).toBe('6A88');
    expect(hexOf(await ch.transmit(fromHex('80 F2 80 00 00')))).toBe('6D00');
  });

  it('a partial SELECT reaches the domain too; without a session it answers plain commands itself', async () => {
    const { card } = buildCard();
    const tap = new Tap(card);
    expect(await tap.send('00 A4 04 0C 05 A0 00 00 01 51')).toBe('9000');
    expect(await tap.send('80 10 00 00')).toBe('6D00');
  });

  it('supplementary domains: each applet answers with the keys of its own domain', async () => {
    const isdKeys = keysOf(16, 1);
    const spKeys = keysOf(32, 2, 0x01);
    const store = new MemoryStore();
    const card = new CardOs({
      atr: ATR,
      serial: SERIAL,
      store,
      applets: [diagEntry(), diagEntry({ aid: DIAG2_AID, name: 'diag-sp', securityDomain: SSD_AID })],
      securityDomains: [isdConfig(isdKeys), { aid: SSD_AID, name: 'provider', keys: spKeys }],
    });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    await expect(open(tap, spKeys)).rejects.toMatchObject({ reason: 'card-refused', sw: 0x6a88 }); // no key version 01 in the ISD
    const isd = await open(tap, isdKeys);
    expect(hexOf(await isd.transmit(fromHex('80 10 00 00')))).toBe('9000');
    // Another applet on the channel: another domain; the ISD session grants nothing there.
    expect(await tap.send(selectOn(0, DIAG2_AID))).toBe('9000');
    expect(hexOf(await isd.transmit(fromHex('80 10 00 00')))).toBe('6982');
    await expect(openScp03(tap, { keys: { ...isdKeys, kvn: 0x01 }, securityLevel: SECURITY_LEVEL.C_MAC })).rejects.toMatchObject({ reason: 'card-cryptogram' });
    const sp = await open(tap, spKeys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, 0, SSD_AID);
    expect(hexOf(await sp.transmit(fromHex('80 12 00 20 00')))).toBe(hexOf(diagnosticPattern(32)) + '9000');
    // Each domain has its own sequence counter (a refused key version uses none; a wrong cryptogram does).
    expect(isd.info.sequenceCounter).toBe(1);
    expect(sp.info.sequenceCounter).toBe(2);
    expect(toHex(store.get(`app/${toHex(SSD_AID)}/sequence-counter`) as Uint8Array)).toBe('000002');
    expect(toHex(store.get(`app/${toHex(ISD_AID)}/sequence-counter`) as Uint8Array)).toBe('000001');
  });

  it('an applet associated with no domain works as on a card without domains', async () => {
    const { card } = buildCard({ applets: [diagEntry({ securityDomain: null })] });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    expect(await tap.send('84 10 00 00')).toBe('6882'); // the applet's own answer to secure messaging
    expect(await tap.send('80 50 00 00')).toBe('6D00'); // INITIALIZE UPDATE is just an unknown INS
    expect(await tap.send('80 12 00 02 00')).toBe('00019000');
  });

  it('a card without an ISD: applets belong to no domain unless they name one', async () => {
    const spKeys = keysOf(16, 4);
    const { card } = buildCard({ noIsd: true, more: [{ aid: SSD_AID, name: 'provider', keys: spKeys }] });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    expect(await tap.send('80 50 00 00')).toBe('6D00');
    await tap.send(selectOn(0, SSD_AID));
    const ch = await open(tap, spKeys, SECURITY_LEVEL.C_MAC, 0, SSD_AID);
    expect(hexOf(await ch.transmit(fromHex('80 CA 00 45 00')))).toBe(`4508${hexOf(SERIAL)}9000`);
  });
});

describe('logical channels', () => {
  it('each channel has its own session; a failure on one leaves the other open', async () => {
    const keys = keysOf(16);
    const { card } = buildCard({ keys });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch0 = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, 0);
    expect(await tap.send(selectOn(1, DIAGNOSTIC_AID))).toBe('9000');
    const ch1 = await open(tap, keys, SECURITY_LEVEL.C_MAC_R_MAC, 1);
    expect(await tap.send(`40 A4 04 0C 09 ${toHex(DIAGNOSTIC_AID)}`)).toBe('6881'); // 4 channels on this card
    for (let n = 1; n <= 3; n++) {
      expect(hexOf(await ch0.transmit(fromHex('80 40 00 00 04')))).toBe(`0000000${2 * n - 1}9000`);
      expect(hexOf(await ch1.transmit(fromHex('81 40 00 00 04')))).toBe(`0000000${2 * n}9000`);
    }
    expect([ch0.info.sequenceCounter, ch1.info.sequenceCounter]).toEqual([1, 2]);
    tap.tamperCommand = (b) => {
      const out = b.slice();
      out[out.length - 2] ^= 1;
      return out;
    };
    expect(hexOf(await ch1.transmit(fromHex('81 10 00 00')))).toBe('6982');
    expect(hexOf(await ch1.transmit(fromHex('81 10 00 00')))).toBe('6982');
    expect(hexOf(await ch0.transmit(fromHex('80 42 00 00 04')))).toBe('000000069000');
    expect(await tap.send('00 70 80 01')).toBe('9000');
    expect(hexOf(await ch0.transmit(fromHex('80 42 00 00 04')))).toBe('000000069000');
  });

  it('channels 4..19 use the further class (C0 / E0)', async () => {
    const keys = keysOf(16);
    const store = new MemoryStore();
    const card = new CardOs({ atr: ATR, serial: SERIAL, store, applets: [diagEntry()], securityDomains: [isdConfig(keys)], maxChannels: 8 });
    const tap = new Tap(card);
    expect(await tap.send(`42 A4 04 0C 09 ${toHex(DIAGNOSTIC_AID)}`)).toBe('9000');
    const ch6 = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, 6);
    expect(tap.commands.slice(-2).map((c) => c.slice(0, 4))).toEqual(['C250', 'E282']);
    expect(hexOf(await ch6.transmit(fromHex('C2 18 00 00 02 ABCD 00')))).toBe('ABCD9000');
    expect(tap.commands[tap.commands.length - 1].slice(0, 2)).toBe('E2');
  });
});

describe('configuration', () => {
  const keys = keysOf(16);
  const base = { atr: ATR, serial: SERIAL };

  it('refuses an applet naming an unknown domain, an AID used twice, two ISDs, mixed key lengths, R-ENC without R-MAC', () => {
    expect(() => new CardOs({ ...base, store: new MemoryStore(), applets: [diagEntry({ securityDomain: SSD_AID })], securityDomains: [isdConfig(keys)] })).toThrow(
      /not one of the card's security domains/,
    );
    expect(() => new CardOs({ ...base, store: new MemoryStore(), applets: [diagEntry({ aid: ISD_AID })], securityDomains: [isdConfig(keys)] })).toThrow(/already used/);
    expect(() => resolveSecurityDomains([isdConfig(keys), isdConfig(keys)])).toThrow(/already the domain/);
    expect(() => resolveSecurityDomains([{ ...isdConfig(keys), issuer: true }, { aid: SSD_AID, name: 'b', keys, issuer: true }])).toThrow(/at most one issuer/);
    expect(() => resolveSecurityDomains([isdConfig({ ...keys, dek: keysOf(32).dek })])).toThrow(/one length/);
    expect(() => resolveSecurityDomains([isdConfig(keys, 0x50)])).toThrow(/R-ENC support requires R-MAC/);
    expect(() => resolveSecurityDomains([isdConfig({ ...keys, kvn: 0 })])).toThrow(BadInputError);
    expect(() => resolveSecurityDomains([{ ...isdConfig(keys), aid: fromHex('A0000001') }])).toThrow(BadInputError);
  });

  it('picks the ISD: the one flagged issuer, else the one at A000000151000000', () => {
    const r = resolveSecurityDomains([{ aid: SSD_AID, name: 'sp', keys }, isdConfig(keys)]);
    expect(r.map((d) => d.issuer)).toEqual([false, true]);
    const flagged = resolveSecurityDomains([{ aid: SSD_AID, name: 'sp', keys, issuer: true }, isdConfig(keys)]);
    expect(flagged.map((d) => d.issuer)).toEqual([true, false]);
    expect(resolveSecurityDomains([{ aid: SSD_AID, name: 'sp', keys }]).map((d) => d.issuer)).toEqual([false]);
  });

  it('the keys of the card image win over the configuration of a rebuilt card, with a warning', async () => {
    const store = new MemoryStore();
    const first = keysOf(16, 21);
    const second = keysOf(16, 22);
    buildCard({ keys: first, store });
    const warnings: string[] = [];
    const { card } = buildCard({ keys: second, store, logger: { warn: (m) => warnings.push(m) } });
    expect(warnings.join('\n')).toMatch(/card image holds other keys/);
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    await expect(openScp03(tap, { keys: second, securityLevel: SECURITY_LEVEL.C_MAC })).rejects.toMatchObject({ reason: 'card-cryptogram' });
    const ch = await open(tap, first);
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
    const quiet: string[] = [];
    buildCard({ keys: first, store, logger: { warn: (m) => quiet.push(m) } });
    expect(quiet).toEqual([]);
  });

  it('keeps no copy of the configured keys: the caller may wipe its arrays', async () => {
    const k = keysOf(16, 30);
    const keep = { enc: k.enc.slice(), mac: k.mac.slice(), dek: k.dek.slice(), kvn: k.kvn };
    const { card } = buildCard({ keys: k });
    k.enc.fill(0);
    k.mac.fill(0);
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch = await open(tap, keep);
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
  });
});
