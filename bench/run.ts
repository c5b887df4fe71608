/**
 * `npm run bench`: every benchmark of bench/, one after the other, each reporting ratios against a
 * baseline measured in the same run (no absolute timing is asserted anywhere).
 *
 *   node dist/bench/run.js [--only name[,name]] [--iterations n]
 *
 * Names: vpcd (vpcd framing and TCP_QUICKACK), pcsc (pcscd vs hilt's vpcd server vs in-process),
 * scp03 (handshake and per-APDU wrapping overhead), purse (purchase through pcscd vs a plain SELECT
 * round trip), hosts (advices per second into the mock hosts, 1 vs 10 terminals).
 */
import { runVpcdLatencyBench } from './vpcd-latency.js';
import { runPcscLatencyBench } from './pcsc-latency.js';
import { runScp03Bench } from './scp03.js';
import { runPurseBench } from './purse.js';
import { runHostsBench } from './hosts.js';

type Bench = (iterations: number | undefined) => Promise<unknown>;

const BENCHES: Readonly<Record<string, Bench>> = {
  vpcd: (n) => runVpcdLatencyBench(n),
  pcsc: (n) => runPcscLatencyBench({ iterations: n }),
  scp03: (n) => runScp03Bench(n),
  purse: (n) => runPurseBench({ purchases: n }),
  hosts: (n) => runHostsBench({ advicesPerTerminal: n }),
};

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const only = arg('--only')?.split(',').map((s) => s.trim()) ?? Object.keys(BENCHES);
  const unknown = only.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})\n`);
    return 2;
  }
  const n = arg('--iterations');
  const iterations = n === undefined ? undefined : Number(n);
  if (iterations !== undefined && (!Number.isInteger(iterations) || iterations < 1)) {
    process.stderr.write(`bench: --iterations expects a positive integer, got "${n}"\n`);
    return 2;
  }
  for (const name of only) {
    process.stdout.write(`\n== ${name} ==\n`);
    await BENCHES[name](iterations);
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
