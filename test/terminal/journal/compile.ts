/**
 * Turns the journal's TypeScript sources into plain ESM JavaScript in a temp folder, for child
 * processes (Node 20 cannot load .ts). It follows relative imports from the entry and transpiles each
 * file with the TypeScript compiler already used for type checking; no type check, no bundling, the
 * same module graph. Bare imports (better-sqlite3) resolve through NODE_PATH (see `childEnv`).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const RELATIVE_IMPORT = /(?:^|\s)(?:import|export)\s(?:[^'";]*?\sfrom\s)?['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Transpiles `entry` (a .ts path under the repo) and what it imports; returns the compiled entry path. */
export function transpileTree(entry: string, outDir: string): string {
  const todo = [resolve(entry)];
  const done = new Set<string>();
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(RELATIVE_IMPORT)) {
      todo.push(resolve(dirname(file), m[1].replace(/\.js$/, '.ts')));
    }
    const out = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
    });
    const target = join(outDir, relative(REPO_ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, out.outputText);
  }
  writeFileSync(join(outDir, 'package.json'), '{ "type": "module" }\n');
  return join(outDir, relative(REPO_ROOT, resolve(entry))).replace(/\.ts$/, '.js');
}

/** Environment for a child that runs transpiled code: the repo's node_modules on NODE_PATH. */
export function childEnv(): NodeJS.ProcessEnv {
  const modules = join(REPO_ROOT, 'node_modules');
  const existing = process.env.NODE_PATH;
  return { ...process.env, NODE_PATH: existing ? `${modules}:${existing}` : modules };
}
