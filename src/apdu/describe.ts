/**
 * Structured, human-readable descriptions of command and response APDUs, for the CLI (`hilt apdu`)
 * and the APDU trace. Every field of the encoding becomes one row (field, offset, hex, meaning); the
 * rest of the description carries the same facts as values for scripts (`--json`).
 */
import { toHex, hexByte } from '../util/bytes.js';
import { decodeCla, type ClaKind, type SecureMessaging } from './cla.js';
import { CommandApdu, type ApduCase } from './command.js';
import { ResponseApdu } from './response.js';
import { describeIns, isValidIns, type InsStandard } from './ins.js';
import { describeSw, type SwInfo } from './sw.js';

/** One field of an encoding: where it is, its bytes, what they mean. */
export interface ApduField {
  field: string;
  offset: number;
  /** Upper-case hex of the field's bytes. */
  hex: string;
  meaning: string;
}

export type CaseLabel = '1' | '2S' | '3S' | '4S' | '2E' | '3E' | '4E';

export interface CommandDescription {
  kind: 'command';
  /** The whole encoding, upper-case hex. */
  hex: string;
  length: number;
  /** ISO case with its form: '1', '2S' ... '4E'. */
  case: CaseLabel;
  isoCase: ApduCase;
  extended: boolean;
  cla: {
    value: number;
    hex: string;
    kind: ClaKind;
    proprietary: boolean;
    chaining: boolean;
    secureMessaging: SecureMessaging;
    /** -1 when the class encodes no channel. */
    channel: number;
    summary: string;
  };
  ins: { value: number; hex: string; name: string | null; standards: InsStandard[]; valid: boolean };
  p1: { value: number; hex: string; meaning: string | null };
  p2: { value: number; hex: string; meaning: string | null };
  nc: number;
  /** The Lc field as encoded (with the 00 marker when extended), or null. */
  lc: string | null;
  data: string;
  ne: number;
  /** The Le field as encoded (with the 00 marker in case 2E), or null. */
  le: string | null;
  fields: ApduField[];
  /** Things that decode but that a card will likely refuse (invalid INS, RFU class). */
  warnings: string[];
}

export interface ResponseDescription {
  kind: 'response';
  hex: string;
  length: number;
  /** Number of response data bytes. */
  nr: number;
  data: string;
  sw: SwInfo;
  fields: ApduField[];
}

const SM_TEXT: Readonly<Record<SecureMessaging, string>> = {
  none: 'no SM',
  proprietary: 'proprietary SM (GlobalPlatform secure channel)',
  'iso-header-not-processed': 'ISO SM, header not processed',
  'iso-header-authenticated': 'ISO SM, header authenticated',
};

const KIND_TEXT: Readonly<Record<ClaKind, string>> = {
  interindustry: 'interindustry',
  'further-interindustry': 'further interindustry',
  proprietary: 'proprietary',
  rfu: 'reserved for future use',
  invalid: 'invalid',
};

/** P1/P2 meanings for the commands where they are fixed codes, keyed by "space:INS". */
interface ParamRule {
  p1?: (p1: number, p2: number) => string | null;
  p2?: (p2: number, p1: number) => string | null;
}

const SELECT_P1: Readonly<Record<number, string>> = {
  0x00: 'select MF, DF or EF by file identifier',
  0x01: 'select child DF',
  0x02: 'select EF under the current DF',
  0x03: 'select the parent DF of the current DF',
  0x04: 'select by DF name (AID)',
  0x08: 'select by path from the MF',
  0x09: 'select by path from the current DF',
};
const SELECT_OCCURRENCE = ['first or only occurrence', 'last occurrence', 'next occurrence', 'previous occurrence'];
const SELECT_RESPONSE = ['return FCI', 'return FCP', 'return FMD', 'no response data (or proprietary)'];

const READ_RECORD_MODE: Readonly<Record<number, string>> = {
  0b000: 'first occurrence of record identifier P1',
  0b001: 'last occurrence of record identifier P1',
  0b010: 'next occurrence of record identifier P1',
  0b011: 'previous occurrence of record identifier P1',
  0b100: 'record number P1',
  0b101: 'all records from P1 up to the last',
  0b110: 'all records from the last up to P1',
};

const GP_SECURITY_LEVEL: Readonly<Record<number, string>> = {
  0x00: 'security level: no secure messaging',
  0x01: 'security level: C-MAC',
  0x03: 'security level: C-DECRYPTION and C-MAC',
  0x11: 'security level: C-MAC and R-MAC',
  0x13: 'security level: C-DECRYPTION, C-MAC and R-MAC',
  0x31: 'security level: C-MAC, R-MAC and R-ENCRYPTION',
  0x33: 'security level: C-DECRYPTION, C-MAC, R-ENCRYPTION and R-MAC',
};

const GP_GET_STATUS_P1: Readonly<Record<number, string>> = {
  0x80: 'Issuer Security Domain',
  0x40: 'applications and Security Domains',
  0x20: 'executable load files',
  0x10: 'executable load files and their modules',
};

const PARAM_RULES: Readonly<Record<string, ParamRule>> = {
  'interindustry:A4': {
    p1: (p1) => SELECT_P1[p1] ?? null,
    p2: (p2) =>
      (p2 & 0xf0) !== 0
        ? 'proprietary or RFU bits set'
        : `${SELECT_OCCURRENCE[p2 & 3]}, ${SELECT_RESPONSE[(p2 >> 2) & 3]}`,
  },
  'interindustry:B2': {
    p1: (p1) => `record ${p1}`,
    p2: (p2) => {
      const sfi = p2 >> 3;
      const mode = READ_RECORD_MODE[p2 & 7] ?? 'RFU mode';
      return `${sfi === 0 ? 'current EF' : sfi === 31 ? 'RFU SFI' : `SFI ${sfi}`}, ${mode}`;
    },
  },
  'interindustry:70': {
    p1: (p1) => (p1 === 0x00 ? 'open a logical channel' : p1 === 0x80 ? 'close a logical channel' : null),
    p2: (p2, p1) => (p1 === 0x00 && p2 === 0 ? 'the card assigns the channel number' : `channel ${p2}`),
  },
  'interindustry:20': {
    p2: (p2) => `${(p2 & 0x80) === 0 ? 'global' : 'specific'} reference data ${p2 & 0x1f}`,
  },
  'interindustry:C0': {
    p1: (p1) => (p1 === 0 ? 'P1-P2 = 0000' : 'P1 must be 00'),
    p2: (p2) => (p2 === 0 ? 'P1-P2 = 0000' : 'P2 must be 00'),
  },
  'proprietary:50': {
    p1: (p1) => (p1 === 0 ? 'key version: first available' : `key version ${p1}`),
    p2: (p2) => `key identifier ${p2}`,
  },
  'proprietary:82': { p1: (p1) => GP_SECURITY_LEVEL[p1] ?? null },
  'proprietary:F2': {
    p1: (p1) => GP_GET_STATUS_P1[p1] ?? null,
    p2: (p2) => `${(p2 & 1) === 0 ? 'first or all occurrences' : 'next occurrences'}${(p2 & 2) !== 0 ? ', TLV response' : ''}`,
  },
};

function claSummary(info: ReturnType<typeof decodeCla>): string {
  const parts = [KIND_TEXT[info.kind]];
  if (info.channel >= 0) parts.push(`channel ${info.channel}`, SM_TEXT[info.secureMessaging]);
  if (info.chaining) parts.push('command chaining (more commands follow)');
  return parts.join(', ');
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function describeCommand(c: CommandApdu): CommandDescription {
  const bytes = c.encode();
  const isoCase = c.case;
  const extended = c.extended;
  const label = (isoCase === 1 ? '1' : `${isoCase}${extended ? 'E' : 'S'}`) as CaseLabel;
  const claInfo = decodeCla(c.cla);
  const insInfo = describeIns(c.cla, c.ins);
  const validIns = isValidIns(c.ins);
  const rule = insInfo ? PARAM_RULES[`${insInfo.space}:${hexByte(c.ins)}`] : undefined;
  const p1Meaning = rule?.p1?.(c.p1, c.p2) ?? null;
  const p2Meaning = rule?.p2?.(c.p2, c.p1) ?? null;
  const insMeaning = insInfo
    ? `${insInfo.name} (${insInfo.standards.join(', ')})`
    : claInfo.proprietary
      ? 'proprietary instruction'
      : 'unknown instruction';

  const hexAt = (from: number, to: number) => toHex(bytes.subarray(from, to)).toUpperCase();
  const fields: ApduField[] = [
    { field: 'CLA', offset: 0, hex: hexAt(0, 1), meaning: claSummary(claInfo) },
    { field: 'INS', offset: 1, hex: hexAt(1, 2), meaning: validIns ? insMeaning : 'invalid INS (6X and 9X are reserved)' },
    { field: 'P1', offset: 2, hex: hexAt(2, 3), meaning: p1Meaning ?? '' },
    { field: 'P2', offset: 3, hex: hexAt(3, 4), meaning: p2Meaning ?? '' },
  ];
  const nc = c.nc;
  const ne = c.ne;
  let o = 4;
  let lc: string | null = null;
  let le: string | null = null;
  if (nc > 0) {
    const width = extended ? 3 : 1;
    lc = hexAt(o, o + width);
    fields.push({ field: 'Lc', offset: o, hex: lc, meaning: `${extended ? 'extended (00 marker), ' : ''}Nc = ${nc}` });
    o += width;
    const what = insInfo?.name === 'SELECT' && c.p1 === 0x04 ? 'AID, ' : '';
    fields.push({ field: 'data', offset: o, hex: hexAt(o, o + nc), meaning: `${what}${plural(nc, 'byte', 'bytes')}` });
    o += nc;
  }
  if (ne > 0) {
    const width = extended ? (nc > 0 ? 2 : 3) : 1;
    le = hexAt(o, o + width);
    const marker = extended && nc === 0 ? 'extended (00 marker), ' : extended ? 'extended, ' : '';
    const max = (extended && ne === 65536) || (!extended && ne === 256) ? ' (maximum)' : '';
    fields.push({ field: 'Le', offset: o, hex: le, meaning: `${marker}Ne = ${ne}${max}` });
  }

  const warnings: string[] = [];
  if (!validIns) warnings.push(`INS ${hexByte(c.ins)} is invalid: 6X and 9X are reserved for T=0 procedure bytes`);
  if (claInfo.kind === 'rfu') warnings.push(`CLA ${hexByte(c.cla)} is in the range reserved for future use (20..3F)`);

  return {
    kind: 'command',
    hex: toHex(bytes).toUpperCase(),
    length: bytes.length,
    case: label,
    isoCase,
    extended,
    cla: {
      value: c.cla,
      hex: hexByte(c.cla),
      kind: claInfo.kind,
      proprietary: claInfo.proprietary,
      chaining: claInfo.chaining,
      secureMessaging: claInfo.secureMessaging,
      channel: claInfo.channel,
      summary: claSummary(claInfo),
    },
    ins: { value: c.ins, hex: hexByte(c.ins), name: insInfo?.name ?? null, standards: insInfo ? [...insInfo.standards] : [], valid: validIns },
    p1: { value: c.p1, hex: hexByte(c.p1), meaning: p1Meaning },
    p2: { value: c.p2, hex: hexByte(c.p2), meaning: p2Meaning },
    nc,
    lc,
    data: toHex(c.data).toUpperCase(),
    ne,
    le,
    fields,
    warnings,
  };
}

export function describeResponse(r: ResponseApdu): ResponseDescription {
  const nr = r.data.length;
  const sw = describeSw(r.sw);
  const fields: ApduField[] = [];
  if (nr > 0) fields.push({ field: 'data', offset: 0, hex: toHex(r.data).toUpperCase(), meaning: plural(nr, 'byte', 'bytes') });
  fields.push({ field: 'SW1 SW2', offset: nr, hex: sw.hex, meaning: `${sw.category}: ${sw.meaning}` });
  return {
    kind: 'response',
    hex: toHex(r.encode()).toUpperCase(),
    length: nr + 2,
    nr,
    data: toHex(r.data).toUpperCase(),
    sw,
    fields,
  };
}
