/** `hilt demo`: the main job on the embedded defaults (see src/cli/demo/run-demo.ts). */
import type { RegisterCommand } from './types.js';
import { runDemo } from '../demo/run-demo.js';
import { table, toJson } from '../output.js';
import { formatTraceLine } from '../../reader/trace.js';
import { toHex, toSpacedHex } from '../../util/bytes.js';

export const registerDemo: RegisterCommand = (program, ctx, setExit) => {
  program
    .command('demo')
    .description('run the main job on the embedded defaults: emulated card, vpcd link, terminal stack (no hardware)')
    .option('--trace', 'print every wire exchange in the trace format (docs/trace-format.md)', false)
    .option('--json', 'print one JSON document', false)
    .action(async (opts: { trace: boolean; json: boolean }) => {
      const report = await runDemo();
      const failures = report.steps.filter((s) => !s.ok).length;
      setExit(failures === 0 ? 0 : 1);
      if (opts.json) {
        ctx.io.out(toJson({ ...report, trace: opts.trace ? report.trace : undefined, failures }));
        return;
      }
      const io = ctx.io;
      io.out('hilt demo — emulated card in hilt\'s vpcd reader over loopback TCP, no hardware');
      io.out(`card serial ${toHex(report.serial).toUpperCase()}, ATR ${toSpacedHex(report.atr)}, reader vpcd://127.0.0.1:${report.vpcdPort}`);
      io.out('');
      io.out(
        table(
          ['', 'section', 'step', 'SW', 'meaning', 'out', 'in', 'wire', 'µs', 'what it shows'],
          report.steps.map((s) => [
            s.ok ? 'ok' : 'FAIL',
            s.section,
            s.name,
            s.sw,
            s.swMeaning,
            String(s.bytesOut),
            String(s.bytesIn),
            String(s.wireExchanges),
            String(s.micros),
            s.note,
          ]),
        ),
      );
      io.out('');
      if (opts.trace) {
        for (const r of report.trace) io.out(formatTraceLine(r));
        io.out('');
      }
      io.out(
        `${report.steps.length - failures}/${report.steps.length} steps ok, ${report.trace.filter((r) => r.dir === '>').length} APDUs on the wire` +
          (opts.trace ? '' : ' (add --trace to see them)'),
      );
    });
};
