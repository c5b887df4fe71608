/** The ```apdu example blocks of the applet specs (applets-spec/*.md), shared by every suite that replays them. */
import { readFileSync } from 'node:fs';

/** Upper-case hex without spaces. */
function h(text: string): string {
  return text.replace(/\s+/g, '').toUpperCase();
}

/**
 * Reads the ```apdu blocks of a spec file. Lines: "> C-APDU hex", "< R-APDU hex", or
 * "< (N bytes …) SW" where only the length and the trailing hex are checked; "# ..." comments;
 * "! reset" resets the card. Each block starts on a fresh card.
 */
export interface SpecStep {
  kind: 'send' | 'reset';
  command?: string;
  expect?: { exact?: string; length?: number; tail?: string };
  line: string;
}

export function specBlocks(path: string): SpecStep[][] {
  return specBlocksWithTitles(path).map((b) => b.steps);
}

/** Each block with the line of prose that introduces it ("Cases 1 to 4"). */
export function specBlocksWithTitles(path: string): { title: string; steps: SpecStep[] }[] {
  const text = readFileSync(path, 'utf8');
  const blocks: { title: string; steps: SpecStep[] }[] = [];
  const re = /```apdu\n([\s\S]*?)```/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const steps: SpecStep[] = [];
    for (const raw of m[1].split('\n')) {
      const line = raw.replace(/#.*$/, '').trim();
      if (!line) continue;
      if (line === '! reset') {
        steps.push({ kind: 'reset', line });
      } else if (line.startsWith('>')) {
        steps.push({ kind: 'send', command: h(line.slice(1)), line });
      } else if (line.startsWith('<')) {
        const last = steps[steps.length - 1];
        if (!last || last.kind !== 'send' || last.expect) throw new Error(`spec: answer without command: ${line}`);
        const body = line.slice(1).trim();
        const abbreviated = /^\((\d+) bytes[^)]*\)\s*(.*)$/.exec(body);
        last.expect = abbreviated ? { length: Number(abbreviated[1]), tail: h(abbreviated[2]) } : { exact: h(body) };
      } else {
        throw new Error(`spec: unreadable line: ${line}`);
      }
    }
    const before = text.slice(0, m.index).trimEnd().split('\n');
    blocks.push({ title: (before[before.length - 1] ?? '').replace(/:$/, ''), steps });
  }
  return blocks;
}

