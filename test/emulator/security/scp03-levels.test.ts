/**
 * The terminal's host side (openScp03) against the emulator's card side (a security domain routed by
 * the card OS), in process: authentication at every level and key size, and every example exchange
 * of applets-spec/diagnostic.md through the secure channel, with the same plain results as without it.
 */
import { describe, expect, it } from 'vitest';
import { openScp03, type Scp03Channel } from '../../../src/reader/scp03.js';
import { withGetResponse } from '../../../src/reader/get-response.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { decodeCla } from '../../../src/apdu/cla.js';
import { SECURITY_LEVEL, hasSecureMessaging, type SecurityLevel, type StaticKeys } from '../../../src/crypto/scp03.js';
import { BadInputError } from '../../../src/util/errors.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import type { Applet, SecureChannelStatus } from '../../../emulator/os/applet.js';
import { DiagnosticApplet, diagnosticPattern } from '../../../emulator/applets/diagnostic.js';
import { specBlocks, type SpecStep } from '../os/helpers.js';
import { ISD_AID, ISD_HEX, KEY_LENGTHS, KVN, LEVELS, SELECT_DIAG, Tap, buildCard, diagEntry, hex2, hexOf, keysOf } from './helpers.js';

/** The diagnostic applet, recording the secure-channel status each command ran with. */
function spyingDiag(seen: SecureChannelStatus[]): Applet {
  const inner = new DiagnosticApplet({ sleep: async () => undefined });
  return {
    chaining: inner.chaining,
    multiSelectable: inner.multiSelectable,
    install: (ctx) => inner.install(ctx),
    fci: () => inner.fci(),
    process(ctx, apdu) {
      seen.push(ctx.security);
      return inner.process(ctx, apdu);
    },
  };
}

const open = (tap: CardChannel, keys: StaticKeys, level: SecurityLevel, channel = 0): Promise<Scp03Channel> =>
  openScp03(tap, { keys, securityLevel: level, channel, pseudoRandomCardChallenge: { aid: ISD_AID } });

describe('host openScp03 ↔ card security domain, every level and AES key size', () => {
  for (const keyLength of KEY_LENGTHS) {
    for (const level of LEVELS) {
      it(`AES-${keyLength * 8}, level ${hex2(level)}`, async () => {
        const seen: SecureChannelStatus[] = [];
        const keys = keysOf(keyLength, keyLength);
        const { card } = buildCard({ keys, applets: [diagEntry({ applet: spyingDiag(seen) })] });
        const tap = new Tap(card);
        expect(await tap.send(SELECT_DIAG)).toBe('9000');
        const ch = await open(tap, keys, level);
        expect(ch.info).toMatchObject({ kvn: KVN, iParameter: 0x70, sequenceCounter: 1, securityLevel: level, channel: 0 });
        // INITIALIZE UPDATE then EXTERNAL AUTHENTICATE, nothing else, on the wire.
        expect(tap.commands.slice(1).map((c) => c.slice(0, 4))).toEqual(['8050', '8482']);
        expect(tap.responses.slice(1).map((r) => r.slice(-4))).toEqual(['9000', '9000']);

        const ping = await ch.transmit(fromHex('80 10 00 00'));
        expect(hexOf(ping)).toBe('9000');
        const echo = fromHex('00112233445566778899AABBCCDDEEFF0102030405');
        expect(hexOf(await ch.transmit(fromHex(`80 18 00 00 ${hex2(echo.length)} ${toHex(echo)} 00`)))).toBe(`${hexOf(echo)}9000`);
        // The applet saw plain commands and the status of the channel's session.
        expect(seen).toEqual([
          { level, authenticated: true, domain: ISD_HEX },
          { level, authenticated: true, domain: ISD_HEX },
        ]);
        // On the wire: protected (SM CLA, C-MAC), the data hidden under C-DECRYPTION, the answer under R-ENC.
        const onWire = CommandApdu.decode(fromHex(tap.commands[tap.commands.length - 1]));
        expect(hasSecureMessaging(onWire.cla)).toBe(true);
        const cDec = (level & 0x02) !== 0;
        expect(toHex(onWire.data).includes(toHex(echo))).toBe(!cDec);
        const answer = tap.responses[tap.responses.length - 1];
        const rMac = (level & 0x10) !== 0;
        const rEnc = (level & 0x20) !== 0;
        expect(answer.includes(hexOf(echo))).toBe(!rEnc);
        expect(answer.length / 2 - 2).toBe(rEnc ? 32 + 8 : echo.length + (rMac ? 8 : 0));
        expect(ch.active).toBe(true);
      });
    }
  }

  it('S16 mode (i = 71), AES-256, level 33', async () => {
    const keys = keysOf(32, 5);
    const { card } = buildCard({ keys, i: 0x71 });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch = await openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, s16: true, pseudoRandomCardChallenge: { aid: ISD_AID } });
    expect(ch.info.i.s16).toBe(true);
    expect(hexOf(await ch.transmit(fromHex('80 12 01 2C 00')))).toBe(hexOf(diagnosticPattern(300)) + '9000');
    expect(CommandApdu.decode(fromHex(tap.commands[tap.commands.length - 2])).data.length).toBe(16); // C-MAC of 16 bytes on PATTERN
  });

  it('level 00: authentication only, commands in the clear, the applet still sees an authenticated channel', async () => {
    const seen: SecureChannelStatus[] = [];
    const keys = keysOf(16);
    const { card } = buildCard({ keys, applets: [diagEntry({ applet: spyingDiag(seen) })] });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch = await open(tap, keys, SECURITY_LEVEL.NONE);
    expect(hexOf(await ch.transmit(fromHex('80 12 00 04 00')))).toBe('000102039000');
    expect(tap.commands[tap.commands.length - 1]).toBe('8012000400');
    expect(seen).toEqual([{ level: 0, authenticated: true, domain: ISD_HEX }]);
  });

  it('an applet on a card without a session sees no secure channel', async () => {
    const seen: SecureChannelStatus[] = [];
    const { card } = buildCard({ applets: [diagEntry({ applet: spyingDiag(seen) })] });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    expect(await tap.send('80 10 00 00')).toBe('9000');
    expect(seen).toEqual([{ level: 0, authenticated: false, domain: null }]);
  });
});

// ------------------------------------------------------------------------------------------------
// applets-spec/diagnostic.md through the secure channel

const TRANSPORT_INS = new Set([0xa4, 0x70, 0xc0]);

function isTransport(hex: string): boolean {
  const cmd = CommandApdu.decode(fromHex(hex));
  const cla = decodeCla(cmd.cla);
  return !cla.proprietary && cla.secureMessaging === 'none' && TRANSPORT_INS.has(cmd.ins);
}

interface Run {
  /** One entry per spec line that was exchanged: the R-APDU in hex, or "refused" (not sent). */
  results: string[];
  tap: Tap;
}

/**
 * Replays one spec block. Transport lines (SELECT, MANAGE CHANNEL, GET RESPONSE right after one of
 * them) go to the card as they are; applet commands go through `stack`: the plain reference
 * (withGetResponse, no 6Cxx re-issue, on a card whose diagnostic applet has no security domain), or
 * a secure channel opened after every SELECT and reset. A GET RESPONSE after an applet command is
 * the wrappers' business (both collect 61xx themselves), so it is left out of both runs.
 */
async function replayThrough(steps: SpecStep[], secure: { keys: StaticKeys; level: SecurityLevel } | null): Promise<Run> {
  const { card } = buildCard({ keys: secure?.keys ?? keysOf(16), applets: [diagEntry(secure ? {} : { securityDomain: null })] });
  const tap = new Tap(card);
  const plain = withGetResponse({ reissueOn6C: false })(tap);
  let session: Scp03Channel | null = null;
  let lastWasTransport = false;
  const results: string[] = [];
  for (const step of steps) {
    if (step.kind === 'reset') {
      await tap.reset();
      session = null;
      lastWasTransport = false;
      continue;
    }
    const command = step.command as string;
    if (isTransport(command)) {
      const ins = CommandApdu.decode(fromHex(command)).ins;
      if (ins === 0xc0 && !lastWasTransport) continue;
      results.push(await tap.send(command));
      if (ins === 0xa4) session = null; // a SELECT ends the session; open a new one before the next command
      lastWasTransport = true;
      continue;
    }
    lastWasTransport = false;
    if (!secure) {
      results.push(hexOf(await plain.transmit(fromHex(command))));
      continue;
    }
    session ??= await open(tap, secure.keys, secure.level);
    const before = tap.commands.length;
    try {
      results.push(hexOf(await session.transmit(fromHex(command))));
    } catch (e) {
      // A command that already claims secure messaging is the caller's mistake: refused, never sent.
      expect(e).toBeInstanceOf(BadInputError);
      expect(hasSecureMessaging(fromHex(command)[0])).toBe(true);
      expect(tap.commands.length).toBe(before);
      results.push('refused');
    }
  }
  return { results, tap };
}

describe('applets-spec/diagnostic.md examples through the secure channel', () => {
  const blocks = specBlocks('applets-spec/diagnostic.md');

  it('covers the blocks the issue names (cases, 600 bytes via 61xx, extended 4096, 6Cxx, chaining, counter)', () => {
    const all = blocks.flat().map((s) => s.command ?? '');
    for (const needle of ['80100000', '8012025800', '80121000000000', '801C002000', '901A0000026162', '8040000000']) {
      expect(all, needle).toContain(needle);
    }
    expect(blocks.length).toBeGreaterThanOrEqual(9);
  });

  for (const keyLength of KEY_LENGTHS) {
    for (const level of LEVELS) {
      it(`AES-${keyLength * 8}, level ${hex2(level)}: every block gives the plain results`, async () => {
        const keys = keysOf(keyLength, level);
        for (const [n, steps] of blocks.entries()) {
          const reference = await replayThrough(steps, null);
          const secure = await replayThrough(steps, { keys, level });
          const expected = reference.results.map((r, i) => (secure.results[i] === 'refused' ? 'refused' : r));
          expect(secure.results, `block ${n + 1} (${steps[1]?.line ?? steps[0]?.line})`).toEqual(expected);
          expect(secure.results.filter((r) => r === 'refused').length).toBeLessThanOrEqual(1);
          // Every applet command crossed the wire protected; the card never refused one.
          for (const [i, c] of secure.tap.commands.entries()) {
            if (isTransport(c) || c.startsWith('8050')) continue;
            expect(hasSecureMessaging(fromHex(c)[0]), c).toBe(true);
            expect(secure.tap.responses[i].endsWith('6982'), c).toBe(false);
          }
        }
      });
    }
  }

  it('serves a wrapped 600-byte answer through 61xx and plain GET RESPONSE, and the session survives', async () => {
    const keys = keysOf(16);
    const { card } = buildCard({ keys });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC);
    const start = tap.commands.length;
    expect(hexOf(await ch.transmit(fromHex('80 12 02 58 00')))).toBe(hexOf(diagnosticPattern(600)) + '9000');
    const wire = tap.commands.slice(start);
    // 600 bytes padded to 608, R-MAC 8: 616 = 256 + 256 + 104.
    expect(wire.map((c) => c.slice(0, 4))).toEqual(['8412', '00C0', '00C0']);
    expect(wire.slice(1)).toEqual(['00C0000000', '00C0000068']);
    expect(tap.responses.slice(start).map((r) => [r.length / 2 - 2, r.slice(-4)])).toEqual([
      [256, '6100'],
      [256, '6168'],
      [104, '9000'],
    ]);
    expect(hexOf(await ch.transmit(fromHex('80 42 00 00 00')))).toBe('000000009000');
    // An extended Le takes the whole wrapped answer at once.
    expect(hexOf(await ch.transmit(fromHex('80 12 10 00 00 00 00')))).toBe(hexOf(diagnosticPattern(4096)) + '9000');
    expect(tap.responses[tap.responses.length - 1].length / 2).toBe(4096 + 16 + 8 + 2);
  });

  it('6Cxx is a bare error status word: returned to the caller, who re-sends the plain command', async () => {
    const keys = keysOf(16);
    const { card } = buildCard({ keys });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    const ch = await open(tap, keys, SECURITY_LEVEL.C_MAC_R_MAC);
    expect(hexOf(await ch.transmit(fromHex('80 1C 00 20 00')))).toBe('6C20');
    expect(tap.responses[tap.responses.length - 1]).toBe('6C20');
    expect(hexOf(await ch.transmit(fromHex('80 1C 00 20 20')))).toBe(hexOf(diagnosticPattern(32)) + '9000');
    expect(ch.active).toBe(true);
  });
});
