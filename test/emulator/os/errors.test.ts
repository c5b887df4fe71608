import { describe, it, expect } from 'vitest';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { SwError, type Applet, type OsLogger } from '../../../emulator/os/applet.js';
import { makeCard, tx, testApplet, type CallLog } from './helpers.js';

const APPLET = fromHex('F0 00 00 00 07 01');
const OTHER = fromHex('F0 00 00 00 07 02');

function recordingLogger(): OsLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (message, fields) => lines.push(`${message} ${JSON.stringify(fields ?? {})}`) };
}

describe('malformed and unsupported frames', () => {
  const table: [string, string, string][] = [
    ['empty', '', '6700'],
    ['1 byte', '00', '6700'],
    ['2 bytes', '00 A4', '6700'],
    ['3 bytes', '00 A4 04', '6700'],
    ['3 bytes of FF', 'FF FF FF', '6700'],
    ['short Lc larger than the data', '80 10 00 00 05 01 02', '6700'],
    ['short Lc with 2 extra bytes', '80 10 00 00 02 01 02 03 04', '6700'],
    ['extended marker truncated', '80 10 00 00 00 01', '6700'],
    ['extended Lc larger than the data', '80 10 00 00 00 00 05 01 02', '6700'],
    ['extended Lc 0000 then more bytes', '80 10 00 00 00 00 00 01', '6700'],
    ['CLA FF', 'FF A4 04 00', '6E00'],
    ['CLA FF with data', 'FF 10 00 00 01 00', '6E00'],
    ['CLA 20 (RFU)', '20 10 00 00', '6E00'],
    ['CLA 3F (RFU)', '3F 10 00 00', '6E00'],
    ['CLA 2C (RFU)', '2C A4 04 00 01 F0', '6E00'],
    ['INS 60', '00 60 00 00', '6D00'],
    ['INS 6F', '80 6F 00 00 00', '6D00'],
    ['INS 90', '00 90 00 00', '6D00'],
    ['INS 9F', '80 9F 00 00 01 00', '6D00'],
    ['unknown INS, no applet', '00 10 00 00', '6D00'],
    ['unknown proprietary INS, no applet', '80 50 00 00 00', '6D00'],
    ['secure messaging, no applet', '0C 10 00 00', '6882'],
    ['SELECT by file id, no applet', '00 A4 00 0C 02 3F 00', '6A82'],
    ['channel 4 of a 4-channel card', '40 10 00 00', '6881'],
    ['closed channel 1', '01 10 00 00', '6881'],
    ['GET RESPONSE with nothing pending', '00 C0 00 00 00', '6985'],
  ];
  for (const [what, apdu, sw] of table) {
    it(`${what} → ${sw}`, async () => {
      const { card } = makeCard([{ aid: APPLET, name: 'a', applet: testApplet('a', { calls: [] }) }]);
      expect(await tx(card, apdu)).toBe(sw);
    });
  }

  it('answers 6700 to something that is not bytes', async () => {
    const { card } = makeCard([]);
    const notBytes = 'not bytes' as unknown as Uint8Array;
    expect(toHex(await card.process(notBytes))).toBe('6700');
  });
});

describe('applet faults', () => {
  it('answers 6F00 to an applet throwing a plain Error, logs it, and keeps working', async () => {
    const logger = recordingLogger();
    const log: CallLog = { calls: [] };
    const { card } = makeCard([{ aid: APPLET, name: 'flaky', applet: testApplet('flaky', log), default: true }], { logger });
    expect(await tx(card, '80 03 00 00')).toBe('6F00');
    expect(logger.lines.join('\n')).toMatch(/flaky: process failed.*flaky fails on purpose/);
    expect(await tx(card, '80 01 00 00 00')).toBe(toHex(new TextEncoder().encode('flaky')).toUpperCase() + '9000');
  });

  it('aborts the transaction of an applet that throws, returns with it open, or throws SwError', async () => {
    const logger = recordingLogger();
    const applet: Applet = {
      process(ctx, apdu) {
        ctx.transaction.begin();
        ctx.store.put('value', Uint8Array.of(apdu.p1));
        if (apdu.ins === 0x01) throw new Error('boom');
        if (apdu.ins === 0x02) return ResponseApdu.status(0x9000); // returns with the transaction open
        if (apdu.ins === 0x03) throw new SwError(0x6a80);
        ctx.transaction.commit();
        return ResponseApdu.status(0x9000);
      },
    };
    const { card, store } = makeCard([{ aid: APPLET, name: 'tx', applet, default: true }], { logger });
    const key = `app/${toHex(APPLET)}/value`;
    expect(await tx(card, '80 04 07 00')).toBe('9000');
    expect(await tx(card, '80 01 01 00')).toBe('6F00');
    expect(await tx(card, '80 02 02 00')).toBe('6F00');
    expect(await tx(card, '80 03 03 00')).toBe('6A80');
    expect(store.inTransaction).toBe(false);
    expect(toHex(store.get(key) as Uint8Array)).toBe('07');
    expect(logger.lines.filter((l) => /transaction was aborted/.test(l))).toHaveLength(3);
  });

  it('answers 6F00 when process returns something that is not a ResponseApdu', async () => {
    const applet = { process: () => 'oops' } as unknown as Applet;
    const { card } = makeCard([{ aid: APPLET, name: 'odd', applet, default: true }]);
    expect(await tx(card, '80 01 00 00')).toBe('6F00');
  });

  it('survives a logger that throws', async () => {
    const logger: OsLogger = {
      warn: () => {
        throw new Error('logger down');
      },
    };
    const { card } = makeCard([{ aid: APPLET, name: 'flaky', applet: testApplet('flaky', { calls: [] }), default: true }], { logger });
    expect(await tx(card, '80 03 00 00')).toBe('6F00');
  });

  it('treats a select() that throws as a refusal (6999) and ignores a deselect() that throws', async () => {
    const logger = recordingLogger();
    const throwing: Applet = {
      select() {
        throw new Error('no');
      },
      deselect() {
        throw new Error('no either');
      },
      process: () => ResponseApdu.status(0x9000),
    };
    const log: CallLog = { calls: [] };
    const { card } = makeCard(
      [
        { aid: APPLET, name: 'throwing', applet: throwing },
        { aid: OTHER, name: 'fine', applet: testApplet('fine', log) },
      ],
      { logger },
    );
    expect(await tx(card, `00 A4 04 0C 06 ${toHex(APPLET)}`)).toBe('6999');
    expect(logger.lines.join('\n')).toMatch(/throwing: select failed/);
    const deselectThrows: Applet = { ...throwing, select: () => true };
    const second = makeCard([
      { aid: APPLET, name: 'd', applet: deselectThrows },
      { aid: OTHER, name: 'fine', applet: testApplet('fine', log) },
    ]).card;
    expect(await tx(second, `00 A4 04 0C 06 ${toHex(APPLET)}`)).toBe('9000');
    expect(await tx(second, `00 A4 04 0C 06 ${toHex(OTHER)}`)).toBe('9000');
    expect(log.calls).toEqual(['select:fine:0']);
  });

  it('refuses status words that are not status words in SwError', () => {
    expect(new SwError(0x6a82).sw).toBe(0x6a82);
    expect(new SwError(0x9f10).code).toBe('SW');
    for (const bad of [0x1234, 0x6000, 0x7000, 0xa000, -1, 0x10000, 1.5]) {
      expect(() => new SwError(bad), String(bad)).toThrow(/SW1 61..6F or 90..9F/);
    }
  });
});
