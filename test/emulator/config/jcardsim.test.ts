import { describe, it, expect } from 'vitest';
import { parseProperties } from '../../../emulator/config/properties.js';
import { parseJcardsimConfig, mapAppletClass } from '../../../emulator/config/jcardsim.js';
import { toHex } from '../../../src/util/bytes.js';
import { BadInputError } from '../../../src/util/errors.js';

const known = ['diagnostic', 'emoney-purse'];

describe('Java properties', () => {
  it('reads the three separators, comments, continuations and escapes', () => {
    const p = parseProperties(
      ['# comment', '! other comment', 'a=1', 'b : 2', 'c 3', '  d=x\\', '    y', 'e=tab\\there', 'f=\\u0041\\\\', 'g\\ h=sp', 'a=again'].join('\n'),
    );
    expect(Object.fromEntries(p)).toEqual({ a: 'again', b: '2', c: '3', d: 'xy', e: 'tab\there', f: 'A\\', 'g h': 'sp' });
  });
  it('keeps an escaped trailing backslash as a value, not a continuation', () => {
    expect(parseProperties('k=v\\\\\nnext=1').get('k')).toBe('v\\');
    expect(parseProperties('k=v\\\\\nnext=1').get('next')).toBe('1');
  });
  it('refuses a malformed unicode escape with a line number', () => {
    expect(() => parseProperties('\n\nk=\\u12')).toThrow(/line 3/);
  });
});

describe('jCardSim configuration', () => {
  const cfg = [
    'com.licel.jcardsim.card.ATR=3BF81300008131FE454A434F5076323431B7',
    'com.licel.jcardsim.card.applet.0.AID=F068696C74444941 47',
    'com.licel.jcardsim.card.applet.0.Class=com.example.DiagnosticApplet',
    'com.licel.jcardsim.card.applet.1.AID=A0000006472F0001',
    'com.licel.jcardsim.card.applet.1.Class=hilt:emoney-purse',
    'com.licel.jcardsim.vsmartcard.host=127.0.0.1',
    'com.licel.jcardsim.vsmartcard.port=35964',
    'com.licel.jcardsim.vsmartcard.reloader.port=1',
  ].join('\n');

  it('maps ATR, applets and the vsmartcard endpoint', () => {
    const c = parseJcardsimConfig(cfg, { known });
    expect(toHex(c.atr!)).toBe('3bf81300008131fe454a434f5076323431b7');
    expect(c.applets.map((a) => [a.index, toHex(a.aid), a.applet])).toEqual([
      [0, 'f068696c7444494147', 'diagnostic'],
      [1, 'a0000006472f0001', 'emoney-purse'],
    ]);
    expect(c.vsmartcard).toEqual({ host: '127.0.0.1', port: 35964 });
    expect(c.ignored).toEqual(['com.licel.jcardsim.vsmartcard.reloader.port']);
  });

  it('stops at the first missing index', () => {
    const c = parseJcardsimConfig(cfg.replace(/applet\.1\./g, 'applet.2.'), { known });
    expect(c.applets).toHaveLength(1);
  });

  it('uses an explicit class map', () => {
    expect(mapAppletClass('com.licel.jcardsim.samples.HelloWorldApplet', { known, classMap: { 'com.licel.jcardsim.samples.HelloWorldApplet': 'diagnostic' } })).toBe('diagnostic');
    expect(mapAppletClass('com.x.Unknown', { known })).toBeUndefined();
  });

  const bad: [string, RegExp][] = [
    ['com.licel.jcardsim.card.ATR=3BZZ', /card\.ATR: not hex/],
    ['com.licel.jcardsim.card.applet.0.AID=A000000003', /both \.AID and \.Class/],
    ['com.licel.jcardsim.card.applet.0.AID=A0000000\ncom.licel.jcardsim.card.applet.0.Class=diagnostic', /5 to 16 bytes, got 4/],
    ['com.licel.jcardsim.card.applet.0.AID=A000000003\ncom.licel.jcardsim.card.applet.0.Class=com.x.Wallet', /no emulator applet for "com.x.Wallet" \(known: diagnostic, emoney-purse\)/],
    ['com.licel.jcardsim.vsmartcard.port=70000', /vsmartcard\.port: expected 1\.\.65535/],
  ];
  it.each(bad)('refuses %j with a clear message', (text, msg) => {
    expect(() => parseJcardsimConfig(text, { known })).toThrow(BadInputError);
    expect(() => parseJcardsimConfig(text, { known })).toThrow(msg);
  });
});
