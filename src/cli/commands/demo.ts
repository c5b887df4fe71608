/**
 * `hilt demo [--transport] [--trace] [--json] [--fault NAME]`: the main job on the embedded defaults
 * (src/cli/demo/run-demo.ts): a scripted day at a payment terminal against the mock hosts, with
 * purse cards in hilt's own vpcd reader, no hardware. Exit 0 only when every step did what it
 * should; otherwise 1 and one `hilt:` line naming the first failed step.
 */
import type { RegisterCommand } from './types.js';
import { runDemo } from '../demo/run-demo.js';
import { renderReport } from '../demo/render.js';
import { DEMO_FAULTS, parseFault, type DemoFault } from '../demo/faults.js';
import { toJson } from '../output.js';

interface DemoCliOptions {
  transport: boolean;
  trace: boolean;
  json: boolean;
  fault: DemoFault[];
}

export const registerDemo: RegisterCommand = (program, ctx, setExit) => {
  program
    .command('demo')
    .description('run the main job on the embedded defaults: a scripted terminal day against the mock hosts, emulated cards, no hardware')
    .option('--transport', 'also print the reader check (transport, SCP03, hot-plug) step by step', false)
    .option('--trace', 'with --transport: every wire exchange of the reader check (docs/trace-format.md)', false)
    .option('--json', 'print one JSON document', false)
    .option(
      '--fault <name>',
      `inject a defect, to see the demo catch it (${Object.keys(DEMO_FAULTS).join(', ')}); repeatable`,
      (v: string, prev: DemoFault[]) => [...prev, parseFault(v)],
      [] as DemoFault[],
    )
    .action(async (opts: DemoCliOptions) => {
      // Ctrl-C mid-day: exit (130) through process.exit, so the day's temporary folder is removed.
      const interrupted = (): never => process.exit(130);
      process.once('SIGINT', interrupted);
      let report: Awaited<ReturnType<typeof runDemo>>;
      try {
        report = await runDemo({ faults: opts.fault });
      } finally {
        process.off('SIGINT', interrupted);
      }
      setExit(report.ok ? 0 : 1);
      if (opts.json) {
        const transport = report.transport === null ? null : { ...report.transport, trace: opts.trace ? report.transport.trace : undefined };
        ctx.io.out(toJson({ ...report, transport }));
      } else {
        ctx.io.out(renderReport(report, { transport: opts.transport || opts.trace, trace: opts.trace, columns: process.stdout.isTTY ? process.stdout.columns : undefined }));
      }
      if (!report.ok) {
        const more = report.failed.length > 1 ? ` (and ${report.failed.length - 1} more)` : '';
        ctx.io.err(`hilt: demo failed at "${report.failed[0]}"${more}`);
      }
    });
};
