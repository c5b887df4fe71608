/**
 * Status-word dictionary (SW1 SW2 → category and meaning), kept as data.
 * PLACEHOLDER: the full ISO 7816-4 + GlobalPlatform table and the 61xx/6Cxx/63Cx families are being
 * written; the signature below is the contract.
 */
import { hexWord } from '../util/bytes.js';

export type SwCategory = 'normal' | 'warning' | 'execution-error' | 'checking-error' | 'unknown';

export interface SwInfo {
  sw: number;
  /** "9000" */
  hex: string;
  category: SwCategory;
  /** Short human meaning, e.g. "file or application not found". */
  meaning: string;
}

export function describeSw(sw: number): SwInfo {
  if (sw === 0x9000) return { sw, hex: hexWord(sw), category: 'normal', meaning: 'success' };
  return { sw, hex: hexWord(sw), category: 'unknown', meaning: 'unknown status word' };
}
