/**
 * Fuzz of CommandApdu.decode and ResponseApdu.decode: well over 100,000 random and mutated byte
 * strings (bit flips, truncations, appended bytes, Lc/Le corruptions of valid encodings, near-miss
 * lengths), from a seeded PRNG so a failure replays. For every input each decoder either returns or
 * throws DecodeError('APDU_MALFORMED'), never anything else; whatever decodes encodes back to the
 * same bytes; and the command decoder accepts exactly what the ISO 7816-4 length table allows.
 */
import { describe, it, expect } from 'vitest';
import { CommandApdu } from '../../src/apdu/command.js';
import { ResponseApdu } from '../../src/apdu/response.js';
import { DecodeError } from '../../src/util/errors.js';
import { bytesEqual, toHex } from '../../src/util/bytes.js';
import { prng as mulberry32 } from '../helpers/prng.js';

const SEED = 0x5eed7816;
const INPUTS = 120_000;

/** The shared seeded PRNG with integer and byte helpers on top. */
function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const w = (next() * 4294967296) >>> 0;
      out[i] = w;
      if (i + 1 < n) out[i + 1] = w >>> 8;
      if (i + 2 < n) out[i + 2] = w >>> 16;
      if (i + 3 < n) out[i + 3] = w >>> 24;
    }
    return out;
  };
  return { next, int, bytes };
}
type Rng = ReturnType<typeof prng>;

/**
 * The ISO 7816-4 acceptance rule written as the list of lengths each case allows (an oracle for the
 * decoder): L = 4 | 5 | 5+B5 | 6+B5 (B5 ≠ 0) | 7 (B5 = 0) | 7+N | 9+N (B5 = 0, N = B6B7 ≠ 0); CLA ≠ FF.
 */
function isoValidCommand(b: Uint8Array): boolean {
  if (b.length < 4 || b[0] === 0xff) return false;
  const allowed = [4, 5];
  if (b.length > 4 && b[4] !== 0) allowed.push(5 + b[4], 6 + b[4]);
  if (b.length > 6 && b[4] === 0) {
    allowed.push(7);
    const n = (b[5] << 8) | b[6];
    if (n !== 0) allowed.push(7 + n, 9 + n);
  }
  return allowed.includes(b.length);
}

/** A valid command encoding with sizes biased to the short/extended boundaries. */
function validCommand(r: Rng): Uint8Array {
  const ncPick = r.int(6);
  const nc = [0, 1 + r.int(20), 255, 256, r.int(600), 0][ncPick];
  const nePick = r.int(7);
  const ne = [0, 1 + r.int(256), 256, 257, 65536, 1 + r.int(65536), 0][nePick];
  return new CommandApdu({
    cla: r.int(255),
    ins: r.int(256),
    p1: r.int(256),
    p2: r.int(256),
    data: r.bytes(nc),
    ne,
    extended: r.int(4) === 0,
  }).encode();
}

const MUTATIONS = [
  'random',
  'valid',
  'bit-flips',
  'truncate',
  'append',
  'lc-corrupt',
  'le-corrupt',
  'near-short',
  'near-extended',
  'splice',
] as const;
type Mutation = (typeof MUTATIONS)[number];

function mutate(kind: Mutation, r: Rng): Uint8Array {
  switch (kind) {
    case 'random':
      return r.bytes(r.int(r.int(10) === 0 ? 700 : 12));
    case 'valid':
      return validCommand(r);
    case 'bit-flips': {
      const b = validCommand(r);
      for (let i = 1 + r.int(3); i > 0; i--) {
        const at = r.int(b.length);
        b[at] ^= 1 << r.int(8);
      }
      return b;
    }
    case 'truncate': {
      const b = validCommand(r);
      return b.slice(0, r.int(b.length));
    }
    case 'append': {
      const b = validCommand(r);
      const out = new Uint8Array(b.length + 1 + r.int(4));
      out.set(b);
      out.set(r.bytes(out.length - b.length), b.length);
      return out;
    }
    case 'lc-corrupt': {
      const b = validCommand(r);
      if (b.length > 4) {
        if (b[4] !== 0 || b.length < 7) b[4] = [0, 1, 0xff, (b[4] + 1) & 0xff, (b[4] - 1) & 0xff, r.int(256)][r.int(6)];
        else {
          const at = 5 + r.int(2);
          b[at] = [0, 0xff, (b[at] + 1) & 0xff, (b[at] - 1) & 0xff, r.int(256)][r.int(5)];
        }
      }
      return b;
    }
    case 'le-corrupt': {
      const b = validCommand(r);
      const choice = r.int(3);
      if (choice === 0) return b.slice(0, Math.max(0, b.length - 1)); // drop the last Le byte
      if (choice === 1) {
        const out = new Uint8Array(b.length + 1);
        out.set(b);
        out[b.length] = r.int(256); // a second Le byte
        return out;
      }
      b[b.length - 1] = r.int(256); // another Le value (or last data byte)
      return b;
    }
    case 'near-short': {
      const lc = 1 + r.int(255);
      const len = 5 + lc + r.int(4) - 1; // L in {4+lc .. 8+lc}: valid at 5+lc and 6+lc only
      const b = r.bytes(Math.max(5, len));
      b[0] = r.int(255);
      b[4] = lc;
      return b;
    }
    case 'near-extended': {
      const n = r.int(4) === 0 ? 0 : 1 + r.int(r.int(64) === 0 ? 65535 : 400);
      const len = 7 + n + r.int(5) - 1; // around 7+N and 9+N
      const b = n > 400 ? new Uint8Array(Math.max(7, len)).fill(r.int(256)) : r.bytes(Math.max(7, len));
      b[0] = r.int(255);
      b[4] = 0;
      b[5] = n >> 8;
      b[6] = n & 0xff;
      return b;
    }
    case 'splice': {
      const a = validCommand(r);
      const c = validCommand(r);
      const cut = r.int(a.length + 1);
      const out = new Uint8Array(cut + c.length - Math.min(c.length, 4));
      out.set(a.subarray(0, cut));
      out.set(c.subarray(Math.min(c.length, 4)), cut);
      return out;
    }
  }
}

type Outcome = { ok: true; encoded: Uint8Array } | { ok: false; error: unknown };

function attempt(decode: () => { encode(): Uint8Array }): Outcome {
  try {
    return { ok: true, encoded: decode().encode() };
  } catch (error) {
    return { ok: false, error };
  }
}

function withoutStackTraces(fn: () => void): void {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function isMalformed(e: unknown): boolean {
  return e instanceof DecodeError && e.code === 'APDU_MALFORMED' && Number.isInteger(e.offset);
}

describe('APDU decoder fuzz', () => {
  it(`${INPUTS} mutated inputs through both decoders: only DecodeError, exact round trips, ISO acceptance`, () => {
    const r = prng(SEED);
    const problems: string[] = [];
    const stats = new Map<Mutation, { accepted: number; refused: number }>(MUTATIONS.map((m) => [m, { accepted: 0, refused: 0 }]));
    let respAccepted = 0;
    let respRefused = 0;
    const note = (what: string, b: Uint8Array) => {
      if (problems.length < 20) problems.push(`${what}: ${toHex(b.subarray(0, 40))}${b.length > 40 ? '…' : ''} (${b.length} bytes)`);
    };

    // Refusals are the common outcome; stack traces are not under test and dominate the run time.
    withoutStackTraces(() => {
      for (let i = 0; i < INPUTS; i++) {
        const kind = MUTATIONS[i % MUTATIONS.length];
        let b = mutate(kind, r);
        // Sometimes hand the decoder a view into a larger buffer, or a Buffer, instead of a fresh array.
        if (i % 13 === 0) {
          const backing = new Uint8Array(b.length + 6).fill(0xee);
          backing.set(b, 3);
          b = backing.subarray(3, 3 + b.length);
        } else if (i % 17 === 0) {
          b = Buffer.from(b);
        }

        const c = attempt(() => CommandApdu.decode(b));
        const s = stats.get(kind)!;
        if (c.ok) {
          s.accepted++;
          if (!bytesEqual(c.encoded, b)) note(`command re-encodes differently (${kind})`, b);
          if (!isoValidCommand(b)) note(`command accepted but not valid by the ISO table (${kind})`, b);
        } else {
          s.refused++;
          if (!isMalformed(c.error)) note(`command threw ${String(c.error)} (${kind})`, b);
          if (isoValidCommand(b)) note(`command refused but valid by the ISO table (${kind})`, b);
        }

        const rr = attempt(() => ResponseApdu.decode(b));
        if (rr.ok) {
          respAccepted++;
          if (!bytesEqual(rr.encoded, b)) note('response re-encodes differently', b);
          if (b.length < 2) note('response accepted with fewer than 2 bytes', b);
        } else {
          respRefused++;
          if (!isMalformed(rr.error)) note(`response threw ${String(rr.error)}`, b);
          if (b.length >= 2 && b.length <= 65538) note('response refused though 2..65538 bytes', b);
        }
      }
    });

    expect(problems).toEqual([]);
    // The fuzz must reach both outcomes of every decoder, and every mutation must be exercised.
    for (const [kind, s] of stats) {
      expect(s.accepted + s.refused, kind).toBe(INPUTS / MUTATIONS.length);
      if (kind !== 'valid') expect(s.refused, `${kind} refused`).toBeGreaterThan(0);
      if (kind !== 'splice' && kind !== 'random') expect(s.accepted, `${kind} accepted`).toBeGreaterThan(0);
    }
    expect(stats.get('valid')!.refused).toBe(0);
    expect(respAccepted).toBeGreaterThan(INPUTS / 2);
    expect(respRefused).toBeGreaterThan(100);
  });

  it('oversized and non-byte inputs are refused with DecodeError too', () => {
    const r = prng(SEED + 1);
    const odd: unknown[] = [
      new Uint8Array(65545),
      new Uint8Array(65539),
      Uint8ClampedArray.of(0, 0xa4, 4, 0),
      Int8Array.of(0, -92, 4, 0),
      Array.from(r.bytes(8)),
      r.bytes(8).buffer,
      '00A40400',
      8,
      null,
      undefined,
      {},
      Symbol('apdu'),
    ];
    for (const v of odd) {
      for (const [name, decode] of [
        ['CommandApdu.decode', CommandApdu.decode],
        ['ResponseApdu.decode', ResponseApdu.decode],
      ] as const) {
        let err: unknown;
        try {
          decode(v as Uint8Array);
        } catch (e) {
          err = e;
        }
        expect(isMalformed(err), `${name} on ${Object.prototype.toString.call(v)}`).toBe(true);
      }
    }
  });
});
