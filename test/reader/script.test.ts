/**
 * The scriptor-format parser and runner (src/reader/script.ts), over the scripted mock channel.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatScriptorHex, formatStep, parseScript, runScript, type StepResult } from '../../src/reader/script.js';
import { ScriptedChannel } from '../../src/reader/mock.js';
import { BadInputError, CardRemovedError } from '../../src/util/errors.js';
import { fromHex, toHex, toSpacedHex } from '../../src/util/bytes.js';

describe('parseScript', () => {
  it('reads scriptor files: APDUs with or without spaces, continuations, comments, blank lines, reset and exit', () => {
    const s = parseScript(
      [
        '# reset the card',
        'reset',
        '',
        '00 A4 04 00 02 3F 00',
        '00B0000010',
        '80 14 00 00 05 01 02 \\',
        '   03 04 \\',
        '05',
        'RESET cold',
        'exit',
        '00 10 00 00',
      ].join('\n'),
    );
    expect(s.steps.map((x) => (x.kind === 'apdu' ? `${x.line}:${toHex(x.command)}` : `${x.line}:${x.kind}${x.kind === 'reset' && x.cold ? ' cold' : ''}`))).toEqual([
      '2:reset',
      '4:00a40400023f00',
      '5:00b0000010',
      '6:80140000050102030405',
      '9:reset cold',
      '10:exit',
    ]);
  });

  it('takes # --expect (sticky), # --expect-next and # --expect-response; indented and trailing comments', () => {
    const s = parseScript(
      [
        '  # --expect 9000 61XX',
        '80 10 00 00   # case 1',
        '# --expect-next 6a82',
        '80 32 6A 82',
        '# --expect-response 6F XX 90 00',
        '80 10 00 00',
        '80 10 00 00',
        '# --expect any',
        '80 10 00 00',
      ].join('\n'),
    );
    expect(s.steps.map((x) => (x.kind === 'apdu' ? x.expect : null))).toEqual([
      { kind: 'sw', patterns: ['9000', '61XX'] },
      { kind: 'sw', patterns: ['6A82'] },
      { kind: 'response', bytes: [0x6f, null, 0x90, 0x00] },
      { kind: 'sw', patterns: ['9000', '61XX'] },
      { kind: 'any' },
    ]);
  });

  it('refuses what is not a script, naming the line, before anything runs', () => {
    const bad: [string, RegExp][] = [
      ['00 A4 04\n', /^script line 1: an APDU has at least 4 bytes/],
      ['80 10 00 00\n80 1 00 00\n', /^script line 2: not hex: odd number of digits/],
      ['80 10 00 00\nselect the applet\n', /^script line 2: not hex: unexpected character 's'/],
      ['80 10 00 \\\n\n# end\n', /^script line 1: the script ends in the middle of an APDU/],
      ['# --expect 9X0\n', /^script line 1: expected status words like 9000 or 61XX, got "9X0"/],
      ['# --expect-response 90\n', /^script line 1: --expect-response needs the whole answer/],
      ['# --expect-response 90 0G\n', /^script line 1: --expect-response: "0G" is not a hex byte or XX/],
    ];
    for (const [text, re] of bad) {
      let err: unknown;
      try {
        parseScript(text);
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(BadInputError);
      expect((err as Error).message, text).toMatch(re);
    }
  });

  it('round-trips any APDUs however they are written (spaces or not, split over continuation lines)', () => {
    const apdu = fc.uint8Array({ minLength: 4, maxLength: 300 });
    fc.assert(
      fc.property(fc.array(fc.tuple(apdu, fc.boolean(), fc.nat(40)), { minLength: 1, maxLength: 8 }), (items) => {
        const lines: string[] = [];
        for (const [bytes, spaced, cut] of items) {
          const text = spaced ? toSpacedHex(bytes) : toHex(bytes).toUpperCase();
          const at = spaced ? Math.min(cut, bytes.length - 1) * 3 : Math.min(cut, bytes.length - 1) * 2;
          if (at > 0) lines.push(`${text.slice(0, at)} \\`, text.slice(at));
          else lines.push(text);
          lines.push('# comment', '');
        }
        const steps = parseScript(lines.join('\n')).steps;
        expect(steps.map((s) => (s.kind === 'apdu' ? toHex(s.command) : s.kind))).toEqual(items.map(([b]) => toHex(b)));
      }),
      { numRuns: 300 },
    );
  });
});

describe('runScript', () => {
  it('sends the APDUs in order, resets, stops at exit, and reports every step as it happens', async () => {
    const ch = new ScriptedChannel([
      ['00A4040C02AABB', '9000'],
      ['80100000', '6F1790'],
    ]);
    const seen: string[] = [];
    const r = await runScript(parseScript('00A4040C02AABB\nreset\n80100000\nexit\n80100000\n'), ch, { onStep: (s) => seen.push(s.kind) });
    expect(r.ok).toBe(true);
    expect(seen).toEqual(['apdu', 'reset', 'apdu', 'exit']);
    expect(r.steps[2]).toMatchObject({ kind: 'apdu', line: 3, sw: '1790', ok: true });
    expect(ch.log.map((e) => e.op)).toEqual(['transmit', 'reset', 'transmit']);
    ch.assertDone();
  });

  it('stops at the first broken expectation with its line, the answer included', async () => {
    const ch = new ScriptedChannel([
      ['80100000', '9000'],
      ['80320000', '6A82'],
    ]);
    const r = await runScript(parseScript('# --expect 9000\n80100000\n80320000\n80100000\n'), ch);
    expect(r.ok).toBe(false);
    expect(r.failure).toEqual({ line: 3, message: 'script line 3: status word 6A82 (file or application not found); expected 9000' });
    expect(r.steps).toHaveLength(2);
    expect(r.steps[1]).toMatchObject({ ok: false, expected: '9000', sw: '6A82' });
  });

  it('checks whole answers with XX wildcards, and --expect applies where the script says nothing', async () => {
    const ch = new ScriptedChannel([
      ['80100000', '6F019000'],
      ['80100001', '6F029000'],
      ['80100002', '6283'],
    ]);
    const text = '# --expect-response 6F XX 90 00\n80100000\n# --expect-response 6F 01 90 00\n80100001\n80100002\n';
    const r = await runScript(parseScript(text), ch, { expect: ['9000'] });
    expect(r.failure?.message).toBe('script line 4: answer 6F 02 90 00 differs from the expected 6F 01 90 00');
    const ch2 = new ScriptedChannel([['80100002', '6283']]);
    const r2 = await runScript(parseScript('80100002\n'), ch2, { expect: [0x9000, '61XX'] });
    expect(r2.failure?.message).toBe('script line 1: status word 6283 (selected file or application deactivated (GlobalPlatform: card locked)); expected 9000 or 61XX');
    await expect(runScript(parseScript('80100002\n'), new ScriptedChannel(), { expect: ['90'] })).rejects.toThrow(/^--expect: expected status words/);
  });

  it('lets transport errors through unchanged', async () => {
    const ch = new ScriptedChannel([{ expect: '80100000', fail: new CardRemovedError() }]);
    await expect(runScript(parseScript('80100000\n'), ch)).rejects.toBeInstanceOf(CardRemovedError);
  });
});

describe('scriptor-style output', () => {
  it('prints > and <, 16 bytes a line with scriptor\'s trailing space, then " : " and the meaning', () => {
    const response = Uint8Array.from([...Array.from({ length: 34 }, (_, i) => i), 0x90, 0x00]);
    const step: StepResult = { kind: 'apdu', line: 1, command: fromHex('8012002200'), response, sw: '9000', meaning: 'success', ok: true };
    expect(formatStep(step)).toBe(
      '> 80 12 00 22 00\n' +
        '< 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F \n' +
        '10 11 12 13 14 15 16 17 18 19 1A 1B 1C 1D 1E 1F \n' +
        '20 21 90 00 : success',
    );
    expect(formatScriptorHex(fromHex('9000'))).toBe('90 00');
    expect(formatScriptorHex(new Uint8Array(16))).toBe('00 '.repeat(16).trimEnd());
    expect(formatStep({ kind: 'reset', line: 1, cold: false, atr: fromHex('3B8001800000') })).toBe('> RESET\n< OK: 3B 80 01 80 00 00');
  });
});
