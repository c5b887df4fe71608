/**
 * Card names from pcsc-tools' smartcard_list.txt, the list ATR_analysis uses.
 *
 * The file: comment lines start with '#'; an entry is an ATR pattern on a line of its own, followed
 * by one or more description lines starting with a tab, then an empty line. A pattern is an
 * upper-case hex ATR with spaces, written as a regular expression: '..' or '.' stand for any hex
 * digits, and a few entries use classes ("3[1,3]", "[12]0"), alternatives or ".*". ATR_analysis
 * matches `^pattern$` case-insensitively against the ATR printed as "3B 8F 80 ..."; so does this.
 * A pattern JavaScript cannot compile is skipped.
 *
 * Which file: like ATR_analysis, the first one that exists of $XDG_CACHE_HOME (or ~/.cache)
 * /smartcard_list.txt (where ATR_analysis stores its downloaded updates) and
 * /usr/share/pcsc/smartcard_list.txt. An absent file means no names, not an error. Nothing here
 * downloads anything.
 *
 * Parsed lists are cached per path in a SmartcardList instance (no module-level state): a
 * long-running process keeps one instance, a test makes its own.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { toSpacedHex } from '../util/bytes.js';

export const SYSTEM_SMARTCARD_LIST = '/usr/share/pcsc/smartcard_list.txt';

export interface SmartcardListEntry {
  /** The pattern as written in the file. */
  pattern: string;
  regex: RegExp;
  /** The description lines, tab removed. */
  names: string[];
  /** 1-based line of the pattern, for reporting. */
  line: number;
}

export interface CardMatch {
  pattern: string;
  names: string[];
}

export interface CardIdentification {
  /** The list that was read, or null when none exists. */
  file: string | null;
  matches: CardMatch[];
}

/** The candidate files, most recent first, as ATR_analysis looks for them. */
export function defaultSmartcardListPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const cache = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : join(env.HOME ?? homedir(), '.cache');
  return [join(cache, 'smartcard_list.txt'), SYSTEM_SMARTCARD_LIST];
}

/** Parses the text of a smartcard_list.txt. */
export function parseSmartcardList(text: string): SmartcardListEntry[] {
  const out: SmartcardListEntry[] = [];
  let current: SmartcardListEntry | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('#')) continue;
    if (line.startsWith('\t')) {
      current?.names.push(line.slice(1));
      continue;
    }
    if (line.trim() === '') {
      current = undefined;
      continue;
    }
    let regex: RegExp;
    try {
      regex = new RegExp(`^${line.trim()}$`, 'i');
    } catch {
      current = undefined;
      continue;
    }
    current = { pattern: line.trim(), regex, names: [], line: i + 1 };
    out.push(current);
  }
  return out;
}

/** Entries whose pattern matches the ATR, in file order. */
export function matchAtr(entries: readonly SmartcardListEntry[], atr: Uint8Array): CardMatch[] {
  const text = toSpacedHex(atr);
  return entries.filter((e) => e.regex.test(text)).map((e) => ({ pattern: e.pattern, names: e.names.slice() }));
}

async function readIfPresent(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'latin1');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EISDIR') return null;
    throw e;
  }
}

/** Reads smartcard_list.txt files, caching each parsed file for the life of the instance. */
export class SmartcardList {
  private readonly cache = new Map<string, Promise<SmartcardListEntry[] | null>>();
  private readonly paths: readonly string[];

  /** `paths`: the files to try, first existing wins; default defaultSmartcardListPaths(). */
  constructor(paths?: readonly string[]) {
    this.paths = paths ?? defaultSmartcardListPaths();
  }

  /** The parsed entries of one file, or null if it does not exist. Cached per path. */
  load(path: string): Promise<SmartcardListEntry[] | null> {
    let p = this.cache.get(path);
    if (!p) {
      p = readIfPresent(path).then((text) => (text === null ? null : parseSmartcardList(text)));
      // A failed read is not cached, so a later call can try again.
      p.catch(() => this.cache.delete(path));
      this.cache.set(path, p);
    }
    return p;
  }

  /** The description lines of every matching entry, in file order; [] if no list exists. */
  async cardNames(atr: Uint8Array): Promise<string[]> {
    return (await this.identify(atr)).matches.flatMap((m) => m.names);
  }

  /** Card names for an ATR from the first list that exists; no file gives no matches. */
  async identify(atr: Uint8Array): Promise<CardIdentification> {
    for (const path of this.paths) {
      const entries = await this.load(path);
      if (entries !== null) return { file: path, matches: matchAtr(entries, atr) };
    }
    return { file: null, matches: [] };
  }
}
