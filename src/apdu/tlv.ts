/**
 * BER-TLV as used on smart cards (ISO/IEC 7816-4 §5.2, the card subset of X.690 BER).
 *
 * Tags are kept as the number formed by their raw bytes, the way card specifications write them:
 * 0x6F, 0x9F38, 0xBF0C, 0x5F2A. That keeps tag tables readable and makes the tag's encoding
 * unambiguous (1F 05 and 05 are different tags here, as on the wire).
 *
 *   tag     first byte: b6 = constructed; b5..b1 = 11111 means "more tag bytes follow".
 *           Each following byte has b8 = 1 if yet another follows. At most 4 tag bytes in all,
 *           and the first following byte may not be 80 (a leading zero group is never minimal).
 *           EMV tags such as 9F02 have a second byte below 1F; ISO 7816-4 would refuse them but
 *           every payment card uses them, so they are accepted.
 *   length  00..7F: the length itself. 81 xx, 82 xxxx, 83 xxxxxx, 84 xxxxxxxx: long form.
 *           80 (indefinite, BER only, never on cards) and 85..FF are refused.
 *
 * Non-minimal length forms (81 05, 82 00 05) occur on real cards. A decoded node remembers how
 * many length bytes it was written with (`lengthBytes`), and encoding honours that, so
 * encodeTlv(parseTlv(x)) equals x byte for byte for every input the strict parser accepts.
 * Nodes built in code get the minimal form.
 *
 * Padding: ISO 7816-4 and EMV allow 00 (and ISO also FF) bytes before, between and after
 * objects, left by erased records. ISO 7816-4 makes 00 and FF invalid first tag bytes so that
 * padding is recognisable. The parser is strict by default (a 00 or FF where a tag should start
 * is refused) and skips such bytes at every nesting level when asked with `{ padding: true }`.
 * Skipped padding inside a constructed value stays in that node's `value` (so the node still
 * re-encodes to its original bytes), but padding at top level is not represented in the
 * returned list: the byte-for-byte round trip is promised for strict input only.
 */
import { DecodeError, BadInputError } from '../util/errors.js';
import { bytesEqual, concatBytes, toHex } from '../util/bytes.js';

/** At most this many bytes in a tag (ISO 7816-4 allows up to three; four leaves headroom). */
export const MAX_TAG_BYTES = 4;
/** Number of length bytes after the 8x marker: 81..84. */
export const MAX_LENGTH_BYTES = 4;
/**
 * Nesting bound. Card data nests a handful of levels (FCI → A5 → BF0C → 61 → ...); without a
 * bound a few kilobytes of 21 00 21 00 ... would overflow the stack of any recursive consumer.
 */
export const MAX_TLV_DEPTH = 32;

export interface TlvParseOptions {
  /** Skip 00 and FF bytes where a tag would start (ISO 7816-4 / EMV padding). Default false. */
  padding?: boolean;
}

/** The tag's raw bytes, most significant first, from its numeric form. */
export function tagBytes(tag: number): Uint8Array {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new BadInputError(`tag: expected 1 to 4 bytes, got ${String(tag)}`);
  const out: number[] = [];
  let t = tag;
  do {
    out.unshift(t % 256);
    t = Math.floor(t / 256);
  } while (t > 0);
  return Uint8Array.from(out);
}

/** Why `bytes` is not one well-formed tag, or undefined if it is. */
function tagProblem(b: Uint8Array): string | undefined {
  if (b[0] === 0x00 || b[0] === 0xff) return `${toHex(b.subarray(0, 1))} is padding, not a tag`;
  const multi = (b[0] & 0x1f) === 0x1f;
  if (!multi) return b.length === 1 ? undefined : 'a first tag byte without 1F in b5..b1 stands alone';
  if (b.length < 2) return 'first tag byte announces more tag bytes';
  if (b[1] === 0x80) return 'first subsequent tag byte 80 is not minimal';
  for (let i = 1; i < b.length - 1; i++) if ((b[i] & 0x80) === 0) return 'tag ends before its last byte';
  if ((b[b.length - 1] & 0x80) !== 0) return 'last tag byte announces more tag bytes';
  return undefined;
}

/** True when `tag` (as a number) is a well-formed BER-TLV tag as this module accepts it. */
export function isValidTag(tag: number): boolean {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) return false;
  return tagProblem(tagBytes(tag)) === undefined;
}

/** b6 of the first tag byte. */
export function isConstructedTag(tag: number): boolean {
  return (tagBytes(tag)[0] & 0x20) !== 0;
}

/** "9F38" */
export function tagHex(tag: number): string {
  return toHex(tagBytes(tag)).toUpperCase();
}

/** Length bytes needed after the 8x marker for `n` (0 = short form). */
export function minimalLengthBytes(n: number): number {
  if (n < 0x80) return 0;
  if (n <= 0xff) return 1;
  if (n <= 0xffff) return 2;
  if (n <= 0xffffff) return 3;
  return 4;
}

/** The length field for a value of `n` bytes written with `lengthBytes` bytes after 8x (0 = short). */
export function encodeLength(n: number, lengthBytes: number): Uint8Array {
  if (lengthBytes === 0) return Uint8Array.of(n);
  const out = new Uint8Array(1 + lengthBytes);
  out[0] = 0x80 | lengthBytes;
  let v = n;
  for (let i = lengthBytes; i >= 1; i--) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}

export interface TlvFields {
  tag: number;
  /** The value field. For a constructed tag, the encoding of `children` if those are given. */
  value?: Uint8Array;
  children?: readonly Tlv[];
  /** 0 = short form, 1..4 = 81..84. Default: minimal. Must be able to hold the length. */
  lengthBytes?: number;
}

/**
 * One BER-TLV data object, immutable. `value` is always the value field's bytes; a constructed
 * object also carries `children`, its value parsed. Build with Tlv.primitive / Tlv.constructed.
 */
export class Tlv {
  readonly tag: number;
  readonly constructed: boolean;
  readonly value: Uint8Array;
  /** Present exactly when `constructed`. */
  readonly children?: readonly Tlv[];
  /** How the length field is written: 0 = one byte 00..7F, n = 8n followed by n bytes. */
  readonly lengthBytes: number;

  constructor(fields: TlvFields) {
    const { tag } = fields;
    if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new BadInputError(`tag: expected 1 to 4 bytes, got ${String(tag)}`);
    const tb = tagBytes(tag);
    const problem = tagProblem(tb);
    if (problem !== undefined) throw new BadInputError(`tag ${toHex(tb).toUpperCase()}: ${problem}`);
    this.tag = tag;
    this.constructed = (tb[0] & 0x20) !== 0;
    let value: Uint8Array;
    if (this.constructed) {
      if (fields.children !== undefined) {
        for (const c of fields.children) if (!(c instanceof Tlv)) throw new BadInputError('children: expected Tlv objects');
        const built = concatBytes(...fields.children.map((c) => c.encode()));
        if (fields.value !== undefined && !bytesEqual(fields.value, built)) {
          throw new BadInputError(`tag ${tagHex(tag)}: value does not match the children's encoding`);
        }
        value = built;
        this.children = Object.freeze(fields.children.slice());
      } else {
        if (!(fields.value instanceof Uint8Array)) throw new BadInputError(`tag ${tagHex(tag)}: constructed object needs children or a value`);
        value = fields.value.slice();
        // Parsed strictly so that `children` always describes `value`.
        this.children = Object.freeze(parseTlv(value));
      }
    } else {
      if (fields.children !== undefined) throw new BadInputError(`tag ${tagHex(tag)} is primitive (b6 = 0) and cannot have children`);
      const v = fields.value ?? new Uint8Array(0);
      if (!(v instanceof Uint8Array)) throw new BadInputError(`value: expected Uint8Array, got ${typeof v}`);
      value = v.slice();
    }
    if (value.length > 0xffffffff) throw new BadInputError('value longer than a 4-byte length can say');
    const minimal = minimalLengthBytes(value.length);
    const lb = fields.lengthBytes ?? minimal;
    if (!Number.isInteger(lb) || lb < minimal || lb > MAX_LENGTH_BYTES) {
      throw new BadInputError(`lengthBytes: ${String(lb)} cannot hold length ${value.length} (need ${minimal} to ${MAX_LENGTH_BYTES})`);
    }
    this.value = value;
    this.lengthBytes = lb;
    Object.freeze(this);
  }

  /** A primitive object; the tag must have b6 = 0. */
  static primitive(tag: number, value: Uint8Array): Tlv {
    if (isValidTag(tag) && isConstructedTag(tag)) throw new BadInputError(`tag ${tagHex(tag)} is constructed (b6 = 1); use Tlv.constructed`);
    return new Tlv({ tag, value });
  }

  /** A constructed object; the tag must have b6 = 1. */
  static constructed(tag: number, children: readonly Tlv[]): Tlv {
    if (isValidTag(tag) && !isConstructedTag(tag)) throw new BadInputError(`tag ${tagHex(tag)} is primitive (b6 = 0); use Tlv.primitive`);
    return new Tlv({ tag, children });
  }

  /** Length of the value field. */
  get length(): number {
    return this.value.length;
  }

  encode(): Uint8Array {
    return concatBytes(tagBytes(this.tag), encodeLength(this.value.length, this.lengthBytes), this.value);
  }

  /** First direct child with this tag. */
  child(tag: number): Tlv | undefined {
    return this.children?.find((c) => c.tag === tag);
  }

  toString(): string {
    return toHex(this.encode());
  }
}

/** Encodes one object or a sequence of objects, back to back. */
export function encodeTlv(tlvs: Tlv | readonly Tlv[]): Uint8Array {
  if (tlvs instanceof Tlv) return tlvs.encode();
  return concatBytes(...tlvs.map((t) => t.encode()));
}

function isPadding(b: number): boolean {
  return b === 0x00 || b === 0xff;
}

/**
 * Parses the objects in bytes[start, end). `base` is the offset of `bytes` in the caller's input
 * so that errors point into what the caller gave.
 */
function parseRange(bytes: Uint8Array, start: number, end: number, base: number, padding: boolean, depth: number): Tlv[] {
  if (depth > MAX_TLV_DEPTH) throw new DecodeError('TLV_MALFORMED', `objects nested deeper than ${MAX_TLV_DEPTH} levels`, base + start);
  const out: Tlv[] = [];
  let p = start;
  while (p < end) {
    if (padding && isPadding(bytes[p])) {
      p++;
      continue;
    }
    const objStart = p;
    // Tag.
    const first = bytes[p];
    if (isPadding(first)) {
      throw new DecodeError('TLV_MALFORMED', `tag byte ${toHex(bytes.subarray(p, p + 1)).toUpperCase()} is padding, not a tag (padding is refused in strict mode)`, base + p);
    }
    let tagLen = 1;
    if ((first & 0x1f) === 0x1f) {
      for (;;) {
        if (p + tagLen >= end) throw new DecodeError('TLV_MALFORMED', 'truncated tag', base + p + tagLen);
        const b = bytes[p + tagLen];
        if (tagLen === 1 && b === 0x80) throw new DecodeError('TLV_MALFORMED', 'first subsequent tag byte 80 is not minimal', base + p + 1);
        tagLen++;
        if ((b & 0x80) === 0) break;
        if (tagLen >= MAX_TAG_BYTES) throw new DecodeError('TLV_MALFORMED', `tag longer than ${MAX_TAG_BYTES} bytes`, base + p);
      }
    }
    let tag = 0;
    for (let i = 0; i < tagLen; i++) tag = tag * 256 + bytes[p + i];
    p += tagLen;
    // Length.
    if (p >= end) throw new DecodeError('TLV_MALFORMED', `tag ${tagHex(tag)} without a length`, base + p);
    const l0 = bytes[p];
    let length: number;
    let lengthBytes = 0;
    if (l0 < 0x80) {
      length = l0;
      p++;
    } else {
      if (l0 === 0x80) throw new DecodeError('TLV_MALFORMED', 'indefinite length (80) is not allowed', base + p);
      lengthBytes = l0 & 0x7f;
      if (lengthBytes > MAX_LENGTH_BYTES) throw new DecodeError('TLV_MALFORMED', `length form ${toHex(bytes.subarray(p, p + 1)).toUpperCase()} is not 81..84`, base + p);
      if (p + 1 + lengthBytes > end) throw new DecodeError('TLV_MALFORMED', 'truncated length field', base + p);
      length = 0;
      for (let i = 1; i <= lengthBytes; i++) length = length * 256 + bytes[p + i];
      p += 1 + lengthBytes;
    }
    if (length > end - p) {
      throw new DecodeError('TLV_MALFORMED', `tag ${tagHex(tag)} announces ${length} value bytes, only ${end - p} remain`, base + objStart);
    }
    const value = bytes.slice(p, p + length);
    const constructed = (first & 0x20) !== 0;
    out.push(
      constructed
        ? fromParts(tag, value, lengthBytes, parseRange(bytes, p, p + length, base, padding, depth + 1))
        : fromParts(tag, value, lengthBytes, undefined),
    );
    p += length;
  }
  return out;
}

/**
 * Makes a node from already-checked parts without re-validating or re-parsing: the parser has
 * proven the tag, the length form and the children. Goes through the prototype so `instanceof`
 * holds and the node is frozen like any other.
 */
function fromParts(tag: number, value: Uint8Array, lengthBytes: number, children: Tlv[] | undefined): Tlv {
  const node = Object.create(Tlv.prototype) as { -readonly [K in keyof Tlv]: Tlv[K] };
  node.tag = tag;
  node.constructed = children !== undefined;
  node.value = value;
  if (children !== undefined) node.children = Object.freeze(children);
  node.lengthBytes = lengthBytes;
  return Object.freeze(node) as Tlv;
}

/**
 * Parses a sequence of BER-TLV objects filling all of `bytes`. Empty input gives an empty list.
 * Anything that does not parse to the last byte (a truncated object, a bad length, junk after
 * the last full object) is refused with DecodeError('TLV_MALFORMED') at the offending offset.
 */
export function parseTlv(bytes: Uint8Array, options: TlvParseOptions = {}): Tlv[] {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('TLV_MALFORMED', 'TLV input must be bytes', -1);
  return parseRange(bytes, 0, bytes.length, 0, options.padding === true, 0);
}

/** Parses input that must hold exactly one object (padding aside, when allowed). */
export function parseSingleTlv(bytes: Uint8Array, options: TlvParseOptions = {}): Tlv {
  const list = parseTlv(bytes, options);
  if (list.length !== 1) {
    throw new DecodeError('TLV_MALFORMED', list.length === 0 ? 'expected one TLV object, got none' : `expected one TLV object, got ${list.length}`, list.length === 0 ? 0 : list[0].encode().length);
  }
  return list[0];
}

export interface TlvVisit {
  node: Tlv;
  /** 0 for top-level objects. */
  depth: number;
  /** Tags from the top level down to and including this node. */
  path: readonly number[];
}

/** Depth-first, document order (a parent before its children). Iterative: any depth is safe. */
export function* walk(tlvs: Tlv | readonly Tlv[]): Generator<TlvVisit> {
  const roots = tlvs instanceof Tlv ? [tlvs] : tlvs;
  const stack: TlvVisit[] = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push({ node: roots[i], depth: 0, path: [roots[i].tag] });
  while (stack.length > 0) {
    const v = stack.pop() as TlvVisit;
    yield v;
    const kids = v.node.children ?? [];
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ node: kids[i], depth: v.depth + 1, path: [...v.path, kids[i].tag] });
  }
}

/**
 * Every node reached by following `path` from the top level, in document order: the first tag
 * matches a top-level object, each further tag one of the previous match's children. All
 * branches are tried, so two A5 templates are both searched.
 */
export function findAll(tlvs: Tlv | readonly Tlv[], path: readonly number[]): Tlv[] {
  if (path.length === 0) return [];
  let level: readonly Tlv[] = tlvs instanceof Tlv ? [tlvs] : tlvs;
  for (let i = 0; i < path.length; i++) {
    const matches = level.filter((t) => t.tag === path[i]);
    if (i === path.length - 1) return matches;
    level = matches.flatMap((m) => m.children ?? []);
  }
  return [];
}

/** The first node at `path` (see findAll), e.g. find(fci, [0x6F, 0xA5, 0xBF0C]). */
export function find(tlvs: Tlv | readonly Tlv[], path: readonly number[]): Tlv | undefined {
  return findAll(tlvs, path)[0];
}
