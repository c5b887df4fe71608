/**
 * The host wrapper (src/reader/scp03.ts) and the card session (emulator/security/scp03-card.ts)
 * talking to each other in-process, through a tiny card: INITIALIZE UPDATE and EXTERNAL
 * AUTHENTICATE go to the card session, everything else is unwrapped, answered by an echo applet,
 * and wrapped again.
 */
import { describe, expect, it } from 'vitest';
import { openScp03, AuthError, SECURITY_LEVEL, type Scp03Options, type StaticKeys, type SecurityLevel } from '../../src/reader/scp03.js';
import type { CardChannel } from '../../src/reader/channel.js';
import { Scp03CardSession, type Scp03CardConfig } from '../../emulator/security/scp03-card.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { Scp03Session, hasSecureMessaging, plainCla, secureMessagingCla, deriveSessionKeys, I_PARAMETER_BIT } from '../../src/crypto/scp03.js';
import { decodeCla } from '../../src/apdu/cla.js';
import { BadInputError, ChannelClosedError, HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

// ------------------------------------------------------------------------------------------------
// Fixtures

const AID = fromHex('a000000151000000');
const DIV_DATA = fromHex('00112233445566778899');
const KVN = 0x30;

function keysOf(length: 16 | 24 | 32, seed = 0): StaticKeys {
  const k = (off: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (seed + off + i * 13) & 0xff);
  return { enc: k(0x10), mac: k(0x40), dek: k(0x70), kvn: KVN };
}

const INS_ERROR = 0xee; // the applet answers 6A82, no data
const INS_WARNING = 0xe6; // the applet answers 010203 with 6310

/** Echo applet: reverses the command data back (or a counting pattern when there is none), up to Ne. */
function echoApplet(cmd: CommandApdu): ResponseApdu {
  if (cmd.ins === INS_ERROR) return ResponseApdu.status(0x6a82);
  if (cmd.ins === INS_WARNING) return new ResponseApdu(Uint8Array.of(1, 2, 3), 0x6310);
  if (cmd.ne === 0) return ResponseApdu.status(0x9000);
  const body = cmd.data.length > 0 ? cmd.data.slice().reverse() : Uint8Array.from({ length: 40 }, (_, i) => i);
  return new ResponseApdu(body.slice(0, cmd.ne), 0x9000);
}

/** A card in a reader: routes to the SCP03 session and the echo applet, logs the wire, can tamper. */
class LoopbackCard implements CardChannel {
  readonly scp: Scp03CardSession;
  /** Every C-APDU that reached the card, as hex. */
  readonly wire: string[] = [];
  /** Every command the applet received, after unwrapping. */
  readonly applet: CommandApdu[] = [];
  /** Every R-APDU the card sent, as hex. */
  readonly answers: string[] = [];
  tamperCommand: ((bytes: Uint8Array) => Uint8Array) | undefined;
  tamperResponse: ((bytes: Uint8Array) => Uint8Array) | undefined;
  resets = 0;
  counter = 0;

  constructor(config: Partial<Scp03CardConfig> & { keys: StaticKeys }) {
    this.scp = new Scp03CardSession({
      i: 0x70,
      keyDiversificationData: DIV_DATA,
      aid: AID,
      sequenceCounter: { get: () => this.counter, set: (n) => (this.counter = n) },
      ...config,
    });
  }

  /** What the card answers to raw bytes (also used to replay captured commands). */
  process(bytes: Uint8Array): Uint8Array {
    this.wire.push(toHex(bytes));
    const cmd = CommandApdu.decode(bytes);
    let resp: ResponseApdu;
    if ((cmd.cla & 0x80) !== 0 && cmd.ins === 0x50) resp = this.scp.initializeUpdate(cmd);
    else if ((cmd.cla & 0x80) !== 0 && cmd.ins === 0x82) resp = this.scp.externalAuthenticate(cmd);
    else {
      const plain = this.scp.unwrapCommand(cmd);
      if (plain instanceof ResponseApdu) resp = plain;
      else {
        this.applet.push(plain);
        resp = this.scp.wrapResponse(echoApplet(plain));
      }
    }
    const out = resp.encode();
    this.answers.push(toHex(out));
    return out;
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    await Promise.resolve();
    const c = this.tamperCommand;
    this.tamperCommand = undefined;
    const out = this.process(c ? c(command) : command);
    const r = this.tamperResponse;
    this.tamperResponse = undefined;
    return r ? r(out) : out;
  }
  async reset(): Promise<Uint8Array> {
    this.resets++;
    this.scp.reset();
    return fromHex('3b00');
  }
  async close(): Promise<void> {}
}

const flipLastByte = (bytes: Uint8Array): Uint8Array => {
  const b = bytes.slice();
  b[b.length - 1] ^= 0x01;
  return b;
};

// ------------------------------------------------------------------------------------------------
// The exchanges each session runs: every ISO 7816-4 case, empty and long data.

const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

const EXCHANGES: readonly { name: string; cmd: CommandApdu }[] = [
  { name: 'case 1', cmd: new CommandApdu({ cla: 0x80, ins: 0x10, p1: 1, p2: 2 }) },
  { name: 'case 2, Le 00', cmd: new CommandApdu({ cla: 0x80, ins: 0x12, p1: 0, p2: 0, ne: 256 }) },
  { name: 'case 2, Le 05', cmd: new CommandApdu({ cla: 0x00, ins: 0xca, p1: 0x9f, p2: 0x7f, ne: 5 }) },
  { name: 'case 3, 1 byte', cmd: new CommandApdu({ cla: 0x80, ins: 0x14, p1: 0, p2: 0, data: pattern(1, 1) }) },
  { name: 'case 3, 16 bytes (one whole block)', cmd: new CommandApdu({ cla: 0x80, ins: 0x14, p1: 0, p2: 0, data: pattern(16, 2) }) },
  { name: 'case 3, 200 bytes', cmd: new CommandApdu({ cla: 0x80, ins: 0x16, p1: 0, p2: 0, data: pattern(200, 3) }) },
  { name: 'case 4, 200 bytes, Le 00', cmd: new CommandApdu({ cla: 0x80, ins: 0x18, p1: 0, p2: 0, data: pattern(200, 4), ne: 256 }) },
  { name: 'case 4, 3 bytes, Le 02', cmd: new CommandApdu({ cla: 0x00, ins: 0x18, p1: 0, p2: 0, data: pattern(3, 5), ne: 2 }) },
  { name: 'case 3, 250 bytes (wrapped Lc goes extended)', cmd: new CommandApdu({ cla: 0x80, ins: 0x1a, p1: 0, p2: 0, data: pattern(250, 6) }) },
];

const LEVELS: readonly SecurityLevel[] = [
  SECURITY_LEVEL.C_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC,
  SECURITY_LEVEL.C_MAC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC,
];
const KEY_LENGTHS = [16, 24, 32] as const;

const hostOpts = (keys: StaticKeys, securityLevel: SecurityLevel, extra: Partial<Scp03Options> = {}): Scp03Options => ({ keys, securityLevel, ...extra });

const sameCommand = (a: CommandApdu, b: CommandApdu): boolean => toHex(a.encode()) === toHex(b.encode());

// ------------------------------------------------------------------------------------------------

describe('SCP03 host ↔ card, every level and key size', () => {
  for (const keyLength of KEY_LENGTHS) {
    for (const level of LEVELS) {
      it(`AES-${keyLength * 8}, level ${level.toString(16).padStart(2, '0')}`, async () => {
        const keys = keysOf(keyLength);
        const card = new LoopbackCard({ keys });
        const ch = await openScp03(card, hostOpts(keys, level, { pseudoRandomCardChallenge: { aid: AID } }));
        expect(card.scp.state).toBe('authenticated');
        expect(card.scp.securityLevel).toBe(level);
        expect(ch.info).toMatchObject({ kvn: KVN, iParameter: 0x70, sequenceCounter: 1, securityLevel: level, channel: 0 });
        expect(toHex(ch.info.keyDiversificationData)).toBe(toHex(DIV_DATA));
        const cDec = (level & 0x02) !== 0;
        const rEnc = (level & 0x20) !== 0;

        for (const { name, cmd } of EXCHANGES) {
          const before = card.wire.length;
          const result = ResponseApdu.decode(await ch.transmit(cmd.encode()));
          const expected = echoApplet(cmd);
          expect(toHex(result.encode()), name).toBe(toHex(expected.encode()));
          // The applet saw exactly the plain command.
          expect(sameCommand(card.applet[card.applet.length - 1], cmd), name).toBe(true);
          // On the wire: one command, SM bit set, C-MAC appended, Le kept, data hidden under C-DEC.
          expect(card.wire.length).toBe(before + 1);
          const onWire = CommandApdu.decode(fromHex(card.wire[card.wire.length - 1]));
          expect(hasSecureMessaging(onWire.cla)).toBe(true);
          expect(onWire.ne).toBe(cmd.ne);
          const pad = cDec && cmd.data.length > 0 ? 16 - (cmd.data.length % 16) : 0;
          expect(onWire.data.length, name).toBe(cmd.data.length + pad + 8);
          if (cmd.data.length >= 8) {
            const head = toHex(onWire.data.subarray(0, cmd.data.length));
            if (cDec) expect(head).not.toBe(toHex(cmd.data));
            else expect(head).toBe(toHex(cmd.data));
          }
          const answer = ResponseApdu.decode(fromHex(card.answers[card.answers.length - 1]));
          if (rEnc && expected.data.length >= 8) expect(toHex(answer.data)).not.toContain(toHex(expected.data));
        }

        // Error SW: travels bare, the session survives; warning SW: protected like 9000.
        expect(toHex(await ch.transmit(fromHex('80ee0000')))).toBe('6a82');
        expect(card.answers[card.answers.length - 1]).toBe('6a82');
        expect(toHex(await ch.transmit(fromHex('80e6000000')))).toBe('0102036310');
        expect(ch.active).toBe(true);
        expect(card.scp.state).toBe('authenticated');
        await ch.close();
      });
    }
  }

  it('S16 mode (i=71), AES-256, level 33: 16-byte challenges, cryptograms and MACs', async () => {
    const keys = keysOf(32, 9);
    const card = new LoopbackCard({ keys, i: 0x71 });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, { s16: true, pseudoRandomCardChallenge: { aid: AID } }));
    expect(ch.info.i.s16).toBe(true);
    expect(card.wire[0].slice(8, 10)).toBe('10'); // Lc of INITIALIZE UPDATE: a 16-byte host challenge
    expect(CommandApdu.decode(fromHex(card.wire[1])).data.length).toBe(32); // host cryptogram 16 + C-MAC 16
    for (const { name, cmd } of EXCHANGES) {
      expect(toHex(await ch.transmit(cmd.encode())), name).toBe(toHex(echoApplet(cmd).encode()));
    }
    const onWire = CommandApdu.decode(fromHex(card.wire[card.wire.length - 1]));
    expect(onWire.data.length).toBe(256 + 16); // 250 bytes padded to 256, then a 16-byte C-MAC
    await ch.close();
  });

  it('level 00: authentication only, commands travel as they are', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.NONE));
    const cmd = new CommandApdu({ cla: 0x80, ins: 0x18, p1: 0, p2: 0, data: pattern(20, 1), ne: 256 });
    expect(toHex(await ch.transmit(cmd.encode()))).toBe(toHex(echoApplet(cmd).encode()));
    expect(card.wire[card.wire.length - 1]).toBe(toHex(cmd.encode()));
    await ch.close();
  });

  it('random card challenges (i=60): no sequence counter, the stored counter is left alone', async () => {
    const keys = keysOf(24);
    const card = new LoopbackCard({ keys, i: 0x60 });
    card.counter = 41;
    const ch1 = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC));
    expect(ch1.info.sequenceCounter).toBeUndefined();
    expect(ch1.info.i.pseudoRandomChallenge).toBe(false);
    expect(toHex(await ch1.transmit(fromHex('8012000000')))).toBe(toHex(echoApplet(CommandApdu.decode(fromHex('8012000000'))).encode()));
    const ch2 = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    expect(card.counter).toBe(41);
    // Two INITIALIZE UPDATE responses (29 bytes each, no counter) with different card challenges.
    const iu = card.answers.filter((a) => a.length === (29 + 2) * 2);
    expect(iu.length).toBe(2);
    expect(iu[0].slice(26, 42)).not.toBe(iu[1].slice(26, 42));
    await ch2.close();
  });

  it('pseudo-random mode: every INITIALIZE UPDATE moves the sequence counter on, and it is persisted', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    card.counter = 0x0000fe;
    const a = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC, { pseudoRandomCardChallenge: { aid: AID } }));
    expect(a.info.sequenceCounter).toBe(0xff);
    expect(card.counter).toBe(0xff);
    const b = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC, { pseudoRandomCardChallenge: { aid: AID } }));
    expect(b.info.sequenceCounter).toBe(0x100);
    expect(card.counter).toBe(0x100);
    // The host recomputes the challenge from the AID: another AID does not match.
    const err = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC, { pseudoRandomCardChallenge: { aid: fromHex('a000000151000001') } })).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('card-challenge');
  });

  it('an exhausted sequence counter is refused by the card', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    card.counter = 0xffffff;
    const err = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).sw).toBe(0x6985);
    expect(card.counter).toBe(0xffffff);
  });

  it('serialises concurrent transmits, so the chaining value stays in step', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC));
    const cmds = EXCHANGES.map((e) => e.cmd);
    const results = await Promise.all(cmds.map((c) => ch.transmit(c.encode())));
    results.forEach((r, k) => expect(toHex(r)).toBe(toHex(echoApplet(cmds[k]).encode())));
  });

  it('runs on a further logical channel (5): CLA C1 travels as E1', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC, { channel: 5 }));
    expect(card.wire[0].slice(0, 2)).toBe('c1'); // INITIALIZE UPDATE
    expect(card.wire[1].slice(0, 2)).toBe('e1'); // EXTERNAL AUTHENTICATE
    expect(toHex(await ch.transmit(fromHex('c1140000020102')))).toBe('9000');
    expect(card.wire[2].slice(0, 2)).toBe('e1');
    expect(card.applet[0].cla).toBe(0xc1);
    await expect(ch.transmit(fromHex('80140000020102'))).rejects.toThrow(BadInputError);
    expect(card.wire.length).toBe(3);
  });
});

describe('SCP03 negative paths', () => {
  it('wrong keys: AuthError on the card cryptogram, and nothing after INITIALIZE UPDATE', async () => {
    const card = new LoopbackCard({ keys: keysOf(16) });
    const err = await openScp03(card, hostOpts(keysOf(16, 1), SECURITY_LEVEL.C_MAC)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).code).toBe('AUTH_FAILED');
    expect((err as AuthError).reason).toBe('card-cryptogram');
    expect(card.wire.length).toBe(1);
    expect(card.scp.state).toBe('initialized');
  });

  it('a flipped bit in a command MAC: the card answers 6982 and drops the session; the next command fails too', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_R_MAC));
    expect(toHex(await ch.transmit(fromHex('80140000020102')))).toBe('9000');
    card.tamperCommand = flipLastByte; // no Le: the last byte is the MAC's
    expect(toHex(await ch.transmit(fromHex('80140000020102')))).toBe('6982');
    expect(card.scp.state).toBe('idle');
    expect(card.applet.length).toBe(1);
    expect(toHex(await ch.transmit(fromHex('80140000020102')))).toBe('6982');
    expect(card.applet.length).toBe(1);
  });

  it('a flipped bit in the data of an encrypted command: 6982, session dropped', async () => {
    const keys = keysOf(32);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC));
    card.tamperCommand = (b) => {
      const t = b.slice();
      t[6] ^= 0x80;
      return t;
    };
    expect(toHex(await ch.transmit(new CommandApdu({ cla: 0x80, ins: 0x16, p1: 0, p2: 0, data: pattern(40, 1) }).encode()))).toBe('6982');
    expect(card.scp.state).toBe('idle');
  });

  it('a replayed wrapped command: 6982, and the session is dropped', async () => {
    const keys = keysOf(24);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC));
    expect(toHex(await ch.transmit(fromHex('8014000003010203')))).toBe('9000');
    const captured = fromHex(card.wire[card.wire.length - 1]);
    expect(toHex(card.process(captured))).toBe('6982');
    expect(card.scp.state).toBe('idle');
    expect(card.applet.length).toBe(1);
  });

  it('a replayed EXTERNAL AUTHENTICATE after a new INITIALIZE UPDATE is refused', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys, i: 0x00 });
    await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    const ea = fromHex(card.wire[1]);
    const iu = fromHex(card.wire[0]);
    expect(ResponseApdu.decode(card.process(iu)).sw).toBe(0x9000); // a new, random card challenge
    expect(toHex(card.process(ea))).toBe('6982');
    expect(card.scp.state).toBe('idle');
  });

  it('a response MAC that does not verify: AuthError on the host, the session ends, nothing more is sent', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_R_MAC));
    card.tamperResponse = (b) => {
      const t = b.slice();
      t[t.length - 3] ^= 0x01; // last byte of the R-MAC
      return t;
    };
    const err = await ch.transmit(fromHex('8012000000')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).reason).toBe('response-mac');
    expect(ch.active).toBe(false);
    const sent = card.wire.length;
    const after = await ch.transmit(fromHex('8012000000')).catch((e: unknown) => e);
    expect((after as AuthError).reason).toBe('session-ended');
    expect((after as AuthError).message).toMatch(/authenticate again/);
    expect(card.wire.length).toBe(sent);
  });

  it('under R-MAC, an error SW that comes with data is refused (it cannot be authenticated)', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_R_MAC));
    card.tamperResponse = () => fromHex('01026a82');
    const err = await ch.transmit(fromHex('8012000000')).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('unprotected-response');
    expect((err as AuthError).sw).toBe(0x6a82);
    expect(ch.active).toBe(false);
  });

  it('under R-MAC, a 9000 without R-MAC is refused', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_R_MAC));
    card.tamperResponse = () => fromHex('9000');
    await expect(ch.transmit(fromHex('80100000'))).rejects.toMatchObject({ reason: 'response-mac' });
  });

  it('a tampered EXTERNAL AUTHENTICATE: the card refuses it (6982) and the host reports card-refused', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    let n = 0;
    const wrapped: CardChannel = {
      transmit: (c) => {
        if (n++ === 1) card.tamperCommand = (b) => Uint8Array.of(...b.subarray(0, 5), b[5] ^ 1, ...b.subarray(6));
        return card.transmit(c);
      },
      reset: () => card.reset(),
      close: () => card.close(),
    };
    const err = await openScp03(wrapped, hostOpts(keys, SECURITY_LEVEL.C_MAC)).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('card-refused');
    expect((err as AuthError).sw).toBe(0x6982);
    expect(card.scp.state).toBe('idle');
  });

  it('a level the card does not support (R-MAC with i=00): NOT_SUPPORTED, nothing after INITIALIZE UPDATE', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys, i: 0x00 });
    const err = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC_R_MAC)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HiltError);
    expect((err as HiltError).code).toBe('NOT_SUPPORTED');
    expect(card.wire.length).toBe(1);
  });

  it('an unexpected key version: AuthError key-version, nothing after INITIALIZE UPDATE', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const err = await openScp03(card, hostOpts({ ...keys, kvn: 0 }, SECURITY_LEVEL.C_MAC, { expectedKvn: 0x31 })).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('key-version');
    expect(card.wire.length).toBe(1);
  });

  it('an unknown key version: the card answers 6A88, the host reports card-refused', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const err = await openScp03(card, hostOpts({ ...keys, kvn: 0x31 }, SECURITY_LEVEL.C_MAC)).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('card-refused');
    expect((err as AuthError).sw).toBe(0x6a88);
  });

  it('transmit after close rejects with ChannelClosedError and sends nothing', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    await ch.close();
    await ch.close(); // idempotent
    expect(ch.active).toBe(false);
    await expect(ch.transmit(fromHex('80100000'))).rejects.toThrow(ChannelClosedError);
    expect(card.wire.length).toBe(2);
  });

  it('reset ends the session: the card is reset, and transmit asks to authenticate again', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    expect(toHex(await ch.reset())).toBe('3b00');
    expect(card.resets).toBe(1);
    expect(ch.active).toBe(false);
    const err = await ch.transmit(fromHex('80100000')).catch((e: unknown) => e);
    expect((err as AuthError).reason).toBe('session-ended');
    expect((err as AuthError).message).toMatch(/reset.*authenticate again/);
    expect(card.wire.length).toBe(2);
  });

  it('refuses commands that already carry secure messaging, without sending them', async () => {
    const keys = keysOf(16);
    const card = new LoopbackCard({ keys });
    const ch = await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    await expect(ch.transmit(fromHex('84100000'))).rejects.toThrow(/already indicates secure messaging/);
    await expect(ch.transmit(fromHex('01'))).rejects.toMatchObject({ code: 'APDU_MALFORMED' });
    expect(card.wire.length).toBe(2);
  });

  it('refuses bad options before sending anything', async () => {
    const card = new LoopbackCard({ keys: keysOf(16) });
    await expect(openScp03(card, hostOpts({ ...keysOf(16), enc: new Uint8Array(15) }, SECURITY_LEVEL.C_MAC))).rejects.toThrow(/K-ENC: expected 16, 24 or 32 bytes, got 15/);
    await expect(openScp03(card, hostOpts(keysOf(16), 0x02 as SecurityLevel))).rejects.toThrow(/security level: expected .* got 02/);
    await expect(openScp03(card, hostOpts(keysOf(16), SECURITY_LEVEL.C_MAC, { hostChallenge: new Uint8Array(7) }))).rejects.toThrow(/host challenge \(S8\): expected 8 bytes, got 7/);
    expect(card.wire.length).toBe(0);
  });
});

describe('SCP03 card session: state machine', () => {
  const keys = keysOf(16);
  const iuCmd = (p1 = KVN, len = 8): CommandApdu => new CommandApdu({ cla: 0x80, ins: 0x50, p1, p2: 0, data: pattern(len, 1), ne: 256 });

  it('refuses EXTERNAL AUTHENTICATE without INITIALIZE UPDATE (6985)', () => {
    const card = new Scp03CardSession({ keys, i: 0x00, keyDiversificationData: DIV_DATA, aid: AID });
    expect(card.externalAuthenticate(CommandApdu.decode(fromHex('848201001000112233445566778899aabbccddeeff'))).sw).toBe(0x6985);
    expect(card.state).toBe('idle');
  });

  it('answers INITIALIZE UPDATE errors with status words', () => {
    const card = new Scp03CardSession({ keys, i: 0x00, keyDiversificationData: DIV_DATA, aid: AID });
    expect(card.initializeUpdate(iuCmd(0x31)).sw).toBe(0x6a88);
    expect(card.initializeUpdate(iuCmd(KVN, 16)).sw).toBe(0x6700);
    expect(card.initializeUpdate(new CommandApdu({ cla: 0x00, ins: 0x50, p1: 0, p2: 0, data: pattern(8, 1) })).sw).toBe(0x6e00);
    expect(card.state).toBe('idle');
    expect(card.initializeUpdate(iuCmd(0)).sw).toBe(0x9000); // 00: any key version
    expect(card.state).toBe('initialized');
  });

  it('a protected command outside a session gets 6982; a plain one passes; anything but EXTERNAL AUTHENTICATE aborts a handshake', () => {
    const card = new Scp03CardSession({ keys, i: 0x00, keyDiversificationData: DIV_DATA, aid: AID });
    expect((card.unwrapCommand(CommandApdu.decode(fromHex('8414000000'))) as ResponseApdu).sw).toBe(0x6982);
    const plain = CommandApdu.decode(fromHex('8014000000'));
    expect(card.unwrapCommand(plain)).toBe(plain);
    card.initializeUpdate(iuCmd());
    expect(card.state).toBe('initialized');
    expect(card.unwrapCommand(plain)).toBe(plain);
    expect(card.state).toBe('idle');
  });

  it('an unprotected command inside a session gets 6982 and drops it', async () => {
    const card = new LoopbackCard({ keys });
    await openScp03(card, hostOpts(keys, SECURITY_LEVEL.C_MAC));
    expect(toHex(card.process(fromHex('80140000020102')))).toBe('6982');
    expect(card.scp.state).toBe('idle');
  });

  it('needs a sequence counter store in pseudo-random mode', () => {
    expect(() => new Scp03CardSession({ keys, i: 0x10, keyDiversificationData: DIV_DATA, aid: AID })).toThrow(/sequenceCounter/);
    expect(() => new Scp03CardSession({ keys, i: 0x00, keyDiversificationData: new Uint8Array(9), aid: AID })).toThrow(/got 9/);
  });
});

describe('SCP03 primitives', () => {
  it('secure-messaging CLA agrees with decodeCla for every class byte', () => {
    for (let cla = 0; cla < 0xff; cla++) {
      const info = decodeCla(cla);
      if (info.channel < 0) continue;
      expect(hasSecureMessaging(cla), `CLA ${cla.toString(16)}`).toBe(info.secureMessaging !== 'none');
      if ((cla | 0x20) === 0xff) {
        expect(() => secureMessagingCla(cla)).toThrow(/would be FF/);
        continue;
      }
      const sm = secureMessagingCla(cla);
      const smInfo = decodeCla(sm);
      expect(smInfo.channel).toBe(info.channel);
      expect(smInfo.chaining).toBe(info.chaining);
      expect(smInfo.secureMessaging).not.toBe('none');
      expect(plainCla(sm)).toBe(plainCla(cla));
      expect(decodeCla(plainCla(cla)).secureMessaging).toBe('none');
    }
    expect(secureMessagingCla(0x80)).toBe(0x84);
    expect(secureMessagingCla(0x00)).toBe(0x04);
    expect(secureMessagingCla(0xc0)).toBe(0xe0);
  });

  it('a closed session zeroizes its keys and refuses to work', () => {
    const keys = deriveSessionKeys(keysOf(16), pattern(8, 1), pattern(8, 2));
    const s = new Scp03Session({ keys, level: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC, macLength: 8, chainingValue: new Uint8Array(16) });
    expect(keys.sEnc.some((b) => b !== 0)).toBe(true);
    s.close();
    for (const k of [keys.sEnc, keys.sMac, keys.sRmac]) expect(k.every((b) => b === 0)).toBe(true);
    expect(() => s.wrapCommand({ cla: 0x80, ins: 0, p1: 0, p2: 0, data: new Uint8Array(0), extended: false })).toThrow(AuthError);
  });

  it('i parameter bits are the ones Amendment D defines', () => {
    expect(I_PARAMETER_BIT).toEqual({ s16: 0x01, pseudoRandomChallenge: 0x10, rMac: 0x20, rEnc: 0x40 });
  });
});
