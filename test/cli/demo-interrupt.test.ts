/**
 * Ctrl-C in the middle of `hilt demo` (a real process, SIGINT): it exits 130 and leaves no temporary
 * folder behind (the day's hosts, cards and journal live in one).
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transpileTree, childEnv, REPO_ROOT } from '../terminal/journal/compile.js';
import { tempDir } from '../terminal/purse/helpers.js';

/** Bound of the child starting its day (its temporary folder appearing). */
const START_BOUND_MS = 20_000;

function demoDirs(): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith('hilt-demo-'));
}

describe('hilt demo interrupted', () => {
  it('SIGINT mid-day: exit 130, its temporary folder removed', async () => {
    const work = tempDir('hilt-interrupt-');
    try {
      const main = transpileTree(join(REPO_ROOT, 'src/cli/main.ts'), join(work.dir, 'build'));
      // ES module imports (commander) resolve through a node_modules above the file, not NODE_PATH.
      symlinkSync(join(REPO_ROOT, 'node_modules'), join(work.dir, 'node_modules'), 'dir');
      const entry = join(work.dir, 'run.mjs');
      writeFileSync(entry, `const { run } = await import(${JSON.stringify(main)});\nprocess.exitCode = await run(process.argv);\n`);
      const before = new Set(demoDirs());
      const child = spawn(process.execPath, [entry, 'demo'], { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
      const deadline = Date.now() + START_BOUND_MS;
      let mine: string[] = [];
      while (mine.length === 0 && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 20));
        mine = demoDirs().filter((d) => !before.has(d));
      }
      expect(mine.length, `the demo's folder did not appear; stderr: ${stderr}`).toBe(1);
      child.kill('SIGINT');
      const end = await exited;
      expect(end, stderr).toEqual({ code: 130, signal: null });
      expect(demoDirs().filter((d) => !before.has(d)), 'folders the interrupted demo left').toEqual([]);
    } finally {
      work.remove();
    }
  }, 60_000);
});
