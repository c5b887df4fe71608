/**
 * jCardSim-compatible card configuration. The emulator reads the same properties jCardSim does:
 *
 *   com.licel.jcardsim.card.ATR=3B...                  the card's ATR (hex)
 *   com.licel.jcardsim.card.applet.N.AID=A0000000...   applet N's AID (hex), N = 0, 1, 2 ...
 *   com.licel.jcardsim.card.applet.N.Class=a.b.Name    applet N's class
 *   com.licel.jcardsim.vsmartcard.host=localhost       where the vpcd server (reader side) listens
 *   com.licel.jcardsim.vsmartcard.port=35963
 *
 * `Class` names a Java class in jCardSim; here it is mapped to one of the emulator's applets: an
 * emulator applet name as is ("diagnostic"), or `hilt:<name>`, or a Java class name whose last
 * segment, less a trailing "Applet", matches a name case-insensitively (org.x.DiagnosticApplet →
 * diagnostic), or an entry of the explicit class map passed by the caller. Indexes are read from 0
 * upward until one is missing (jCardSim documents 0..10; we read up to MAX_APPLETS).
 */
import { BadInputError } from '../../src/util/errors.js';
import { fromHex } from '../../src/util/bytes.js';
import { parseProperties } from './properties.js';

const PREFIX = 'com.licel.jcardsim.';
export const MAX_APPLETS = 64;

export interface JcardsimApplet {
  index: number;
  aid: Uint8Array;
  /** The Class value as written. */
  className: string;
  /** The emulator applet it maps to. */
  applet: string;
}

export interface JcardsimConfig {
  atr?: Uint8Array;
  applets: JcardsimApplet[];
  vsmartcard: { host?: string; port?: number };
  /** Keys under com.licel.jcardsim. that hilt does not use (reported, not fatal). */
  ignored: string[];
}

export interface MapOptions {
  /** The emulator's applet names. */
  known: readonly string[];
  /** Extra Java class → applet name mappings. */
  classMap?: Readonly<Record<string, string>>;
}

export function mapAppletClass(className: string, opts: MapOptions): string | undefined {
  const mapped = opts.classMap?.[className];
  if (mapped !== undefined) return opts.known.includes(mapped) ? mapped : undefined;
  const bare = className.startsWith('hilt:') ? className.slice(5) : className;
  if (opts.known.includes(bare)) return bare;
  const last = (bare.split('.').pop() ?? bare).replace(/Applet$/, '').toLowerCase();
  return opts.known.find((n) => n.toLowerCase() === last || n.replace(/[-_]/g, '').toLowerCase() === last);
}

export function parseJcardsimConfig(text: string, opts: MapOptions): JcardsimConfig {
  const props = parseProperties(text);
  const used = new Set<string>();
  const take = (key: string): string | undefined => {
    const v = props.get(PREFIX + key);
    if (v !== undefined) used.add(PREFIX + key);
    return v?.trim();
  };
  const hexValue = (key: string, v: string): Uint8Array => {
    try {
      return fromHex(v);
    } catch {
      throw new BadInputError(`${PREFIX}${key}: not hex: "${v}"`);
    }
  };

  const atrText = take('card.ATR');
  const config: JcardsimConfig = { applets: [], vsmartcard: {}, ignored: [] };
  if (atrText !== undefined) config.atr = hexValue('card.ATR', atrText);

  for (let i = 0; i < MAX_APPLETS; i++) {
    const aidText = take(`card.applet.${i}.AID`);
    const cls = take(`card.applet.${i}.Class`);
    if (aidText === undefined && cls === undefined) break;
    if (aidText === undefined || cls === undefined) {
      throw new BadInputError(`${PREFIX}card.applet.${i}: both .AID and .Class are required, got only ${aidText === undefined ? '.Class' : '.AID'}`);
    }
    const aid = hexValue(`card.applet.${i}.AID`, aidText);
    if (aid.length < 5 || aid.length > 16) {
      throw new BadInputError(`${PREFIX}card.applet.${i}.AID: an AID has 5 to 16 bytes, got ${aid.length}`);
    }
    const applet = mapAppletClass(cls, opts);
    if (applet === undefined) {
      throw new BadInputError(`${PREFIX}card.applet.${i}.Class: no emulator applet for "${cls}" (known: ${opts.known.join(', ')})`);
    }
    config.applets.push({ index: i, aid, className: cls, applet });
  }

  const host = take('vsmartcard.host');
  if (host !== undefined && host !== '') config.vsmartcard.host = host;
  const port = take('vsmartcard.port');
  if (port !== undefined) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new BadInputError(`${PREFIX}vsmartcard.port: expected 1..65535, got "${port}"`);
    config.vsmartcard.port = n;
  }
  config.ignored = [...props.keys()].filter((k) => k.startsWith(PREFIX) && !used.has(k)).sort();
  return config;
}
