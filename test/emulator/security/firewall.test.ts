/**
 * The firewall around security domains: an applet reads the status of its channel's secure channel
 * (ctx.security) and nothing more; the domain's keys, records and session stay out of its reach.
 */
import { describe, expect, it } from 'vitest';
import { openScp03 } from '../../../src/reader/scp03.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { SECURITY_LEVEL } from '../../../src/crypto/scp03.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import type { Applet, AppletContext } from '../../../emulator/os/applet.js';
import { SD_KEY_NAMES, SD_RECORDS } from '../../../emulator/os/security-domain.js';
import { ISD_AID, ISD_HEX, SSD_AID, Tap, buildCard, hexOf, keysOf } from './helpers.js';

const SNOOP_AID = fromHex('F0 00 00 00 05 01');

/** An applet that keeps every context it is given and tries to reach the domain's secrets. */
function snoop(into: AppletContext[]): Applet {
  return {
    process(ctx, apdu) {
      into.push(ctx);
      if (apdu.ins === 0x20) {
        // INS 20: ask the domain (by AID) for a shareable object.
        const got = ctx.getShareable(apdu.data, apdu.p1);
        return ResponseApdu.status(got === null ? 0x6985 : 0x9000);
      }
      return ResponseApdu.status(0x9000);
    },
  };
}

describe('security domain firewall', () => {
  it('an applet sees its status, never the keys, records or counter of its domain', async () => {
    const keys = keysOf(16, 8);
    const seen: AppletContext[] = [];
    const { card, store } = buildCard({
      keys,
      applets: [{ aid: SNOOP_AID, name: 'snoop', applet: snoop(seen) }],
      more: [{ aid: SSD_AID, name: 'provider', keys: keysOf(32, 9, 0x01) }],
    });
    const tap = new Tap(card);
    await tap.send(`00 A4 04 0C 06 ${toHex(SNOOP_AID)}`);
    const ch = await openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC });
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
    const ctx = seen[0];

    // The secrets are there, in the card's store...
    for (const name of Object.values(SD_KEY_NAMES)) expect(store.get(`key/${ISD_HEX}/${name}`), name).toBeDefined();
    expect(store.get(`app/${ISD_HEX}/${SD_RECORDS.sequenceCounter}`)).toBeDefined();
    // ...and out of the applet's reach, by any name.
    expect(ctx.keys.names()).toEqual([]);
    expect(ctx.store.keys()).toEqual([]);
    for (const name of ['enc', 'mac', 'dek', `../${ISD_HEX}/enc`, `/../../key/${ISD_HEX}/mac`, `../../key/${ISD_HEX}/dek`]) {
      expect(ctx.keys.get(name), name).toBeUndefined();
      expect(ctx.store.get(name), name).toBeUndefined();
    }
    for (const name of [SD_RECORDS.sequenceCounter, `../${ISD_HEX}/${SD_RECORDS.sequenceCounter}`, `../../app/${ISD_HEX}/${SD_RECORDS.kvn}`]) {
      expect(ctx.store.get(name), name).toBeUndefined();
    }
    // Writes land in the applet's own scope, never in the domain's.
    ctx.keys.set(`../${ISD_HEX}/enc`, new Uint8Array(16));
    ctx.store.put(`../${ISD_HEX}/${SD_RECORDS.sequenceCounter}`, fromHex('000000'));
    expect(toHex(store.get(`app/${ISD_HEX}/${SD_RECORDS.sequenceCounter}`) as Uint8Array)).toBe('000001');
    const after = await openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC });
    expect(after.info.sequenceCounter).toBe(2);

    // No shareable door into a domain.
    expect(hexOf(await after.transmit(fromHex(`80 20 00 00 08 ${toHex(ISD_AID)}`)))).toBe('6985');
    expect(hexOf(await after.transmit(fromHex(`80 20 01 00 08 ${toHex(SSD_AID)}`)))).toBe('6985');

    // The status is data, frozen: it cannot be turned into a claim the applet did not get.
    const status = seen[seen.length - 1].security;
    expect(status).toEqual({ level: SECURITY_LEVEL.C_MAC, authenticated: true, domain: ISD_HEX });
    expect(Object.isFrozen(status)).toBe(true);
    expect(() => {
      (status as { level: number }).level = 0x33;
    }).toThrow(TypeError);
    // The context has the documented members only.
    expect(Object.keys(ctx).sort()).toEqual(['aid', 'getShareable', 'keys', 'logger', 'security', 'serial', 'store', 'transaction', 'transient'].sort());
  });

  it('an applet cannot open a transaction that swallows the counter update', async () => {
    // The OS aborts any transaction an applet leaves open before the next command, so the counter's
    // own transaction in INITIALIZE UPDATE always starts clean and commits.
    const keys = keysOf(16, 10);
    const sloppy: Applet = {
      process(ctx) {
        ctx.transaction.begin();
        ctx.store.put('x', Uint8Array.of(1));
        return ResponseApdu.status(0x9000);
      },
    };
    const { card, store } = buildCard({ keys, applets: [{ aid: SNOOP_AID, name: 'sloppy', applet: sloppy }] });
    const tap = new Tap(card);
    await tap.send(`00 A4 04 0C 06 ${toHex(SNOOP_AID)}`);
    expect(await tap.send('80 10 00 00')).toBe('6F00');
    const ch = await openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC });
    expect(ch.info.sequenceCounter).toBe(1);
    expect(store.inTransaction).toBe(false);
    expect(toHex(store.get(`app/${ISD_HEX}/${SD_RECORDS.sequenceCounter}`) as Uint8Array)).toBe('000001');
  });
});
