/**
 * The load's tear campaign (load-campaign.ts) against the real mock hosts: the card pulled at every
 * APDU of a load and of a recovering load, power cut at every persistent write of a load in every
 * tear mode. After recovery and store-and-forward: card balance = start + completed loads, no
 * pending row, the issuer applied each row once and shadows each card's balance. The reports say
 * how many cut points were covered; the test holds them to the counts measured on uncut loads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEAR_MODES } from '../../../emulator/store/medium.js';
import { runLoadApduCampaign, runLoadWriteCampaign, type CutResult } from './load-campaign.js';
import { openLoadBench, type LoadBench } from './load-helpers.js';

function resolutions(results: CutResult[], match: RegExp): string[] {
  return [...new Set(results.filter((r) => match.test(r.point)).map((r) => r.resolution))].sort();
}

let bench: LoadBench;
beforeAll(async () => {
  bench = await openLoadBench();
});
afterAll(async () => {
  await bench.close();
});

describe('load tear campaign: card pulled at every APDU', () => {
  it('every APDU of a load and of a recovering load, request lost and answer lost; the issuer applies each row once', async () => {
    const { single, double, host } = await runLoadApduCampaign(bench, 0x100);
    console.log(
      `tear campaign (load, card pulled): ${single.cutPoints} cut points, ${single.cuts} cuts; recovering load ${double.cutPoints} cut points, ${double.cuts} cuts; ` +
        `issuer: lost ${host.lost}, applied twice ${host.appliedTwice}`,
    );
    // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS, LOAD
    expect(single.measured).toBe(5);
    expect(single.cutPoints).toBe(single.measured);
    expect(single.cuts).toBe(2 * single.measured);
    // the recovering load adds READ LOG (two records on the card: no GET RESPONSE)
    expect(double.measured).toBe(single.measured + 1);
    expect(double.cutPoints).toBe(double.measured);
    expect(double.cuts).toBe(2 * double.measured);

    const n = single.measured;
    for (let k = 1; k < n; k++) expect(resolutions(single.results, new RegExp(`^APDU ${k}/`))).toEqual(['none']);
    expect(resolutions(single.results, new RegExp(`^APDU ${n}/${n}, request-lost`))).toEqual(['never-happened']);
    expect(resolutions(single.results, new RegExp(`^APDU ${n}/${n}, answer-lost`))).toEqual(['recovered']);
    expect(resolutions(double.results, /./)).toEqual(['recovered']);

    expect(host.lost, 'rows the issuer does not hold').toBe(0);
    expect(host.appliedTwice, 'rows the issuer applied twice').toBe(0);
    expect(host.expected).toBe(host.advices);
    expect(host.anomalies).toEqual({});
  });
});

describe('load tear campaign: power cut at every persistent write', () => {
  it('every write of a load (and the first after it), every tear mode; the issuer applies each row once', async () => {
    const report = await runLoadWriteCampaign(bench, 0x200);
    console.log(
      `tear campaign (load, power cut): ${report.measured} persistent writes (${report.loadWrites} inside LOAD) + 1 after = ${report.cutPoints} cut points × ${report.modes.length} tear modes = ${report.cuts} cuts; ` +
        `issuer: lost ${report.host.lost}, applied twice ${report.host.appliedTwice}`,
    );
    // INITIALIZE UPDATE's sequence counter (one store transaction) and the LOAD's (one more): 4 writes each, as for DEBIT
    expect(report.loadWrites).toBe(4);
    expect(report.measured).toBeGreaterThan(report.loadWrites);
    expect(report.cutPoints).toBe(report.measured + 1);
    expect(report.cuts).toBe(report.cutPoints * TEAR_MODES.length);
    expect(report.modes).toEqual(TEAR_MODES);
    const firstLoadWrite = report.measured - report.loadWrites + 1;
    for (let w = 1; w < firstLoadWrite; w++) expect(resolutions(report.results, new RegExp(`^write ${w}/`))).toEqual(['none']);
    const inLoad = report.results.filter((r) => {
      const w = Number(/^write (\d+)\//.exec(r.point)![1]);
      return w >= firstLoadWrite && w <= report.measured;
    });
    expect([...new Set(inLoad.map((r) => r.resolution))].sort()).toEqual(['never-happened', 'recovered']);
    expect(resolutions(report.results, /after the load returned/)).toEqual(['complete']);

    expect(report.host.lost).toBe(0);
    expect(report.host.appliedTwice).toBe(0);
    expect(report.host.anomalies).toEqual({});
  });
});
