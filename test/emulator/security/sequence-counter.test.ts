/**
 * The SCP03 sequence counter of a security domain lives in the card's persistent store: it survives
 * power cycles and card rebuilds, and a power cut at any persistent write of INITIALIZE UPDATE can
 * skip a value but never make it go back, so a card challenge is never used twice.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FILE_STORE_FORMAT, FileStore } from '../../../emulator/store/file-store.js';
import { RamMedium, TearingMedium, type TearingOptions } from '../../../emulator/store/medium.js';
import { StoreError } from '../../../emulator/store/errors.js';
import { MemoryStore } from '../../../emulator/store/memory.js';
import type { CardOs } from '../../../emulator/os/card-os.js';
import { makeCard } from '../../../emulator/make-card.js';
import { openScp03 } from '../../../src/reader/scp03.js';
import { SECURITY_LEVEL, decodeSequenceCounter } from '../../../src/crypto/scp03.js';
import { testStaticKeys } from '../../../src/crypto/diversify.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { ISD_AID, ISD_HEX, SELECT_DIAG, SERIAL, Tap, buildCard, keysOf } from './helpers.js';

const KEYS = keysOf(16, 11);
const CAPACITY = 4096;
const COUNTER_RECORD = `app/${ISD_HEX}/sequence-counter`;
/** INITIALIZE UPDATE, key version 30, a fixed host challenge. */
const IU = '80 50 30 00 08 0102030405060708 00';

interface IuAnswer {
  counter: number;
  challenge: string;
}

/** Parses the INITIALIZE UPDATE answer (i = 70: ... card challenge at 13, sequence counter at 29). */
function parseIu(rapdu: Uint8Array): IuAnswer {
  expect(rapdu.length).toBe(32 + 2);
  expect(toHex(rapdu.subarray(32))).toBe('9000');
  return { counter: decodeSequenceCounter(rapdu.subarray(29, 32)), challenge: toHex(rapdu.subarray(13, 21)) };
}

async function initializeUpdate(card: CardOs): Promise<IuAnswer> {
  return parseIu(await card.process(fromHex(IU)));
}

async function selectDiag(card: CardOs): Promise<void> {
  expect(toHex(await card.process(fromHex(SELECT_DIAG)))).toBe('9000');
}

function storedCounter(store: { get(k: string): Uint8Array | undefined }): number {
  return decodeSequenceCounter(store.get(COUNTER_RECORD) as Uint8Array);
}

describe('sequence counter persistence', () => {
  it('counts across power cycles and card rebuilds on the same store, and the host checks each challenge', async () => {
    const store = new MemoryStore();
    const { card } = buildCard({ keys: KEYS, store });
    const tap = new Tap(card);
    const seen: number[] = [];
    const challenges = new Set<string>();
    const openOnce = async (t: Tap): Promise<void> => {
      await t.send(SELECT_DIAG);
      const ch = await openScp03(t, { keys: KEYS, securityLevel: SECURITY_LEVEL.C_MAC, pseudoRandomCardChallenge: { aid: ISD_AID } });
      seen.push(ch.info.sequenceCounter as number);
      challenges.add(t.responses[t.responses.length - 2].slice(26, 42));
    };
    await openOnce(tap);
    await openOnce(tap);
    card.powerOff();
    card.powerOn();
    await openOnce(tap);
    await tap.reset();
    await openOnce(tap);
    const rebuilt = buildCard({ keys: KEYS, store }).card;
    await openOnce(new Tap(rebuilt));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(challenges.size).toBe(5);
    expect(storedCounter(store)).toBe(5);
  });

  it('a failed authentication still uses up its counter value', async () => {
    const { card, store } = buildCard({ keys: KEYS });
    const tap = new Tap(card);
    await tap.send(SELECT_DIAG);
    await expect(openScp03(tap, { keys: keysOf(16, 12), securityLevel: SECURITY_LEVEL.C_MAC })).rejects.toMatchObject({ reason: 'card-cryptogram' });
    expect(storedCounter(store)).toBe(1);
    const ch = await openScp03(tap, { keys: KEYS, securityLevel: SECURITY_LEVEL.C_MAC });
    expect(ch.info.sequenceCounter).toBe(2);
  });

  it('persists in a card image file with the TEST KEYS ISD (makeCard)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hilt-scp03-'));
    try {
      const image = join(dir, 'card.img');
      const counters: number[] = [];
      for (let boot = 0; boot < 3; boot++) {
        const made = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], image, testKeys: true });
        const tap = new Tap(made.os);
        await tap.send(SELECT_DIAG);
        const ch = await openScp03(tap, { keys: testStaticKeys('gp-test'), securityLevel: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC });
        counters.push(ch.info.sequenceCounter as number);
        expect(Buffer.from(await ch.transmit(fromHex('80 40 00 00 04'))).toString('hex')).toBe(`0000000${boot + 1}9000`);
        (made.store as FileStore).close();
      }
      expect(counters).toEqual([1, 2, 3]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The ways a persistent write is torn (as in test/emulator/store/tear.test.ts). */
const VARIANTS: Array<{ name: string; opts: Pick<TearingOptions, 'mode' | 'tornLength'> }> = [
  { name: 'nothing written', opts: { mode: 'nothing' } },
  { name: 'prefix of 1 byte', opts: { mode: 'prefix', tornLength: 1 } },
  { name: 'prefix of half', opts: { mode: 'prefix' } },
  { name: 'all but the last byte', opts: { mode: 'prefix', tornLength: (n) => n - 1 } },
  { name: 'all garbage', opts: { mode: 'garbage', tornLength: 0 } },
  { name: 'half then garbage', opts: { mode: 'garbage' } },
  { name: 'write cache reordered', opts: { mode: 'reorder' } },
  { name: 'write cache lost', opts: { mode: 'lost' } },
];

/** A card on a FileStore over `medium`, with the diagnostic applet selected. */
async function bootOn(medium: RamMedium | TearingMedium): Promise<{ card: CardOs; store: FileStore }> {
  const store = FileStore.open(medium, { capacity: CAPACITY });
  const { card } = buildCard({ keys: KEYS, store });
  await selectDiag(card);
  return { card, store };
}

describe('sequence counter under power cuts (tear test)', () => {
  it('a cut at every persistent write of INITIALIZE UPDATE, every way: the counter never goes back, no challenge repeats', async () => {
    // A personalised card that has answered three INITIALIZE UPDATEs.
    const ram = new RamMedium();
    const history: IuAnswer[] = [];
    {
      const { card } = await bootOn(ram);
      for (let n = 0; n < 3; n++) history.push(await initializeUpdate(card));
    }
    expect(history.map((a) => a.counter)).toEqual([1, 2, 3]);
    const base = ram.read();

    // How many persistent writes one INITIALIZE UPDATE makes (booting and selecting make none).
    const counting = new TearingMedium(RamMedium.from(base));
    const { card: countingCard } = await bootOn(counting);
    expect(counting.writes).toBe(0);
    await initializeUpdate(countingCard);
    const W = counting.writes;
    expect(W).toBe(FILE_STORE_FORMAT.writesPerCommit);

    let runs = 0;
    for (const v of VARIANTS) {
      for (let k = 1; k <= W + 1; k++) {
        const label = `${v.name}, cut at write ${k} of ${W}`;
        const sent = [...history];
        const survivor = RamMedium.from(base);
        const torn = new TearingMedium(survivor, { ...v.opts, cutAfter: k, seed: 0x5eed + k });
        const { card } = await bootOn(torn);
        let failure: unknown;
        try {
          // k ≤ W: the cut hits this INITIALIZE UPDATE; k = W + 1: it completes, the next one is cut.
          sent.push(await initializeUpdate(card));
          await initializeUpdate(card);
        } catch (e) {
          failure = e;
        }
        expect(failure, label).toBeInstanceOf(StoreError);
        expect((failure as StoreError).reason, label).toBe('POWER_LOST');
        expect(sent.length, label).toBe(k <= W ? 3 : 4);

        // Reboot on what reached the medium.
        const { card: rebooted, store } = await bootOn(RamMedium.from(survivor.read()));
        const last = sent[sent.length - 1].counter;
        const persisted = storedCounter(store);
        expect(persisted, `${label}: the counter went back`).toBeGreaterThanOrEqual(last);
        expect(persisted, label).toBeLessThanOrEqual(last + 1);
        const next = await initializeUpdate(rebooted);
        expect(next.counter, label).toBe(persisted + 1);
        expect(sent.map((a) => a.challenge), `${label}: a challenge was reused`).not.toContain(next.challenge);
        // The rebooted card authenticates as usual.
        const ch = await openScp03(new Tap(rebooted), { keys: KEYS, securityLevel: SECURITY_LEVEL.C_MAC, pseudoRandomCardChallenge: { aid: ISD_AID } });
        expect(ch.info.sequenceCounter, label).toBe(next.counter + 1);
        runs++;
      }
    }
    expect(runs).toBe(VARIANTS.length * (W + 1));
  });
});
