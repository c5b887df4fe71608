/**
 * The demo's temporary folders: removed by whoever made them when done, and by the process's exit
 * if it comes first (hilt demo turns Ctrl-C into an exit), so an interrupted day leaves nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DemoTempDir {
  dir: string;
  /** Removes the folder now (idempotent) and forgets the exit hook. */
  remove(): void;
}

export function demoTempDir(prefix: string): DemoTempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  return {
    dir,
    remove: () => {
      process.off('exit', removeDir);
      removeDir();
    },
  };
}
