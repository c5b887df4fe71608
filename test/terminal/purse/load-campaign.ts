/**
 * The tear campaign of the load flow (issue 7), the twin of campaign.ts for purchases: the card is
 * pulled at every APDU of a load (and of the load that recovers a torn one), power is cut at every
 * persistent write of a load in every tear mode; the card is presented again, tear recovery runs,
 * another load completes, and for every card:
 *
 *   card balance = starting balance + the amounts of the journal's moved load rows (complete, recovered)
 *   no pending row is left
 *   no load counted twice: moved rows and this terminal's LOAD records in the card's log match one
 *   to one (reader sequence, counter, amount, certificate)
 *
 * One terminal, one journal and one uplink serve the whole campaign against the real mock hosts,
 * each cut on a card of its own (the issuer keeps a history per serial). At the end the outbox is
 * forwarded and the issuer must hold every final row once, nothing lost, nothing applied twice, and
 * each card's shadow balance must be the card's.
 */
import { expect } from 'vitest';
import { FileStore } from '../../../emulator/store/file-store.js';
import { RamMedium, TEAR_MODES, TearingMedium, type TearMode } from '../../../emulator/store/medium.js';
import type { EmulatedCard } from '../../../emulator/make-card.js';
import { HiltError } from '../../../src/util/errors.js';
import { bytesEqual, toHex } from '../../../src/util/bytes.js';
import { loadPurse, readPurseBalance, recoverCard, terminalIdBytes, type RecoveryOutcome } from '../../../src/terminal/purse/index.js';
import { buildPurseCard, cardOrder, issueCard, Wire, type CutMode } from './helpers.js';
import { issuerCard, forwardAndCount, loadSerial, type LoadBench } from './load-helpers.js';
import type { HostCount } from '../../hostlink/uplink/real-hosts.js';

const START_BALANCE = 50_000;
const FIRST = 1_000;
const TORN = 2_500;
const AFTER = 400;

export type Resolution = 'none' | 'complete' | 'recovered' | 'never-happened' | 'failed';

export interface CutResult {
  point: string;
  resolution: Resolution;
}

export interface LoadCampaignReport {
  /** APDUs (or persistent writes) of one uncut load, measured. */
  measured: number;
  cutPoints: number;
  /** Cuts run (cut points × modes). */
  cuts: number;
  results: CutResult[];
}

/** The card and the journal agree (module comment). Returns the card's balance. */
async function checkCard(bench: LoadBench, card: EmulatedCard, serial: Uint8Array, label: string, start = START_BALANCE): Promise<number> {
  const { status, log } = await readPurseBalance(new Wire(card));
  const journal = bench.term.journal;
  const rows = journal.query({ cardSerial: serial, order: 'asc', limit: 10_000 });
  expect(rows.filter((r) => r.status === 'pending'), `${label}: no pending row left`).toEqual([]);
  const moved = rows.filter((r) => r.status === 'complete' || r.status === 'recovered');
  expect(moved.every((r) => r.type === 'load'), `${label}: only loads`).toBe(true);
  const loaded = moved.reduce((s, r) => s + r.amount, 0);
  expect(status.balance, `${label}: card balance = ${start} + journaled loads ${loaded}`).toBe(start + loaded);
  const tid = terminalIdBytes(bench.term.config.terminalId);
  const ours = log.filter((e) => e.type === 'load' && bytesEqual(e.terminalId, tid));
  expect(ours.length, `${label}: the card's loads from this terminal = the journal's moved rows`).toBe(moved.length);
  for (const r of moved) {
    const e = ours.find((x) => x.terminalSequence === r.readerSeq);
    expect(e, `${label}: row ${r.id} (seq ${r.readerSeq}) is on the card`).toBeDefined();
    expect([e!.counter, e!.amount, toHex(e!.certificate)], `${label}: row ${r.id} is the card's record`).toEqual([r.counterAfter, r.amount, toHex(r.certificate!)]);
  }
  const keys = journal.outbox({ limit: 100_000 }).map((x) => x.key);
  expect(new Set(keys).size, `${label}: each record queued once`).toBe(keys.length);
  return status.balance;
}

function resolutionOf(bench: LoadBench, serial: Uint8Array, outcomes: RecoveryOutcome[]): Resolution {
  const row = bench.term.journal.query({ cardSerial: serial, order: 'asc', limit: 100 }).find((r) => r.amount === TORN);
  if (row === undefined) return 'none';
  const o = outcomes.find((x) => x.journalId === row.id);
  if (o !== undefined) return o.resolution;
  return row.status === 'pending' ? 'none' : row.status;
}

async function expectTorn(p: Promise<unknown>, label: string): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `${label}: the load is interrupted`).toBeInstanceOf(HiltError);
}

/** After the campaign: the issuer holds every final row once, and each card's shadow balance is the card's. */
async function checkIssuer(bench: LoadBench, cards: { serial: Uint8Array; card: EmulatedCard }[]): Promise<HostCount> {
  const count = await forwardAndCount(bench);
  for (const { serial, card } of cards) {
    const view = await issuerCard(bench.hosts, serial);
    const balance = (await readPurseBalance(new Wire(card))).status.balance;
    expect(view?.balance, `issuer's shadow balance of ${toHex(serial)}`).toBe(balance);
  }
  return count;
}

const CUT_MODES: readonly CutMode[] = ['request-lost', 'answer-lost'];

export interface ApduCampaign {
  single: LoadCampaignReport;
  double: LoadCampaignReport;
  host: HostCount;
}

/** The card pulled at every APDU of a load, and of a load that recovers a torn one. `serials` numbers the cards from `firstSerial`. */
export async function runLoadApduCampaign(bench: LoadBench, firstSerial: number): Promise<ApduCampaign> {
  let next = firstSerial;
  const cards: { serial: Uint8Array; card: EmulatedCard }[] = [];
  const newCard = async (): Promise<{ serial: Uint8Array; card: EmulatedCard; wire: Wire }> => {
    const serial = loadSerial(next++);
    const card = await issueCard({ serial, initialLoad: START_BALANCE });
    cards.push({ serial, card });
    return { serial, card, wire: new Wire(card) };
  };
  const term = (wire: Wire) => ({ ...bench.term, channel: wire });

  // Measured: one load with nothing pending, and one that recovers a torn LOAD.
  const m = await newCard();
  await loadPurse(term(m.wire), bench.uplink, FIRST);
  const plain = m.wire.count;
  m.wire.cut = { at: m.wire.count + plain, mode: 'answer-lost' };
  await expectTorn(loadPurse(term(m.wire), bench.uplink, TORN), 'measure');
  m.wire.reinsert();
  const before = m.wire.count;
  const rec = await loadPurse(term(m.wire), bench.uplink, AFTER);
  expect(rec.recovered.map((o) => o.resolution)).toEqual(['recovered']);
  const recovering = m.wire.count - before;

  const single: LoadCampaignReport = { measured: plain, cutPoints: 0, cuts: 0, results: [] };
  const double: LoadCampaignReport = { measured: recovering, cutPoints: 0, cuts: 0, results: [] };
  /** After `tear` on a fresh card: recovery, the card checked, a load that completes, the card checked again. */
  const cutAndRecover = async (report: LoadCampaignReport, label: string, tear: (wire: Wire) => Promise<void>): Promise<void> => {
    const { serial, card, wire } = await newCard();
    await tear(wire);
    wire.reinsert();
    const { outcomes } = await recoverCard(wire, bench.term.domain, bench.term.journal, bench.term.config);
    report.results.push({ point: label, resolution: resolutionOf(bench, serial, outcomes) });
    const balance = await checkCard(bench, card, serial, `${label}, after recovery`);
    await loadPurse(term(wire), bench.uplink, AFTER);
    expect(await checkCard(bench, card, serial, `${label}, after the next load`)).toBe(balance + AFTER);
    report.cuts++;
  };
  for (let k = 1; k <= plain; k++) {
    for (const mode of CUT_MODES) {
      const label = `APDU ${k}/${plain}, ${mode}`;
      await cutAndRecover(single, label, async (wire) => {
        wire.cut = { at: k, mode };
        await expectTorn(loadPurse(term(wire), bench.uplink, TORN), label);
      });
    }
    single.cutPoints++;
  }
  // A tear on a tear: the LOAD's answer is lost, then the card leaves at APDU k of the load that recovers it.
  for (let k = 1; k <= recovering; k++) {
    for (const mode of CUT_MODES) {
      const label = `recovering load, APDU ${k}/${recovering}, ${mode}`;
      await cutAndRecover(double, label, async (wire) => {
        wire.cut = { at: plain, mode: 'answer-lost' };
        await expectTorn(loadPurse(term(wire), bench.uplink, TORN), `${label} (first tear)`);
        wire.reinsert();
        wire.cut = { at: wire.count + k, mode };
        await expectTorn(loadPurse(term(wire), bench.uplink, AFTER), label);
      });
    }
    double.cutPoints++;
  }
  return { single, double, host: await checkIssuer(bench, cards) };
}

/** A card booted on `image`, its store on a tearing medium over RAM. */
function boot(serial: Uint8Array, image: Uint8Array, cut?: { at: number; mode: TearMode }): { card: EmulatedCard; medium: TearingMedium; inner: RamMedium } {
  const inner = RamMedium.from(image);
  const medium = new TearingMedium(inner, cut ? { cutAfter: cut.at, mode: cut.mode } : {});
  const card = buildPurseCard(cardOrder({ serial, store: FileStore.open(medium) }));
  return { card, medium, inner };
}

/** An issued card (50,000 loaded by the bureau) as the bytes of its store. */
async function issuedImage(serial: Uint8Array): Promise<Uint8Array> {
  const inner = new RamMedium();
  await issueCard({ serial, initialLoad: START_BALANCE, store: FileStore.open(new TearingMedium(inner)) });
  return inner.read() as Uint8Array;
}

export interface WriteCampaign extends LoadCampaignReport {
  modes: readonly TearMode[];
  /** Persistent writes of the LOAD command itself (the rest are INITIALIZE UPDATE's). */
  loadWrites: number;
  host: HostCount;
}

/** Power cut at every persistent write of a load (and the first after it), every tear mode. */
export async function runLoadWriteCampaign(bench: LoadBench, firstSerial: number): Promise<WriteCampaign> {
  let next = firstSerial;
  const cards: { serial: Uint8Array; card: EmulatedCard }[] = [];
  const term = (wire: Wire) => ({ ...bench.term, channel: wire });

  // Writes of one uncut load on a freshly issued card, and how many of them the LOAD makes.
  const mSerial = loadSerial(next++);
  const measured = boot(mSerial, await issuedImage(mSerial));
  const mWire = new Wire(measured.card);
  let beforeLoad = 0;
  mWire.tamper = (bytes) => {
    if (bytes[1] === 0x52) beforeLoad = measured.medium.writes;
    return bytes;
  };
  await loadPurse(term(mWire), bench.uplink, FIRST);
  cards.push({ serial: mSerial, card: measured.card });
  const writes = measured.medium.writes;
  const loadWrites = writes - beforeLoad;

  const report: WriteCampaign = { measured: writes, cutPoints: 0, cuts: 0, results: [], modes: TEAR_MODES, loadWrites, host: { expected: 0, advices: 0, lost: 0, appliedTwice: 0, anomalies: {} } };
  for (let n = 1; n <= writes + 1; n++) {
    for (const mode of TEAR_MODES) {
      const label = `write ${n}/${writes}${n > writes ? ' (after the load returned)' : ''}, ${mode}`;
      const serial = loadSerial(next++);
      const b = boot(serial, await issuedImage(serial), { at: n, mode });
      const wire = new Wire(b.card);
      let interrupted = false;
      await loadPurse(term(wire), bench.uplink, TORN).catch((e: unknown) => {
        expect(e, label).toBeInstanceOf(HiltError);
        interrupted = true;
      });
      if (!interrupted) await expectTorn(loadPurse(term(wire), bench.uplink, AFTER), `${label} (the next load meets the cut)`);
      expect(b.medium.powerLost, `${label}: the power was cut`).toBe(true);
      const rebooted = boot(serial, b.inner.read() as Uint8Array);
      const rwire = new Wire(rebooted.card);
      const { outcomes } = await recoverCard(rwire, bench.term.domain, bench.term.journal, bench.term.config);
      report.results.push({ point: label, resolution: interrupted ? resolutionOf(bench, serial, outcomes) : 'complete' });
      const balance = await checkCard(bench, rebooted.card, serial, `${label}, after reboot and recovery`);
      await loadPurse(term(rwire), bench.uplink, AFTER);
      expect(await checkCard(bench, rebooted.card, serial, `${label}, after the next load`)).toBe(balance + AFTER);
      cards.push({ serial, card: rebooted.card });
      report.cuts++;
    }
    report.cutPoints++;
  }
  report.host = await checkIssuer(bench, cards);
  return report;
}
