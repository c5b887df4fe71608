import { describe, it, expect } from 'vitest';
import { fromHex } from '../../../src/util/bytes.js';
import { buildCplc, cplcOffset, CPLC_LENGTH, tlv } from '../../../emulator/os/card-data.js';
import { makeCard, tx, h, testApplet, type CallLog } from './helpers.js';

const APPLET = 'F0 00 00 00 04 01';

describe('GET DATA for card-wide tags', () => {
  it('answers CPLC with the IC serial number and batch identifier taken from the card serial', async () => {
    const { card } = makeCard([]);
    const cplc = h(`9F 7F 2A ${'00'.repeat(12)} 05 06 07 08 03 04 ${'00'.repeat(24)}`);
    expect(await tx(card, '80 CA 9F 7F 00')).toBe(cplc + '9000');
    expect(await tx(card, '00 CA 9F 7F 00')).toBe(cplc + '9000');
    expect(CPLC_LENGTH).toBe(42);
    expect(cplcOffset('icSerialNumber')).toBe(12);
    expect(cplcOffset('icBatchIdentifier')).toBe(16);
  });

  it('puts configured production data at the CPLC offsets', async () => {
    const { card } = makeCard([], {
      productionData: {
        cplc: { icFabricator: 0x4790, icType: 0xd321, operatingSystemId: 0x4700, icSerialNumber: 0xcafef00d, icPersonalizationEquipmentId: 0x11223344 },
      },
    });
    const want = h(`9F 7F 2A 47 90 D3 21 47 00 ${'00'.repeat(6)} CA FE F0 0D 03 04 ${'00'.repeat(20)} 11 22 33 44`);
    expect(await tx(card, '80 CA 9F 7F 00')).toBe(want + '9000');
  });

  it('pads a short serial on the left', () => {
    const v = buildCplc(fromHex('AB CD'));
    expect(v.subarray(12, 18)).toEqual(fromHex('00 00 AB CD 00 00'));
  });

  it('answers the card image number (the serial by default), the IIN when configured, the serial, card data', async () => {
    const plain = makeCard([]).card;
    expect(await tx(plain, '80 CA 00 45 00')).toBe(h('45 08 01 02 03 04 05 06 07 08 90 00'));
    expect(await tx(plain, '80 CA 00 42 00')).toBe('6A88');
    expect(await tx(plain, '80 CA DF 01 00')).toBe(h('DF 01 08 01 02 03 04 05 06 07 08 90 00'));
    const gp = '2A 86 48 86 FC 6B';
    expect(await tx(plain, '80 CA 00 66 00')).toBe(h(`66 24 73 22 06 07 ${gp} 01 60 0C 06 0A ${gp} 02 02 03 01 63 09 06 07 ${gp} 03 90 00`));

    const configured = makeCard([], {
      productionData: {
        issuerIdentificationNumber: fromHex('12 34 56'),
        cardImageNumber: fromHex('AA BB CC DD EE'),
        recognition: { gpVersion: [2, 2, 1], secureChannel: { scp: 0x03, i: 0x70 } },
      },
    }).card;
    expect(await tx(configured, '80 CA 00 42 00')).toBe(h('42 03 12 34 56 90 00'));
    expect(await tx(configured, '80 CA 00 45 00')).toBe(h('45 05 AA BB CC DD EE 90 00'));
    expect(await tx(configured, '80 CA 00 66 00')).toBe(
      h(`66 31 73 2F 06 07 ${gp} 01 60 0C 06 0A ${gp} 02 02 02 01 63 09 06 07 ${gp} 03 64 0B 06 09 ${gp} 04 03 70 90 00`),
    );
  });

  it('answers 6A88 for other tags when no applet is selected, and checks the form', async () => {
    const { card } = makeCard([]);
    expect(await tx(card, '80 CA 9F 36 00')).toBe('6A88');
    expect(await tx(card, '80 CA 9F 7F 01 00 00'), 'data field').toBe('6700');
    expect(await tx(card, '90 CA 9F 7F 00'), 'chained').toBe('6884');
    expect(await tx(card, '84 CA 9F 7F 00'), 'secure messaging, no applet').toBe('6882');
  });

  it('answers card tags itself whatever applet is selected, and passes other tags to the applet', async () => {
    const log: CallLog = { calls: [] };
    const { card } = makeCard([{ aid: fromHex(APPLET), name: 'app', applet: testApplet('app', log), default: true }]);
    expect(await tx(card, '80 CA DF 01 00')).toBe(h('DF 01 08 01 02 03 04 05 06 07 08 90 00'));
    expect(await tx(card, '80 CA 9F 36 00')).toBe('6D00');
    expect(await tx(card, '84 CA 9F 7F 00')).toBe('6D00');
    expect(log.calls).toEqual(['select:app:0', 'process:app:0:80ca9f3600', 'process:app:0:84ca9f7f00']);
  });

  it('fits card data to Le like any response', async () => {
    const { card } = makeCard([]);
    expect(await tx(card, '80 CA 9F 7F')).toBe('612D');
    const rest = await tx(card, '00 C0 00 00 2D');
    expect(rest.slice(0, 6)).toBe('9F7F2A');
    expect(rest.length).toBe((45 + 2) * 2);
    expect(await tx(card, '80 CA DF 01 05')).toBe(h('DF 01 08 01 02 61 06'));
  });

  it('encodes BER lengths in the long forms', () => {
    expect(tlv(0x53, new Uint8Array(0x7f)).subarray(0, 2)).toEqual(fromHex('53 7F'));
    expect(tlv(0x53, new Uint8Array(0x80)).subarray(0, 3)).toEqual(fromHex('53 81 80'));
    expect(tlv(0x53, new Uint8Array(0x100)).subarray(0, 4)).toEqual(fromHex('53 82 01 00'));
    expect(tlv(0x5f2d, new Uint8Array(1))).toEqual(fromHex('5F 2D 01 00'));
  });
});
