/**
 * `hilt atr <hex> [--clock <MHz>] [--list <file>] [--json]`: decodes an ATR the way pcsc-tools'
 * ATR_analysis does (one line per byte with its meaning, the historical bytes decoded, the TCK
 * checked) and names the card from smartcard_list.txt when the list is installed.
 *
 * A wrong TCK is shown, not refused (exit 0): the rest of the ATR is still worth reading. Bytes
 * that are not an ATR at all are one error line and a non-zero exit.
 */
import type { RegisterCommand } from './types.js';
import { fromHex, hexByte, hexWord, toSpacedHex } from '../../util/bytes.js';
import { BadInputError } from '../../util/errors.js';
import { parseAtr, bitRates, describeInterfaceByte, DEFAULT_CLOCK_HZ, type Atr, type HistoricalObject, type StatusIndicator } from '../../apdu/atr.js';
import { HISTORICAL_CATEGORIES } from '../../apdu/atr-tables.js';
import { describeSw } from '../../apdu/sw.js';
import { SmartcardList, type CardIdentification } from '../../reader/smartcard-list.js';
import { table, toJson } from '../output.js';
import { asciiOf } from './tlv.js';

/** What `--json` prints. */
export interface AtrReport {
  input: string;
  clockHz: number;
  atr: Atr;
  /** One entry per interface byte, with its meaning at `clockHz`. */
  meanings: { byte: string; meaning: string }[];
  /** Bit rates from TA1 (or the defaults), null when Fi or Di is RFU. */
  bitRate: { atClock: number | null; atFmax: number | null };
  identification: CardIdentification;
}

interface AtrOptions {
  clock?: string;
  list?: string;
  json?: boolean;
}

/** Reasonable clock range for a contact card (ISO 7816-3 allows 1 to 20 MHz; some readers go below). */
const MIN_CLOCK_MHZ = 0.1;
const MAX_CLOCK_MHZ = 100;

export function parseClock(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CLOCK_HZ;
  const mhz = Number(text);
  if (!Number.isFinite(mhz) || mhz < MIN_CLOCK_MHZ || mhz > MAX_CLOCK_MHZ) {
    throw new BadInputError(`--clock: expected a frequency in MHz from ${MIN_CLOCK_MHZ} to ${MAX_CLOCK_MHZ}, got "${text}"`);
  }
  return mhz * 1e6;
}

export async function analyseAtr(bytes: Uint8Array, clockHz: number, list: SmartcardList): Promise<AtrReport> {
  const atr = parseAtr(bytes);
  return {
    input: toSpacedHex(bytes),
    clockHz,
    atr,
    meanings: atr.interfaceBytes.map((b) => ({ byte: `${b.name}${b.i}`, meaning: describeInterfaceByte(b, clockHz) })),
    bitRate: bitRates(atr.parameters, clockHz),
    identification: await list.identify(bytes),
  };
}

function statusText(s: StatusIndicator): string[] {
  const out: string[] = [];
  if (s.lcs !== undefined) out.push(`life cycle status ${hexByte(s.lcs)} (${s.lcsMeaning})`);
  if (s.sw !== undefined) out.push(`SW ${hexWord(s.sw)} (${describeSw(s.sw).meaning})`);
  return out;
}

function objectLines(o: HistoricalObject): string[] {
  const lines = [`tag ${o.tag.toString(16).toUpperCase()}, ${o.value.length} byte(s): ${o.name}${o.value.length ? ` = ${toSpacedHex(o.value)}` : ''}`];
  const sub = (s: string) => lines.push(`  - ${s}`);
  if (o.cardService) {
    const c = o.cardService;
    if (c.selectionByFullDfName) sub('application selection by full DF name');
    if (c.selectionByPartialDfName) sub('application selection by partial DF name');
    if (c.berTlvInEfDir) sub('BER-TLV data objects in EF.DIR');
    if (c.berTlvInEfAtr) sub('BER-TLV data objects in EF.ATR');
    sub(`EF.DIR and EF.ATR read with ${c.access}`);
    sub(c.hasMf ? 'card with MF' : 'card without MF');
  }
  if (o.capabilities) {
    const c = o.capabilities;
    for (const m of c.selectionMethods) sub(m);
    if (c.dataCoding) {
      const d = c.dataCoding;
      if (d.efTlvSupported) sub('EF of TLV structure supported');
      sub(`write functions: ${d.writeBehaviour}`);
      sub(`FF as first tag byte: ${d.ffTagValid ? 'valid' : 'invalid'}`);
      sub(`data unit: ${d.dataUnitQuartets} quartet(s)`);
    }
    if (c.chaining) {
      const x = c.chaining;
      if (x.commandChaining) sub('command chaining');
      if (x.extendedLength) sub('extended Lc and Le fields');
      if (x.extendedLengthInfoInEfAtr) sub('extended length information in EF.ATR');
      sub(`logical channel assignment: ${x.logicalChannelAssignment}, at most ${x.maxLogicalChannels}${x.maxLogicalChannels === 8 ? ' or more' : ''}`);
    }
  }
  if (o.status) for (const s of statusText(o.status)) sub(s);
  return lines;
}

const fmt = (x: number) => String(Math.round(x * 1000) / 1000);

export function formatAtrReport(r: AtrReport): string {
  const a = r.atr;
  const rows: string[][] = [
    ['TS', hexByte(a.ts), `${a.convention} convention`],
    ['T0', hexByte(a.t0), `Y(1) = ${a.y1.toString(2).padStart(4, '0')}, K = ${a.k} historical byte(s)`],
  ];
  a.interfaceBytes.forEach((b, i) => rows.push([r.meanings[i].byte, hexByte(b.value), r.meanings[i].meaning]));
  const h = a.historical;
  if (a.k > 0) {
    const cat = HISTORICAL_CATEGORIES.find((c) => h.kind === c.kind)?.meaning ?? 'proprietary format';
    // The bytes themselves are listed under "historical bytes" below, to keep the table narrow.
    rows.push([`T1..T${a.k}`, `${hexByte(h.category as number)}${a.k > 1 ? ' …' : ''}`, `historical bytes, category ${hexByte(h.category as number)}: ${cat}`]);
  }
  if (a.tck.present) {
    const v = hexByte(a.tck.value as number);
    rows.push(['TCK', v, a.tck.valid ? 'correct checksum' : `WRONG CHECKSUM, expected ${hexByte(a.tck.expected as number)}`]);
  }
  const out = [`ATR: ${r.input}`, table(['byte', 'hex', 'meaning'], rows), ''];

  const p = a.parameters;
  out.push(`protocols: ${a.protocols.map((t) => `T=${t}`).join(', ')}${a.hasGlobalT15 ? ' (+ T=15 global bytes)' : ''}`);
  if (p.fi !== null && p.di !== null && p.cyclesPerEtu !== null) {
    let line = `rate: Fi=${p.fi}, Di=${p.di}${p.ta1Present ? '' : ' (defaults, no TA1)'}, ${fmt(p.cyclesPerEtu)} cycles/ETU, ${Math.floor(r.bitRate.atClock as number)} bit/s at ${fmt(r.clockHz / 1e6)} MHz`;
    if (r.bitRate.atFmax !== null) line += `, ${Math.floor(r.bitRate.atFmax)} bit/s at fmax ${p.fmaxMHz} MHz`;
    out.push(line);
  } else {
    out.push(`rate: Fi=${p.fi ?? 'RFU'}, Di=${p.di ?? 'RFU'} (no bit rate)`);
  }
  if (a.protocols.includes(1)) out.push(`T=1: IFSC ${p.ifsc}, BWI ${p.bwi}, CWI ${p.cwi}, ${p.errorDetection}`);
  if (a.k > 0) {
    const ascii = asciiOf(h.bytes.subarray(h.kind === 'proprietary' ? 0 : 1));
    out.push(`historical bytes: ${toSpacedHex(h.bytes)}${ascii !== undefined && h.objects.length === 0 ? `  "${ascii}"` : ''}`);
    for (const o of h.objects) for (const l of objectLines(o)) out.push(`  ${l}`);
    if (h.kind === 'compact-tlv-status' && h.status) out.push(`  status indicator: ${statusText(h.status).join(', ')}`);
    if (h.dirReference !== undefined) out.push(`  DIR data reference: ${hexByte(h.dirReference)}`);
    if (h.pcsc) {
      out.push(`  PC/SC part 3 contactless card: RID ${toSpacedHex(h.pcsc.rid)}, standard ${hexByte(h.pcsc.standard)}, card name ${hexWord(h.pcsc.cardName)}`);
    }
    if (h.error) out.push(`  could not decode the rest: ${h.error.message}`);
  }
  for (const w of a.warnings) out.push(`warning: ${w}`);

  const id = r.identification;
  out.push('');
  if (id.file === null) {
    out.push('possibly identified card: no smartcard_list.txt found');
  } else if (id.matches.length === 0) {
    out.push(`possibly identified card (using ${id.file}): none`);
  } else {
    out.push(`possibly identified card (using ${id.file}):`);
    for (const m of id.matches) {
      out.push(`  ${m.pattern}`);
      for (const n of m.names) out.push(`    ${n}`);
    }
  }
  return out.join('\n');
}

export const registerAtr: RegisterCommand = (program, ctx) => {
  program
    .command('atr')
    .description('decode an answer-to-reset (like pcsc-tools ATR_analysis) and name the card')
    .argument('<hex...>', 'the ATR in hex (spaces and colons between bytes are fine)')
    .option('--clock <MHz>', 'card clock frequency for the bit rate', '4')
    .option('--list <file>', 'smartcard_list.txt to identify the card with (default: as ATR_analysis looks)')
    .option('--json', 'print one JSON document')
    .action(async (hexParts: string[], opts: AtrOptions) => {
      const clockHz = parseClock(opts.clock);
      const bytes = fromHex(hexParts.join(' '));
      const report = await analyseAtr(bytes, clockHz, new SmartcardList(opts.list === undefined ? undefined : [opts.list]));
      ctx.io.out(opts.json ? toJson(report) : formatAtrReport(report));
    });
};
