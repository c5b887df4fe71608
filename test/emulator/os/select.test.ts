import { describe, it, expect } from 'vitest';
import { fromHex } from '../../../src/util/bytes.js';
import { makeCard, tx, h, testApplet, nameHex, type CallLog } from './helpers.js';

const ALPHA = 'F0 00 00 00 01 01';
const BETA = 'F0 00 00 00 01 02';
const GAMMA = 'F0 00 00 00 01 02 03';
const PREFIX = 'F0 00 00 00 01';

function threeApplets(log: CallLog, extra: { defaultAlpha?: boolean; refuseBeta?: boolean } = {}) {
  return makeCard([
    { aid: fromHex(ALPHA), name: 'alpha', applet: testApplet('alpha', log), default: extra.defaultAlpha },
    { aid: fromHex(BETA), name: 'beta', applet: testApplet('beta', log, { refuseSelect: extra.refuseBeta }) },
    { aid: fromHex(GAMMA), name: 'gamma', applet: testApplet('gamma', log) },
    { aid: fromHex('A0 00 00 00 99'), name: 'hidden', applet: testApplet('hidden', log), selectable: false },
  ]);
}

/** The name of the applet selected on channel 0, through its INS 01. */
async function whoIsSelected(card: ReturnType<typeof makeCard>['card'], cla = '00'): Promise<string> {
  return tx(card, `${cla} 01 00 00 00`);
}

describe('SELECT by AID', () => {
  it('selects by full AID and answers the default FCI 6F{84 AID, A5{50 name}}', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log);
    expect(await tx(card, `00 A4 04 00 06 ${ALPHA} 00`)).toBe(h(`6F 11 84 06 ${ALPHA} A5 07 50 05 ${nameHex('alpha')} 90 00`));
    expect(await whoIsSelected(card)).toBe(nameHex('alpha') + '9000');
    expect(log.calls).toEqual(['select:alpha:0', `process:alpha:0:0001000000`]);
  });

  it('selects by a partial AID: first, next, next, then 6A82 keeps the last one; last and previous', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log);
    expect(await tx(card, `00 A4 04 0C 05 ${PREFIX}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('alpha') + '9000');
    expect(await tx(card, `00 A4 04 0E 05 ${PREFIX}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('beta') + '9000');
    expect(await tx(card, `00 A4 04 0E 05 ${PREFIX}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('gamma') + '9000');
    expect(await tx(card, `00 A4 04 0E 05 ${PREFIX}`)).toBe('6A82');
    expect(await whoIsSelected(card)).toBe(nameHex('gamma') + '9000');
    // previous from gamma is beta; last is gamma
    expect(await tx(card, `00 A4 04 0F 05 ${PREFIX}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('beta') + '9000');
    expect(await tx(card, `00 A4 04 0D 05 ${PREFIX}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('gamma') + '9000');
    // a longer prefix narrows the matches: F0..01 02 matches beta and gamma only
    expect(await tx(card, `00 A4 04 0C 06 ${BETA}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('beta') + '9000');
    expect(await tx(card, `00 A4 04 0E 06 ${BETA}`)).toBe('9000');
    expect(await whoIsSelected(card)).toBe(nameHex('gamma') + '9000');
  });

  it('deselects the current applet before selecting the next one, also when reselecting the same', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log);
    await tx(card, `00 A4 04 0C 06 ${ALPHA}`);
    await tx(card, `00 A4 04 0C 06 ${BETA}`);
    await tx(card, `00 A4 04 0C 06 ${BETA}`);
    expect(log.calls).toEqual(['select:alpha:0', 'deselect:alpha:0', 'select:beta:0', 'deselect:beta:0', 'select:beta:0']);
  });

  it('answers 6A82 for an unknown AID and leaves the current applet selected', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log);
    await tx(card, `00 A4 04 0C 06 ${ALPHA}`);
    expect(await tx(card, '00 A4 04 00 05 A0 00 00 00 01 00')).toBe('6A82');
    expect(await whoIsSelected(card)).toBe(nameHex('alpha') + '9000');
  });

  it('never selects an applet registered as not selectable', async () => {
    const { card } = threeApplets({ calls: [] });
    expect(await tx(card, '00 A4 04 00 05 A0 00 00 00 99 00')).toBe('6A82');
  });

  it('answers 6999 when the applet refuses, and then no applet is selected on the channel', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log, { refuseBeta: true });
    await tx(card, `00 A4 04 0C 06 ${ALPHA}`);
    expect(await tx(card, `00 A4 04 00 06 ${BETA} 00`)).toBe('6999');
    expect(log.calls).toEqual(['select:alpha:0', 'deselect:alpha:0', 'select:beta:0']);
    // no applet: the OS answers the applet's INS with 6D00
    expect(await whoIsSelected(card)).toBe('6D00');
  });

  it('checks P2 and the AID length', async () => {
    const { card } = threeApplets({ calls: [] });
    for (const p2 of ['04', '08', '10', '80']) {
      expect(await tx(card, `00 A4 04 ${p2} 06 ${ALPHA}`), `P2 ${p2}`).toBe('6A86');
    }
    expect(await tx(card, '00 A4 04 00 00')).toBe('6700'); // no AID (case 2)
    expect(await tx(card, `00 A4 04 00 11 ${'F0'.repeat(17)}`)).toBe('6700');
  });

  it('fits the FCI to Le: no Le gives 61xx, a short Le gives part and 61xx', async () => {
    const { card } = threeApplets({ calls: [] });
    expect(await tx(card, `00 A4 04 00 06 ${ALPHA}`)).toBe('6113');
    expect(await tx(card, '00 C0 00 00 13')).toBe(h(`6F 11 84 06 ${ALPHA} A5 07 50 05 ${nameHex('alpha')} 90 00`));
    expect(await tx(card, `00 A4 04 00 06 ${ALPHA} 04`)).toBe(h(`6F 11 84 06 61 0F`));
  });

  it('selects the default applet at power-on, and none after a refused select until the next reset', async () => {
    const log: CallLog = { calls: [] };
    const { card } = threeApplets(log, { defaultAlpha: true, refuseBeta: true });
    expect(await whoIsSelected(card)).toBe(nameHex('alpha') + '9000');
    await tx(card, `00 A4 04 00 06 ${BETA}`);
    expect(await whoIsSelected(card)).toBe('6D00');
    card.reset();
    expect(await whoIsSelected(card)).toBe(nameHex('alpha') + '9000');
  });

  it('uses an FCI the applet supplies', async () => {
    const log: CallLog = { calls: [] };
    const applet = { ...testApplet('own', log), fci: () => fromHex('6F 03 84 01 AA') };
    const { card } = makeCard([{ aid: fromHex(ALPHA), name: 'own', applet }]);
    expect(await tx(card, `00 A4 04 00 06 ${ALPHA} 00`)).toBe('6F038401AA9000');
  });

  it('answers 6985 when a non-multiselectable applet is already selected on another channel', async () => {
    const log: CallLog = { calls: [] };
    const { card } = makeCard([{ aid: fromHex(ALPHA), name: 'single', applet: testApplet('single', log, { multi: false }) }]);
    expect(await tx(card, `00 A4 04 0C 06 ${ALPHA}`)).toBe('9000');
    expect(await tx(card, `01 A4 04 0C 06 ${ALPHA}`)).toBe('6985');
    // the failed SELECT opened channel 1 and closed it again
    expect(await tx(card, '01 01 00 00 00')).toBe('6881');
    // reselecting on its own channel is not a multiselection
    expect(await tx(card, `00 A4 04 0C 06 ${ALPHA}`)).toBe('9000');
  });

  it('refuses bad registrations', () => {
    const a = testApplet('a', { calls: [] });
    expect(() => makeCard([{ aid: fromHex('F0 01'), name: 'short', applet: a }])).toThrow(/aid length/);
    expect(() =>
      makeCard([
        { aid: fromHex(ALPHA), name: 'one', applet: a },
        { aid: fromHex(ALPHA), name: 'two', applet: a },
      ]),
    ).toThrow(/already used by one/);
    expect(() =>
      makeCard([
        { aid: fromHex(ALPHA), name: 'one', applet: a, default: true },
        { aid: fromHex(BETA), name: 'two', applet: a, default: true },
      ]),
    ).toThrow(/at most one default/);
    expect(() => makeCard([], { maxChannels: 21 })).toThrow(/maxChannels/);
  });
});
