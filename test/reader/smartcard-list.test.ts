import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SmartcardList, parseSmartcardList, matchAtr, defaultSmartcardListPaths, SYSTEM_SMARTCARD_LIST } from '../../src/reader/smartcard-list.js';
import { fromHex } from '../../src/util/bytes.js';

// The shapes found in the real file: literal ATRs, '..' and '.' wildcards, character classes
// with and without commas, a trailing '.*', several description lines, comments.
const SAMPLE = [
  '#',
  '# smartcard_list.txt sample',
  '#',
  '',
  '3B .. .. .. .. 00 31 B8 64 .. .. .. .. 73 .. .. .. 82 90 00',
  '\tIAS ECC Type 1',
  '\tsecond line',
  '',
  '3B 02 14 50',
  '\tSchlumberger Multiflex 3k',
  '',
  '3B 39 19 00 53 4F 4D 41 44 53 33 30 3[1,3]',
  '\tSOMA card',
  '',
  '3B 67 25 00 2A 20 00 4[05] 68 90 00',
  '\tclass card',
  '',
  '3B EF 00 FF 81 31 42 45 .* 38',
  '\ttail wildcard',
  '',
  '3B 6. 00 00',
  '\tone-digit wildcard',
  '',
  '3B (( broken',
  '\tnever compiles',
  '',
  '3b 02 14 50',
  '\tlower-case pattern, same card',
  '',
].join('\n');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hilt-sclist-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('smartcard_list.txt', () => {
  const entries = parseSmartcardList(SAMPLE);
  const names = (hex: string) => matchAtr(entries, fromHex(hex)).flatMap((m) => m.names);

  it('parses patterns with their description lines and skips what does not compile', () => {
    expect(entries.map((e) => e.pattern)).toEqual([
      '3B .. .. .. .. 00 31 B8 64 .. .. .. .. 73 .. .. .. 82 90 00',
      '3B 02 14 50',
      '3B 39 19 00 53 4F 4D 41 44 53 33 30 3[1,3]',
      '3B 67 25 00 2A 20 00 4[05] 68 90 00',
      '3B EF 00 FF 81 31 42 45 .* 38',
      '3B 6. 00 00',
      '3b 02 14 50',
    ]);
    expect(entries[0].names).toEqual(['IAS ECC Type 1', 'second line']);
    expect(entries[0].line).toBe(5);
  });

  it('matches the way ATR_analysis does: whole ATR, wildcards, classes, any case', () => {
    expect(names('3B 02 14 50')).toEqual(['Schlumberger Multiflex 3k', 'lower-case pattern, same card']);
    expect(names('3B0214')).toEqual([]); // anchored: a prefix is not a match
    expect(names('3B 02 14 50 00')).toEqual([]);
    expect(names('3B FF 18 00 FF 00 31 B8 64 01 02 03 04 73 AA BB CC 82 90 00')).toEqual(['IAS ECC Type 1', 'second line']);
    expect(names('3B 39 19 00 53 4F 4D 41 44 53 33 30 33')).toEqual(['SOMA card']);
    expect(names('3B 39 19 00 53 4F 4D 41 44 53 33 30 32')).toEqual([]);
    expect(names('3B 67 25 00 2A 20 00 45 68 90 00')).toEqual(['class card']);
    expect(names('3B 67 25 00 2A 20 00 41 68 90 00')).toEqual([]);
    expect(names('3B EF 00 FF 81 31 42 45 01 02 03 38')).toEqual(['tail wildcard']);
    expect(names('3B 6A 00 00')).toEqual(['one-digit wildcard']);
    expect(names('3B 7A 00 00')).toEqual([]);
  });

  it('reads the first file that exists, and caches it per path', async () => {
    const first = join(dir, 'cache.txt');
    const second = join(dir, 'system.txt');
    await writeFile(second, '3B 02 14 50\n\tfrom the system list\n');
    const list = new SmartcardList([first, second]);
    expect(await list.identify(fromHex('3B 02 14 50'))).toEqual({ file: second, matches: [{ pattern: '3B 02 14 50', names: ['from the system list'] }] });
    await writeFile(second, '3B 02 14 50\n\tchanged\n');
    expect(await list.cardNames(fromHex('3B 02 14 50'))).toEqual(['from the system list']); // cached
    expect(await new SmartcardList([second]).cardNames(fromHex('3B 02 14 50'))).toEqual(['changed']);
    await writeFile(first, '3B 02 14 .0\n\tfrom the cache list\n');
    expect(await new SmartcardList([first, second]).cardNames(fromHex('3B 02 14 50'))).toEqual(['from the cache list']);
  });

  it('gives no names and no error when no list exists', async () => {
    const list = new SmartcardList([join(dir, 'absent.txt'), join(dir, 'no', 'such', 'dir.txt')]);
    expect(await list.identify(fromHex('3B 02 14 50'))).toEqual({ file: null, matches: [] });
    expect(await list.cardNames(fromHex('3B 02 14 50'))).toEqual([]);
  });

  it('looks where ATR_analysis looks', () => {
    expect(defaultSmartcardListPaths({ HOME: '/home/x' })).toEqual(['/home/x/.cache/smartcard_list.txt', SYSTEM_SMARTCARD_LIST]);
    expect(defaultSmartcardListPaths({ HOME: '/home/x', XDG_CACHE_HOME: '/c' })).toEqual(['/c/smartcard_list.txt', SYSTEM_SMARTCARD_LIST]);
  });

  it.runIf(existsSync(SYSTEM_SMARTCARD_LIST))('finds a well-known card in the installed list', async () => {
    const list = new SmartcardList([SYSTEM_SMARTCARD_LIST]);
    const names = await list.cardNames(fromHex('3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A'));
    expect(names.some((n) => /MIFARE Classic 1K/i.test(n))).toBe(true);
  });
});
