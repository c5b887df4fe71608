/**
 * A reader for Java .properties files, the format jCardSim's configuration uses: `key=value`,
 * `key: value` or `key value`; `#` and `!` comment lines; a trailing backslash continues a line
 * (leading white space of the continuation dropped); escapes \t \n \r \f \\ \uXXXX and \<char>.
 */
import { BadInputError } from '../../src/util/errors.js';

/** Parses properties text; a later duplicate key wins (as java.util.Properties does). */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let logical = lines[i].replace(/^[ \t\f]+/, '');
    if (logical === '' || logical.startsWith('#') || logical.startsWith('!')) continue;
    const firstLine = i + 1;
    while (endsWithContinuation(logical)) {
      logical = logical.slice(0, -1);
      i++;
      if (i >= lines.length) break;
      logical += lines[i].replace(/^[ \t\f]+/, '');
    }
    const { key, value } = splitKeyValue(logical, firstLine);
    out.set(key, value);
  }
  return out;
}

/** An odd number of trailing backslashes continues the line; an even number is escaped backslashes. */
function endsWithContinuation(s: string): boolean {
  let n = 0;
  for (let j = s.length - 1; j >= 0 && s[j] === '\\'; j--) n++;
  return n % 2 === 1;
}

function splitKeyValue(line: string, lineNo: number): { key: string; value: string } {
  let j = 0;
  while (j < line.length) {
    const c = line[j];
    if (c === '\\') {
      j += 2;
      continue;
    }
    if (c === '=' || c === ':' || c === ' ' || c === '\t' || c === '\f') break;
    j++;
  }
  const rawKey = line.slice(0, j);
  let k = j;
  while (k < line.length && /[ \t\f]/.test(line[k])) k++;
  if (k < line.length && (line[k] === '=' || line[k] === ':')) k++;
  while (k < line.length && /[ \t\f]/.test(line[k])) k++;
  return { key: unescape(rawKey, lineNo), value: unescape(line.slice(k), lineNo) };
}

function unescape(s: string, lineNo: number): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i];
    if (n === undefined) break;
    if (n === 'u') {
      const hex = s.slice(i + 1, i + 5);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new BadInputError(`properties line ${lineNo}: malformed \\u escape "\\u${hex}"`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 4;
    } else {
      out += ({ t: '\t', n: '\n', r: '\r', f: '\f' } as Record<string, string>)[n] ?? n;
    }
  }
  return out;
}
