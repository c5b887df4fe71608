/**
 * Reader selection (`--reader`) and the CLI's channel stack (src/reader/select.ts).
 */
import { describe, expect, it } from 'vitest';
import { formatReaderSelection, parseReaderSelection, resolvePcscReader, stackChannel } from '../../src/reader/select.js';
import { HandlerChannel } from '../../src/reader/mock.js';
import type { TraceRecord } from '../../src/reader/trace.js';
import { BadInputError, HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

describe('parseReaderSelection', () => {
  it('reads an index, a name substring, pcsc:NAME and vpcd://host:port', () => {
    expect(parseReaderSelection('1')).toEqual({ kind: 'index', index: 1 });
    expect(parseReaderSelection(' 0 ')).toEqual({ kind: 'index', index: 0 });
    expect(parseReaderSelection('PCD 00 01')).toEqual({ kind: 'match', text: 'PCD 00 01' });
    expect(parseReaderSelection('pcsc:Virtual PCD 00 00')).toEqual({ kind: 'pcsc', name: 'Virtual PCD 00 00' });
    expect(parseReaderSelection('PCSC:Gemalto 00 00')).toEqual({ kind: 'pcsc', name: 'Gemalto 00 00' });
    expect(parseReaderSelection('vpcd://127.0.0.1:35963')).toEqual({ kind: 'vpcd', host: '127.0.0.1', port: 35963 });
    expect(parseReaderSelection('vpcd://localhost:1')).toEqual({ kind: 'vpcd', host: 'localhost', port: 1 });
    expect(parseReaderSelection('vpcd://[::1]:35963')).toEqual({ kind: 'vpcd', host: '::1', port: 35963 });
    expect(parseReaderSelection('vpcd://35970')).toEqual({ kind: 'vpcd', host: '127.0.0.1', port: 35970 });
  });

  it('refuses empty text and malformed pcsc: / vpcd: forms, saying what is expected', () => {
    for (const bad of ['', '  ', 'pcsc:', 'vpcd://host', 'vpcd://h:0', 'vpcd://h:65536', 'vpcd:h:1', 'vpcd://a b:1', '256']) {
      expect(() => parseReaderSelection(bad), bad).toThrow(BadInputError);
    }
    expect(() => parseReaderSelection('vpcd://h:0')).toThrow('--reader: expected vpcd://host:port (port 1 to 65535), got "vpcd://h:0"');
  });

  it('formats back what it parsed', () => {
    for (const s of ['3', 'Gemalto', 'pcsc:Virtual PCD 00 00', 'vpcd://127.0.0.1:35963', 'vpcd://[::1]:9']) {
      expect(formatReaderSelection(parseReaderSelection(s))).toBe(s);
    }
  });
});

describe('resolvePcscReader', () => {
  const readers = [
    { name: 'Virtual PCD 00 00', cardPresent: false },
    { name: 'Virtual PCD 00 01', cardPresent: true },
    { name: 'Gemalto PC Twin Reader 00 00', cardPresent: true },
  ];

  it('without a selection takes the first reader with a card, else the first reader', () => {
    expect(resolvePcscReader(undefined, readers)).toBe('Virtual PCD 00 01');
    expect(resolvePcscReader(undefined, readers.map((r) => ({ ...r, cardPresent: false })))).toBe('Virtual PCD 00 00');
  });

  it('by index, exact name, or the one name containing the text (any case)', () => {
    expect(resolvePcscReader({ kind: 'index', index: 2 }, readers)).toBe('Gemalto PC Twin Reader 00 00');
    expect(resolvePcscReader({ kind: 'pcsc', name: 'Virtual PCD 00 00' }, readers)).toBe('Virtual PCD 00 00');
    expect(resolvePcscReader({ kind: 'match', text: 'gemalto' }, readers)).toBe('Gemalto PC Twin Reader 00 00');
    expect(resolvePcscReader({ kind: 'match', text: 'Virtual PCD 00 01' }, readers)).toBe('Virtual PCD 00 01');
  });

  it('says which readers exist when nothing or several match', () => {
    const fail = (f: () => unknown): HiltError => {
      try {
        f();
      } catch (e) {
        return e as HiltError;
      }
      throw new Error('did not throw');
    };
    const none = fail(() => resolvePcscReader({ kind: 'index', index: 3 }, readers));
    expect(none.code).toBe('READER_UNAVAILABLE');
    expect(none.message).toBe('no PC/SC reader at index 3 (0: Virtual PCD 00 00; 1: Virtual PCD 00 01; 2: Gemalto PC Twin Reader 00 00)');
    expect(fail(() => resolvePcscReader({ kind: 'match', text: 'Virtual' }, readers)).message).toBe(
      '"Virtual" matches 2 readers (Virtual PCD 00 00; Virtual PCD 00 01); give more of the name, an index, or pcsc:NAME',
    );
    expect(fail(() => resolvePcscReader({ kind: 'pcsc', name: 'virtual pcd 00 00' }, readers)).message).toMatch(/^no PC\/SC reader named "virtual pcd 00 00"/);
    expect(fail(() => resolvePcscReader(undefined, [])).message).toBe('no PC/SC reader found (is the reader plugged in and its driver installed?)');
  });
});

describe('stackChannel', () => {
  /** A T=0-style card: a case-4 command answers 61 04, the data comes with GET RESPONSE; chained links are acknowledged. */
  function card(): HandlerChannel {
    let parts = 0;
    return new HandlerChannel((c) => {
      if (c[1] === 0xc0) return fromHex('010203049000');
      if ((c[0] & 0x10) !== 0) {
        parts++;
        return fromHex('9000');
      }
      if (c[1] === 0x1a) return Uint8Array.of(parts, 0x61, 0x04);
      return fromHex('6D00');
    });
  }

  it('trace outermost sees one exchange per command; GET RESPONSE and chaining happen inside', async () => {
    const records: TraceRecord[] = [];
    const ch = stackChannel(card(), { chaining: { maxCommandData: 2 }, trace: { sink: (r) => records.push(r) } });
    const r = await ch.transmit(fromHex('801A000005AABBCCDDEE'));
    expect(toHex(r)).toBe('02010203049000');
    expect(records.map((x) => x.dir)).toEqual(['>', '<']);
    expect(records[0]).toMatchObject({ hex: '801A000005AABBCCDDEE' });
    await ch.close();
  });

  it('trace on the wire sees every link and every GET RESPONSE; getResponse false leaves 61xx to the caller', async () => {
    const records: TraceRecord[] = [];
    const ch = stackChannel(card(), { chaining: { maxCommandData: 2 }, trace: { sink: (r) => records.push(r), wire: true } });
    await ch.transmit(fromHex('801A000005AABBCCDDEE'));
    expect(records.filter((x) => x.dir === '>').map((x) => (x.dir === '>' ? x.hex : ''))).toEqual(['901A000002AABB', '901A000002CCDD', '801A000001EE', '00C0000004']);
    const raw = stackChannel(card(), { getResponse: false });
    expect(toHex(await raw.transmit(fromHex('801A000001EE')))).toBe('006104');
    // Without chaining asked for, a long command goes as it is.
    const plain = stackChannel(card());
    expect(toHex(await plain.transmit(fromHex('801A000005AABBCCDDEE')))).toBe('00010203049000');
  });
});
