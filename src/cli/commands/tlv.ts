/**
 * `hilt tlv <hex> [--lenient-padding] [--json]`: shows BER-TLV data as an indented tree, one line
 * per object: tag, name (from the tag table, in the context of its template), length, and for
 * primitives the value in hex with its ASCII reading when every byte is printable.
 *
 * Strict by default: 00/FF padding between objects is refused unless --lenient-padding is given
 * (EMV records and erased files carry it).
 */
import type { RegisterCommand } from './types.js';
import { fromHex, toSpacedHex, toHex } from '../../util/bytes.js';
import { parseTlv, tagHex, encodeLength, minimalLengthBytes, type Tlv } from '../../apdu/tlv.js';
import { tlvTagName } from '../../apdu/tlv-tags.js';
import { toJson } from '../output.js';

/** One object as `--json` prints it. */
export interface TlvNodeReport {
  tag: string;
  name: string | null;
  constructed: boolean;
  length: number;
  /** The length field as it was written, e.g. "81 05". */
  lengthField: string;
  /** False when the length field is longer than needed (kept so the bytes round trip). */
  minimalLength: boolean;
  /** Primitive objects only: the value in hex, and as text when every byte is printable ASCII. */
  value?: string;
  ascii?: string;
  children?: TlvNodeReport[];
}

interface TlvOptions {
  json?: boolean;
  lenientPadding?: boolean;
}

/** Printable ASCII: 20..7E, and not empty. */
export function asciiOf(value: Uint8Array): string | undefined {
  if (value.length === 0) return undefined;
  for (const b of value) if (b < 0x20 || b > 0x7e) return undefined;
  return String.fromCharCode(...value);
}

export function tlvReport(tlvs: readonly Tlv[], parent?: number): TlvNodeReport[] {
  return tlvs.map((t) => {
    const node: TlvNodeReport = {
      tag: tagHex(t.tag),
      name: tlvTagName(t.tag, parent) ?? null,
      constructed: t.constructed,
      length: t.length,
      lengthField: toSpacedHex(encodeLength(t.length, t.lengthBytes)),
      minimalLength: t.lengthBytes === minimalLengthBytes(t.length),
    };
    if (t.children) {
      node.children = tlvReport(t.children, t.tag);
    } else {
      node.value = toHex(t.value).toUpperCase();
      const ascii = asciiOf(t.value);
      if (ascii !== undefined) node.ascii = ascii;
    }
    return node;
  });
}

export function formatTlvTree(nodes: readonly TlvNodeReport[], depth = 0): string[] {
  const lines: string[] = [];
  for (const n of nodes) {
    const pad = '  '.repeat(depth);
    const len = `${n.length} byte${n.length === 1 ? '' : 's'}${n.minimalLength ? '' : ` (non-minimal length field ${n.lengthField})`}`;
    let line = `${pad}${n.tag}${n.name ? ` ${n.name}` : ''}, ${len}`;
    if (n.value !== undefined && n.length > 0) line += `: ${toSpacedHex(fromHex(n.value))}`;
    if (n.ascii !== undefined) line += `  "${n.ascii}"`;
    lines.push(line);
    if (n.children) lines.push(...formatTlvTree(n.children, depth + 1));
  }
  return lines;
}

export const registerTlv: RegisterCommand = (program, ctx) => {
  program
    .command('tlv')
    .description('show BER-TLV data as a tree with tag names')
    .argument('<hex...>', 'the TLV bytes in hex (spaces and colons between bytes are fine)')
    .option('--lenient-padding', 'skip 00/FF padding bytes before, between and after objects')
    .option('--json', 'print one JSON document')
    .action((hexParts: string[], opts: TlvOptions) => {
      const bytes = fromHex(hexParts.join(' '));
      const tree = tlvReport(parseTlv(bytes, { padding: opts.lenientPadding === true }));
      if (opts.json) {
        ctx.io.out(toJson(tree));
      } else {
        ctx.io.out(tree.length === 0 ? '(no TLV objects)' : formatTlvTree(tree).join('\n'));
      }
    });
};
