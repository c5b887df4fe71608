/**
 * The ATR's lookup tables (ISO/IEC 7816-3:2006 §8.3, ISO/IEC 7816-4 §8.1.1), as data. Indexes are
 * the 4-bit (or 2-bit) codes found in the interface and historical bytes; null marks RFU.
 */

/** TA1 high nibble FI → clock rate conversion integer Fi (Table 7). */
export const FI_TABLE: readonly (number | null)[] = [372, 372, 558, 744, 1116, 1488, 1860, null, null, 512, 768, 1024, 1536, 2048, null, null];

/** TA1 high nibble FI → maximum clock frequency f(max) in MHz (Table 7). 7.5 is not a typo. */
export const FMAX_MHZ_TABLE: readonly (number | null)[] = [4, 5, 6, 8, 12, 16, 20, null, null, 5, 7.5, 10, 15, 20, null, null];

/** TA1 low nibble DI → baud rate adjustment integer Di (Table 8). */
export const DI_TABLE: readonly (number | null)[] = [null, 1, 2, 4, 8, 16, 32, 64, 12, 20, null, null, null, null, null, null];

/** Values that hold when TA1 is absent: Fi = 372, Di = 1, f(max) = 5 MHz (FI = 1, DI = 1). */
export const DEFAULT_FI_CODE = 1;
export const DEFAULT_DI_CODE = 1;

/** TB1 bits 7-6 (II) → maximum programming current in mA (ISO 7816-3:1997; TB1 is deprecated since 2006). */
export const II_MILLIAMPS_TABLE: readonly (number | null)[] = [25, 50, 100, null];

/** TB1 PI1 in volts is meaningful from 5 to 25; TB2 PI2 in decivolts from 50 to 250. */
export const PI1_VOLTS_RANGE = { min: 5, max: 25 } as const;
export const PI2_DECIVOLTS_RANGE = { min: 50, max: 250 } as const;

/** Defaults when the byte is absent (ISO 7816-3 §10.2, §11.4). */
export const DEFAULT_WI = 10;
export const DEFAULT_IFSC = 32;
export const DEFAULT_BWI = 4;
export const DEFAULT_CWI = 13;
export const DEFAULT_EXTRA_GUARD_TIME = 0;

/** First TA for T=15, bits 8-7 (X): clock stop indicator (Table 10). */
export const CLOCK_STOP_TABLE = ['not supported', 'state L', 'state H', 'no preference'] as const;
export type ClockStop = (typeof CLOCK_STOP_TABLE)[number];

/** First TA for T=15, bits 6-1 (U): class indicator, one bit per class (Table 11). */
export const CLASS_BITS: readonly { bit: number; name: 'A' | 'B' | 'C'; volts: string }[] = [
  { bit: 0x01, name: 'A', volts: '5 V' },
  { bit: 0x02, name: 'B', volts: '3 V' },
  { bit: 0x04, name: 'C', volts: '1.8 V' },
];

/** Category indicator byte of the historical bytes (ISO 7816-4 §8.1.1.1). */
export const HISTORICAL_CATEGORIES: readonly { from: number; to: number; kind: HistoricalKind; meaning: string }[] = [
  { from: 0x00, to: 0x00, kind: 'compact-tlv-status', meaning: 'compact-TLV data objects, then a 3-byte status indicator' },
  { from: 0x10, to: 0x10, kind: 'dir-reference', meaning: 'next byte is the DIR data reference' },
  { from: 0x80, to: 0x80, kind: 'compact-tlv', meaning: 'compact-TLV data objects (status indicator optional, tag 8)' },
  { from: 0x81, to: 0x8f, kind: 'rfu', meaning: 'reserved for future use' },
];
export type HistoricalKind = 'none' | 'compact-tlv-status' | 'dir-reference' | 'compact-tlv' | 'rfu' | 'proprietary';

/** Life cycle status byte (ISO 7816-4 Table 13), by value; 10..FF are proprietary. */
export function lifeCycleStatus(lcs: number): string {
  if (lcs > 0x0f) return 'proprietary';
  if (lcs === 0x00) return 'no information given';
  if (lcs === 0x01) return 'creation state';
  if (lcs === 0x03) return 'initialisation state';
  if (lcs === 0x05 || lcs === 0x07) return 'operational state (activated)';
  if (lcs === 0x04 || lcs === 0x06) return 'operational state (deactivated)';
  if (lcs >= 0x0c) return 'termination state';
  return 'RFU';
}

/** Card service data byte, b4-b2 (ISO 7816-4 Table 117): how EF.DIR / EF.ATR are read. */
export const CARD_SERVICE_ACCESS: ReadonlyMap<number, string> = new Map([
  [0b100, 'READ BINARY'],
  [0b000, 'READ RECORD'],
  [0b010, 'GET DATA'],
]);

/** First software function table (selection methods), b8 first. */
export const SELECTION_METHOD_BITS: readonly { bit: number; meaning: string }[] = [
  { bit: 0x80, meaning: 'DF selection by full DF name' },
  { bit: 0x40, meaning: 'DF selection by partial DF name' },
  { bit: 0x20, meaning: 'DF selection by path' },
  { bit: 0x10, meaning: 'DF selection by file identifier' },
  { bit: 0x08, meaning: 'implicit DF selection' },
  { bit: 0x04, meaning: 'short EF identifier supported' },
  { bit: 0x02, meaning: 'record number supported' },
  { bit: 0x01, meaning: 'record identifier supported' },
];

/** Second software function table (data coding byte), b7-b6: behaviour of write functions. */
export const WRITE_BEHAVIOUR = ['one-time write', 'proprietary', 'write OR', 'write AND'] as const;

/** Third software function table, b5-b4: logical channel number assignment. */
export const LOGICAL_CHANNEL_ASSIGNMENT = ['no logical channel', 'by the interface device', 'by the card', 'by the interface device and the card'] as const;
