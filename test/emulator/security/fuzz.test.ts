/**
 * Random, replayed and mutated traffic into a card whose diagnostic applet sits behind an ISD, while
 * a real host session runs alongside: the card never rejects, always answers a status word, its
 * sequence counter equals the number of INITIALIZE UPDATEs it answered, its keys are untouched, and
 * a fresh session always opens. Seeded: HILT_FUZZ_SEED replays a failure.
 */
import { describe, expect, it } from 'vitest';
import { openScp03, AuthError, type Scp03Channel } from '../../../src/reader/scp03.js';
import { SECURITY_LEVEL, decodeSequenceCounter } from '../../../src/crypto/scp03.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { isStatusWord } from '../../../emulator/os/sw.js';
import { ISD_AID, ISD_HEX, LEVELS, SELECT_DIAG, Tap, buildCard, keysOf } from './helpers.js';
import { prng } from '../../helpers/prng.js';

const RUNS = 20_000;
const SEED = Number(process.env.HILT_FUZZ_SEED ?? 0x5c903);


/** Plain commands the host sends through its session. */
const HOST_COMMANDS = ['80 10 00 00', '80 12 00 20 00', '80 12 01 2C 00', '80 18 00 00 03 AA BB CC 00', '80 40 00 00 04', '80 42 00 00 04', '80 1C 00 08 00', '80 32 62 83 01 AA 00', '80 32 6A 82'].map(fromHex);

/** Raw commands the fuzzer sends around the session's back. */
const RAW = [
  SELECT_DIAG,
  `00 A4 04 00 08 ${toHex(ISD_AID)} 00`,
  '00 A4 04 0C 05 A0 00 00 01 51',
  '80 50 00 00 08 0102030405060708 00',
  '80 50 30 00 08 0102030405060708',
  '80 50 31 00 08 0102030405060708 00',
  '80 50 00 00 10 000102030405060708090A0B0C0D0E0F 00',
  '84 82 33 00 10 000102030405060708090A0B0C0D0E0F',
  '84 82 01 00 10 000102030405060708090A0B0C0D0E0F',
  '84 10 00 00 08 0001020304050607',
  '80 10 00 00',
  '80 CA 9F 7F 00',
  '00 C0 00 00 00',
  '00 70 00 00 01',
  '00 70 80 01',
  '01 A4 04 0C 09 F0 68 69 6C 74 44 49 41 47',
  '81 50 00 00 08 0102030405060708 00',
  '94 1A 00 00 0A 61 62 00 01 02 03 04 05 06 07',
].map((x) => fromHex(x));

describe('secure channel fuzz', () => {
  it(`${RUNS} commands: live session, replays, mutations, stray handshakes (seed ${SEED})`, async () => {
    const rand = prng(SEED);
    const pick = (n: number): number => Math.floor(rand() * n);
    const keys = keysOf(16, 77);
    const { card, store } = buildCard({ keys });
    const tap = new Tap(card);
    const keysBefore = ['enc', 'mac', 'dek'].map((n) => toHex(store.get(`key/${ISD_HEX}/${n}`) as Uint8Array));
    let ch: Scp03Channel | null = null;
    let opened = 0;
    const reopen = async (): Promise<void> => {
      await tap.send(SELECT_DIAG);
      ch = await openScp03(tap, { keys, securityLevel: LEVELS[pick(LEVELS.length)], pseudoRandomCardChallenge: { aid: ISD_AID } });
      opened++;
    };
    await reopen();
    for (let run = 0; run < RUNS; run++) {
      const kind = pick(8);
      if (kind <= 2 && ch) {
        try {
          const r = await (ch as Scp03Channel).transmit(HOST_COMMANDS[pick(HOST_COMMANDS.length)]);
          expect(isStatusWord((r[r.length - 2] << 8) | r[r.length - 1])).toBe(true);
        } catch (e) {
          // Only the host's own verdicts: a session it ended itself (never a card fault).
          expect(e).toBeInstanceOf(AuthError);
          ch = null;
        }
        continue;
      }
      if (kind === 3 || !ch) {
        if (pick(4) === 0 || !ch) await reopen();
        continue;
      }
      let bytes: Uint8Array;
      if (kind === 4) {
        // Replay or mutate something that crossed the wire.
        bytes = fromHex(tap.commands[pick(tap.commands.length)]).slice();
        if (pick(2) === 0 && bytes.length > 4) bytes[4 + pick(bytes.length - 4)] ^= 1 << pick(8);
      } else if (kind === 5) {
        bytes = Uint8Array.from({ length: 4 + pick(40) }, () => pick(256));
        if (bytes[0] === 0xff) bytes[0] = 0x84;
      } else {
        bytes = RAW[pick(RAW.length)].slice();
        if (pick(3) === 0) bytes[pick(bytes.length)] ^= 1 << pick(8);
      }
      const answer = fromHex(await tap.send(toHex(bytes)));
      expect(answer.length).toBeGreaterThanOrEqual(2);
      expect(isStatusWord((answer[answer.length - 2] << 8) | answer[answer.length - 1]), toHex(bytes)).toBe(true);
    }

    // Every INITIALIZE UPDATE the card accepted used one counter value, and nothing else did. Accepted:
    // 32 bytes + 9000, or (Le too short or absent) the first part of them + 61xx.
    const isIu = (c: Uint8Array): boolean => c[1] === 0x50 && (c[0] & 0xdc) === 0x80;
    const accepted = (r: string): boolean => (r.length === (32 + 2) * 2 && r.endsWith('9000')) || (r.length < (32 + 2) * 2 && r.slice(-4, -2) === '61');
    const answeredIu = tap.commands.filter((c, i) => isIu(fromHex(c)) && accepted(tap.responses[i])).length;
    expect(decodeSequenceCounter(store.get(`app/${ISD_HEX}/sequence-counter`) as Uint8Array)).toBe(answeredIu);
    expect(answeredIu).toBeGreaterThanOrEqual(opened);
    expect(['enc', 'mac', 'dek'].map((n) => toHex(store.get(`key/${ISD_HEX}/${n}`) as Uint8Array))).toEqual(keysBefore);
    await tap.send('00 70 80 01');
    await tap.send(SELECT_DIAG);
    const last = await openScp03(tap, { keys, securityLevel: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC });
    expect(toHex(await last.transmit(fromHex('80 12 00 04 00')))).toBe('000102039000');
  });
});
