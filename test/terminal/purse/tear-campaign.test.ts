/**
 * The tear campaign (campaign.ts): the card pulled at every APDU of a purchase (and of the purchase
 * that recovers a torn one), power cut at every persistent write of a purchase in every tear mode.
 * After recovery, for every cut: card balance + completed journal amounts = starting balance, no
 * pending row, no debit counted twice. The reports say how many cut points were covered; the test
 * holds them to the counts measured on uncut purchases and checks what each cut must resolve to.
 */
import { describe, expect, it } from 'vitest';
import { TEAR_MODES } from '../../../emulator/store/medium.js';
import { runApduCampaign, runWriteCampaign, type CutResult } from './campaign.js';

function resolutions(results: CutResult[], match: RegExp): string[] {
  return [...new Set(results.filter((r) => match.test(r.point)).map((r) => r.resolution))].sort();
}

describe('tear campaign: card pulled at every APDU', () => {
  it('every APDU of a purchase and of a recovering purchase, request lost and answer lost', async () => {
    const { single, double } = await runApduCampaign();
    console.log(
      `tear campaign (purchase, card pulled): ${single.cutPoints} cut points × 2 (request lost, answer lost) = ${single.cuts} cuts; ` +
        `recovering purchase ${double.cutPoints} cut points, ${double.cuts} cuts; invariants held after every cut`,
    );
    // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS, DEBIT
    expect(single.measured).toBeGreaterThanOrEqual(5);
    expect(single.cutPoints, 'every APDU of a purchase is a cut point').toBe(single.measured);
    expect(single.cuts).toBe(2 * single.measured);
    // the recovering purchase adds READ LOG (and GET RESPONSE when the log is long)
    expect(double.measured).toBeGreaterThan(single.measured);
    expect(double.cutPoints).toBe(double.measured);
    expect(double.cuts).toBe(2 * double.measured);

    const n = single.measured;
    // before the DEBIT no row is begun; the DEBIT lost on its way never happened; its answer lost: recovered from the log
    for (let k = 1; k < n; k++) expect(resolutions(single.results, new RegExp(`^APDU ${k}/`))).toEqual(['none']);
    expect(resolutions(single.results, new RegExp(`^APDU ${n}/${n}, request-lost`))).toEqual(['never-happened']);
    expect(resolutions(single.results, new RegExp(`^APDU ${n}/${n}, answer-lost`))).toEqual(['recovered']);
    // a second tear never loses the first: the torn debit is recovered whatever APDU the second tear hits
    expect(resolutions(double.results, /./)).toEqual(['recovered']);
  });
});

describe('tear campaign: power cut at every persistent write', () => {
  it('every write of a purchase (and the first after it), every tear mode', async () => {
    const report = await runWriteCampaign();
    console.log(
      `tear campaign (purchase, power cut): ${report.measured} persistent writes (${report.debitWrites} inside DEBIT) + 1 after = ${report.cutPoints} cut points × ${report.modes.length} tear modes = ${report.cuts} cuts; invariants held after every cut`,
    );
    // INITIALIZE UPDATE's sequence counter (one store transaction) and the DEBIT's (one more): 4 writes each
    expect(report.debitWrites).toBe(4);
    expect(report.measured).toBeGreaterThanOrEqual(report.debitWrites);
    expect(report.cutPoints, `${report.cutPoints} cut points for ${report.measured} writes`).toBe(report.measured + 1);
    expect(report.cuts).toBe(report.cutPoints * TEAR_MODES.length);
    expect(report.modes).toEqual(TEAR_MODES);
    // cuts before the DEBIT: no row; inside the DEBIT: both outcomes occur; after the purchase: complete
    const firstDebitWrite = report.measured - report.debitWrites + 1;
    for (let w = 1; w < firstDebitWrite; w++) expect(resolutions(report.results, new RegExp(`^write ${w}/`))).toEqual(['none']);
    const inDebit = report.results.filter((r) => {
      const w = Number(/^write (\d+)\//.exec(r.point)![1]);
      return w >= firstDebitWrite && w <= report.measured;
    });
    expect([...new Set(inDebit.map((r) => r.resolution))].sort()).toEqual(['never-happened', 'recovered']);
    expect(resolutions(report.results, /after the purchase returned/)).toEqual(['complete']);
  });
});
