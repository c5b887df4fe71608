/**
 * `hilt monitor [--reader R] [--count n] [--json]`: live reader and card events, like pcsc_scan:
 * readers attached and detached, cards inserted (with the ATR, its one-line decoding and the card
 * name) and removed, each with a timestamp. It carries on through pcscd restarts (service lost /
 * restored) and reader hot-plug. Ctrl-C (SIGINT), SIGTERM or the context's signal stop it cleanly.
 *
 * Without --reader: every PC/SC reader. A name, index or pcsc:NAME watches those readers only;
 * vpcd://host:port runs hilt's vpcd server there and reports card sides connecting (inserted) and
 * disconnecting (removed). --json prints one JSON object per event (JSON lines).
 */
import type { RegisterCommand } from './types.js';
import { parseIntOption } from '../options.js';
import { addReaderOption } from './send.js';
import { summarizeAtr } from './readers.js';
import { openMonitor, type ReaderSelection } from '../../reader/select.js';
import type { MonitorEvent } from '../../reader/events.js';
import { SmartcardList } from '../../reader/smartcard-list.js';
import { toHex, toSpacedHex } from '../../util/bytes.js';
import { warningsTo } from '../../util/logger.js';

interface MonitorOptions {
  reader?: ReaderSelection;
  count?: number;
  json?: boolean;
}

const LABELS: Record<MonitorEvent['type'], string> = {
  'reader-attached': 'reader attached',
  'reader-detached': 'reader detached',
  'card-inserted': 'card inserted',
  'card-removed': 'card removed',
  'service-lost': 'PC/SC service lost',
  'service-restored': 'PC/SC service restored',
};
const LABEL_WIDTH = Math.max(...Object.values(LABELS).map((l) => l.length));

async function describeEvent(e: MonitorEvent, names: SmartcardList): Promise<string> {
  const head = `${e.time}  ${LABELS[e.type].padEnd(LABEL_WIDTH)}`;
  switch (e.type) {
    case 'service-lost':
      return `${head}  ${e.reason}`;
    case 'service-restored':
      return head.trimEnd();
    case 'reader-attached':
      return `${head}  ${e.reader}${e.initial ? ' (present at start)' : ''}`;
    case 'reader-detached':
      return `${head}  ${e.reader}`;
    case 'card-removed':
      return `${head}  ${e.reader}${e.reason ? ` (${e.reason})` : ''}`;
    case 'card-inserted': {
      const lines = [`${head}  ${e.reader}${e.initial ? ' (present at start)' : ''}`];
      if (e.atr.length > 0) {
        lines.push(`    ATR ${toSpacedHex(e.atr)}`);
        lines.push(`    ${summarizeAtr(e.atr)}`);
        for (const n of await names.cardNames(e.atr)) lines.push(`    card: ${n}`);
      } else lines.push('    no ATR (mute card)');
      return lines.join('\n');
    }
  }
}

function jsonEvent(e: MonitorEvent): string {
  if (e.type === 'card-inserted') return JSON.stringify({ ...e, atr: toHex(e.atr).toUpperCase(), atrSummary: summarizeAtr(e.atr) });
  return JSON.stringify(e);
}

export const registerMonitor: RegisterCommand = (program, ctx) => {
  const cmd = program.command('monitor').description('watch readers and cards live (like pcsc_scan); Ctrl-C stops');
  addReaderOption(cmd)
    .option('--count <n>', 'stop after n events', parseIntOption('--count', 1, 1_000_000))
    .option('--json', 'print one JSON object per event (JSON lines)')
    .action(async (opts: MonitorOptions) => {
      const handle = await openMonitor(opts.reader, {
        vpcdLogger: warningsTo((line) => ctx.io.err(line), 'hilt: vpcd'),
      });
      const stop = (): void => {
        void handle.close();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      ctx.signal?.addEventListener('abort', stop, { once: true });
      if (ctx.signal?.aborted) stop();
      const names = new SmartcardList();
      let seen = 0;
      try {
        if (!opts.json) ctx.io.out(`monitoring ${handle.description} (Ctrl-C to stop)`);
        for await (const e of handle.events) {
          ctx.io.out(opts.json ? jsonEvent(e) : await describeEvent(e, names));
          seen++;
          if (opts.count !== undefined && seen >= opts.count) break;
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        ctx.signal?.removeEventListener('abort', stop);
        await handle.close();
      }
      if (!opts.json) ctx.io.out('monitor stopped');
    });
};
