/**
 * Plays every SCP03 known-answer session in test/vectors/scp03/*.json (see the README there) from
 * both ends:
 * - host: openScp03 over a fake channel that checks each command byte for byte and answers with
 *   the vector's responses, then transmit() for each wrapCommand / unwrapResponse step;
 * - card: Scp03CardSession fed the vector's host commands must produce the vector's INITIALIZE
 *   UPDATE response, accept its EXTERNAL AUTHENTICATE, unwrap each wrapped command to the plain
 *   one and wrap each plain response to the vector's protected response.
 * Adding a file adds a case.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openScp03, AuthError, type StaticKeys, type SecurityLevel } from '../../src/reader/scp03.js';
import type { CardChannel } from '../../src/reader/channel.js';
import { Scp03CardSession } from '../../emulator/security/scp03-card.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { decodeSequenceCounter, pseudoRandomCardChallenge, I_PARAMETER_BIT } from '../../src/crypto/scp03.js';
import { bytesEqual, fromHex, toHex } from '../../src/util/bytes.js';

// ------------------------------------------------------------------------------------------------
// The vector format (README.md beside the files).

type VectorStep =
  | { op: 'initializeUpdate'; command: string; response: string }
  | { op: 'externalAuthenticate'; command: string }
  | { op: 'wrapCommand'; plain: string; wrapped: string }
  | { op: 'unwrapResponse'; sw: string; wrapped: string; plain: string };

interface Scp03Vector {
  name: string;
  keys: { kvn: number; enc: string; mac: string; dek: string };
  hostChallenge: string;
  securityLevel: number;
  steps: VectorStep[];
}

const VECTOR_DIR = join(import.meta.dirname, '..', 'vectors', 'scp03');
const FILES = readdirSync(VECTOR_DIR).filter((f) => f.endsWith('.json')).sort();

function load(file: string): Scp03Vector {
  const v = JSON.parse(readFileSync(join(VECTOR_DIR, file), 'utf8')) as Scp03Vector;
  const [iu, ea] = v.steps;
  if (iu?.op !== 'initializeUpdate' || ea?.op !== 'externalAuthenticate') throw new Error(`${file}: a session starts with initializeUpdate, externalAuthenticate`);
  return v;
}

const staticKeys = (v: Scp03Vector): StaticKeys => ({ kvn: v.keys.kvn, enc: fromHex(v.keys.enc), mac: fromHex(v.keys.mac), dek: fromHex(v.keys.dek) });
const norm = (hex: string): string => hex.toLowerCase();

/** Security-domain AIDs tried for pseudo-random challenges: the eUICC ISD-R (SGP.22), a GP ISD. */
const KNOWN_SD_AIDS = ['a0000005591010ffffffff8900000100', 'a000000151000000'];

/** Layout facts of the INITIALIZE UPDATE response, S8 mode (the README says the vectors are S8). */
const IU = { iOffset: 12, challenge: [13, 21], cryptogram: [21, 29], sequence: [29, 32] } as const;

/** The status a fake card answers to a wrapped command that the vector gives no response for. */
const BARE_ERROR_SW = '6a88';

/** The SD AID whose pseudo-random challenge reproduces the vector's, if any. */
function findAid(v: Scp03Vector): Uint8Array | undefined {
  const r = fromHex((v.steps[0] as { response: string }).response);
  if ((r[IU.iOffset] & I_PARAMETER_BIT.pseudoRandomChallenge) === 0) return undefined;
  const seq = r.subarray(...IU.sequence);
  return KNOWN_SD_AIDS.map(fromHex).find((aid) => bytesEqual(pseudoRandomCardChallenge(fromHex(v.keys.enc), seq, aid), r.subarray(...IU.challenge)));
}

interface Exchange {
  expect: string;
  respond: string;
}

/** A card that plays a fixed script, checks each command byte for byte, and records what it got. */
class VectorChannel implements CardChannel {
  readonly sent: string[] = [];
  #script: Exchange[];
  constructor(script: Exchange[]) {
    this.#script = [...script];
  }
  get remaining(): number {
    return this.#script.length;
  }
  async transmit(command: Uint8Array): Promise<Uint8Array> {
    await Promise.resolve();
    const got = toHex(command);
    this.sent.push(got);
    const next = this.#script.shift();
    if (next === undefined) throw new Error(`unexpected command ${got}: the script is over`);
    if (got !== norm(next.expect)) throw new Error(`command #${this.sent.length}: expected ${norm(next.expect)}, got ${got}`);
    return fromHex(next.respond);
  }
  async reset(): Promise<Uint8Array> {
    return fromHex('3b00');
  }
  async close(): Promise<void> {}
}

/** The host's view of the vector: exchanges on the wire, then what transmit must return per step. */
function hostScript(v: Scp03Vector): { wire: Exchange[]; plain: { command: string; result: string }[] } {
  const wire: Exchange[] = [];
  const plain: { command: string; result: string }[] = [];
  const steps = v.steps;
  for (let k = 0; k < steps.length; k++) {
    const s = steps[k];
    if (s.op === 'initializeUpdate') wire.push({ expect: s.command, respond: s.response + '9000' });
    else if (s.op === 'externalAuthenticate') wire.push({ expect: s.command, respond: '9000' });
    else if (s.op === 'wrapCommand') {
      const next = steps[k + 1];
      if (next?.op === 'unwrapResponse') {
        wire.push({ expect: s.wrapped, respond: next.wrapped + next.sw });
        plain.push({ command: s.plain, result: norm(next.plain + next.sw) });
        k++;
      } else {
        wire.push({ expect: s.wrapped, respond: BARE_ERROR_SW });
        plain.push({ command: s.plain, result: BARE_ERROR_SW });
      }
    } else throw new Error(`unwrapResponse must follow a wrapCommand (step ${k})`);
  }
  return { wire, plain };
}

describe('SCP03 known-answer vectors', () => {
  it('has vector files to play', () => {
    expect(FILES.length).toBeGreaterThanOrEqual(3);
  });

  describe.each(FILES)('%s', (file) => {
    const v = load(file);
    const aid = findAid(v);

    it('host: INITIALIZE UPDATE, card cryptogram, EXTERNAL AUTHENTICATE, every wrap and unwrap', async () => {
      const { wire, plain } = hostScript(v);
      const card = new VectorChannel(wire);
      const ch = await openScp03(card, {
        keys: staticKeys(v),
        securityLevel: v.securityLevel as SecurityLevel,
        hostChallenge: fromHex(v.hostChallenge),
        pseudoRandomCardChallenge: aid === undefined ? undefined : { aid },
      });
      expect(card.sent).toEqual([norm((v.steps[0] as { command: string }).command), norm((v.steps[1] as { command: string }).command)]);
      const r = fromHex((v.steps[0] as { response: string }).response);
      expect(ch.info.kvn).toBe(v.keys.kvn);
      expect(ch.info.iParameter).toBe(r[IU.iOffset]);
      expect(ch.info.securityLevel).toBe(v.securityLevel);
      expect(toHex(ch.info.keyDiversificationData)).toBe(toHex(r.subarray(0, 10)));
      if (ch.info.i.pseudoRandomChallenge) expect(ch.info.sequenceCounter).toBe(decodeSequenceCounter(r.subarray(...IU.sequence)));
      for (const p of plain) {
        expect(toHex(await ch.transmit(fromHex(p.command)))).toBe(p.result);
      }
      expect(card.remaining).toBe(0);
      await ch.close();
    });

    it('host: a card cryptogram off by one bit is refused and nothing more is sent', async () => {
      const iu = v.steps[0] as { command: string; response: string };
      const bad = fromHex(iu.response);
      bad[IU.cryptogram[0]] ^= 0x01;
      const card = new VectorChannel([{ expect: iu.command, respond: toHex(bad) + '9000' }]);
      const err = await openScp03(card, { keys: staticKeys(v), securityLevel: v.securityLevel as SecurityLevel, hostChallenge: fromHex(v.hostChallenge) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuthError);
      expect((err as AuthError).code).toBe('AUTH_FAILED');
      expect((err as AuthError).reason).toBe('card-cryptogram');
      expect(card.sent.length).toBe(1);
    });

    it('card: reproduces the responses and recovers the plain commands', () => {
      const iu = v.steps[0] as { command: string; response: string };
      const r = fromHex(iu.response);
      let i = r[IU.iOffset];
      const seq = (i & I_PARAMETER_BIT.pseudoRandomChallenge) !== 0 ? decodeSequenceCounter(r.subarray(...IU.sequence)) : undefined;
      let counter = seq === undefined ? 0 : seq - 1;
      // A vector whose SD AID we do not know is played in random mode with its challenge injected.
      if (aid === undefined) i &= ~I_PARAMETER_BIT.pseudoRandomChallenge;
      const card = new Scp03CardSession({
        keys: staticKeys(v),
        i,
        keyDiversificationData: r.slice(0, 10),
        aid: aid ?? fromHex(KNOWN_SD_AIDS[0]),
        sequenceCounter: { get: () => counter, set: (n) => (counter = n) },
        random: () => r.slice(...IU.challenge),
      });
      const iuResp = card.initializeUpdate(CommandApdu.decode(fromHex(iu.command)));
      expect(iuResp.swHex).toBe('9000');
      const expectedIu = aid === undefined && seq !== undefined ? iu.response.slice(0, IU.sequence[0] * 2) : iu.response;
      expect(toHex(iuResp.data)).toBe(norm(expectedIu));
      if (aid !== undefined) expect(counter).toBe(seq);
      expect(card.state).toBe('initialized');

      const ea = card.externalAuthenticate(CommandApdu.decode(fromHex((v.steps[1] as { command: string }).command)));
      expect(ea.swHex).toBe('9000');
      expect(card.state).toBe('authenticated');
      expect(card.securityLevel).toBe(v.securityLevel);

      const steps = v.steps;
      for (let k = 2; k < steps.length; k++) {
        const s = steps[k];
        if (s.op !== 'wrapCommand') throw new Error(`step ${k}: ${s.op} without a wrapCommand before it`);
        const out = card.unwrapCommand(CommandApdu.decode(fromHex(s.wrapped)));
        expect(out).toBeInstanceOf(CommandApdu);
        expect(toHex((out as CommandApdu).encode())).toBe(toHex(CommandApdu.decode(fromHex(s.plain)).encode()));
        const next = steps[k + 1];
        if (next?.op === 'unwrapResponse') {
          const wrapped = card.wrapResponse(new ResponseApdu(fromHex(next.plain), parseInt(next.sw, 16)));
          expect(toHex(wrapped.encode())).toBe(norm(next.wrapped + next.sw));
          k++;
        } else {
          expect(toHex(card.wrapResponse(ResponseApdu.status(parseInt(BARE_ERROR_SW, 16))).encode())).toBe(BARE_ERROR_SW);
        }
      }
      expect(card.state).toBe('authenticated');
    });

    it('card: refuses the first wrapped command played twice (replay), and drops the session', () => {
      const iu = v.steps[0] as { command: string; response: string };
      const r = fromHex(iu.response);
      let counter = 0;
      const card = new Scp03CardSession({
        keys: staticKeys(v),
        i: r[IU.iOffset] & ~I_PARAMETER_BIT.pseudoRandomChallenge,
        keyDiversificationData: r.slice(0, 10),
        aid: fromHex(KNOWN_SD_AIDS[0]),
        sequenceCounter: { get: () => counter, set: (n) => (counter = n) },
        random: () => r.slice(...IU.challenge),
      });
      card.initializeUpdate(CommandApdu.decode(fromHex(iu.command)));
      expect(card.externalAuthenticate(CommandApdu.decode(fromHex((v.steps[1] as { command: string }).command))).swHex).toBe('9000');
      const first = v.steps.find((s): s is Extract<VectorStep, { op: 'wrapCommand' }> => s.op === 'wrapCommand');
      if (first === undefined) throw new Error(`${file} has no wrapCommand step`);
      expect(card.unwrapCommand(CommandApdu.decode(fromHex(first.wrapped)))).toBeInstanceOf(CommandApdu);
      const replay = card.unwrapCommand(CommandApdu.decode(fromHex(first.wrapped)));
      expect(replay).toBeInstanceOf(ResponseApdu);
      expect((replay as ResponseApdu).swHex).toBe('6982');
      expect(card.state).toBe('idle');
    });
  });
});
