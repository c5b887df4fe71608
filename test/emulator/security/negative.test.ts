/**
 * What must fail, each on its own: wrong keys, a flipped C-MAC bit, a replayed wrapped command, a
 * response MAC changed by a man in the middle, and the smaller refusals around them.
 */
import { describe, expect, it } from 'vitest';
import { openScp03, AuthError, MAX_SCP03_GET_RESPONSES, type Scp03Channel } from '../../../src/reader/scp03.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { ProtocolError } from '../../../src/util/errors.js';
import { SECURITY_LEVEL, computeCMac, deriveSessionKeys, hostCryptogram, type SecurityLevel, type StaticKeys } from '../../../src/crypto/scp03.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { ISD_AID, LEVELS, SELECT_DIAG, Tap, buildCard, flipMacBit, flipResponseMacBit, hex2, hexOf, keysOf } from './helpers.js';

const open = (tap: CardChannel, keys: StaticKeys, level: SecurityLevel): Promise<Scp03Channel> =>
  openScp03(tap, { keys, securityLevel: level, pseudoRandomCardChallenge: { aid: ISD_AID } });

async function readyCard(keys: StaticKeys = keysOf(16)): Promise<{ tap: Tap; keys: StaticKeys }> {
  const { card } = buildCard({ keys });
  const tap = new Tap(card);
  expect(await tap.send(SELECT_DIAG)).toBe('9000');
  return { tap, keys };
}

/** The diagnostic counter, read through a fresh session (so a dropped session does not hide it). */
async function counterOf(tap: Tap, keys: StaticKeys): Promise<string> {
  const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC);
  return hexOf(await ch.transmit(fromHex('80 42 00 00 00')));
}

describe('wrong keys', () => {
  for (const [name, wrong] of [
    ['other keys of the same size', keysOf(16, 42)],
    ['the right ENC and DEK, another MAC key', { ...keysOf(16), mac: keysOf(16, 3).mac }],
    ['keys of another size', keysOf(32)],
  ] as const) {
    it(`${name}: card cryptogram mismatch, AuthError AUTH_FAILED, exactly one command on the wire`, async () => {
      const { tap, keys } = await readyCard();
      const before = tap.commands.length;
      const attempt = openScp03(tap, { keys: wrong, securityLevel: SECURITY_LEVEL.C_MAC });
      await expect(attempt).rejects.toBeInstanceOf(AuthError);
      await expect(attempt).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'card-cryptogram' });
      expect(tap.commands.slice(before).map((c) => c.slice(0, 4))).toEqual(['8050']);
      // The card's half-open handshake holds nothing: a protected command is refused, plain ones work,
      // and the right keys authenticate afterwards.
      expect(await tap.send('84 10 00 00 08 0001020304050607')).toBe('6982');
      expect(await tap.send('80 10 00 00')).toBe('9000');
      const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC);
      expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('9000');
    });
  }

  it('the right keys under another key version: refused by the card (6A88), nothing more sent', async () => {
    const { tap, keys } = await readyCard();
    const attempt = openScp03(tap, { keys: { ...keys, kvn: 0x31 }, securityLevel: SECURITY_LEVEL.C_MAC });
    await expect(attempt).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'card-refused', sw: 0x6a88 });
    expect(tap.commands.slice(1).map((c) => c.slice(0, 4))).toEqual(['8050']);
  });
});

describe('a flipped bit in a command MAC', () => {
  for (const level of LEVELS) {
    it(`level ${hex2(level)}: the card answers 6982, does not run the command, and drops the session`, async () => {
      const { tap, keys } = await readyCard();
      const ch = await open(tap, keys, level);
      expect(hexOf(await ch.transmit(fromHex('80 40 00 00 04')))).toBe('000000019000');
      tap.tamperCommand = flipMacBit;
      expect(hexOf(await ch.transmit(fromHex('80 40 00 00 04')))).toBe('6982');
      // Dropped: the next well-formed protected command is refused too, and so is every one after it.
      expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('6982');
      expect(hexOf(await ch.transmit(fromHex('80 42 00 00 04')))).toBe('6982');
      // The tampered increment never ran.
      expect(await counterOf(tap, keys)).toBe('000000019000');
    });
  }

  it('a flipped bit in the header or the (encrypted) data fails the same way', async () => {
    const { tap, keys } = await readyCard();
    let ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    tap.tamperCommand = (b) => {
      const out = b.slice();
      out[3] ^= 0x01; // P2
      return out;
    };
    expect(hexOf(await ch.transmit(fromHex('80 18 00 00 03 AABBCC 00')))).toBe('6982');
    ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    tap.tamperCommand = (b) => {
      const out = b.slice();
      out[5] ^= 0x40; // first byte of the encrypted data
      return out;
    };
    expect(hexOf(await ch.transmit(fromHex('80 18 00 00 03 AABBCC 00')))).toBe('6982');
    expect(hexOf(await ch.transmit(fromHex('80 18 00 00 03 AABBCC 00')))).toBe('6982');
  });

  it('an unprotected command inside a C-MAC session is refused (6982) and ends the session', async () => {
    const { tap, keys } = await readyCard();
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_R_MAC);
    expect(await tap.send('80 40 00 00 04')).toBe('6982');
    expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('6982');
    // Without a session, plain commands run again (with no security), protected ones are refused.
    expect(await tap.send('80 42 00 00 04')).toBe('000000009000');
    expect(await tap.send('84 10 00 00 08 0001020304050607')).toBe('6982');
  });
});

describe('a replayed wrapped command', () => {
  for (const level of LEVELS) {
    it(`level ${hex2(level)}: 6982, the command does not run twice, the session is dropped`, async () => {
      const { tap, keys } = await readyCard();
      const ch = await open(tap, keys, level);
      expect(hexOf(await ch.transmit(fromHex('80 40 00 00 04')))).toBe('000000019000');
      // The wrapped increment (under R-MAC its answer came in two parts, the second by GET RESPONSE).
      const captured = [...tap.commands].reverse().find((c) => c.startsWith('8440')) as string;
      expect(captured).toBeDefined();
      expect(await tap.send(captured)).toBe('6982');
      expect(hexOf(await ch.transmit(fromHex('80 10 00 00')))).toBe('6982');
      expect(await counterOf(tap, keys)).toBe('000000019000');
    });
  }

  it('a command captured in one session is refused in the next one', async () => {
    const { tap, keys } = await readyCard();
    const first = await open(tap, keys, SECURITY_LEVEL.C_MAC);
    await first.transmit(fromHex('80 40 00 00 04'));
    const captured = tap.commands[tap.commands.length - 1];
    await open(tap, keys, SECURITY_LEVEL.C_MAC);
    expect(await tap.send(captured)).toBe('6982');
    expect(await counterOf(tap, keys)).toBe('000000019000');
  });

  it('a captured INITIALIZE UPDATE + EXTERNAL AUTHENTICATE does not open a session again', async () => {
    const { tap, keys } = await readyCard();
    await open(tap, keys, SECURITY_LEVEL.C_MAC);
    const [iu, ea] = tap.commands.slice(-2);
    expect((await tap.send(iu)).endsWith('9000')).toBe(true); // a new counter, so a new challenge
    expect(await tap.send(ea)).toBe('6982'); // its C-MAC belongs to the old challenge's session keys
    expect(await tap.send('84 82 01 00 10 00000000000000000000000000000000')).toBe('6985'); // no handshake pending
  });
});

describe('a response MAC that does not verify', () => {
  for (const level of LEVELS.filter((l) => (l & 0x10) !== 0)) {
    it(`level ${hex2(level)}: the host rejects with AuthError and ends its session`, async () => {
      const { tap, keys } = await readyCard();
      const ch = await open(tap, keys, level);
      tap.tamperResponse = flipResponseMacBit;
      const attempt = ch.transmit(fromHex('80 12 00 10 00'));
      await expect(attempt).rejects.toBeInstanceOf(AuthError);
      await expect(attempt).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'response-mac' });
      expect(ch.active).toBe(false);
      const sent = tap.commands.length;
      await expect(ch.transmit(fromHex('80 10 00 00'))).rejects.toMatchObject({ reason: 'session-ended' });
      expect(tap.commands.length).toBe(sent);
    });
  }

  it('a tampered part of a response split by 61xx fails the R-MAC of the whole', async () => {
    const { tap, keys } = await readyCard();
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_R_MAC);
    tap.tamperResponse = (b) => {
      const out = b.slice();
      out[10] ^= 0x01; // inside the first 256-byte part, far from the R-MAC
      return out;
    };
    await expect(ch.transmit(fromHex('80 12 02 58 00'))).rejects.toMatchObject({ reason: 'response-mac' });
    expect(tap.commands.slice(-2).map((c) => c.slice(0, 4))).toEqual(['00C0', '00C0']);
  });

  it('an error SW that comes with data under R-MAC is refused by the host', async () => {
    const { tap, keys } = await readyCard();
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_R_MAC);
    tap.tamperResponse = () => fromHex('AABB6A82');
    await expect(ch.transmit(fromHex('80 10 00 00'))).rejects.toMatchObject({ reason: 'unprotected-response' });
  });
});

describe('the host wrapper\'s GET RESPONSE loop', () => {
  it('is bounded: a card that answers 61xx forever gets MAX_SCP03_GET_RESPONSES GET RESPONSEs, then ProtocolError', async () => {
    const { tap, keys } = await readyCard();
    let endless = false;
    let fetched = 0;
    const reader: CardChannel = {
      transmit: async (c) => {
        if (!endless) return tap.transmit(c);
        if (c[1] === 0xc0) fetched++;
        return fromHex('AA6101');
      },
      reset: (cold) => tap.reset(cold),
      close: () => tap.close(),
    };
    const ch = await open(reader, keys, SECURITY_LEVEL.C_MAC_R_MAC);
    endless = true;
    await expect(ch.transmit(fromHex('80 10 00 00'))).rejects.toBeInstanceOf(ProtocolError);
    expect(fetched).toBe(MAX_SCP03_GET_RESPONSES);
  });
});

describe('refusals around the handshake', () => {
  it('EXTERNAL AUTHENTICATE without INITIALIZE UPDATE: 6985', async () => {
    const { tap } = await readyCard();
    expect(await tap.send('84 82 01 00 10 00000000000000000000000000000000')).toBe('6985');
  });

  it('a protected command before any session: 6982, and it never reaches the applet', async () => {
    const { tap } = await readyCard();
    expect(await tap.send('84 40 00 00 08 0001020304050607 04')).toBe('6982');
    expect(await tap.send('80 42 00 00 04')).toBe('000000009000');
  });

  it('a security level the domain does not support: 6A86 from the card, and no session', async () => {
    const keys = keysOf(16);
    const { card } = buildCard({ keys, i: 0x10 }); // pseudo-random challenges, no R-MAC support
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    // The host wrapper checks i itself and refuses before EXTERNAL AUTHENTICATE...
    await expect(openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC_R_MAC })).rejects.toMatchObject({ code: 'NOT_SUPPORTED' });
    // ...so build a correct EXTERNAL AUTHENTICATE asking for level 11 by hand.
    const hostChallenge = fromHex('0102030405060708');
    const iu = fromHex(await tap.send(`80 50 30 00 08 ${toHex(hostChallenge)} 00`));
    const cardChallenge = iu.subarray(13, 21);
    const sk = deriveSessionKeys(keys, hostChallenge, cardChallenge);
    const cryptogram = hostCryptogram(sk.sMac, hostChallenge, cardChallenge);
    const header = { cla: 0x84, ins: 0x82, p1: SECURITY_LEVEL.C_MAC_R_MAC, p2: 0 };
    const mac = computeCMac(sk.sMac, new Uint8Array(16), header, cryptogram, 8, false).subarray(0, 8);
    expect(await tap.send(`84 82 11 00 10 ${toHex(cryptogram)}${toHex(mac)}`)).toBe('6A86');
    expect(await tap.send('84 10 00 00 08 0001020304050607')).toBe('6982');
    // The same, asking for level 03, which i = 10 allows, opens the session.
    const iu2 = fromHex(await tap.send(`80 50 30 00 08 ${toHex(hostChallenge)} 00`));
    const cc2 = iu2.subarray(13, 21);
    const sk2 = deriveSessionKeys(keys, hostChallenge, cc2);
    const c2 = hostCryptogram(sk2.sMac, hostChallenge, cc2);
    const mac2 = computeCMac(sk2.sMac, new Uint8Array(16), { ...header, p1: SECURITY_LEVEL.C_MAC_C_DEC }, c2, 8, false).subarray(0, 8);
    expect(await tap.send(`84 82 03 00 10 ${toHex(c2)}${toHex(mac2)}`)).toBe('9000');
  });

  it('the sequence counter at FFFFFF: INITIALIZE UPDATE answers 6985, no challenge is made', async () => {
    const keys = keysOf(16);
    const { card, store } = buildCard({ keys });
    store.put(`app/${'a000000151000000'}/sequence-counter`, fromHex('FFFFFF'));
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    await expect(open(tap, keys, SECURITY_LEVEL.C_MAC)).rejects.toMatchObject({ reason: 'card-refused', sw: 0x6985 });
  });
});
