/**
 * 100,000+ random and mutated C-APDUs into CardOs.process: it never rejects, always answers a status
 * word, and the diagnostic applet's persistent counter ends equal to the number of increments the
 * card reported as committed. Seeded: set HILT_FUZZ_SEED to replay a failure.
 */
import { describe, it, expect } from 'vitest';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import type { Applet } from '../../../emulator/os/applet.js';
import { DiagnosticApplet, DIAGNOSTIC_AID, DIAGNOSTIC_NAME, DIAG_RECORDS } from '../../../emulator/applets/diagnostic.js';
import { isStatusWord } from '../../../emulator/os/sw.js';
import { makeCard, testApplet } from './helpers.js';
import { prng } from '../../helpers/prng.js';

const RUNS = 100_000;
const SEED = Number(process.env.HILT_FUZZ_SEED ?? 0x5eed1e55);


const SEEDS = [
  '00 A4 04 00 09 F0 68 69 6C 74 44 49 41 47 00',
  '00 A4 04 0C 05 F0 68 69 6C 74',
  '00 A4 04 02 05 F0 00 00 00 09 00',
  '01 A4 04 0C 09 F0 68 69 6C 74 44 49 41 47',
  '00 70 00 00 01',
  '00 70 00 02',
  '00 70 80 01',
  '00 C0 00 00 00',
  '00 C0 00 00 10',
  '80 CA 9F 7F 00',
  '80 CA 00 66 00',
  '80 CA DF 01',
  '80 10 00 00',
  '80 12 01 2C 00',
  '80 12 00 20',
  '80 12 02 00 00 00 00',
  '80 14 00 00 03 01 02 03',
  '80 16 00 00 00',
  '80 18 00 00 02 AA BB 00',
  '80 1A 00 00 00 00 03 61 62 63 00 24',
  '80 1C 00 10 08',
  '80 30 00 05',
  '80 32 62 83 01 AA 00',
  '80 40 00 00 04',
  '80 40 01 00 04',
  '80 40 02 00 04',
  '80 42 00 00 04',
  '90 1A 00 00 02 61 62',
  '80 1A 00 00 01 63 00',
  '81 40 00 00 04',
  '80 01 00 00 00',
  '80 03 00 00',
].map(fromHex);

function mutate(rand: () => number): Uint8Array {
  const pick = (n: number): number => Math.floor(rand() * n);
  const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => pick(256));
  const kind = pick(10);
  if (kind === 0) return randomBytes(pick(rand() < 0.9 ? 12 : 300));
  const base = SEEDS[pick(SEEDS.length)].slice();
  switch (kind) {
    case 1:
      return base; // a valid command, to move the state along
    case 2: {
      for (let i = pick(3) + 1; i > 0; i--) base[pick(base.length)] ^= 1 << pick(8);
      return base;
    }
    case 3:
      base[pick(base.length)] = pick(256);
      return base;
    case 4:
      return base.subarray(0, pick(base.length + 1));
    case 5:
      return Uint8Array.from([...base, ...randomBytes(pick(4) + 1)]);
    case 6:
      base[0] = pick(256); // any class: channels, chaining, SM, RFU, FF
      return base;
    case 7:
      if (base.length > 4) base[4] = pick(256); // a wrong Lc or Le
      return base;
    case 8:
      base[2] = pick(256);
      base[3] = pick(256);
      return base;
    default:
      base[1] = pick(256);
      return base;
  }
}

describe('CardOs fuzz', () => {
  it(`answers ${RUNS} random and mutated APDUs with a status word and keeps the counter intact (seed ${SEED})`, async () => {
    const diag = new DiagnosticApplet({ sleep: async () => undefined });
    let committed = 0;
    const counted: Applet = {
      chaining: diag.chaining,
      multiSelectable: diag.multiSelectable,
      install: (ctx) => diag.install(ctx),
      fci: () => diag.fci(),
      async process(ctx, apdu, channel) {
        const r = await diag.process(ctx, apdu);
        if (apdu.ins === 0x40 && apdu.p1 === 0 && r.sw === 0x9000) committed++;
        return r;
      },
    };
    const { card, store } = makeCard([
      { aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet: counted, default: true },
      { aid: fromHex('F0 00 00 00 09 01'), name: 'other', applet: testApplet('other', { calls: [] }, { chaining: 'pass-through' }) },
    ]);
    const rand = prng(SEED);
    let statusWords = 0;
    for (let i = 0; i < RUNS; i++) {
      if (rand() < 0.001) card.reset();
      const command = mutate(rand);
      let r: Uint8Array;
      try {
        r = await card.process(command);
      } catch (e) {
        throw new Error(`seed ${SEED}, run ${i}: process rejected ${toHex(command)}: ${String(e)}`);
      }
      if (r.length < 2) throw new Error(`seed ${SEED}, run ${i}: ${toHex(command)} answered ${toHex(r)}`);
      const sw = (r[r.length - 2] << 8) | r[r.length - 1];
      if (!isStatusWord(sw)) throw new Error(`seed ${SEED}, run ${i}: ${toHex(command)} answered SW ${sw.toString(16)}`);
      statusWords++;
    }
    expect(statusWords).toBe(RUNS);
    expect(store.inTransaction).toBe(false);
    const prefix = `app/${toHex(DIAGNOSTIC_AID)}/`;
    const value = store.get(prefix + DIAG_RECORDS.counter) as Uint8Array;
    const check = store.get(prefix + DIAG_RECORDS.counterCheck) as Uint8Array;
    const n = ((value[0] << 24) | (value[1] << 16) | (value[2] << 8) | value[3]) >>> 0;
    expect(committed).toBeGreaterThan(100);
    expect(n).toBe(committed);
    expect(toHex(check)).toBe(toHex(value.map((b) => ~b & 0xff)));
    card.reset();
    expect(toHex(await card.process(fromHex('80 42 00 00 04')))).toBe(n.toString(16).padStart(8, '0') + '9000');
  }, 120_000);
});
