/**
 * The crash tests' child runner: a Node child whose stdout reports progress one line at a time,
 * SIGKILLed once it has reported `killAfter` counted lines (at once, or after `killDelayMs`), or left
 * to finish. A run that outlasts `bound.ms` is killed and rejected with `bound.message`.
 */
import { spawn } from 'node:child_process';
import { childEnv } from '../terminal/journal/compile.js';

export interface ChildRun {
  /** Every complete stdout line; a last line cut in half by the kill was never reported and is left out. */
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

export interface KillOptions {
  /** Which stdout lines count towards `killAfter`. */
  counts: (line: string) => boolean;
  killAfter: number;
  /** Wait this long after the count is reached before the SIGKILL; default: at once. */
  killDelayMs?: number;
  bound: { ms: number; message: (stderr: string) => string };
}

export function runAndKill(args: readonly string[], o: KillOptions): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let partial = '';
    let stderr = '';
    let counted = 0;
    let killing = false;
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(o.bound.message(stderr)));
    }, o.bound.ms);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (o.counts(line)) counted++;
      }
      if (!killing && counted >= o.killAfter) {
        killing = true;
        if (o.killDelayMs === undefined) child.kill('SIGKILL');
        else setTimeout(() => child.kill('SIGKILL'), o.killDelayMs);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(bound);
      resolve({ lines, signal, code, stderr });
    });
  });
}
