/** makeCard's security options: the TEST KEYS ISD, configured domains, and callers that use neither. */
import { describe, expect, it } from 'vitest';
import { makeCard, testKeysIsd, TEST_KEYS_ISD } from '../../../emulator/make-card.js';
import { openScp03, type Scp03Channel } from '../../../src/reader/scp03.js';
import { testStaticKeys, TEST_KEYS_LABEL } from '../../../src/crypto/diversify.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { ISD_AID, LEVELS, SELECT_DIAG, SERIAL, SSD_AID, Tap, hex2, hexOf, keysOf } from './helpers.js';

describe('makeCard({ testKeys: true })', () => {
  it('puts an ISD with the GlobalPlatform test keys (40..4F, KVN 30, i 70) in front of the applets, at every level', async () => {
    const warnings: string[] = [];
    const card = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], testKeys: true, logger: { warn: (m) => warnings.push(m) } });
    expect(warnings.join('\n')).toContain(TEST_KEYS_LABEL);
    expect(warnings.join('\n')).toContain('ISD TEST KEYS');
    const tap = new Tap(card.os);
    const gpKeys = testStaticKeys('gp-test');
    expect(toHex(gpKeys.enc)).toBe('404142434445464748494a4b4c4d4e4f');
    expect(gpKeys.kvn).toBe(0x30);
    let last: Scp03Channel | undefined;
    for (const level of LEVELS) {
      expect(await tap.send(SELECT_DIAG)).toBe('9000');
      const ch = await openScp03(tap, { keys: gpKeys, securityLevel: level, pseudoRandomCardChallenge: { aid: ISD_AID } });
      expect(ch.info.iParameter, hex2(level)).toBe(0x70);
      expect(hexOf(await ch.transmit(fromHex('80 12 00 08 00')))).toBe('00010203040506079000');
      last = ch;
    }
    // The card says which secure channel protocol it speaks: tag 64, OID 1.2.840.114283.4.3.112 (i = 70).
    // (A plain command inside a C-MAC session would end it: ask through the channel.)
    expect(hexOf(await (last as Scp03Channel).transmit(fromHex('80 CA 00 66 00')))).toContain('640B06092A864886FC6B040370');
    expect(await tap.send('80 CA 00 66 00')).toBe('6982');
    // The ISD itself is there to select.
    expect(await tap.send(`00 A4 04 0C 08 ${toHex(TEST_KEYS_ISD.aid)}`)).toBe('9000');
  });

  it('refuses a second domain at the ISD AID', () => {
    expect(() =>
      makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], testKeys: true, securityDomains: [{ aid: ISD_AID, name: 'mine', keys: keysOf(16) }] }),
    ).toThrow(/already the domain/);
  });

  it('testKeysIsd() hands out a fresh copy each time', () => {
    const a = testKeysIsd();
    a.keys.enc.fill(0);
    expect(toHex(testKeysIsd().keys.enc)).toBe('404142434445464748494a4b4c4d4e4f');
  });
});

describe('makeCard without security options', () => {
  it('builds the card as before: no domain, secure messaging reaches the applet, INS 50 is unknown', async () => {
    const card = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }] });
    const tap = new Tap(card.os);
    await tap.send(SELECT_DIAG);
    expect(await tap.send('84 10 00 00')).toBe('6882');
    expect(await tap.send('80 50 00 00')).toBe('6D00');
    expect(await tap.send(`00 A4 04 0C 08 ${toHex(ISD_AID)}`)).toBe('6A82');
    expect(await tap.send('80 CA 00 66 00')).not.toContain('6409');
  });

  it('passes configured domains and per-applet associations through', async () => {
    const spKeys = keysOf(24, 3, 0x01);
    const card = makeCard({
      serial: SERIAL,
      applets: [{ name: 'diagnostic', securityDomain: SSD_AID }],
      securityDomains: [{ aid: SSD_AID, name: 'provider', keys: spKeys }],
    });
    const tap = new Tap(card.os);
    await tap.send(SELECT_DIAG);
    const ch = await openScp03(tap, { keys: spKeys, securityLevel: 0x13, pseudoRandomCardChallenge: { aid: SSD_AID } });
    expect(hexOf(await ch.transmit(fromHex('80 18 00 00 02 0102 00')))).toBe('01029000');
  });
});
