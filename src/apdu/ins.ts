/**
 * Instruction names, kept as data.
 *
 * The meaning of INS depends on the class: an interindustry CLA (b8 = 0) selects the ISO/IEC 7816-4
 * instruction set; a proprietary CLA (b8 = 1, e.g. 80 / 84 / C0 / E0) selects the application's
 * own, here GlobalPlatform's card management commands and EMV's payment commands. So E2 is APPEND
 * RECORD under CLA 00 and STORE DATA under CLA 80, and 50 means nothing under CLA 00 but INITIALIZE
 * UPDATE under CLA 80. RFU classes and FF name no instruction.
 *
 * INS values 6X and 9X are invalid in every class (ISO/IEC 7816-3: they collide with the T=0
 * procedure bytes). Odd INS values in the interindustry set carry BER-TLV data fields.
 */
import { assertInt } from '../util/assert.js';
import { decodeCla } from './cla.js';

export type InsStandard = 'ISO 7816-4' | 'GlobalPlatform' | 'EMV';

export interface InsInfo {
  ins: number;
  name: string;
  /** The specifications that define this instruction in this class space. */
  standards: readonly InsStandard[];
  /** Which instruction set the CLA selected. */
  space: 'interindustry' | 'proprietary';
}

/** [INS, name] rows for one standard. */
type InsRow = readonly [ins: number, name: string];

/** ISO/IEC 7816-4 (and the parts that extend its interindustry set). */
const ISO_INS: readonly InsRow[] = [
  [0x04, 'DEACTIVATE FILE'],
  [0x0c, 'ERASE RECORD(S)'],
  [0x0e, 'ERASE BINARY'],
  [0x0f, 'ERASE BINARY'],
  [0x10, 'PERFORM SCQL OPERATION'],
  [0x12, 'PERFORM TRANSACTION OPERATION'],
  [0x14, 'PERFORM USER OPERATION'],
  [0x20, 'VERIFY'],
  [0x21, 'VERIFY'],
  [0x22, 'MANAGE SECURITY ENVIRONMENT'],
  [0x24, 'CHANGE REFERENCE DATA'],
  [0x26, 'DISABLE VERIFICATION REQUIREMENT'],
  [0x28, 'ENABLE VERIFICATION REQUIREMENT'],
  [0x2a, 'PERFORM SECURITY OPERATION'],
  [0x2c, 'RESET RETRY COUNTER'],
  [0x44, 'ACTIVATE FILE'],
  [0x46, 'GENERATE ASYMMETRIC KEY PAIR'],
  [0x70, 'MANAGE CHANNEL'],
  [0x82, 'EXTERNAL AUTHENTICATE'],
  [0x84, 'GET CHALLENGE'],
  [0x86, 'GENERAL AUTHENTICATE'],
  [0x87, 'GENERAL AUTHENTICATE'],
  [0x88, 'INTERNAL AUTHENTICATE'],
  [0xa0, 'SEARCH BINARY'],
  [0xa1, 'SEARCH BINARY'],
  [0xa2, 'SEARCH RECORD'],
  [0xa4, 'SELECT'],
  [0xb0, 'READ BINARY'],
  [0xb1, 'READ BINARY'],
  [0xb2, 'READ RECORD(S)'],
  [0xb3, 'READ RECORD(S)'],
  [0xc0, 'GET RESPONSE'],
  [0xc2, 'ENVELOPE'],
  [0xc3, 'ENVELOPE'],
  [0xca, 'GET DATA'],
  [0xcb, 'GET DATA'],
  [0xd0, 'WRITE BINARY'],
  [0xd1, 'WRITE BINARY'],
  [0xd2, 'WRITE RECORD'],
  [0xd6, 'UPDATE BINARY'],
  [0xd7, 'UPDATE BINARY'],
  [0xda, 'PUT DATA'],
  [0xdb, 'PUT DATA'],
  [0xdc, 'UPDATE RECORD'],
  [0xdd, 'UPDATE RECORD'],
  [0xe0, 'CREATE FILE'],
  [0xe2, 'APPEND RECORD'],
  [0xe4, 'DELETE FILE'],
  [0xe6, 'TERMINATE DF'],
  [0xe8, 'TERMINATE EF'],
  [0xfe, 'TERMINATE CARD USAGE'],
];

/** GlobalPlatform Card Specification card-management commands (proprietary class 80 / 84 / C0 / E0). */
const GP_INS: readonly InsRow[] = [
  [0x50, 'INITIALIZE UPDATE'],
  [0x78, 'END R-MAC SESSION'],
  [0x7a, 'BEGIN R-MAC SESSION'],
  [0x82, 'EXTERNAL AUTHENTICATE'],
  [0xca, 'GET DATA'],
  [0xcb, 'GET DATA'],
  [0xd8, 'PUT KEY'],
  [0xe2, 'STORE DATA'],
  [0xe4, 'DELETE'],
  [0xe6, 'INSTALL'],
  [0xe8, 'LOAD'],
  [0xf0, 'SET STATUS'],
  [0xf2, 'GET STATUS'],
];

/** EMV Book 3 commands sent with a proprietary class (80, or 84 / 8C for issuer scripts). */
const EMV_INS: readonly InsRow[] = [
  [0x16, 'CARD BLOCK'],
  [0x18, 'APPLICATION UNBLOCK'],
  [0x1e, 'APPLICATION BLOCK'],
  [0x24, 'PIN CHANGE/UNBLOCK'],
  [0xa8, 'GET PROCESSING OPTIONS'],
  [0xae, 'GENERATE APPLICATION CRYPTOGRAM'],
  [0xca, 'GET DATA'],
];

type Table = ReadonlyMap<number, { name: string; standards: InsStandard[] }>;

function buildTable(sources: readonly (readonly [InsStandard, readonly InsRow[]])[]): Table {
  const map = new Map<number, { name: string; standards: InsStandard[] }>();
  for (const [standard, rows] of sources) {
    for (const [ins, name] of rows) {
      const seen = map.get(ins);
      if (!seen) map.set(ins, { name, standards: [standard] });
      else if (seen.name === name) seen.standards.push(standard);
      else throw new Error(`INS ${ins.toString(16)}: "${seen.name}" and "${name}" in one class space`);
    }
  }
  return map;
}

/** Built once at load; never changed afterwards. */
const INTERINDUSTRY: Table = buildTable([['ISO 7816-4', ISO_INS]]);
const PROPRIETARY: Table = buildTable([
  ['GlobalPlatform', GP_INS],
  ['EMV', EMV_INS],
]);

/** False for the INS values no command may use: 6X and 9X. */
export function isValidIns(ins: number): boolean {
  assertInt(ins, 'INS', 0, 0xff);
  const hi = ins >> 4;
  return hi !== 0x6 && hi !== 0x9;
}

/** The instruction `ins` names under class `cla`, or undefined when no table defines it there. */
export function describeIns(cla: number, ins: number): InsInfo | undefined {
  assertInt(ins, 'INS', 0, 0xff);
  const kind = decodeCla(cla).kind;
  if (kind === 'rfu' || kind === 'invalid') return undefined;
  const space = kind === 'proprietary' ? 'proprietary' : 'interindustry';
  const hit = (space === 'proprietary' ? PROPRIETARY : INTERINDUSTRY).get(ins);
  return hit ? { ins, name: hit.name, standards: [...hit.standards], space } : undefined;
}

/** insName(0x00, 0xa4) === 'SELECT'; insName(0x80, 0x50) === 'INITIALIZE UPDATE'; undefined if unknown. */
export function insName(cla: number, ins: number): string | undefined {
  return describeIns(cla, ins)?.name;
}
