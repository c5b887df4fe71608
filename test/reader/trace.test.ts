import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { HandlerChannel, ScriptedChannel } from '../../src/reader/mock.js';
import {
  formatTraceLine,
  formatTraceTime,
  jsonTraceSink,
  parseTraceLine,
  textTraceSink,
  TRACE_BODY_PATTERNS,
  TRACE_LINE_PATTERN,
  withTrace,
  type TraceRecord,
} from '../../src/reader/trace.js';
import { CardRemovedError, HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

const DOC = readFileSync(new URL('../../docs/trace-format.md', import.meta.url), 'utf8');

/** The regex in the doc's fenced block whose info string is `regex <name>`. */
function docRegex(name: string): RegExp {
  const fence = '```regex ' + name + '\n';
  const at = DOC.indexOf(fence);
  expect(at, `docs/trace-format.md has a \`\`\`regex ${name} block`).toBeGreaterThanOrEqual(0);
  const body = DOC.slice(at + fence.length, DOC.indexOf('\n```', at + fence.length));
  return new RegExp(body.trim());
}

function fakeClock(startNs: bigint, stepNs: bigint): () => bigint {
  let t = startNs;
  return () => {
    const v = t;
    t += stepNs;
    return v;
  };
}

const SELECT = '00A4040007A000000003101000';

async function traced(script: ConstructorParameters<typeof ScriptedChannel>[0], run: (ch: ReturnType<ReturnType<typeof withTrace>>) => Promise<void>) {
  const lines: string[] = [];
  const records: TraceRecord[] = [];
  const card = new ScriptedChannel(script, { atr: '3B00' });
  const ch = withTrace((r) => {
    records.push(r);
    textTraceSink((s) => lines.push(s))(r);
  })(card);
  await run(ch);
  return { lines, records, card };
}

describe('withTrace', () => {
  it('writes lines that the regexes given in the doc parse back, timing included', async () => {
    const { lines } = await traced(
      [
        [SELECT, '611C'],
        ['00C000001C', '6F1A8407A0000000031010A50F500A4D6173746572436172648701019000'],
        { expect: '00B2010C00', fail: new CardRemovedError() },
      ],
      async (ch) => {
        await ch.reset(true);
        await ch.transmit(fromHex(SELECT));
        await ch.transmit(fromHex('00C000001C'));
        await ch.transmit(fromHex('00B2010C00')).catch(() => undefined);
      },
    );
    expect(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1)).toBe(true);
    const lineRe = docRegex('line');
    const parsed = lines.map((l) => {
      const m = lineRe.exec(l.slice(0, -1));
      expect(m, l).not.toBeNull();
      const body = docRegex(m![3]).exec(m![4]);
      expect(body, l).not.toBeNull();
      return { time: m![1], dir: m![3], body: body! };
    });
    expect(parsed.map((p) => p.dir)).toEqual(['*', '>', '<', '>', '<', '>', '!']);
    expect(parsed[0].body.slice(1, 3)).toEqual(['cold', '3B00']);
    expect(parsed[1].body[1]).toBe(SELECT);
    expect(parsed[2].body[1].slice(-4)).toBe('611C');
    expect(parsed[2].body[2]).toContain('28'); // the 61xx meaning, parentheses and all
    expect(parsed[4].body[2]).toBe('success');
    expect(parsed[6].body.slice(1, 2)).toEqual(['transmit']);
    expect(parsed[6].body[2]).toBe('CARD_REMOVED');
    expect(parsed[6].body[4]).toBe('card removed');
    for (const p of [parsed[0], parsed[2], parsed[4], parsed[6]]) {
      expect(Number(p.body[3])).toBeGreaterThanOrEqual(0);
    }
    // wall-clock times are now, to the microsecond format, and never go backwards
    const times = parsed.map((p) => p.time);
    expect([...times].sort()).toEqual(times);
    expect(Math.abs(Date.parse(times[0]) - Date.now())).toBeLessThan(60_000);
  });

  it('the doc states the same patterns as the code', () => {
    expect(docRegex('line').source).toBe(TRACE_LINE_PATTERN.source);
    for (const dir of ['>', '<', '*', '!'] as const) expect(docRegex(dir).source).toBe(TRACE_BODY_PATTERNS[dir].source);
  });

  it('every example line in the doc parses', () => {
    const examples = DOC.split('\n').filter((l) => /^\d{4}-\d{2}-\d{2}T/.test(l));
    expect(examples.length).toBeGreaterThanOrEqual(9);
    for (const l of examples) expect(() => parseTraceLine(l), l).not.toThrow();
    const jsonExamples = DOC.split('\n').filter((l) => l.startsWith('{"time"'));
    expect(jsonExamples.map((l) => JSON.parse(l))).toEqual(examples.map((l) => parseTraceLine(l)));
  });

  it('measures elapsed time with the real clock', async () => {
    const records: TraceRecord[] = [];
    const ch = withTrace((r) => records.push(r))(new HandlerChannel(() => fromHex('9000'), { latencyMs: 30 }));
    await ch.transmit(fromHex('00CA006600'));
    const response = records[1];
    expect(response.dir).toBe('<');
    expect(response.dir === '<' && response.elapsedUs).toBeGreaterThanOrEqual(25_000);
    expect(response.dir === '<' && response.elapsedUs).toBeLessThan(5_000_000);
  });

  it('traces errors and re-throws the very same error', async () => {
    const boom = new HiltError('TIMEOUT', 'no answer\nwithin 5 s');
    const records: TraceRecord[] = [];
    const lines: string[] = [];
    const ch = withTrace((r) => {
      records.push(r);
      lines.push(formatTraceLine(r));
    })(new ScriptedChannel([{ expect: '00CA006600', fail: boom }]));
    await expect(ch.transmit(fromHex('00CA006600'))).rejects.toBe(boom);
    expect(records[1]).toMatchObject({ dir: '!', op: 'transmit', code: 'TIMEOUT', message: 'no answer\nwithin 5 s' });
    expect(lines[1]).toMatch(/ ! transmit TIMEOUT \d+us no answer within 5 s$/);

    const plain = new Error('weird');
    const ch2 = withTrace((r) => records.push(r))(new HandlerChannel(() => {
      throw plain;
    }));
    await expect(ch2.transmit(fromHex('00CA006600'))).rejects.toBe(plain);
    expect(records.at(-1)).toMatchObject({ dir: '!', code: 'UNKNOWN', message: 'weird' });
  });

  it('traces resets and failed resets', async () => {
    const records: TraceRecord[] = [];
    const reader = new HandlerChannel(() => fromHex('9000'), { atr: '3B8001800000' });
    const ch = withTrace((r) => records.push(r))(reader);
    expect(toHex(await ch.reset())).toBe('3b8001800000');
    reader.removeCard();
    await expect(ch.reset(true)).rejects.toMatchObject({ code: 'NO_CARD' });
    expect(records).toMatchObject([
      { dir: '*', cold: false, atr: '3B8001800000' },
      { dir: '!', op: 'reset', code: 'NO_CARD' },
    ]);
  });

  it('never alters bytes', async () => {
    const response = fromHex('6F108407A0000000031010A5055003564953419000');
    const inner = new HandlerChannel(() => response);
    const plain = await inner.transmit(fromHex(SELECT));
    const viaTrace = await withTrace(() => undefined)(inner).transmit(fromHex(SELECT));
    expect(toHex(viaTrace)).toBe(toHex(plain));
    expect(toHex(viaTrace)).toBe(toHex(response));
  });

  it('a throwing sink does not disturb the exchange; its error goes to onSinkError', async () => {
    const sinkErrors: unknown[] = [];
    const ch = withTrace(
      () => {
        throw new Error('disk full');
      },
      { onSinkError: (e) => sinkErrors.push(e) },
    )(new ScriptedChannel([[SELECT, '9000']]));
    expect(toHex(await ch.transmit(fromHex(SELECT)))).toBe('9000');
    expect(sinkErrors).toHaveLength(2);
    expect((sinkErrors[0] as Error).message).toBe('disk full');
  });

  it('accepts object sinks and streams, tags lines, refuses bad tags', async () => {
    const records: TraceRecord[] = [];
    const written: string[] = [];
    const ch = withTrace({ write: (r) => records.push(r) }, { tag: 'card', clock: fakeClock(0n, 1000n) })(new ScriptedChannel([[SELECT, '9000']]));
    await ch.transmit(fromHex(SELECT));
    const stream = { write: (s: string) => written.push(s) };
    for (const r of records) textTraceSink(stream)(r);
    expect(written).toEqual([`1970-01-01T00:00:00.000000Z [card] > ${SELECT}\n`, '1970-01-01T00:00:00.000001Z [card] < 9000 (success) 1us\n']);
    expect(parseTraceLine(written[1].trimEnd())).toEqual(records[1]);
    expect(() => withTrace(() => undefined, { tag: 'two words' })).toThrow(/tag/);
    // @ts-expect-error: not a sink
    expect(() => withTrace(42)).toThrow(/sink/);
  });

  it('writes JSON lines that parse back to the records', async () => {
    const out: string[] = [];
    const records: TraceRecord[] = [];
    const ch = withTrace((r) => {
      records.push(r);
      jsonTraceSink((s) => out.push(s))(r);
    })(new ScriptedChannel([[SELECT, '6A82']]));
    await ch.transmit(fromHex(SELECT));
    expect(out.every((l) => l.endsWith('\n'))).toBe(true);
    expect(out.map((l) => JSON.parse(l))).toEqual(records);
    expect(records[1]).toMatchObject({ sw: '6A82', hex: '6A82' });
  });

  it('formats times with microseconds', () => {
    expect(formatTraceTime(0n)).toBe('1970-01-01T00:00:00.000000Z');
    expect(formatTraceTime(1795456800123456789n)).toBe('2026-11-23T18:00:00.123456Z');
  });

  it('refuses lines that are not trace lines', () => {
    for (const bad of ['', 'hello', '2026-11-23T18:00:00.123Z > 00', '2026-11-23T18:00:00.123456Z < 9000 success 12us', '2026-11-23T18:00:00.123456Z > 00a4']) {
      expect(() => parseTraceLine(bad), bad).toThrow(/not a trace line/);
    }
  });

  it('property: parseTraceLine(formatTraceLine(r)) equals r', () => {
    const hexArb = fc.uint8Array({ maxLength: 40 }).map((b) => toHex(b).toUpperCase());
    const time = fc.bigInt({ min: 0n, max: 4_000_000_000_000_000_000n }).map(formatTraceTime);
    const text = fc.string({ maxLength: 30 }).filter((s) => !/[\r\n]/.test(s));
    const us = fc.nat({ max: 100_000_000 });
    const tag = fc.option(fc.stringMatching(/^[A-Za-z0-9_.:-]{1,8}$/), { nil: undefined });
    const withTag = <T extends object>(r: T, t: string | undefined): T => (t === undefined ? r : { ...r, tag: t });
    const record: fc.Arbitrary<TraceRecord> = fc.oneof(
      fc.tuple(time, tag, hexArb).map(([t, g, h]) => withTag({ time: t, dir: '>' as const, hex: h }, g)),
      fc
        .tuple(time, tag, fc.uint8Array({ minLength: 2, maxLength: 40 }), text, us)
        .map(([t, g, b, m, e]) => {
          const h = toHex(b).toUpperCase();
          return withTag({ time: t, dir: '<' as const, hex: h, sw: h.slice(-4), meaning: m, elapsedUs: e }, g);
        }),
      fc.tuple(time, tag, fc.boolean(), hexArb, us).map(([t, g, c, a, e]) => withTag({ time: t, dir: '*' as const, cold: c, atr: a, elapsedUs: e }, g)),
      fc
        .tuple(time, tag, fc.constantFrom('transmit' as const, 'reset' as const), fc.stringMatching(/^[A-Z0-9_]{1,20}$/), text, us)
        .map(([t, g, op, code, m, e]) => withTag({ time: t, dir: '!' as const, op, code, message: m, elapsedUs: e }, g)),
    );
    fc.assert(
      fc.property(record, (r) => {
        expect(parseTraceLine(formatTraceLine(r))).toEqual(r);
      }),
      { numRuns: 2000 },
    );
  });
});
