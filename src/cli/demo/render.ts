/**
 * The demo's report for people: the day as a table (step, what happened, expected, ok) grouped by
 * section, long cells wrapped; the reconciliation per card; the host ledger; one verdict line.
 */
import { formatTraceLine } from '../../reader/trace.js';
import { toHex, toSpacedHex } from '../../util/bytes.js';
import { table } from '../output.js';
import type { DemoReport, Reconciliation, TransportReport } from './run-demo.js';
import { money } from './till.js';
import { DEMO_TERMINAL } from './world.js';

/** Widest text of each wrapped column (a terminal of 156 columns or more, or not a terminal). */
const WIDTH = { step: 38, happened: 60, expected: 46 } as const;
/** Narrowest the wrapped columns get on a small terminal. */
const MIN_WIDTH = { step: 20, happened: 28, expected: 22 } as const;
/** The ok column and the three two-space gaps. */
const FIXED_WIDTH = 4 + 3 * 2;

/** Column widths of the day table for a terminal `columns` wide: shrunk in proportion, never below MIN_WIDTH. */
export function dayWidths(columns: number | undefined): { step: number; happened: number; expected: number } {
  const full = WIDTH.step + WIDTH.happened + WIDTH.expected;
  if (columns === undefined || columns - FIXED_WIDTH >= full) return { ...WIDTH };
  const scale = (columns - FIXED_WIDTH) / full;
  const w = (k: keyof typeof WIDTH): number => Math.max(MIN_WIDTH[k], Math.floor(WIDTH[k] * scale));
  return { step: w('step'), happened: w('happened'), expected: w('expected') };
}

/** Splits `text` into lines of at most `width` characters, at spaces where it can. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((x) => x.length > 0)) {
    let w = word;
    while (w.length > width) {
      if (line) {
        out.push(line);
        line = '';
      }
      out.push(w.slice(0, width));
      w = w.slice(width);
    }
    if (!line) line = w;
    else if (line.length + 1 + w.length <= width) line += ` ${w}`;
    else {
      out.push(line);
      line = w;
    }
  }
  if (line || out.length === 0) out.push(line);
  return out;
}

function dayTable(report: DemoReport, columns: number | undefined): string[] {
  const W = dayWidths(columns);
  const head = ['step', 'what happened', 'expected', 'ok'];
  const widths = [W.step, W.happened, W.expected, 4];
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const row = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const lines = [row(head), rule];
  let section = '';
  for (const s of report.steps) {
    if (s.section !== section) {
      section = s.section;
      lines.push(`[${section}]`);
    }
    const cols = [wrap(s.name, W.step), wrap(s.happened, W.happened), wrap(s.expected, W.expected)];
    const height = Math.max(...cols.map((c) => c.length));
    for (let i = 0; i < height; i++) lines.push(row([cols[0][i] ?? '', cols[1][i] ?? '', cols[2][i] ?? '', i === 0 ? (s.ok ? 'ok' : 'FAIL') : '']));
  }
  return lines;
}

/** The 0500/0510 exchange, one row per currency: the issuer's totals and its answer. */
function settlementRows(r: Reconciliation): string[][] {
  const st = r.settlement;
  if (st === null) return [['0500/0510', 'not run', '', '', '']];
  if (st.currencies.length === 0) return [['0500/0510', st.status, '', '', st.inBalance ? 'ok' : 'FAIL']];
  const tally = (t: { count: number; amount: number }): string => `${t.count} × ${money(t.amount)}`;
  return st.currencies.map((c) => [`0500/0510 ${c.currencyName} seq ${st.firstSequence}..${st.lastSequence}`, tally(c.host.loads), tally(c.host.purchases), `answer ${c.responseCode} (${c.inBalance ? 'in balance' : 'out of balance'})`, c.inBalance ? 'ok' : 'FAIL']);
}

function reconciliationLines(report: DemoReport): string[] {
  const r = report.reconciliation;
  if (r === null) return ['reconciliation: not reached'];
  const amount = (n: number | null): string => (n === null ? '-' : money(n));
  const cards = table(
    ['card', 'serial', 'loaded', 'spent', 'ledger', 'card balance', 'host shadow', 'ok', 'note'],
    r.cards.map((c) => [
      c.card,
      c.serial,
      c.issued > 0 ? `${amount(c.loaded)} (+${amount(c.issued)} issued)` : amount(c.loaded),
      amount(c.spent),
      amount(c.ledger),
      amount(c.card_balance),
      amount(c.host_shadow),
      c.ok ? 'ok' : 'FAIL',
      c.note,
    ]),
  );
  const l = r.ledger;
  const tally = (t: { count: number; amount: number }): string => `${t.count} × ${money(t.amount)}`;
  const ledger = table(
    ['book', 'loads', 'purchases', 'Σ card shadows', 'ok'],
    [
      [`journal ${DEMO_TERMINAL.terminalId}`, tally(l.journal.loads), tally(l.journal.purchases), '', ''],
      ['issuer (admin API)', tally(l.host.loads), tally(l.host.purchases), `${money(l.shadows)} (expected ${money(l.expectedShadows)})`, l.ok ? 'ok' : 'FAIL'],
      ...settlementRows(r),
    ],
  );
  return ['reconciliation (ledger = issued + loaded − spent, from the journal; card balance read from the card; host shadow from the issuer):', '', cards, '', ledger];
}

export function transportLines(t: TransportReport, trace: boolean): string[] {
  const lines = [
    `reader check: diagnostic card serial ${toHex(t.serial).toUpperCase()}, ATR ${toSpacedHex(t.atr)}, reader vpcd://127.0.0.1:${t.vpcdPort}`,
    '',
    table(
      ['', 'section', 'step', 'SW', 'meaning', 'out', 'in', 'wire', 'µs', 'what it shows'],
      t.steps.map((s) => [s.ok ? 'ok' : 'FAIL', s.section, s.name, s.sw, s.swMeaning, String(s.bytesOut), String(s.bytesIn), String(s.wireExchanges), String(s.micros), s.note]),
    ),
  ];
  if (trace) lines.push('', ...t.trace.map((r) => formatTraceLine(r)));
  return lines;
}

export interface RenderOptions {
  transport: boolean;
  trace: boolean;
  /** The terminal's width, to fit the day table to it; undefined (not a terminal): the full widths. */
  columns?: number;
}

export function renderReport(report: DemoReport, o: RenderOptions): string {
  const out: string[] = [
    `hilt demo — a day at terminal ${DEMO_TERMINAL.terminalId} (reader ${DEMO_TERMINAL.readerId}, ${DEMO_TERMINAL.currency}): mock hosts, bureau-issued purse cards in hilt's vpcd reader over loopback, no hardware`,
  ];
  if (report.faults.length > 0) out.push(`INJECTED FAULTS: ${report.faults.join(', ')}`);
  out.push('');
  if (o.transport && report.transport !== null) out.push(...transportLines(report.transport, o.trace), '');
  out.push(...dayTable(report, o.columns), '', ...reconciliationLines(report), '');
  const n = report.steps.length;
  const secs = (report.durationMs / 1000).toFixed(1);
  out.push(
    report.ok
      ? `PASS: ${n}/${n} steps as expected, value conserved, in ${secs} s${o.transport ? '' : ' (--transport: the reader check step by step)'}`
      : `FAIL: ${report.failed.length} of ${n} steps not as expected (${report.failed.join('; ')}), in ${secs} s`,
  );
  return out.join('\n');
}
