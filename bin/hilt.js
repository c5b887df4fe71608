#!/usr/bin/env node
// Entry point of the `hilt` command: runs the compiled CLI (npm install builds it through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('hilt: not built yet; run `npm install` (or `npm run build`) in the hilt folder first\n');
  process.exit(2);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv);
