/**
 * hilt's ATR parser against pcsc-tools' ATR_analysis, field by field, on the ATRs recorded in
 * test/fixtures/atr/atr-analysis.json (made by scripts/make-atr-fixture.mjs; ATR_analysis is not
 * needed to run this). HILT_ATR_FIXTURE=<file> runs the same comparison on another recording, e.g.
 * one made with --all over the whole smartcard_list.txt.
 *
 * Where ATR_analysis and hilt differ on purpose, the mapping is spelled out here and checked, so a
 * difference that is not one of these fails the test:
 *
 *  M1 Structure. ATR_analysis prints "ERROR! ATR is truncated / too long" and goes on; it stops
 *     silently when interface bytes run past the end. hilt refuses all three (ATR_MALFORMED).
 *  M2 TCK presence. ATR_analysis takes the last byte as TCK iff exactly K+1 bytes follow the
 *     interface bytes, whatever the protocols. hilt agrees on those ATRs (for T=0-only ATRs it
 *     reads that byte as an optional TCK and warns), but when a protocol other than T=0 is
 *     indicated and no TCK follows, hilt refuses the ATR; ATR_analysis says nothing.
 *  M3 TB1. ATR_analysis prints "I: <b8..b6> milliamperes", the raw code including b8, not a
 *     current; hilt reports II (b7..b6) and the current from the ISO table.
 *  M4 f(max). ATR_analysis prints f(max) with %d, so Fi code A (7.5 MHz) shows as 7.
 *     Bit rates are printed truncated (%d); hilt's are exact, compared after truncation.
 *  M5 TAi/TBi/TCi for i >= 3. ISO 7816-3 defines only the first TA/TB/TC for T=1 (IFSC, BWI/CWI,
 *     error detection) and for T=15 (clock stop/class, SPU). ATR_analysis decodes every TA/TB/TC
 *     after a T=1 TD as T=1 bytes, and every TA after a TD other than T=1 as the T=15 clock-stop
 *     byte. Where hilt leaves such a byte undecoded, the test checks ATR_analysis printed the line
 *     the quirk predicts. TC for T=1: ATR_analysis says RFU for any value but 00/01; hilt decodes
 *     b1 and flags the other bits (rfuBits).
 *  M6 Compact-TLV walk. ATR_analysis consumes one byte for tag 3 whatever its length, consumes
 *     nothing for tag 7 or 8 objects whose length is not 1..3, and nothing for unknown tags whose
 *     length nibble is A..F (Perl reads "A" as 0). From the first such object on, its walk no
 *     longer follows the encoding; objects are compared up to and including that one. A value
 *     running past the end is shortened by ATR_analysis and reported by hilt in historical.error.
 *  M7 LCS names. ATR_analysis says "unknown" where ISO says RFU (02, 08..0B) and, through a typo
 *     in its pattern, for 0F (termination state in ISO).
 *  M8 Status word meanings come from Chipcard::PCSC's dictionary; only the SW value is compared.
 *  M9 PC/SC Part 3 contactless ATRs ("80 4F 0C <RID> <SS> <NN NN> 00 00 00 00"): ATR_analysis reads
 *     4F as compact-TLV tag 4, length 15, and prints the 13 bytes there are; hilt recognises the
 *     PC/SC layout (historical.pcsc) and reads no compact-TLV objects.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseAtr, bitRate, type Atr, type InterfaceByte, type HistoricalObject } from '../../src/apdu/atr.js';
import { DecodeError } from '../../src/util/errors.js';
import { fromHex, toSpacedHex } from '../../src/util/bytes.js';

interface AnalysisByte {
  name: 'TA' | 'TB' | 'TC' | 'TD';
  i: number;
  value: string;
  text: string;
  fields: Record<string, string | boolean>;
}
interface AnalysisTlv {
  tag: string;
  len: string;
  name: string;
  lines: string[];
  lcs?: string;
  lcsText?: string;
  sw?: string;
}
interface Analysis {
  ts?: { value: string; text: string };
  t0?: { value: string; y1: string; k: number };
  interfaceBytes: AnalysisByte[];
  historicalBytes?: string[];
  errors: string[];
  complete: boolean;
  category?: { value: string; text: string };
  dirReference?: string;
  compactTlv?: AnalysisTlv[];
  statusIndicator?: { lcs?: string; lcsText?: string; sw?: string };
  tck?: { value: string; correct: boolean; expected?: string };
  notMicroprocessor?: boolean;
}
interface Entry {
  atr: string;
  /** 'smartcard_list' (a real card's ATR) or 'synthetic' (made to reach unused FI/DI codes). */
  source: 'smartcard_list' | 'synthetic';
  features: string[];
  analysis: Analysis;
  raw: string;
}

const fixturePath = process.env.HILT_ATR_FIXTURE ?? new URL('../fixtures/atr/atr-analysis.json', import.meta.url);
const entries = JSON.parse(readFileSync(fixturePath, 'utf8')) as Entry[];

const h2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

/** M1 and M2: why hilt must refuse this ATR, judging by what ATR_analysis printed. */
function expectedRefusal(e: Entry): RegExp | undefined {
  const a = e.analysis;
  if (a.notMicroprocessor) return /TS must be/;
  // ATR_analysis stops printing as soon as the bytes run out, even when nothing is missing (an
  // ATR that ends with its last interface byte); the interface bytes the Y nibbles announce tell
  // the two apart.
  if (!a.complete && announcedInterfaceBytes(a) > a.interfaceBytes.length) return /interface byte .* missing/;
  if (!a.complete && (a.t0?.k ?? 0) > 0) return /truncated/;
  if (a.errors.some((x) => x.startsWith('ATR is truncated'))) return /truncated/;
  if (a.errors.some((x) => x.startsWith('ATR is too long'))) return /too long/;
  const protocols = a.interfaceBytes.filter((b) => b.name === 'TD').map((b) => Number(b.fields.protocol));
  if (protocols.some((t) => t !== 0) && a.tck === undefined) return /TCK missing/;
  return undefined;
}

function announcedInterfaceBytes(a: Analysis): number {
  const ones = (bits: string) => [...bits].filter((c) => c === '1').length;
  let n = ones(a.t0?.y1 ?? '0000');
  for (const b of a.interfaceBytes) if (b.name === 'TD') n += ones(String(b.fields.y));
  return n;
}

function compareTa1(ours: InterfaceByte, theirs: AnalysisByte) {
  const d = ours.decoded;
  expect(d.kind).toBe('rate');
  if (d.kind !== 'rate') return;
  const f = theirs.fields;
  expect(f.Fi).toBe(d.fi === null ? 'RFU' : String(d.fi));
  expect(f.Di).toBe(d.di === null ? 'RFU' : String(d.di));
  if (d.fi === null || d.di === null || d.fmaxMHz === null || d.cyclesPerEtu === null) {
    expect(f.cyclesPerEtu).toBeUndefined();
    return;
  }
  // %g: six significant digits.
  expect(Number(f.cyclesPerEtu)).toBeCloseTo(d.cyclesPerEtu, 3);
  expect(Number(f.bitsPerSecondAt4MHz)).toBe(Math.floor(bitRate(d.fi, d.di, 4e6) + 1e-9));
  expect(Number(f.fmaxMHz)).toBe(Math.trunc(d.fmaxMHz)); // M4
  expect(Number(f.bitsPerSecondAtFmax)).toBe(Math.floor(bitRate(d.fi, d.di, d.fmaxMHz * 1e6) + 1e-9));
}

function compareInterfaceByte(ours: InterfaceByte, theirs: AnalysisByte, tOfPrevious: number) {
  expect(`${ours.name}${ours.i}`).toBe(`${theirs.name}${theirs.i}`);
  expect(h2(ours.value)).toBe(theirs.value);
  const d = ours.decoded;
  const f = theirs.fields;
  if (ours.name === 'TD') {
    expect(d).toMatchObject({ kind: 'next', protocol: Number(f.protocol), globalFollows: f.globalFollows });
    if (d.kind === 'next') expect(d.y.toString(2).padStart(4, '0')).toBe(f.y);
    return;
  }
  if (ours.i === 1) {
    if (ours.name === 'TA') return compareTa1(ours, theirs);
    if (ours.name === 'TB') {
      expect(d.kind).toBe('vpp');
      if (d.kind !== 'vpp') return;
      expect(d.connected).toBe(f.vppConnected);
      if (d.connected) {
        expect(Number(f.P)).toBe(d.pi1);
        expect(Number(f.I)).toBe(ours.value >> 5); // M3
        expect(Number(f.I) & 3).toBe(d.ii);
      }
      return;
    }
    expect(d).toEqual({ kind: 'extra-guard-time', n: Number(f.extraGuardTime), special: f.special });
    return;
  }
  if (ours.i === 2) {
    if (ours.name === 'TA') {
      expect(d).toEqual({ kind: 'specific-mode', protocol: Number(f.protocol), canChange: f.change === 'Capable', implicit: f.definition === 'implicity defined' });
    } else if (ours.name === 'TB') {
      expect(d).toMatchObject({ kind: 'vpp2', pi2: Number(f.PI2) });
      if (d.kind === 'vpp2') expect(d.vppDecivolts === null).toBe(f.rfu);
    } else {
      expect(d).toEqual({ kind: 'waiting-integer', wi: Number(f.WI) });
    }
    return;
  }
  // i >= 3 (M5)
  if (ours.name === 'TA') {
    if (tOfPrevious === 1) {
      expect(f.IFSC).toBe(String(ours.value));
      if (d.kind !== 'ifsc') expect(d.kind).toBe('undecoded'); // a second TA for T=1
      else expect(d.ifsc).toBe(ours.value);
      return;
    }
    const letters = (f.classes as string).split(/\s+/).filter((x) => /^[A-E]$/.test(x));
    const clockStop = ['not supported', 'state L', 'state H', 'no preference'][ours.value >> 6];
    expect(f.clockStop).toBe(clockStop);
    const bits = { A: 1, B: 2, C: 4, D: 8, E: 16 } as const;
    expect(letters).toEqual((Object.keys(bits) as (keyof typeof bits)[]).filter((k) => (ours.value & bits[k]) !== 0));
    if (tOfPrevious === 15 && d.kind === 'clock-stop-class') {
      expect(d.clockStop).toBe(clockStop);
      expect(d.classes).toEqual(letters.filter((x) => x <= 'C'));
      expect(d.rfuClassBits & 0x18).toBe((letters.includes('D') ? 8 : 0) | (letters.includes('E') ? 16 : 0));
    } else {
      expect(d.kind).toBe('undecoded');
    }
    return;
  }
  if (ours.name === 'TB') {
    if (tOfPrevious === 1) {
      expect([f.BWI, f.CWI]).toEqual([String(ours.value >> 4), String(ours.value & 15)]);
      if (d.kind === 'bwi-cwi') expect([d.bwi, d.cwi]).toEqual([ours.value >> 4, ours.value & 15]);
      else expect(d.kind).toBe('undecoded');
    } else {
      expect(theirs.text).toBe('');
      expect(d.kind).toBe(tOfPrevious === 15 && d.kind === 'spu' ? 'spu' : 'undecoded');
    }
    return;
  }
  // TC
  if (tOfPrevious === 1) {
    const theirsEdc = f.errorDetection;
    if (d.kind === 'error-detection') {
      expect(theirsEdc).toBe(d.rfuBits ? 'RFU' : d.code);
    } else {
      expect(d.kind).toBe('undecoded');
      expect(theirsEdc).toBe(ours.value === 1 ? 'CRC' : ours.value === 0 ? 'LRC' : 'RFU');
    }
  } else {
    expect(theirs.text).toBe('');
    expect(d.kind).toBe('undecoded');
  }
}

/** The lines ATR_analysis prints under a tag 3 or tag 7 object, rebuilt from hilt's decoding. */
function expectedDetailLines(o: HistoricalObject): string[] {
  const lines: string[] = [];
  if (o.cardService) {
    const c = o.cardService;
    lines.push(`Card service data byte: ${h2(o.value[0])}`);
    if (c.selectionByFullDfName) lines.push('- Application selection: by full DF name');
    if (c.selectionByPartialDfName) lines.push('- Application selection: by partial DF name');
    if (c.berTlvInEfDir) lines.push('- BER-TLV data objects available in EF.DIR');
    if (c.berTlvInEfAtr) lines.push('- BER-TLV data objects available in EF.ATR');
    const access: Record<string, string> = { 'READ BINARY': 'by READ BINARY command', 'READ RECORD': 'by GET RECORD(s) command', 'GET DATA': 'by GET DATA command', RFU: 'reserved for future use' };
    lines.push(`- EF.DIR and EF.ATR access services: ${access[c.access]}`);
    lines.push(c.hasMf ? '- Card with MF' : '- Card without MF');
  }
  if (o.capabilities) {
    const c = o.capabilities;
    lines.push(`Selection methods: ${h2(o.value[0])}`);
    for (const m of c.selectionMethods) lines.push(`- ${m[0].toUpperCase()}${m.slice(1)}`);
    if (c.dataCoding) {
      const d = c.dataCoding;
      lines.push(`Data coding byte: ${h2(o.value[1])}`);
      if (d.efTlvSupported) lines.push('- EF of TLV structure supported');
      lines.push(`- Behaviour of write functions: ${d.writeBehaviour}`);
      lines.push(`- Value 'FF' for the first byte of BER-TLV tag fields: ${d.ffTagValid ? 'valid' : 'invalid'}`);
      lines.push(`- Data unit in quartets: ${d.dataUnitQuartets}`);
    }
    if (c.chaining) {
      const x = c.chaining;
      lines.push(`Command chaining, length fields and logical channels: ${h2(o.value[2])}`);
      if (x.commandChaining) lines.push('- Command chaining');
      if (x.extendedLength) lines.push('- Extended Lc and Le fields');
      if (x.extendedLengthInfoInEfAtr) lines.push('- RFU (should not happen)'); // ISO 7816-4:2005 defines b6; ATR_analysis does not
      const names: Record<string, string> = {
        'no logical channel': 'No logical channel',
        'by the interface device': 'by the interface device',
        'by the card': 'by the card',
        'by the interface device and the card': 'by the interface device and card',
      };
      lines.push(`- Logical channel number assignment: ${names[x.logicalChannelAssignment]}`);
      lines.push(`- Maximum number of logical channels: ${x.maxLogicalChannels}`);
    }
  }
  return lines;
}

/** M7: hilt's LCS meaning in ATR_analysis's words. */
function inAtrAnalysisWords(lcs: number, meaning: string): string {
  if (meaning === 'RFU' || lcs === 0x0f) return 'unknown';
  return meaning[0].toUpperCase() + meaning.slice(1);
}

/** M6: does ATR_analysis stop following the encoding after this object? */
function atrAnalysisDesyncs(o: HistoricalObject): boolean {
  const len = o.value.length;
  if (o.tag === 3) return len !== 1;
  if (o.tag === 7 || o.tag === 8) return len < 1 || len > 3;
  if ([1, 2, 4, 5, 6, 15].includes(o.tag)) return false;
  return len >= 10;
}

function compareObjects(ours: Atr, theirs: AnalysisTlv[]) {
  const objs = ours.historical.objects;
  let j = 0;
  for (; j < objs.length && j < theirs.length; j++) {
    const o = objs[j];
    const t = theirs[j];
    expect(t.tag).toBe(o.tag.toString(16).toUpperCase());
    expect(t.len).toBe(o.value.length.toString(16).toUpperCase());
    if (atrAnalysisDesyncs(o)) return; // M6: compared up to here
    const valueLine = t.lines.find((l) => /^(Country code|Issuer identification number|Initial access data|Card issuer data|Data|Application identifier|Value): /.test(l));
    if (valueLine !== undefined) expect(valueLine.replace(/^[^:]*: ?/, '')).toBe(toSpacedHex(o.value));
    if (o.tag === 3 || o.tag === 7) expect(t.lines).toEqual(expectedDetailLines(o));
    if (o.tag === 8) {
      expect(t.lcs).toBe(o.status?.lcs === undefined ? undefined : h2(o.status.lcs));
      if (o.value.length === 3) expect(t.lcsText).toBe(inAtrAnalysisWords(o.status!.lcs!, o.status!.lcsMeaning!));
      expect(t.sw).toBe(o.status?.sw === undefined ? undefined : o.status.sw.toString(16).toUpperCase().padStart(4, '0'));
    }
  }
  const err = ours.historical.error;
  if (err) {
    // The object that runs past the end: hilt stops before it, ATR_analysis prints it with what
    // bytes there are (and, if it is also an M6 case, walks on from a wrong place).
    const tl = ours.bytes[err.offset];
    const t = theirs[j];
    expect([t?.tag, t?.len]).toEqual([(tl >> 4).toString(16).toUpperCase(), (tl & 15).toString(16).toUpperCase()]);
    const tag = tl >> 4;
    const len = tl & 15;
    const desync = tag === 3 ? len !== 1 : tag === 7 || tag === 8 ? len < 1 || len > 3 : [1, 2, 4, 5, 6, 15].includes(tag) ? false : len >= 10;
    if (!desync) expect(theirs.length).toBe(objs.length + 1);
    return;
  }
  expect(theirs.length).toBe(objs.length);
}

describe(`ATR parser vs ATR_analysis (${entries.length} ATRs)`, () => {
  it('the fixture is a real recording with the coverage it claims', () => {
    expect(entries.filter((e) => e.source === 'smartcard_list').length).toBeGreaterThanOrEqual(60);
    expect(new Set(entries.map((e) => e.atr)).size).toBe(entries.length);
    const features = new Set(entries.flatMap((e) => e.features));
    for (const f of ['inverse', 'no-TD', 'pcsc-part3', 'ends-after-interface-bytes', 'tck-missing', 'too-long', 'historical-truncated', 'T=0', 'T=1', 'T=0+1', 'T15-global', 'TC1-nonzero', 'category-00', 'category-10', 'category-80', 'category-proprietary', 'tck-wrong', 'long']) {
      expect(features, f).toContain(f);
    }
    for (const e of entries) expect(e.raw.startsWith(`ATR: ${e.atr}\n`)).toBe(true);
  });

  for (const e of entries) {
    it(e.atr, () => {
      const a = e.analysis;
      const bytes = fromHex(e.atr);
      const refusal = expectedRefusal(e);
      if (refusal) {
        let err: unknown;
        try {
          parseAtr(bytes);
        } catch (x) {
          err = x;
        }
        expect(err).toBeInstanceOf(DecodeError);
        expect((err as DecodeError).code).toBe('ATR_MALFORMED');
        expect((err as DecodeError).message).toMatch(refusal);
        return;
      }
      const atr = parseAtr(bytes);
      expect(a.ts?.text).toBe(atr.convention === 'direct' ? 'Direct Convention' : 'Inverse Convention');
      expect(a.t0).toEqual({ value: h2(atr.t0), y1: atr.y1.toString(2).padStart(4, '0'), k: atr.k });

      expect(atr.interfaceBytes.length).toBe(a.interfaceBytes.length);
      let t = 0;
      atr.interfaceBytes.forEach((b, n) => {
        compareInterfaceByte(b, a.interfaceBytes[n], t);
        if (b.name === 'TD') t = b.value & 15;
      });
      const tds = a.interfaceBytes.filter((b) => b.name === 'TD').map((b) => Number(b.fields.protocol));
      const offered = [...new Set(tds.filter((x) => x !== 15))];
      expect(atr.protocols).toEqual(offered.length ? offered : [0]);
      expect(atr.hasGlobalT15).toBe(tds.includes(15));

      // An incomplete printout (see expectedRefusal) means the ATR ended with its interface bytes.
      expect(a.historicalBytes ?? []).toEqual(Array.from(atr.historical.bytes, h2));
      if (atr.historical.category === null) {
        expect(a.category).toBeUndefined();
      } else {
        expect(a.category?.value).toBe(h2(atr.historical.category));
        const text = {
          'compact-tlv-status': 'compact TLV data object',
          'compact-tlv': 'compact TLV data object',
          'dir-reference': 'next byte is the DIR data reference',
          rfu: 'Reserved for future use',
          proprietary: 'proprietary format',
          none: '',
        }[atr.historical.kind];
        expect(a.category?.text).toBe(text);
      }
      if (atr.historical.kind === 'dir-reference') expect(a.dirReference).toBe(h2(atr.historical.dirReference as number));
      if (atr.historical.kind === 'compact-tlv-status') {
        if (a.errors.some((x) => x.startsWith('expecting 3 bytes'))) {
          expect(atr.historical.error?.message).toMatch(/3-byte status indicator/);
        } else {
          const s = atr.historical.status;
          expect(a.statusIndicator?.lcs).toBe(h2(s?.lcs as number));
          expect(a.statusIndicator?.lcsText).toBe(inAtrAnalysisWords(s?.lcs as number, s?.lcsMeaning as string));
          expect(a.statusIndicator?.sw).toBe((s?.sw as number).toString(16).toUpperCase().padStart(4, '0'));
        }
      }
      const noRoomForStatus = a.errors.some((x) => x.startsWith('expecting 3 bytes'));
      if (noRoomForStatus) {
        expect(atr.historical.objects).toEqual([]);
        expect(a.compactTlv).toBeUndefined();
      } else if (atr.historical.pcsc) {
        // M9
        const p = atr.historical.pcsc;
        expect(a.compactTlv?.map((o) => [o.tag, o.len])).toEqual([['4', 'F']]);
        expect(a.compactTlv?.[0].lines).toEqual([`Initial access data: ${toSpacedHex(atr.historical.bytes.subarray(2))}`]);
        expect(toSpacedHex(atr.historical.bytes.subarray(3, 8))).toBe(toSpacedHex(p.rid));
        expect(atr.historical.objects).toEqual([]);
      } else if (atr.historical.kind === 'compact-tlv' || atr.historical.kind === 'compact-tlv-status') {
        compareObjects(atr, a.compactTlv ?? []);
      } else {
        expect(a.compactTlv).toBeUndefined();
      }

      if (a.tck === undefined) {
        expect(atr.tck.present).toBe(false);
      } else {
        expect(atr.tck.present).toBe(true);
        expect(h2(atr.tck.value as number)).toBe(a.tck.value);
        expect(atr.tck.valid).toBe(a.tck.correct);
        if (!a.tck.correct) expect(h2(atr.tck.expected as number)).toBe(a.tck.expected);
        if (!atr.tck.required) expect(atr.warnings.join('\n')).toMatch(/TCK present although only T=0/); // M2
      }
    });
  }
});
