/**
 * `hilt readers [--reader R] [--wait ms] [--no-probe] [--json]`: the readers, whether each holds a
 * card, the protocol a shared connection gets, the ATR with a one-line decoding, and the card's name
 * from pcsc-tools' smartcard_list.txt when that list is installed.
 *
 * Without --reader: every PC/SC reader. With it: the readers it selects; vpcd://host:port listens
 * there for up to --wait ms for a card side to connect and reports what connected.
 */
import type { RegisterCommand } from './types.js';
import { table, toJson } from '../output.js';
import { parseIntOption } from '../options.js';
import { addReaderOption } from './send.js';
import { listReaders, DEFAULT_LIST_VPCD_WAIT_MS, type ReaderInfo, type ReaderSelection } from '../../reader/select.js';
import { SmartcardList } from '../../reader/smartcard-list.js';
import { parseAtr } from '../../apdu/atr.js';
import { DecodeError } from '../../util/errors.js';
import { toSpacedHex } from '../../util/bytes.js';
import { warningsTo } from '../../util/logger.js';

interface ReadersOptions {
  reader?: ReaderSelection;
  wait: number;
  probe: boolean;
  json?: boolean;
}

/** Printable ASCII runs of at least this length in the historical bytes are quoted. */
const MIN_TEXT_RUN = 3;

function textRuns(bytes: Uint8Array): string[] {
  const runs: string[] = [];
  let cur = '';
  for (const b of bytes) {
    if (b >= 0x20 && b < 0x7f) cur += String.fromCharCode(b);
    else {
      if (cur.length >= MIN_TEXT_RUN) runs.push(cur);
      cur = '';
    }
  }
  if (cur.length >= MIN_TEXT_RUN) runs.push(cur);
  return runs;
}

/** One line saying what an ATR offers: protocols, rates, historical bytes, checksum. */
export function summarizeAtr(atr: Uint8Array): string {
  if (atr.length === 0) return 'no ATR (mute card)';
  let a;
  try {
    a = parseAtr(atr);
  } catch (e) {
    if (e instanceof DecodeError) return `not a valid ATR: ${e.message}`;
    throw e;
  }
  const parts = [`T=${a.protocols.join(', T=')}`];
  const p = a.parameters;
  parts.push(p.ta1Present ? `Fi=${p.fi ?? 'RFU'} Di=${p.di ?? 'RFU'}` : 'Fi=372 Di=1 (default)');
  if (a.convention === 'inverse') parts.push('inverse convention');
  const h = a.historical;
  if (h.bytes.length === 0) parts.push('no historical bytes');
  else {
    // Text inside compact-TLV objects (issuer data, ...), not across their tag-length bytes.
    const runs = h.objects.length > 0 ? h.objects.flatMap((o) => textRuns(o.value)) : textRuns(h.bytes);
    const text = runs.length > 0 ? ` ${runs.map((r) => JSON.stringify(r)).join(' ')}` : '';
    parts.push(`${h.bytes.length} historical bytes (${h.kind})${text}`);
  }
  if (a.tck.present) parts.push(a.tck.valid ? 'TCK ok' : 'TCK WRONG');
  return parts.join('; ');
}

function cardColumn(r: ReaderInfo): string {
  if (!r.cardPresent) return 'empty';
  if (r.mute) return 'mute card';
  if (r.exclusive) return 'card (exclusive)';
  if (r.inUse) return 'card (in use)';
  return 'card';
}

export const registerReaders: RegisterCommand = (program, ctx) => {
  const cmd = program.command('readers').description('list readers, cards, protocols and ATRs (with a decoding and the card name)');
  addReaderOption(cmd)
    .option('--wait <ms>', 'vpcd://: how long to wait for a card to connect', parseIntOption('--wait', 0, 3_600_000), DEFAULT_LIST_VPCD_WAIT_MS)
    .option('--no-probe', 'do not connect to cards to learn the protocol')
    .option('--json', 'print one JSON document')
    .action(async (opts: ReadersOptions) => {
      const readers = await listReaders(opts.reader, {
        probeProtocol: opts.probe,
        waitMs: opts.wait,
        vpcdLogger: warningsTo((line) => ctx.io.err(line), 'hilt: vpcd'),
      });
      const names = new SmartcardList();
      const rows = await Promise.all(
        readers.map(async (r) => ({
          ...r,
          atrSummary: r.atr ? summarizeAtr(r.atr) : null,
          cardNames: r.atr ? await names.cardNames(r.atr) : [],
        })),
      );
      if (opts.json) {
        ctx.io.out(toJson({ readers: rows }));
        return;
      }
      if (rows.length === 0) {
        ctx.io.out('no readers');
        return;
      }
      const lines = [
        table(
          ['#', 'reader', 'card', 'protocol', 'ATR'],
          rows.map((r) => [r.index === null ? '-' : String(r.index), r.name, cardColumn(r), r.protocol ?? '', r.atr ? toSpacedHex(r.atr) : '']),
        ),
      ];
      for (const r of rows) {
        if (!r.atr && !r.note) continue;
        lines.push('');
        lines.push(`${r.name}:`);
        if (r.atrSummary) lines.push(`  ATR: ${r.atrSummary}`);
        for (const n of r.cardNames) lines.push(`  card: ${n}`);
        if (r.atr && r.cardNames.length === 0) lines.push('  card: not in smartcard_list.txt');
        if (r.note) lines.push(`  note: ${r.note}`);
      }
      ctx.io.out(lines.join('\n'));
    });
};
