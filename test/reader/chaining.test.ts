import { describe, expect, it } from 'vitest';
import { ScriptedChannel } from '../../src/reader/mock.js';
import { MAX_CHAIN_LINKS, splitChain, withChaining } from '../../src/reader/chaining.js';
import { CommandApdu } from '../../src/apdu/command.js';
import { BadInputError } from '../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../src/util/bytes.js';

const hex = (b: Uint8Array): string => toHex(b).toUpperCase();
const data600 = Uint8Array.from({ length: 600 }, (_, i) => (i * 7 + 3) & 0xff);
const cmd600 = new CommandApdu({ cla: 0x00, ins: 0xda, p1: 0x01, p2: 0x02, data: data600, ne: 256 });

describe('withChaining', () => {
  it('sends 600 bytes as 255/255/90 with the chaining bit on all but the last, Le only on the last', async () => {
    expect(hex(cmd600.encode()).slice(0, 14)).toBe('00DA0102000258'); // extended Lc 600
    const card = new ScriptedChannel([
      [concatBytes(fromHex('10DA0102FF'), data600.subarray(0, 255)), '9000'],
      [concatBytes(fromHex('10DA0102FF'), data600.subarray(255, 510)), '9000'],
      [concatBytes(fromHex('00DA01025A'), data600.subarray(510), fromHex('00')), '01029000'],
    ]);
    const r = await withChaining()(card).transmit(cmd600.encode());
    expect(hex(r)).toBe('01029000');
    card.assertDone();
    const sent = card.log.map((e) => (e.op === 'transmit' ? CommandApdu.decode(e.command) : undefined));
    expect(sent.map((c) => c?.nc)).toEqual([255, 255, 90]);
    expect(sent.map((c) => c?.ne)).toEqual([0, 0, 256]);
    expect(sent.map((c) => c?.cla)).toEqual([0x10, 0x10, 0x00]);
  });

  it('stops the chain at the first link not answered 9000 and returns that answer', async () => {
    const card = new ScriptedChannel([
      [concatBytes(fromHex('10DA0102FF'), data600.subarray(0, 255)), '9000'],
      [concatBytes(fromHex('10DA0102FF'), data600.subarray(255, 510)), '6A80'],
    ]);
    expect(hex(await withChaining()(card).transmit(cmd600.encode()))).toBe('6A80');
    card.assertDone(); // the script has no third step: sending the last link would have failed it
  });

  it('passes commands that fit through byte for byte, the extended form included', async () => {
    const forced = '00DA010200000311223300'; // extended Lc 3 then a one-byte Le: no valid case matches
    const fits = new CommandApdu({ cla: 0, ins: 0xda, p1: 1, p2: 2, data: fromHex('112233'), extended: true }).encode();
    expect(hex(fits)).toBe('00DA0102000003112233');
    const card = new ScriptedChannel([
      [fits, '9000'],
      [forced, '6700'], // not a valid APDU: the card judges it, the wrapper does not
    ]);
    const ch = withChaining()(card);
    expect(hex(await ch.transmit(fits))).toBe('9000');
    expect(hex(await ch.transmit(fromHex(forced)))).toBe('6700');
    card.assertDone();
  });

  it('honours maxCommandData', async () => {
    const card = new ScriptedChannel([
      ['10E2000004 01020304', '9000'],
      ['10E2000004 05060708', '9000'],
      ['00E2000002 090A', '9000'],
    ]);
    await withChaining({ maxCommandData: 4 })(card).transmit(fromHex('00E200000A 0102030405060708090A'));
    card.assertDone();
  });

  it.each([
    [0x01, 0x11], // logical channel 1
    [0x84, 0x94], // GlobalPlatform secure messaging
    [0x45, 0x55], // further interindustry, channel 9
  ])('sets b5 on CLA %s → %s', async (cla, chained) => {
    const links = splitChain(new CommandApdu({ cla, ins: 0xe8, p1: 0, p2: 0, data: new Uint8Array(3) }), 2);
    expect(links.map((l) => l.cla)).toEqual([chained, cla]);
  });

  it('refuses to chain a CLA that has no chaining bit, sending nothing', async () => {
    const card = new ScriptedChannel([]);
    const cmd = new CommandApdu({ cla: 0x20, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(300) }); // an RFU class
    await expect(withChaining()(card).transmit(cmd.encode())).rejects.toThrow(/CLA 20 defines no chaining bit/);
    expect(card.log).toHaveLength(0);
  });

  it('bounds the number of links', () => {
    const cmd = new CommandApdu({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(MAX_CHAIN_LINKS + 1) });
    expect(() => splitChain(cmd, 1)).toThrow(BadInputError);
    expect(splitChain(cmd, 2)).toHaveLength(Math.ceil((MAX_CHAIN_LINKS + 1) / 2));
    expect(() => withChaining({ maxCommandData: 0 })).toThrow(/maxCommandData/);
  });

  it('keeps another caller\'s command out of the middle of a chain', async () => {
    const card = new ScriptedChannel([
      ['10E2000002 0102', '9000'],
      ['00E2000001 03', '9000'],
      ['00CA006600', '9000'],
    ]);
    const ch = withChaining({ maxCommandData: 2 })(card);
    await Promise.all([ch.transmit(fromHex('00E2000003010203')), ch.transmit(fromHex('00CA006600'))]);
    card.assertDone();
  });
});
