/**
 * Power cuts inside value-changing purse commands. The card image is a FileStore on a TearingMedium:
 * for DEBIT, LOAD and LOCK, power is cut at every persistent write the command makes and at the
 * first write after it returned, in every tear mode. After each cut the card is rebuilt from the
 * bytes left on the medium, and it must hold exactly the state before the command or exactly the
 * state after it: counter, balance and log together, never a mix; the balance always equals the
 * loads minus the debits of the log; and the terminal's retry of the same request is charged once.
 */
import { describe, expect, it } from 'vitest';
import { CardOs } from '../../../emulator/os/card-os.js';
import { FileStore } from '../../../emulator/store/file-store.js';
import { RamMedium, TEAR_MODES, TearingMedium, type TearMode } from '../../../emulator/store/medium.js';
import { PURSE_LIFE_CYCLE } from '../../../emulator/applets/purse-records.js';
import { purseIssuanceCommands } from '../../../emulator/personalize.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { HiltError } from '../../../src/util/errors.js';
import { toHex } from '../../../src/util/bytes.js';
import {
  ISSUANCE,
  SELECT_PURSE,
  SERIAL,
  Wire,
  debitApdu,
  exchange,
  issue,
  issuerCryptogram,
  loadApdu,
  openSession,
  purseCard,
  readLog,
  readStatus,
  request,
  type Answer,
} from './purse-helpers.js';

const CAPACITY = 8192;

interface Booted {
  card: CardOs;
  wire: Wire;
  medium: TearingMedium;
  inner: RamMedium;
}

function boot(image: Uint8Array | null, cut?: { at: number; mode: TearMode }): Booted {
  const inner = RamMedium.from(image);
  const medium = new TearingMedium(inner, cut ? { cutAfter: cut.at, mode: cut.mode } : {});
  const store = FileStore.open(medium, { capacity: CAPACITY });
  const { card } = purseCard({ store });
  return { card, wire: new Wire(card), medium, inner };
}

/** Everything the purse holds that a transaction changes, read as a terminal would (no session needed). */
async function snapshot(wire: Wire): Promise<{ text: string; counter: number; balance: number; net: number; lifeCycle: number }> {
  expect(await wire.send(SELECT_PURSE)).toBe('9000');
  const s = await readStatus(wire);
  const log = s.lifeCycle === PURSE_LIFE_CYCLE.ACTIVE ? await readLog(wire) : [];
  const net = log.reduce((sum, r) => sum + (r.type === 'load' ? r.amount : -r.amount), 0);
  const text = JSON.stringify({ lc: s.lifeCycle, c: s.counter, b: s.balance, log: log.map((r) => [r.counter, r.type, r.amount, r.terminalSequence, r.balanceAfter, toHex(r.certificate)]) });
  return { text, counter: s.counter, balance: s.balance, net, lifeCycle: s.lifeCycle };
}

/** One value-changing step on an open session; returns the card's answer. */
type Step = (secure: CardChannel) => Promise<Answer>;

interface Scenario {
  name: string;
  /** The card image before the step. */
  image: () => Promise<Uint8Array>;
  level: 0x01 | 0x03 | 0x33;
  step: Step;
  /** A later command that writes: the cut after the step's last write lands in it. */
  next: Step;
  /** The step again, as a terminal retries after a lost answer, and what the card answers when the first one had landed. */
  retry?: { step: Step; swWhenApplied: number };
}

/** An issued purse with a load and two debits behind it (5 transactions at most in every test: the log never wraps). */
async function activeImage(): Promise<Uint8Array> {
  const b = boot(null);
  await issue(b.wire);
  const s = await openSession(b.wire, 0x33);
  const req = request(20_000, 1);
  expect((await exchange(s, loadApdu(req, issuerCryptogram(req, 0)))).sw).toBe(0x9000);
  expect((await exchange(s, debitApdu(request(1500, 2)))).sw).toBe(0x9000);
  expect((await exchange(s, debitApdu(request(250, 3)))).sw).toBe(0x9000);
  return b.inner.read() as Uint8Array;
}

/** A purse with both personalization objects written, not locked. */
async function personalizedImage(): Promise<Uint8Array> {
  const b = boot(null);
  const s = await openSession(b.wire, 0x03);
  const [params, key] = purseIssuanceCommands(SERIAL, ISSUANCE);
  expect((await exchange(s, params)).sw).toBe(0x9000);
  expect((await exchange(s, key)).sw).toBe(0x9000);
  return b.inner.read() as Uint8Array;
}

const debitStep: Step = (s) => exchange(s, debitApdu(request(4000, 4)));
const loadReq = request(7000, 4);
// the purse's counter is 3 before the load (one load and two debits)
const loadStep: Step = (s) => exchange(s, loadApdu(loadReq, issuerCryptogram(loadReq, 3)));
const lockStep: Step = (s) => exchange(s, new CommandApdu({ cla: 0x80, ins: 0xdc, p1: 0, p2: 0 }));

const smallDebit: Step = (s) => exchange(s, debitApdu(request(1, 99)));
const firstLoad = request(1, 99);
const smallLoad: Step = (s) => exchange(s, loadApdu(firstLoad, issuerCryptogram(firstLoad, 0)));

const SCENARIOS: Scenario[] = [
  // a DEBIT sent again carries a terminal sequence number the log already holds: 9406
  { name: 'DEBIT', image: activeImage, level: 0x01, step: debitStep, next: smallDebit, retry: { step: debitStep, swWhenApplied: 0x9406 } },
  { name: 'DEBIT (level 33)', image: activeImage, level: 0x33, step: debitStep, next: smallDebit, retry: { step: debitStep, swWhenApplied: 0x9406 } },
  // a LOAD sent again carries a cryptogram for a counter that has moved on: 6988
  { name: 'LOAD', image: activeImage, level: 0x01, step: loadStep, next: smallDebit, retry: { step: loadStep, swWhenApplied: 0x6988 } },
  { name: 'LOCK', image: personalizedImage, level: 0x03, step: lockStep, next: smallLoad, retry: { step: lockStep, swWhenApplied: 0x6985 } },
];

/** Persistent write events of opening a session and of the step, counted on an uncut run. */
async function countEvents(image: Uint8Array, sc: Scenario): Promise<{ session: number; step: number; after: string }> {
  const b = boot(image);
  const s = await openSession(b.wire, sc.level);
  const session = b.medium.writes;
  const a = await sc.step(s);
  expect(a.sw, `${sc.name} runs on an uncut card`).toBe(0x9000);
  const step = b.medium.writes - session;
  await b.wire.reset();
  return { session, step, after: (await snapshot(b.wire)).text };
}

describe('purse: power cut at every persistent write of a value-changing command', () => {
  for (const sc of SCENARIOS) {
    it(`${sc.name}: every cut, every tear mode: all old or all new, value conserved, retried once`, async () => {
      const image = await sc.image();
      const before = (await snapshot(boot(image).wire)).text;
      const counted = await countEvents(image, sc);
      // one store transaction: body, sync, header, sync
      expect(counted.step, `${sc.name} writes one store transaction`).toBe(4);
      expect(counted.after).not.toBe(before);
      const outcomes = new Map<TearMode, Set<'old' | 'new'>>();
      let cuts = 0;
      for (const mode of TEAR_MODES) {
        const seen = new Set<'old' | 'new'>();
        outcomes.set(mode, seen);
        // cut 1..4 hits the step's own writes; 5 hits the first write after it returned (in `next`)
        for (let k = 1; k <= counted.step + 1; k++) {
          const b = boot(image, { at: counted.session + k, mode });
          const s = await openSession(b.wire, sc.level);
          let answered: Answer | undefined;
          let cutError: unknown;
          try {
            answered = await sc.step(s);
            await sc.next(s);
          } catch (e) {
            cutError = e;
          }
          expect(cutError, `cut ${k} (${mode}) stops the card`).toBeInstanceOf(HiltError);
          expect(b.medium.powerLost).toBe(true);
          cuts++;

          const rebooted = boot(b.inner.read());
          const after = await snapshot(rebooted.wire);
          const which = after.text === before ? 'old' : after.text === counted.after ? 'new' : 'mixed';
          expect(which, `cut ${k} (${mode}): ${after.text}`).not.toBe('mixed');
          seen.add(which as 'old' | 'new');
          if (answered?.sw === 0x9000) expect(which, `cut ${k} (${mode}): an answered command is durable`).toBe('new');
          if (after.lifeCycle === PURSE_LIFE_CYCLE.ACTIVE) expect(after.balance, `cut ${k} (${mode}): balance = loads - debits`).toBe(after.net);

          if (sc.retry) {
            // the terminal lost the answer: it retries the same request in a new session
            const s2 = await openSession(rebooted.wire, sc.level);
            const again = await sc.retry.step(s2);
            expect(again.sw, `cut ${k} (${mode}) retry`).toBe(which === 'old' ? 0x9000 : sc.retry.swWhenApplied);
            await rebooted.wire.reset();
            expect((await snapshot(rebooted.wire)).text, `cut ${k} (${mode}): applied exactly once`).toBe(counted.after);
          }
        }
      }
      expect(cuts).toBe(TEAR_MODES.length * (counted.step + 1));
      // every mode tears both ways somewhere (before and after the commit point)
      for (const [mode, seen] of outcomes) expect([...seen].sort(), mode).toEqual(['new', 'old']);
    });
  }
});
