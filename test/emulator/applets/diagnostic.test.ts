import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import {
  DiagnosticApplet,
  DIAGNOSTIC_AID,
  DIAGNOSTIC_NAME,
  DIAG_RECORDS,
  MAX_SLEEP_MS,
  diagnosticPattern,
} from '../../../emulator/applets/diagnostic.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import { makeCard, tx, h, replay, specBlocks } from '../os/helpers.js';

const SELECT = '00 A4 04 0C 09 F0 68 69 6C 74 44 49 41 47';

function diagCard(options: { sleeps?: number[]; store?: MemoryStore; isDefault?: boolean } = {}) {
  const applet = new DiagnosticApplet({
    sleep: async (ms) => {
      options.sleeps?.push(ms);
    },
  });
  return makeCard([{ aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet, default: options.isDefault ?? true }], { store: options.store });
}

const pattern = (n: number, from = 0): string => toHex(diagnosticPattern(from + n).subarray(from)).toUpperCase();
const sha = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex').toUpperCase();
const u32 = (n: number): string => n.toString(16).padStart(8, '0').toUpperCase();
const ext = (n: number): string => n.toString(16).padStart(4, '0');

describe('diagnostic applet', () => {
  it('has the AID F0 + "hiltDIAG"', () => {
    expect(toHex(DIAGNOSTIC_AID)).toBe('f0' + toHex(new TextEncoder().encode('hiltDIAG')));
  });

  it('PING (case 1) answers 9000 and refuses data and parameters', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 10 00 00')).toBe('9000');
    expect(await tx(card, '80 10 00 00 00')).toBe('9000');
    expect(await tx(card, '80 10 00 00 01 00')).toBe('6700');
    expect(await tx(card, '80 10 01 00')).toBe('6A86');
  });

  it('PATTERN (case 2) answers N pattern bytes for N from 0 to 65535', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 12 00 00 00')).toBe('9000');
    expect(await tx(card, '80 12 00 01 01')).toBe('009000');
    expect(await tx(card, '80 12 01 00 00')).toBe(pattern(256) + '9000');
    expect(await tx(card, '80 12 10 00 00 00 00')).toBe(pattern(4096) + '9000');
    expect(await tx(card, '80 12 FF FF 00 00 00')).toBe(pattern(65535) + '9000');
    expect(await tx(card, '80 12 00 01 01 00 01')).toBe('6700');
  });

  it('returns 600 bytes to a short command as 256 + 61 00, 256 + 61 58, 88 + 90 00', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 12 02 58 00')).toBe(pattern(256) + '6100');
    expect(await tx(card, '00 C0 00 00 00')).toBe(pattern(256, 256) + '6158');
    expect(await tx(card, '00 C0 00 00 58')).toBe(pattern(88, 512) + '9000');
  });

  it('PUT (case 3) takes up to 65535 bytes and LAST PUT reports their length and SHA-256', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 16 00 00 00')).toBe('6985');
    const data = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    expect(await tx(card, `80 14 00 00 00 ${ext(5000)} ${toHex(data)}`)).toBe('9000');
    expect(await tx(card, '80 16 00 00 00')).toBe(u32(5000) + sha(data) + '9000');
    expect(await tx(card, '80 14 00 00 02 AA BB')).toBe('9000');
    expect(await tx(card, '80 16 00 00 00')).toBe(u32(2) + sha(fromHex('AABB')) + '9000');
    const max = new Uint8Array(65535).fill(0x5a);
    expect(await tx(card, `80 14 00 00 00 FF FF ${toHex(max)}`)).toBe('9000');
    expect(await tx(card, '80 16 00 00 00')).toBe(u32(65535) + sha(max) + '9000');
    expect(await tx(card, '80 14 00 01 01 00')).toBe('6A86');
  });

  it('forgets the last PUT at reset (it lives in RAM)', async () => {
    const { card } = diagCard();
    await tx(card, '80 14 00 00 01 01');
    card.reset();
    expect(await tx(card, '80 16 00 00 00')).toBe('6985');
  });

  it('ECHO and HASH (case 4), short and extended', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 18 00 00 03 AA BB CC 00')).toBe('AABBCC9000');
    expect(await tx(card, '80 1A 00 00 03 61 62 63 00')).toBe(h('00000003 BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD 9000'));
    expect(await tx(card, '80 1A 00 00 00')).toBe(u32(0) + sha(new Uint8Array(0)) + '9000');
    const big = diagnosticPattern(4097);
    expect(await tx(card, `80 18 00 00 00 ${ext(4097)} ${toHex(big)} 00 00`)).toBe(toHex(big).toUpperCase() + '9000');
    expect(await tx(card, `80 1A 00 00 00 ${ext(4097)} ${toHex(big)} 00 24`)).toBe(u32(4097) + sha(big) + '9000');
    expect(await tx(card, '80 18 01 00 01 00 00')).toBe('6A86');
  });

  it('EXACT LE answers 6Cxx with the exact length to any other Le, then the data', async () => {
    const { card } = diagCard();
    expect(await tx(card, '80 1C 00 20')).toBe('6C20');
    expect(await tx(card, '80 1C 00 20 10')).toBe('6C20');
    expect(await tx(card, '80 1C 00 20 00')).toBe('6C20');
    expect(await tx(card, '80 1C 00 20 20')).toBe(pattern(32) + '9000');
    expect(await tx(card, '80 1C 01 00 FF')).toBe('6C00');
    expect(await tx(card, '80 1C 01 00 00')).toBe(pattern(256) + '9000');
    expect(await tx(card, '80 1C 00 01 01')).toBe('009000');
    expect(await tx(card, '80 1C 00 05 00 00 05'), 'an extended Le of the exact length').toBe(pattern(5) + '9000');
    expect(await tx(card, '80 1C 00 00 00')).toBe('6A86');
    expect(await tx(card, '80 1C 01 01 00')).toBe('6A86');
  });

  it('SLEEP waits P1P2 milliseconds, at most 10 s', async () => {
    const sleeps: number[] = [];
    const { card } = diagCard({ sleeps });
    expect(await tx(card, '80 30 00 64')).toBe('9000');
    expect(await tx(card, `80 30 ${ext(MAX_SLEEP_MS)}`)).toBe('9000');
    expect(await tx(card, `80 30 ${ext(MAX_SLEEP_MS + 1)}`)).toBe('6A86');
    expect(sleeps).toEqual([100, 10_000]);
  });

  it('SLEEP really waits with the default timer', async () => {
    const { card } = makeCard([{ aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet: new DiagnosticApplet(), default: true }]);
    const t0 = performance.now();
    expect(await tx(card, '80 30 00 3C')).toBe('9000');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  });

  it('STATUS answers the chosen status word, with the data if any', async () => {
    const { card } = diagCard();
    const table: [string, string][] = [
      ['80 32 6A 82', '6A82'],
      ['80 32 90 00', '9000'],
      ['80 32 63 C2', '63C2'],
      ['80 32 9F 10', '9F10'],
      ['80 32 61 10', '6110'],
      ['80 32 62 83 02 AA BB 00', 'AABB6283'],
      ['80 32 60 00', '6A86'],
      ['80 32 12 34', '6A86'],
      ['80 32 A0 00', '6A86'],
    ];
    for (const [apdu, want] of table) expect(await tx(card, apdu), apdu).toBe(want);
  });

  it('COUNTER increments in a transaction and keeps its value through power cycles', async () => {
    const store = new MemoryStore();
    const { card } = diagCard({ store });
    expect(await tx(card, '80 42 00 00 04')).toBe('000000009000');
    for (let i = 1; i <= 3; i++) expect(await tx(card, '80 40 00 00 04')).toBe(u32(i) + '9000');
    expect(await tx(card, '80 40 01 00 04'), 'failure inside the transaction').toBe('6F00');
    expect(await tx(card, '80 40 02 00 04'), 'transaction left open').toBe('6F00');
    expect(store.inTransaction).toBe(false);
    card.powerOff();
    card.powerOn();
    expect(await tx(card, '80 42 00 00 04')).toBe('000000039000');
    // a card rebuilt on the same store does not install (reset the counter) again
    const again = diagCard({ store }).card;
    expect(await tx(again, '80 42 00 00 04')).toBe('000000039000');
    const prefix = `app/${toHex(DIAGNOSTIC_AID)}/`;
    expect(toHex(store.get(prefix + DIAG_RECORDS.counter) as Uint8Array)).toBe('00000003');
    expect(toHex(store.get(prefix + DIAG_RECORDS.counterCheck) as Uint8Array)).toBe('fffffffc');
  });

  it('COUNTER reports 6581 when its two records disagree, and 6985 when exhausted', async () => {
    const store = new MemoryStore();
    const { card } = diagCard({ store });
    const prefix = `app/${toHex(DIAGNOSTIC_AID)}/`;
    store.put(prefix + DIAG_RECORDS.counter, fromHex('00000005'));
    expect(await tx(card, '80 42 00 00 04')).toBe('6581');
    expect(await tx(card, '80 40 00 00 04')).toBe('6581');
    expect(store.inTransaction).toBe(false);
    store.put(prefix + DIAG_RECORDS.counter, fromHex('FFFFFFFF'));
    store.put(prefix + DIAG_RECORDS.counterCheck, fromHex('00000000'));
    expect(await tx(card, '80 40 00 00 04')).toBe('6985');
    expect(await tx(card, '80 42 00 00 04')).toBe('FFFFFFFF9000');
    expect(await tx(card, '80 40 03 00 04')).toBe('6A86');
    expect(await tx(card, '80 40 00 01 04')).toBe('6A86');
  });

  it('accumulates chained parts into one command', async () => {
    const { card } = diagCard();
    const parts = [diagnosticPattern(200), new Uint8Array(255).fill(1), fromHex('DEADBEEF')];
    expect(await tx(card, `90 1A 00 00 C8 ${toHex(parts[0])}`)).toBe('9000');
    expect(await tx(card, `90 1A 00 00 FF ${toHex(parts[1])}`)).toBe('9000');
    const whole = new Uint8Array([...parts[0], ...parts[1], ...parts[2]]);
    expect(await tx(card, `80 1A 00 00 04 ${toHex(parts[2])} 00`)).toBe(u32(459) + sha(whole) + '9000');
    // chained ECHO: 459 bytes back to a short Le come as 256 + 61 CB
    expect(await tx(card, `90 18 00 00 C8 ${toHex(parts[0])}`)).toBe('9000');
    expect(await tx(card, `90 18 00 00 FF ${toHex(parts[1])}`)).toBe('9000');
    const first = await tx(card, `80 18 00 00 04 ${toHex(parts[2])} 00`);
    expect(first).toBe(toHex(whole.subarray(0, 256)).toUpperCase() + '61CB');
    expect(await tx(card, '00 C0 00 00 CB')).toBe(toHex(whole.subarray(256)).toUpperCase() + '9000');
  });

  it('answers on several logical channels at once', async () => {
    const { card } = diagCard();
    expect(await tx(card, '00 70 00 00 01')).toBe('019000');
    expect(await tx(card, '81 42 00 00 04')).toBe('000000009000');
    expect(await tx(card, '80 40 00 00 04')).toBe('000000019000');
    expect(await tx(card, '81 40 00 00 04')).toBe('000000029000');
    expect(await tx(card, '00 70 00 04')).toBe('6A81');
    expect(await tx(card, '00 70 00 03')).toBe('9000');
    expect(await tx(card, `03 A4 04 0C 05 F0 68 69 6C 74`)).toBe('9000');
    expect(await tx(card, '83 12 00 03 03')).toBe('0001029000');
  });

  it('refuses the wrong class, secure messaging and unknown INS', async () => {
    const { card } = diagCard();
    expect(await tx(card, '00 10 00 00')).toBe('6E00');
    expect(await tx(card, '84 10 00 00')).toBe('6882');
    expect(await tx(card, '80 50 00 00')).toBe('6D00');
    expect(await tx(card, '80 12 00 03 01 00 03')).toBe('6700');
  });
});

describe('applets-spec/diagnostic.md examples', () => {
  const blocks = specBlocks('applets-spec/diagnostic.md');

  it('has example blocks', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(9);
  });

  blocks.forEach((steps, i) => {
    it(`block ${i + 1}`, async () => {
      // As the spec says: installed, not default-selected, the real timer for SLEEP.
      const { card } = makeCard([{ aid: DIAGNOSTIC_AID, name: DIAGNOSTIC_NAME, applet: new DiagnosticApplet() }]);
      expect(await tx(card, '80 10 00 00'), 'not selected at power-on').toBe('6D00');
      card.reset();
      await replay(card, steps);
    });
  });
});

describe('SELECT answers', () => {
  it('answers the FCI of the spec', async () => {
    const { card } = diagCard({ isDefault: false });
    expect(await tx(card, SELECT.replace('0C', '00') + ' 00')).toBe(h('6F 17 84 09 F0 68 69 6C 74 44 49 41 47 A5 0A 50 08 68 69 6C 74 44 49 41 47 90 00'));
  });
});
