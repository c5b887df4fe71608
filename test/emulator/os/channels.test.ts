import { describe, it, expect } from 'vitest';
import { fromHex } from '../../../src/util/bytes.js';
import { makeCard, tx, testApplet, nameHex, type CallLog } from './helpers.js';

const AIDS = ['F0 00 00 00 02 01', 'F0 00 00 00 02 02', 'F0 00 00 00 02 03', 'F0 00 00 00 02 04'];
const NAMES = ['one', 'two', 'three', 'four'];

function fourApplets(log: CallLog, options: { maxChannels?: number; defaultFirst?: boolean; multi?: boolean } = {}) {
  return makeCard(
    AIDS.map((aid, i) => ({
      aid: fromHex(aid),
      name: NAMES[i],
      applet: testApplet(NAMES[i], log, { multi: options.multi ?? true }),
      default: i === 0 && options.defaultFirst,
    })),
    { maxChannels: options.maxChannels },
  );
}

describe('logical channels', () => {
  it('keeps one selected applet per channel on 4 channels', async () => {
    const { card } = fourApplets({ calls: [] });
    expect(await tx(card, '00 70 00 00 01')).toBe('019000');
    expect(await tx(card, '00 70 00 00 01')).toBe('029000');
    expect(await tx(card, '00 70 00 03')).toBe('9000');
    for (let ch = 0; ch < 4; ch++) {
      expect(await tx(card, `0${ch} A4 04 0C 06 ${AIDS[ch]}`)).toBe('9000');
    }
    for (let ch = 0; ch < 4; ch++) {
      expect(await tx(card, `8${ch} 01 00 00 00`), `channel ${ch}`).toBe(nameHex(NAMES[ch]) + '9000');
      expect(await tx(card, `0${ch} 05 00 00 00`)).toBe(`0${ch}9000`);
    }
  });

  it('uses the further-interindustry classes for channels 4 to 19', async () => {
    const { card } = fourApplets({ calls: [] }, { maxChannels: 20 });
    expect(await tx(card, '00 70 00 13')).toBe('9000'); // open channel 19
    expect(await tx(card, `4F A4 04 0C 06 ${AIDS[1]}`)).toBe('9000');
    expect(await tx(card, 'CF 05 00 00 00')).toBe('139000');
    expect(await tx(card, '00 70 80 13')).toBe('9000');
    expect(await tx(card, 'CF 05 00 00 00')).toBe('6881');
  });

  it('opens a channel implicitly by SELECT on it, as Java Card does', async () => {
    const { card } = fourApplets({ calls: [] });
    expect(await tx(card, '02 05 00 00 00')).toBe('6881');
    expect(await tx(card, `02 A4 04 0C 06 ${AIDS[2]}`)).toBe('9000');
    expect(await tx(card, '02 05 00 00 00')).toBe('029000');
    // a SELECT that finds nothing on a closed channel leaves it closed
    expect(await tx(card, '03 A4 04 0C 05 A0 00 00 00 77')).toBe('6A82');
    expect(await tx(card, '03 05 00 00 00')).toBe('6881');
  });

  it('assigns the lowest free channel and answers 6A81 when all are open', async () => {
    const { card } = fourApplets({ calls: [] });
    expect(await tx(card, '00 70 00 02')).toBe('9000');
    expect(await tx(card, '00 70 00 00 01')).toBe('019000');
    expect(await tx(card, '00 70 00 00 01')).toBe('039000');
    expect(await tx(card, '00 70 00 00 01')).toBe('6A81');
    expect(await tx(card, '00 70 80 02')).toBe('9000');
    expect(await tx(card, '00 70 00 00 01')).toBe('029000');
  });

  it('answers the channel number behind 61 01 when MANAGE CHANNEL has no Le', async () => {
    const { card } = fourApplets({ calls: [] });
    expect(await tx(card, '00 70 00 00')).toBe('6101');
    expect(await tx(card, '00 C0 00 00 01')).toBe('019000');
  });

  it('refuses the MANAGE CHANNEL errors with the documented status words', async () => {
    const { card } = fourApplets({ calls: [] });
    const cases: [string, string, string][] = [
      ['close the basic channel', '00 70 80 00', '6A86'],
      ['close a channel never opened', '00 70 80 01', '6881'],
      ['close a channel beyond maxChannels', '00 70 80 05', '6881'],
      ['close channel 20', '00 70 80 14', '6A86'],
      ['open channel 4 of a 4-channel card', '00 70 00 04', '6A81'],
      ['open channel 20', '00 70 00 14', '6A86'],
      ['P1 neither 00 nor 80', '00 70 01 00 01', '6A86'],
      ['data field', '00 70 00 00 01 01', '6700'],
      ['from a closed origin channel', '01 70 00 00 01', '6881'],
      ['chained', '10 70 00 00 01', '6884'],
    ];
    for (const [what, apdu, sw] of cases) expect(await tx(card, apdu), what).toBe(sw);
    expect(await tx(card, '00 70 00 01')).toBe('9000');
    expect(await tx(card, '00 70 00 01'), 'open an open channel').toBe('6A86');
    expect(await tx(card, '01 70 80 01'), 'a channel may close itself').toBe('9000');
    expect(await tx(card, '01 70 80 01'), 'closed twice').toBe('6881');
  });

  it('answers 6881 for a channel beyond maxChannels and for a closed one', async () => {
    const { card } = fourApplets({ calls: [] });
    expect(await tx(card, `40 A4 04 0C 06 ${AIDS[0]}`)).toBe('6881'); // channel 4 of 4
    expect(await tx(card, '01 01 00 00 00')).toBe('6881');
  });

  it('gives a channel opened from channel 0 the default applet, and from channel n the applet of n', async () => {
    const log: CallLog = { calls: [] };
    const { card } = fourApplets(log, { defaultFirst: true });
    expect(await tx(card, '00 70 00 00 01')).toBe('019000');
    expect(await tx(card, '01 01 00 00 00')).toBe(nameHex('one') + '9000');
    expect(await tx(card, `01 A4 04 0C 06 ${AIDS[3]}`)).toBe('9000');
    expect(await tx(card, '01 70 00 00 01')).toBe('029000');
    expect(await tx(card, '02 01 00 00 00')).toBe(nameHex('four') + '9000');
    expect(log.calls.filter((c) => c.startsWith('select') || c.startsWith('deselect'))).toEqual([
      'select:one:0',
      'select:one:1',
      'deselect:one:1',
      'select:four:1',
      'select:four:2',
    ]);
  });

  it('closes again a channel whose inherited applet cannot be selected there', async () => {
    const { card } = fourApplets({ calls: [] }, { defaultFirst: true, multi: false });
    expect(await tx(card, '00 70 00 00 01')).toBe('6985');
    expect(await tx(card, '00 70 80 01')).toBe('6881');
  });

  it('deselects the applet of a channel it closes', async () => {
    const log: CallLog = { calls: [] };
    const { card } = fourApplets(log);
    await tx(card, '00 70 00 01');
    await tx(card, `01 A4 04 0C 06 ${AIDS[1]}`);
    await tx(card, '00 70 80 01');
    expect(log.calls).toEqual(['select:two:1', 'deselect:two:1']);
  });
});
