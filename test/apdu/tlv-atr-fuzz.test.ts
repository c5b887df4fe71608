/**
 * Fuzz: the BER-TLV, compact-TLV and ATR decoders on 100,000 mutated valid encodings and 100,000
 * random byte strings each. Every call must return or throw a DecodeError with the decoder's
 * code; anything else (RangeError, TypeError, a stack overflow, another code) fails the test and
 * prints the input. A decoder that returns must also describe its input: for the TLV codecs the
 * result re-encodes to exactly the input bytes.
 *
 * The PRNG is seeded (HILT_FUZZ_SEED overrides the default) so a failure reproduces.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseTlv, encodeTlv, Tlv, walk } from '../../src/apdu/tlv.js';
import { parseCompactTlv, encodeCompactTlv } from '../../src/apdu/compact-tlv.js';
import { parseAtr, describeInterfaceByte } from '../../src/apdu/atr.js';
import { DecodeError } from '../../src/util/errors.js';
import { fromHex, toHex, bytesEqual } from '../../src/util/bytes.js';
import { prng } from '../helpers/prng.js';

const SEED = Number(process.env.HILT_FUZZ_SEED ?? 0x5eed7a1c) >>> 0;
const MUTATED = 100_000;
const RANDOM = 100_000;


type Rand = ReturnType<typeof prng>;
const int = (r: Rand, n: number) => Math.floor(r() * n);
/** Bytes that sit on decision points of these formats. */
const INTERESTING = [0x00, 0xff, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x1f, 0x3f, 0x3b, 0x7f, 0x20, 0x0f, 0xf0, 0x01];

function randomBytes(r: Rand, max: number): Uint8Array {
  const out = new Uint8Array(int(r, max + 1));
  for (let i = 0; i < out.length; i++) out[i] = r() < 0.2 ? INTERESTING[int(r, INTERESTING.length)] : int(r, 256);
  return out;
}

/** One to three of: bit flip, byte set, truncation, extension, insertion, deletion, duplication. */
function mutate(r: Rand, input: Uint8Array): Uint8Array {
  let b = Array.from(input);
  const rounds = 1 + int(r, 3);
  for (let k = 0; k < rounds; k++) {
    const pos = int(r, b.length + 1);
    switch (int(r, 7)) {
      case 0:
        if (b.length) b[pos % b.length] ^= 1 << int(r, 8);
        break;
      case 1:
        if (b.length) b[pos % b.length] = r() < 0.5 ? INTERESTING[int(r, INTERESTING.length)] : int(r, 256);
        break;
      case 2:
        b = b.slice(0, pos);
        break;
      case 3:
        b.push(...randomBytes(r, 8));
        break;
      case 4:
        b.splice(pos, 0, ...randomBytes(r, 4));
        break;
      case 5:
        b.splice(pos, 1 + int(r, 3));
        break;
      case 6: {
        const from = int(r, b.length + 1);
        b.splice(pos, 0, ...b.slice(from, from + 1 + int(r, 6)));
        break;
      }
    }
  }
  return Uint8Array.from(b);
}

interface Outcome {
  calls: number;
  accepted: number;
  refused: number;
  failure?: string;
}

/**
 * Runs `decode` on mutated corpus entries, then on random bytes. `decode` may check what it got
 * back and throw a plain Error if it is wrong; that counts as a failure like any other throw.
 */
function fuzz(
  name: string,
  code: string,
  corpus: Uint8Array[],
  decode: (b: Uint8Array) => void,
  maxRandom: number,
  seedOffset: number,
  counts = { mutated: MUTATED, random: RANDOM },
): Outcome {
  const r = prng(SEED + seedOffset);
  const o: Outcome = { calls: 0, accepted: 0, refused: 0 };
  const one = (input: Uint8Array) => {
    o.calls++;
    try {
      decode(input);
      o.accepted++;
    } catch (e) {
      if (e instanceof DecodeError && e.code === code) {
        o.refused++;
        return;
      }
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
      o.failure ??= `${name}(${toHex(input)}) threw ${what} [seed ${SEED}]`;
    }
  };
  // Most inputs are refused, and capturing a stack for each DecodeError is most of the cost; the
  // failure report names the input and the message, which is what reproduces it.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (let i = 0; i < counts.mutated && !o.failure; i++) one(mutate(r, corpus[int(r, corpus.length)]));
    for (let i = 0; i < counts.random && !o.failure; i++) one(randomBytes(r, maxRandom));
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
  if (process.env.HILT_FUZZ_VERBOSE) console.info(name, o);
  return o;
}

// ---- corpora of valid encodings -----------------------------------------------------------------

const tlvCorpus: Uint8Array[] = [
  '6F 10 84 08 A0 00 00 00 03 00 00 00 A5 04 9F 65 01 FF',
  '6F 23 84 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 A5 11 BF 0C 0E 61 0C 4F 07 A0 00 00 00 03 10 10 87 01 01',
  '70 27 57 11 47 61 73 90 01 01 00 10 D2 21 22 01 17 58 92 88 89 5F 20 0C 56 49 53 41 20 41 43 51 54 45 53 54 5F 30 02 02 01',
  '77 1E 82 02 19 80 94 18 08 01 01 00 10 01 01 01 18 01 02 00 20 01 01 00 28 01 03 00 9F 36 02 00 01',
  '5A 81 02 12 34 DF 81 01 00 7F 21 82 00 03 5F 20 00',
  '66 0C 73 0A 06 08 2A 86 48 86 FC 6B 01 01',
  'E3 0F 4F 07 A0 00 00 01 51 00 00 9F 70 01 0F C5 01 9E',
].map(fromHex);
{
  // Deeper and longer shapes, built with the builders.
  const leaf = (n: number) => Tlv.primitive(0x9f10, new Uint8Array(n).fill(n & 0xff));
  let t = Tlv.constructed(0xbf0c, [leaf(3), leaf(200)]);
  for (let i = 0; i < 8; i++) t = Tlv.constructed(i % 2 ? 0x61 : 0xa5, [t, leaf(i)]);
  tlvCorpus.push(t.encode(), new Tlv({ tag: 0x70, children: [leaf(1)], lengthBytes: 4 }).encode());
}

interface FixtureEntry {
  atr: string;
}
const atrCorpus = (JSON.parse(readFileSync(new URL('../fixtures/atr/atr-analysis.json', import.meta.url), 'utf8')) as FixtureEntry[]).map((e) =>
  fromHex(e.atr),
);
const compactCorpus: Uint8Array[] = [];
for (const a of atrCorpus) {
  try {
    const h = parseAtr(a).historical;
    if (h.kind === 'compact-tlv' || h.kind === 'compact-tlv-status') compactCorpus.push(h.bytes.subarray(1, h.kind === 'compact-tlv-status' ? -3 : undefined));
  } catch {
    // ATRs the parser refuses still seed the ATR fuzz, not this one.
  }
}

describe(`fuzz (seed ${SEED}, ${MUTATED} mutated + ${RANDOM} random inputs per decoder)`, () => {
  it('BER-TLV: returns a tree that re-encodes to its input, or throws DecodeError(TLV_MALFORMED)', () => {
    const strict = fuzz(
      'parseTlv',
      'TLV_MALFORMED',
      tlvCorpus,
      (b) => {
        const tlvs = parseTlv(b);
        if (!bytesEqual(encodeTlv(tlvs), b)) throw new Error('re-encoding differs');
        for (const v of walk(tlvs)) if (v.node.constructed !== (v.node.children !== undefined)) throw new Error('children/constructed mismatch');
      },
      64,
      1,
    );
    expect(strict.failure).toBeUndefined();
    expect(strict.calls).toBe(MUTATED + RANDOM);
    // Both outcomes must be well exercised, or the corpus/mutations are not doing their job.
    expect(strict.accepted).toBeGreaterThan(5_000);
    expect(strict.refused).toBeGreaterThan(50_000);

    // The padding option takes other paths; a smaller run on top of the 200,000 above.
    const lenient = fuzz('parseTlv(padding)', 'TLV_MALFORMED', tlvCorpus, (b) => void parseTlv(b, { padding: true }), 64, 2, { mutated: 25_000, random: 25_000 });
    expect(lenient.failure).toBeUndefined();
    expect(lenient.accepted).toBeGreaterThan(2_000);
  });

  it('compact-TLV: returns objects that re-encode to the input, or throws DecodeError(TLV_MALFORMED)', () => {
    expect(compactCorpus.length).toBeGreaterThan(20);
    const o = fuzz(
      'parseCompactTlv',
      'TLV_MALFORMED',
      compactCorpus,
      (b) => {
        if (!bytesEqual(encodeCompactTlv(parseCompactTlv(b)), b)) throw new Error('re-encoding differs');
      },
      24,
      3,
    );
    expect(o.failure).toBeUndefined();
    expect(o.calls).toBe(MUTATED + RANDOM);
    expect(o.accepted).toBeGreaterThan(10_000);
    expect(o.refused).toBeGreaterThan(10_000);
  });

  it('ATR: returns a decoded ATR, or throws DecodeError(ATR_MALFORMED)', () => {
    const o = fuzz(
      'parseAtr',
      'ATR_MALFORMED',
      atrCorpus,
      (b) => {
        const a = parseAtr(b);
        if (!bytesEqual(a.bytes, b)) throw new Error('bytes not kept');
        for (const ib of a.interfaceBytes) if (b[ib.offset] !== ib.value) throw new Error('interface byte offset wrong');
        for (const ib of a.interfaceBytes) describeInterfaceByte(ib, 1e6 + ib.value);
      },
      40,
      4,
    );
    expect(o.failure).toBeUndefined();
    expect(o.calls).toBe(MUTATED + RANDOM);
    expect(o.accepted).toBeGreaterThan(5_000);
    expect(o.refused).toBeGreaterThan(50_000);
  });
});
