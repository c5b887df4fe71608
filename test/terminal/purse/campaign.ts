/**
 * The tear campaign of the purse terminal (issue 6): power is cut, or the card pulled, at every
 * point of a purchase; the card is presented again, tear recovery runs, and the invariants hold:
 *
 *   card balance + the amounts of the journal's moved rows (complete, recovered) = starting balance
 *   no pending row is left
 *   no debit is counted twice: moved rows and this terminal's debits in the card's log match one to
 *   one (reader sequence, counter, amount, certificate), every reader sequence number once
 *
 * Two campaigns, each returning what it covered:
 *
 *   runApduCampaign   the card leaves the reader at APDU k of a purchase, k = 1..N (N measured on an
 *                     uncut purchase), before the card gets it (request lost) or after it processed
 *                     it (answer lost); then the same again during the purchase that recovers a
 *                     pending debit (its READ LOG included): a tear on top of a tear.
 *   runWriteCampaign  the card's image is a FileStore on a TearingMedium: power fails at persistent
 *                     write n of a purchase, n = 1..W+1 (W measured; W+1 lands just after the purchase
 *                     returned), in every tear mode; the card reboots from the bytes left.
 */
import { expect } from 'vitest';
import { FileStore } from '../../../emulator/store/file-store.js';
import { RamMedium, TEAR_MODES, TearingMedium, type TearMode } from '../../../emulator/store/medium.js';
import type { EmulatedCard } from '../../../emulator/make-card.js';
import { HiltError } from '../../../src/util/errors.js';
import { bytesEqual, toHex } from '../../../src/util/bytes.js';
import { purchase, readPurseBalance, recoverCard, terminalIdBytes, type RecoveryOutcome } from '../../../src/terminal/purse/index.js';
import { buildPurseCard, cardOrder, issueCard, openTerminal, SERIAL, Wire, type CutMode, type TestTerminal } from './helpers.js';

/** The purchase the campaigns tear, and the ones around it (all far below every limit). */
const FIRST = 1000;
const TORN = 2500;
const AFTER = 400;
const START_BALANCE = 50_000;

export type Resolution = 'none' | 'complete' | 'recovered' | 'never-happened';

export interface CutResult {
  point: string;
  /** What became of the torn purchase's row. */
  resolution: Resolution;
}

export interface CampaignReport {
  /** APDUs (or persistent writes) of one uncut purchase, measured. */
  measured: number;
  /** Distinct cut points exercised. */
  cutPoints: number;
  /** Cuts run (cut points × modes). */
  cuts: number;
  results: CutResult[];
}

/** Card value and journal agree; see the module comment. Returns the card's balance. */
export async function checkInvariants(card: EmulatedCard, term: TestTerminal, label: string, start = START_BALANCE): Promise<number> {
  const { status, log } = await readPurseBalance(new Wire(card));
  const rows = term.journal.query({ cardSerial: SERIAL, order: 'asc', limit: 10_000 });
  expect(rows.filter((r) => r.status === 'pending'), `${label}: no pending row left`).toEqual([]);
  const moved = rows.filter((r) => r.status === 'complete' || r.status === 'recovered');
  const spent = moved.reduce((s, r) => s + r.amount, 0);
  expect(status.balance + spent, `${label}: card balance ${status.balance} + journaled ${spent} = starting balance ${start}`).toBe(start);
  const tid = terminalIdBytes(term.config.terminalId);
  const ours = log.filter((e) => e.type === 'debit' && bytesEqual(e.terminalId, tid));
  expect(ours.length, `${label}: the card's debits of this terminal = the journal's moved rows`).toBe(moved.length);
  expect(new Set(moved.map((r) => r.readerSeq)).size, `${label}: every reader sequence number once`).toBe(moved.length);
  for (const r of moved) {
    const e = ours.find((x) => x.terminalSequence === r.readerSeq);
    expect(e, `${label}: row ${r.id} (seq ${r.readerSeq}) is on the card`).toBeDefined();
    expect([e!.counter, e!.amount, toHex(e!.certificate)], `${label}: row ${r.id} is the card's record`).toEqual([r.counterAfter, r.amount, toHex(r.certificate!)]);
  }
  const keys = term.journal.outbox({ limit: 10_000 }).map((x) => x.key);
  expect(new Set(keys).size, `${label}: each record queued once`).toBe(keys.length);
  return status.balance;
}

function resolutionOf(term: TestTerminal, readerSeqBefore: number, outcomes: RecoveryOutcome[]): Resolution {
  const row = term.journal.query({ cardSerial: SERIAL, order: 'asc', limit: 10_000 }).find((r) => r.readerSeq > readerSeqBefore && r.amount === TORN);
  if (row === undefined) return 'none';
  const o = outcomes.find((x) => x.journalId === row.id);
  if (o !== undefined) return o.resolution;
  return row.status === 'complete' || row.status === 'recovered' || row.status === 'never-happened' ? row.status : 'none';
}

async function expectTorn(p: Promise<unknown>, label: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `${label}: the purchase is interrupted`).toBeInstanceOf(HiltError);
}

/** APDUs of one purchase with nothing pending, and of one that recovers a pending debit. */
async function measureApdus(): Promise<{ plain: number; recovering: number }> {
  const term = await openTerminal();
  try {
    const card = await issueCard();
    const wire = new Wire(card);
    await purchase({ ...term, channel: wire }, FIRST);
    const plain = wire.count;
    wire.cut = { at: wire.count + plain, mode: 'answer-lost' };
    await expectTorn(purchase({ ...term, channel: wire }, TORN), 'measure');
    wire.reinsert();
    const before = wire.count;
    const r = await purchase({ ...term, channel: wire }, AFTER);
    expect(r.recovered.map((o) => o.resolution)).toEqual(['recovered']);
    return { plain, recovering: wire.count - before };
  } finally {
    term.close();
  }
}

const CUT_MODES: readonly CutMode[] = ['request-lost', 'answer-lost'];

/**
 * One cut of the APDU campaign on a fresh terminal and card: a first purchase, then `tear` (which
 * cuts the wire and expects the purchase torn), the card presented again and recovered, the
 * invariants checked, a purchase that completes, the invariants checked again. Counted in `report`.
 */
async function cutAndRecover(
  report: CampaignReport,
  label: string,
  tear: (pay: (amount: number) => ReturnType<typeof purchase>, wire: Wire) => Promise<void>,
): Promise<void> {
  const term = await openTerminal();
  try {
    const card = await issueCard();
    const wire = new Wire(card);
    const pay = (amount: number) => purchase({ ...term, channel: wire }, amount);
    await pay(FIRST);
    const seqBefore = term.journal.lastReaderSequence() ?? 0;
    await tear(pay, wire);
    wire.reinsert();
    const { outcomes } = await recoverCard(wire, term.domain, term.journal, term.config);
    report.results.push({ point: label, resolution: resolutionOf(term, seqBefore, outcomes) });
    await checkInvariants(card, term, `${label}, after recovery`);
    await pay(AFTER);
    await checkInvariants(card, term, `${label}, after the next purchase`);
    report.cuts++;
  } finally {
    term.close();
  }
}

export async function runApduCampaign(): Promise<{ single: CampaignReport; double: CampaignReport }> {
  const { plain, recovering } = await measureApdus();
  const single: CampaignReport = { measured: plain, cutPoints: 0, cuts: 0, results: [] };
  const double: CampaignReport = { measured: recovering, cutPoints: 0, cuts: 0, results: [] };

  // One tear: the card leaves at APDU k of a purchase; then recovery and a purchase that completes.
  for (let k = 1; k <= plain; k++) {
    for (const mode of CUT_MODES) {
      const label = `APDU ${k}/${plain}, ${mode}`;
      await cutAndRecover(single, label, async (pay, wire) => {
        wire.cut = { at: wire.count + k, mode };
        await expectTorn(pay(TORN), label);
      });
    }
    single.cutPoints++;
  }

  // A tear on a tear: the DEBIT's answer is lost, then the card leaves at APDU k of the purchase
  // that recovers it (SELECT .. READ STATUS, READ LOG and its GET RESPONSEs, the new DEBIT).
  for (let k = 1; k <= recovering; k++) {
    for (const mode of CUT_MODES) {
      const label = `recovering purchase, APDU ${k}/${recovering}, ${mode}`;
      await cutAndRecover(double, label, async (pay, wire) => {
        wire.cut = { at: wire.count + plain, mode: 'answer-lost' };
        await expectTorn(pay(TORN), `${label} (first tear)`);
        wire.reinsert();
        wire.cut = { at: wire.count + k, mode };
        await expectTorn(pay(AFTER), label);
      });
    }
    double.cutPoints++;
  }
  return { single, double };
}

/** A card booted on `image` (null: blank), its store on a tearing medium over RAM. */
function boot(image: Uint8Array | null, cut?: { at: number; mode: TearMode }): { card: EmulatedCard; medium: TearingMedium; inner: RamMedium } {
  const inner = RamMedium.from(image);
  const medium = new TearingMedium(inner, cut ? { cutAfter: cut.at, mode: cut.mode } : {});
  const card = buildPurseCard(cardOrder({ store: FileStore.open(medium) }));
  return { card, medium, inner };
}

export async function runWriteCampaign(): Promise<CampaignReport & { modes: readonly TearMode[]; debitWrites: number }> {
  // The issued card with one purchase behind it, as bytes: every run starts from these.
  // Other terminals make the image (their debits are not the campaign terminal's, whose id is TERM0001).
  const setup = await openTerminal({ terminalId: 'SETUP001', readerId: 'R-setup' });
  let image: Uint8Array;
  let writes: number;
  let debitWrites: number;
  try {
    const inner = new RamMedium();
    const card = await issueCard({ store: FileStore.open(new TearingMedium(inner)) });
    await purchase({ ...setup, channel: new Wire(card) }, FIRST);
    image = inner.read() as Uint8Array;
    // Persistent writes of one uncut purchase (from a journal that has seen the first one).
    const measure = await openTerminal({ terminalId: 'SETUP002', readerId: 'R-measure' });
    try {
      const b = boot(image);
      const wire = new Wire(b.card);
      await purchase({ ...measure, channel: wire }, FIRST);
      image = b.inner.read() as Uint8Array;
      const again = boot(image);
      const w2 = new Wire(again.card);
      let beforeDebit = 0;
      w2.tamper = (bytes) => {
        if (bytes[1] === 0x54) beforeDebit = again.medium.writes;
        return bytes;
      };
      await purchase({ ...measure, channel: w2 }, FIRST);
      writes = again.medium.writes;
      debitWrites = writes - beforeDebit;
    } finally {
      measure.close();
    }
  } finally {
    setup.close();
  }
  // The campaign's starting balance is the image's: two purchases of FIRST made by the set-up terminals.
  const start = START_BALANCE - 2 * FIRST;
  const report = { measured: writes, cutPoints: 0, cuts: 0, results: [] as CutResult[], modes: TEAR_MODES, debitWrites };
  for (let n = 1; n <= writes + 1; n++) {
    for (const mode of TEAR_MODES) {
      const label = `write ${n}/${writes}${n > writes ? ' (after the purchase returned)' : ''}, ${mode}`;
      const term = await openTerminal();
      try {
        // This terminal has not seen the card; the journal starts from the image's state.
        const b = boot(image, { at: n, mode });
        const wire = new Wire(b.card);
        let interrupted = false;
        await purchase({ ...term, channel: wire }, TORN).catch((e: unknown) => {
          expect(e, label).toBeInstanceOf(HiltError);
          interrupted = true;
        });
        if (!interrupted) await expectTorn(purchase({ ...term, channel: wire }, AFTER), `${label} (the next purchase meets the cut)`);
        expect(b.medium.powerLost, `${label}: the power was cut`).toBe(true);
        const rebooted = boot(b.inner.read());
        const rwire = new Wire(rebooted.card);
        const { outcomes } = await recoverCard(rwire, term.domain, term.journal, term.config);
        report.results.push({ point: label, resolution: interrupted ? resolutionOf(term, 0, outcomes) : 'complete' });
        const balance = await checkInvariants(rebooted.card, term, `${label}, after reboot and recovery`, start);
        await purchase({ ...term, channel: rwire }, AFTER);
        expect(await checkInvariants(rebooted.card, term, `${label}, after the next purchase`, start)).toBe(balance - AFTER);
        report.cuts++;
      } finally {
        term.close();
      }
    }
    report.cutPoints++;
  }
  return report;
}

export const CAMPAIGN_START_BALANCE = START_BALANCE;
export const CAMPAIGN_AMOUNTS = { FIRST, TORN, AFTER } as const;
