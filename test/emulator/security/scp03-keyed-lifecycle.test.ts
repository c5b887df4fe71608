/**
 * Every SCP03 session, host side (openScp03) and card side (the card OS's security domain), builds
 * its keyed objects (AesKey for S-ENC, CmacKey, each over an AesKey, for S-MAC and S-RMAC) once and
 * destroys them at whatever ends it: close, reset, an R-MAC or C-MAC failure, a new INITIALIZE
 * UPDATE, a refused EXTERNAL AUTHENTICATE, deselection, power loss. Every AesKey built anywhere
 * is tracked (the module is mocked with a subclass that records its instances, so CmacKey's and
 * the one-shot functions' keys are tracked too); "live" counts those not yet destroyed. Each
 * session holds 3, and one-shot keys die within their call.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeCard } from '../../../emulator/make-card.js';
import { InProcessChannel } from '../../../emulator/in-process.js';
import { DIAGNOSTIC_AID } from '../../../emulator/applets/diagnostic.js';
import { GP_ISD_AID } from '../../../emulator/os/security-domain.js';
import { openScp03, AuthError, SECURITY_LEVEL, type SecurityLevel } from '../../../src/reader/scp03.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { testStaticKeys } from '../../../src/crypto/diversify.js';
import { concatBytes, fromHex } from '../../../src/util/bytes.js';

const tracked = vi.hoisted(() => ({ built: new Set<{ destroyed: boolean }>() }));

vi.mock('../../../src/crypto/aes.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/crypto/aes.js')>();
  class TrackedAesKey extends original.AesKey {
    constructor(key: Uint8Array) {
      super(key);
      tracked.built.add(this);
    }
  }
  return { ...original, AesKey: TrackedAesKey };
});

const live = (): number => [...tracked.built].filter((k) => !k.destroyed).length;

const SELECT_DIAG = concatBytes(fromHex('00A4040C09'), DIAGNOSTIC_AID);
const SELECT_ISD = concatBytes(fromHex('00A4040C'), Uint8Array.of(GP_ISD_AID.length), GP_ISD_AID);
const ECHO = concatBytes(fromHex('80 18 00 00 20'), new Uint8Array(32).fill(0x5a), fromHex('00'));
const keys = testStaticKeys('gp-test');

/** A reader between host and card that can rewrite what passes (tampering, refusals). */
class Tap implements CardChannel {
  onCommand: ((c: Uint8Array) => Uint8Array | undefined) | undefined;
  onResponse: ((r: Uint8Array) => Uint8Array) | undefined;
  constructor(readonly inner: InProcessChannel) {}
  async transmit(command: Uint8Array): Promise<Uint8Array> {
    const answer = this.onCommand?.(command);
    if (answer !== undefined) return answer;
    const r = await this.inner.transmit(command);
    return this.onResponse ? this.onResponse(r) : r;
  }
  reset(cold?: boolean): Promise<Uint8Array> {
    return this.inner.reset(cold);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function setup(): Promise<{ reader: InProcessChannel; tap: Tap; open: (level?: SecurityLevel) => ReturnType<typeof openScp03> }> {
  const card = makeCard({ serial: fromHex('0102030405060708'), applets: [{ name: 'diagnostic' }], testKeys: true });
  const reader = new InProcessChannel(card.os);
  const tap = new Tap(reader);
  await reader.transmit(SELECT_DIAG);
  tracked.built.clear();
  return { reader, tap, open: (level = SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC) => openScp03(tap, { keys, securityLevel: level }) };
}

const sw = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];

afterEach(() => {
  tracked.built.clear();
});

describe('SCP03 keyed objects live exactly as long as their session', () => {
  it('one session per end, 3 keyed objects each, built once: the count does not grow with traffic', async () => {
    const { open } = await setup();
    const ch = await open();
    expect(live()).toBe(6);
    const built = tracked.built.size;
    for (let i = 0; i < 5; i++) expect(sw(await ch.transmit(ECHO))).toBe(0x9000);
    expect(live()).toBe(6);
    // Only the session's own keys are alive; nothing new was built per APDU (one-shot keys would be).
    expect(tracked.built.size).toBe(built);
  });

  it('host close(): the host session is destroyed; the card session goes with the power', async () => {
    const { reader, open } = await setup();
    const ch = await open();
    await ch.transmit(ECHO);
    await ch.close();
    expect(live()).toBe(3);
    reader.removeCard();
    expect(live()).toBe(0);
  });

  it('reset(): both ends', async () => {
    const { open } = await setup();
    const ch = await open();
    await ch.transmit(ECHO);
    await ch.reset();
    expect(ch.active).toBe(false);
    expect(live()).toBe(0);
  });

  it('an R-MAC that does not verify ends the host session (the card session lives on until the card ends it)', async () => {
    const { tap, reader, open } = await setup();
    const ch = await open();
    tap.onResponse = (r) => {
      const t = r.slice();
      if (t.length > 2) t[0] ^= 1;
      return t;
    };
    await expect(ch.transmit(ECHO)).rejects.toThrow(AuthError);
    expect(ch.active).toBe(false);
    expect(live()).toBe(3);
    await reader.reset();
    expect(live()).toBe(0);
  });

  it('a C-MAC that does not verify ends the card session (the host, seeing a bare 6982, keeps its own)', async () => {
    const { tap, open } = await setup();
    const ch = await open();
    tap.onCommand = (c) => {
      c[c.length - 2] ^= 1; // inside the C-MAC (Le is the last byte)
      return undefined;
    };
    expect(sw(await ch.transmit(ECHO))).toBe(0x6982);
    expect(live()).toBe(3);
    await ch.close();
    expect(live()).toBe(0);
  });

  it('a new INITIALIZE UPDATE ends the card session it replaces', async () => {
    const { open } = await setup();
    const first = await open();
    await first.transmit(ECHO);
    const second = await open(SECURITY_LEVEL.C_MAC);
    expect(sw(await second.transmit(ECHO))).toBe(0x9000);
    expect(live()).toBe(9); // host 1 (never closed), host 2, card 2; card 1 is gone
    await first.close();
    await second.close();
    expect(live()).toBe(3);
  });

  it('EXTERNAL AUTHENTICATE refused: the host session built for it is destroyed with its keys', async () => {
    const { tap, open } = await setup();
    tap.onCommand = (c) => (c[1] === 0x82 ? fromHex('6300') : undefined);
    await expect(open()).rejects.toThrow(expect.objectContaining({ reason: 'card-refused' }));
    expect(tracked.built.size).toBeGreaterThan(0);
    expect(live()).toBe(0);
  });

  it('deselecting the applet ends the card session', async () => {
    const { reader, open } = await setup();
    const ch = await open(SECURITY_LEVEL.C_MAC);
    await ch.transmit(ECHO);
    await reader.transmit(SELECT_ISD);
    expect(live()).toBe(3);
    await ch.close();
    expect(live()).toBe(0);
  });

  it('a destroyed session refuses to work, with no key left to work with', async () => {
    const { open } = await setup();
    const ch = await open();
    await ch.reset();
    await expect(ch.transmit(ECHO)).rejects.toThrow(expect.objectContaining({ reason: 'session-ended' }));
    expect(live()).toBe(0);
  });
});
