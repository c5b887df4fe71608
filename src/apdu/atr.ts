/**
 * Answer-to-reset parser (ISO/IEC 7816-3:2006 §8; historical bytes per ISO/IEC 7816-4 §8.1.1).
 *
 *   TS  3B direct or 3F inverse convention; anything else is refused.
 *   T0  Y1 (b8..b5: TA1 TB1 TC1 TD1 present) and K (number of historical bytes).
 *   TAi TBi TCi TDi for i = 1, 2, ...: each TDi gives Y(i+1) and a protocol T. Bytes of level
 *       i >= 3 are specific to the T of TD(i-1), global when that T is 15.
 *   T1..TK historical bytes, then TCK.
 *
 * The bytes after TS are taken as they are: a reader already undid the inverse convention, which
 * is how PC/SC and pcsc-tools' ATR_analysis present them too.
 *
 * What is refused (DecodeError 'ATR_MALFORMED'): empty input or no T0, a TS other than 3B/3F,
 * more than 33 bytes, interface bytes running past the end, more than MAX_ATR_LEVELS TD bytes,
 * fewer historical bytes than K, a missing TCK when one is required, and any byte after the TCK.
 * ATR_analysis prints an error for the truncated and too-long cases and decodes on; it has no
 * length limit, but no ATR of its smartcard_list.txt is longer than 32 bytes.
 *
 * TCK: required when any TD names a protocol other than T=0 (T=15 included). A wrong value is not
 * refused; the result says `tck.valid: false` and the value that would be right (as ATR_analysis
 * prints "WRONG CHECKSUM, expected XX"). One tolerance, the same ATR_analysis has: an ATR offering
 * only T=0 may carry one byte after the historical bytes; it is read as an optional TCK (some T=0
 * cards send one) and a warning is recorded. Two or more extra bytes are refused.
 *
 * Broken historical bytes (a compact-TLV object running past the end, a category 00 without room
 * for its status indicator) do not make the ATR malformed: the interface bytes are still good,
 * and the historical bytes are application data. They are reported in `historical.error`.
 */
import { DecodeError } from '../util/errors.js';
import { parseCompactTlvPrefix, compactTlvTagName } from './compact-tlv.js';
import {
  FI_TABLE,
  FMAX_MHZ_TABLE,
  DI_TABLE,
  DEFAULT_FI_CODE,
  DEFAULT_DI_CODE,
  II_MILLIAMPS_TABLE,
  PI1_VOLTS_RANGE,
  PI2_DECIVOLTS_RANGE,
  DEFAULT_WI,
  DEFAULT_IFSC,
  DEFAULT_BWI,
  DEFAULT_CWI,
  DEFAULT_EXTRA_GUARD_TIME,
  CLOCK_STOP_TABLE,
  CLASS_BITS,
  HISTORICAL_CATEGORIES,
  CARD_SERVICE_ACCESS,
  SELECTION_METHOD_BITS,
  WRITE_BEHAVIOUR,
  LOGICAL_CHANNEL_ASSIGNMENT,
  lifeCycleStatus,
  type ClockStop,
  type HistoricalKind,
} from './atr-tables.js';

/** TS + 32 bytes (ISO 7816-3 §8.2.1). */
export const MAX_ATR_LENGTH = 33;
/** At most this many TD bytes; no real ATR has more than five, and it bounds the walk. */
export const MAX_ATR_LEVELS = 15;
/** The clock ATR_analysis quotes bit rates at. */
export const DEFAULT_CLOCK_HZ = 4_000_000;

export type InterfaceByteName = 'TA' | 'TB' | 'TC' | 'TD';
/** In the order of the Y bits b5..b8 (Y bit 0..3). */
const INTERFACE_BYTE_NAMES: readonly InterfaceByteName[] = ['TA', 'TB', 'TC', 'TD'];

export type InterfaceByteMeaning =
  | {
      kind: 'rate'; // TA1
      fiCode: number;
      diCode: number;
      fi: number | null;
      di: number | null;
      fmaxMHz: number | null;
      /** Fi/Di, null if either is RFU. */
      cyclesPerEtu: number | null;
    }
  | { kind: 'vpp'; pi1: number; ii: number; connected: boolean; vppVolts: number | null; ippMilliamps: number | null } // TB1 (deprecated)
  | { kind: 'extra-guard-time'; n: number; special: boolean } // TC1
  | { kind: 'next'; y: number; protocol: number; globalFollows: boolean } // TDi
  | { kind: 'specific-mode'; protocol: number; canChange: boolean; implicit: boolean } // TA2
  | { kind: 'vpp2'; pi2: number; vppDecivolts: number | null } // TB2 (deprecated)
  | { kind: 'waiting-integer'; wi: number } // TC2, T=0
  | { kind: 'ifsc'; ifsc: number; rfu: boolean } // first TA for T=1
  | { kind: 'bwi-cwi'; bwi: number; cwi: number; rfu: boolean } // first TB for T=1
  | { kind: 'error-detection'; code: 'LRC' | 'CRC'; rfuBits: boolean } // first TC for T=1
  | { kind: 'clock-stop-class'; clockStop: ClockStop; classes: ('A' | 'B' | 'C')[]; rfuClassBits: number } // first TA for T=15
  | { kind: 'spu'; use: 'not used' | 'standard' | 'proprietary' } // first TB for T=15
  | { kind: 'undecoded'; reason: string };

export interface InterfaceByte {
  readonly name: InterfaceByteName;
  /** The level i of TAi/TBi/TCi/TDi, from 1. */
  readonly i: number;
  readonly offset: number;
  readonly value: number;
  /** 'global', or the protocol this byte is specific to. */
  readonly scope: 'global' | number;
  readonly decoded: InterfaceByteMeaning;
}

export interface CardServiceData {
  selectionByFullDfName: boolean;
  selectionByPartialDfName: boolean;
  berTlvInEfDir: boolean;
  berTlvInEfAtr: boolean;
  /** How EF.DIR and EF.ATR are read, or 'RFU'. */
  access: string;
  hasMf: boolean;
}

export interface CardCapabilities {
  selectionMethods: string[];
  dataCoding?: {
    efTlvSupported: boolean;
    writeBehaviour: (typeof WRITE_BEHAVIOUR)[number];
    ffTagValid: boolean;
    /** Data unit size in quartets (a power of two). */
    dataUnitQuartets: number;
  };
  chaining?: {
    commandChaining: boolean;
    extendedLength: boolean;
    /** b6: extended length information in EF.ATR (ISO 7816-4:2005; RFU in older editions). */
    extendedLengthInfoInEfAtr: boolean;
    logicalChannelAssignment: (typeof LOGICAL_CHANNEL_ASSIGNMENT)[number];
    /** 1..8; 8 means "eight or more". */
    maxLogicalChannels: number;
  };
}

export interface StatusIndicator {
  /** Life cycle status byte, if present. */
  lcs?: number;
  lcsMeaning?: string;
  /** SW1SW2, if present. */
  sw?: number;
}

export interface HistoricalObject {
  tag: number;
  name: string;
  value: Uint8Array;
  /** Offset of the tag-length byte in the ATR. */
  offset: number;
  cardService?: CardServiceData;
  capabilities?: CardCapabilities;
  status?: StatusIndicator;
}

export interface HistoricalBytes {
  bytes: Uint8Array;
  /** The category indicator (first historical byte), null when there are none. */
  category: number | null;
  kind: HistoricalKind;
  objects: HistoricalObject[];
  /** Category 00: the mandatory last three bytes; category 80: the tag-8 object if present. */
  status?: StatusIndicator;
  /** Category 10. */
  dirReference?: number;
  /**
   * PC/SC Part 3 contactless storage cards: a reader builds "80 4F 0C <RID> <SS> <NN NN> 00 00 00
   * 00", a BER-TLV AID object where compact-TLV is expected. Read as compact-TLV it would be a
   * tag-4 object running past the end, so it is recognised and decoded by its own layout.
   */
  pcsc?: { rid: Uint8Array; standard: number; cardName: number };
  /** Why the historical bytes could not be fully decoded; the ATR itself is still valid. */
  error?: { message: string; offset: number };
}

export interface TransmissionParameters {
  /** True when TA1 is present; otherwise Fi/Di are the defaults 372/1. */
  ta1Present: boolean;
  fi: number | null;
  di: number | null;
  fmaxMHz: number | null;
  cyclesPerEtu: number | null;
  /** TC1 N (0..255); 255 means minimum guard time (12 etu for T=0, 11 for T=1). */
  extraGuardTime: number;
  /** TC2 for T=0 (default 10). */
  wi: number;
  /** TA2 present: the card is in specific mode. */
  specificMode?: { protocol: number; canChange: boolean; implicit: boolean };
  /** First TA/TB/TC for T=1, or the defaults 32, 4, 13, LRC. */
  ifsc: number;
  bwi: number;
  cwi: number;
  errorDetection: 'LRC' | 'CRC';
  /** First TA for T=15. */
  clockStop?: ClockStop;
  classes?: ('A' | 'B' | 'C')[];
}

export interface Atr {
  bytes: Uint8Array;
  ts: number;
  convention: 'direct' | 'inverse';
  t0: number;
  y1: number;
  /** Number of historical bytes announced by T0. */
  k: number;
  interfaceBytes: InterfaceByte[];
  /** Protocols offered, in the order the TD bytes name them (T=15 excluded); [0] if no TD. */
  protocols: number[];
  /** A TD names T=15: global interface bytes follow it. */
  hasGlobalT15: boolean;
  parameters: TransmissionParameters;
  historical: HistoricalBytes;
  tck: { present: boolean; required: boolean; value?: number; valid?: boolean; expected?: number };
  /** Deviations from ISO 7816-3 that do not stop decoding. */
  warnings: string[];
}

function fail(message: string, offset: number): never {
  throw new DecodeError('ATR_MALFORMED', message, offset);
}

/** Bit rate in bit/s for Fi, Di at a clock in Hz: f × Di / Fi. */
export function bitRate(fi: number, di: number, clockHz: number): number {
  return (clockHz * di) / fi;
}

/** The ATR's bit rate at `clockHz` and at its f(max); null where Fi, Di or f(max) is RFU. */
export function bitRates(p: TransmissionParameters, clockHz: number = DEFAULT_CLOCK_HZ): { atClock: number | null; atFmax: number | null } {
  if (p.fi === null || p.di === null) return { atClock: null, atFmax: null };
  return { atClock: bitRate(p.fi, p.di, clockHz), atFmax: p.fmaxMHz === null ? null : bitRate(p.fi, p.di, p.fmaxMHz * 1e6) };
}

function decodeTa1(v: number): InterfaceByteMeaning {
  const fiCode = v >> 4;
  const diCode = v & 15;
  const fi = FI_TABLE[fiCode];
  const di = DI_TABLE[diCode];
  return { kind: 'rate', fiCode, diCode, fi, di, fmaxMHz: FMAX_MHZ_TABLE[fiCode], cyclesPerEtu: fi !== null && di !== null ? fi / di : null };
}

function decodeByte(name: InterfaceByteName, i: number, v: number, scope: 'global' | number, firstForScope: boolean): InterfaceByteMeaning {
  if (name === 'TD') return { kind: 'next', y: v >> 4, protocol: v & 15, globalFollows: (v & 15) === 15 };
  if (i === 1) {
    if (name === 'TA') return decodeTa1(v);
    if (name === 'TB') {
      const pi1 = v & 0x1f;
      const ii = (v >> 5) & 3;
      const volts = pi1 >= PI1_VOLTS_RANGE.min && pi1 <= PI1_VOLTS_RANGE.max ? pi1 : null;
      return { kind: 'vpp', pi1, ii, connected: pi1 !== 0, vppVolts: volts, ippMilliamps: II_MILLIAMPS_TABLE[ii] };
    }
    return { kind: 'extra-guard-time', n: v, special: v === 255 };
  }
  if (i === 2) {
    if (name === 'TA') return { kind: 'specific-mode', protocol: v & 15, canChange: (v & 0x80) === 0, implicit: (v & 0x10) !== 0 };
    if (name === 'TB') {
      const ok = v >= PI2_DECIVOLTS_RANGE.min && v <= PI2_DECIVOLTS_RANGE.max;
      return { kind: 'vpp2', pi2: v, vppDecivolts: ok ? v : null };
    }
    return { kind: 'waiting-integer', wi: v };
  }
  // i >= 3: `scope` is the T of TD(i-1), 'global' standing for T=15. Only the first TA/TB/TC of
  // a protocol is defined by ISO 7816-3.
  const t = scope === 'global' ? 15 : scope;
  if (!firstForScope) return { kind: 'undecoded', reason: `not the first ${name} for T=${t}` };
  if (scope === 1) {
    if (name === 'TA') return { kind: 'ifsc', ifsc: v, rfu: v === 0x00 || v === 0xff };
    if (name === 'TB') return { kind: 'bwi-cwi', bwi: v >> 4, cwi: v & 15, rfu: v >> 4 > 9 };
    return { kind: 'error-detection', code: (v & 1) === 1 ? 'CRC' : 'LRC', rfuBits: (v & 0xfe) !== 0 };
  }
  if (scope === 'global') {
    if (name === 'TA') {
      const classes = CLASS_BITS.filter((c) => (v & c.bit) !== 0).map((c) => c.name);
      return { kind: 'clock-stop-class', clockStop: CLOCK_STOP_TABLE[v >> 6], classes, rfuClassBits: v & 0x38 };
    }
    if (name === 'TB') return { kind: 'spu', use: v === 0 ? 'not used' : (v & 0x80) !== 0 ? 'proprietary' : 'standard' };
    return { kind: 'undecoded', reason: 'TC for T=15 is RFU' };
  }
  return { kind: 'undecoded', reason: `specific to T=${scope}, not defined by ISO 7816-3` };
}

function decodeCardService(b: number): CardServiceData {
  return {
    selectionByFullDfName: (b & 0x80) !== 0,
    selectionByPartialDfName: (b & 0x40) !== 0,
    berTlvInEfDir: (b & 0x20) !== 0,
    berTlvInEfAtr: (b & 0x10) !== 0,
    access: CARD_SERVICE_ACCESS.get((b >> 1) & 7) ?? 'RFU',
    hasMf: (b & 1) === 0,
  };
}

function decodeCapabilities(v: Uint8Array): CardCapabilities {
  const out: CardCapabilities = { selectionMethods: SELECTION_METHOD_BITS.filter((m) => (v[0] & m.bit) !== 0).map((m) => m.meaning) };
  if (v.length >= 2) {
    const dc = v[1];
    out.dataCoding = {
      efTlvSupported: (dc & 0x80) !== 0,
      writeBehaviour: WRITE_BEHAVIOUR[(dc >> 5) & 3],
      ffTagValid: (dc & 0x10) !== 0,
      dataUnitQuartets: 2 ** (dc & 15),
    };
  }
  if (v.length >= 3) {
    const cc = v[2];
    out.chaining = {
      commandChaining: (cc & 0x80) !== 0,
      extendedLength: (cc & 0x40) !== 0,
      extendedLengthInfoInEfAtr: (cc & 0x20) !== 0,
      logicalChannelAssignment: LOGICAL_CHANNEL_ASSIGNMENT[(cc >> 3) & 3],
      maxLogicalChannels: (cc & 7) + 1,
    };
  }
  return out;
}

function statusOf(lcs: number | undefined, sw: number | undefined): StatusIndicator {
  const s: StatusIndicator = {};
  if (lcs !== undefined) {
    s.lcs = lcs;
    s.lcsMeaning = lifeCycleStatus(lcs);
  }
  if (sw !== undefined) s.sw = sw;
  return s;
}

/** Status indicator object (tag 8): LCS, SW1SW2, or LCS SW1SW2. */
function decodeStatusObject(v: Uint8Array): StatusIndicator | undefined {
  if (v.length === 1) return statusOf(v[0], undefined);
  if (v.length === 2) return statusOf(undefined, (v[0] << 8) | v[1]);
  if (v.length === 3) return statusOf(v[0], (v[1] << 8) | v[2]);
  return undefined;
}

/** Decodes the compact-TLV objects it can; a damaged tail goes to h.error. */
function decodeObjects(h: HistoricalBytes, bytes: Uint8Array, base: number): void {
  const { objects, error } = parseCompactTlvPrefix(bytes, base);
  if (error) h.error = { message: error.message, offset: error.offset };
  h.objects = objects.map((o) => {
    const obj: HistoricalObject = { tag: o.tag, name: compactTlvTagName(o.tag), value: o.value, offset: o.offset };
    if (o.tag === 0x3 && o.value.length === 1) obj.cardService = decodeCardService(o.value[0]);
    if (o.tag === 0x7 && o.value.length >= 1 && o.value.length <= 3) obj.capabilities = decodeCapabilities(o.value);
    if (o.tag === 0x8) {
      const status = decodeStatusObject(o.value);
      if (status) obj.status = status;
    }
    return obj;
  });
}

/** Decodes historical bytes T1..TK; `base` is the offset of T1 in the ATR. */
export function decodeHistoricalBytes(bytes: Uint8Array, base = 0): HistoricalBytes {
  const h: HistoricalBytes = { bytes: bytes.slice(), category: null, kind: 'none', objects: [] };
  if (bytes.length === 0) return h;
  const cat = bytes[0];
  h.category = cat;
  h.kind = HISTORICAL_CATEGORIES.find((c) => cat >= c.from && cat <= c.to)?.kind ?? 'proprietary';
  if (h.kind === 'compact-tlv-status') {
    if (bytes.length < 4) {
      h.error = { message: `category 00 needs a 3-byte status indicator, ${bytes.length - 1} byte(s) follow`, offset: base + 1 };
      return h;
    }
    const end = bytes.length - 3;
    h.status = statusOf(bytes[end], (bytes[end + 1] << 8) | bytes[end + 2]);
    decodeObjects(h, bytes.subarray(1, end), base + 1);
  } else if (h.kind === 'compact-tlv' && bytes.length === 15 && bytes[1] === 0x4f && bytes[2] === 0x0c) {
    h.pcsc = { rid: bytes.slice(3, 8), standard: bytes[8], cardName: (bytes[9] << 8) | bytes[10] };
  } else if (h.kind === 'compact-tlv') {
    decodeObjects(h, bytes.subarray(1), base + 1);
    const status = h.objects.find((o) => o.tag === 0x8 && o.status)?.status;
    if (status) h.status = status;
  } else if (h.kind === 'dir-reference') {
    if (bytes.length < 2) h.error = { message: 'category 10 needs the DIR data reference byte', offset: base + 1 };
    else h.dirReference = bytes[1];
  }
  return h;
}

/** Parses an ATR; see the module comment for what is refused and what is only reported. */
export function parseAtr(bytes: Uint8Array): Atr {
  if (!(bytes instanceof Uint8Array)) fail('ATR must be bytes', -1);
  const n = bytes.length;
  if (n === 0) fail('empty ATR', 0);
  const ts = bytes[0];
  if (ts !== 0x3b && ts !== 0x3f) fail(`TS must be 3B (direct) or 3F (inverse convention), got ${hex2(ts)}`, 0);
  if (n > MAX_ATR_LENGTH) fail(`ATR is ${n} bytes, at most ${MAX_ATR_LENGTH} are allowed`, MAX_ATR_LENGTH);
  if (n < 2) fail('ATR truncated: T0 missing', 1);
  const t0 = bytes[1];
  const k = t0 & 15;
  const warnings: string[] = [];
  const interfaceBytes: InterfaceByte[] = [];
  const protocols: number[] = [];
  let hasGlobalT15 = false;
  let tckRequired = false;
  // Levels whose first TA/TB/TC has been seen, per protocol scope: only the first is defined.
  const seen = new Set<string>();
  let p = 2;
  let y = t0 >> 4;
  let i = 1;
  let scope: 'global' | number = 'global';
  let tds = 0;
  for (;;) {
    let nextY = 0;
    for (let bit = 0; bit < 4; bit++) {
      if ((y & (1 << bit)) === 0) continue;
      const name = INTERFACE_BYTE_NAMES[bit];
      if (p >= n) fail(`interface byte ${name}${i} missing: the ATR ends after ${n} bytes`, p);
      const v = bytes[p];
      const byteScope: 'global' | number = name === 'TD' ? 'global' : i === 1 ? 'global' : i === 2 ? (name === 'TC' ? 0 : 'global') : scope;
      const key = `${name}/${String(scope)}`;
      const first = !seen.has(key);
      if (i >= 3 && name !== 'TD') seen.add(key);
      interfaceBytes.push({ name, i, offset: p, value: v, scope: byteScope, decoded: decodeByte(name, i, v, byteScope, first) });
      if (name === 'TD') {
        tds++;
        if (tds > MAX_ATR_LEVELS) fail(`more than ${MAX_ATR_LEVELS} TD bytes`, p);
        const t = v & 15;
        if (t !== 0) tckRequired = true;
        if (t === 15) {
          hasGlobalT15 = true;
          if (i === 1) warnings.push('TD1 names T=15, which ISO 7816-3 does not allow in TD1');
        } else {
          if (protocols.length > 0 && t < protocols[protocols.length - 1]) warnings.push(`protocol T=${t} listed after T=${protocols[protocols.length - 1]}: not in ascending order`);
          if (!protocols.includes(t)) protocols.push(t);
        }
        scope = t === 15 ? 'global' : t;
        nextY = v >> 4;
      }
      p++;
    }
    if ((y & 8) === 0) break;
    y = nextY;
    i++;
  }
  if (protocols.length === 0) protocols.push(0);

  const remain = n - p;
  if (remain < k) fail(`ATR truncated: T0 announces ${k} historical byte(s), ${remain} present`, n);
  let tck: Atr['tck'] = { present: false, required: tckRequired };
  if (remain === k) {
    if (tckRequired) fail('TCK missing: it is required when a protocol other than T=0 is indicated', n);
  } else if (remain === k + 1) {
    let x = 0;
    for (let j = 1; j < n; j++) x ^= bytes[j];
    const value = bytes[n - 1];
    tck = { present: true, required: tckRequired, value, valid: x === 0, expected: value ^ x };
    if (!tckRequired) warnings.push('TCK present although only T=0 is indicated');
  } else if (tckRequired) {
    fail(`ATR too long: ${remain - k - 1} byte(s) after the TCK`, p + k + 1);
  } else {
    fail(`ATR too long: ${remain - k} byte(s) after the historical bytes (only T=0: at most one, an optional TCK, is tolerated)`, p + k);
  }

  const historical = decodeHistoricalBytes(bytes.subarray(p, p + k), p);
  return deepFreeze({
    bytes: bytes.slice(),
    ts,
    convention: ts === 0x3b ? 'direct' : 'inverse',
    t0,
    y1: t0 >> 4,
    k,
    interfaceBytes,
    protocols,
    hasGlobalT15,
    parameters: parametersOf(interfaceBytes),
    historical,
    tck,
    warnings,
  });
}

function parametersOf(ib: readonly InterfaceByte[]): TransmissionParameters {
  const defaults = decodeTa1((DEFAULT_FI_CODE << 4) | DEFAULT_DI_CODE);
  const rate = ib.find((b) => b.decoded.kind === 'rate')?.decoded ?? defaults;
  const out: TransmissionParameters = {
    ta1Present: ib.some((b) => b.decoded.kind === 'rate'),
    fi: rate.kind === 'rate' ? rate.fi : null,
    di: rate.kind === 'rate' ? rate.di : null,
    fmaxMHz: rate.kind === 'rate' ? rate.fmaxMHz : null,
    cyclesPerEtu: rate.kind === 'rate' ? rate.cyclesPerEtu : null,
    extraGuardTime: DEFAULT_EXTRA_GUARD_TIME,
    wi: DEFAULT_WI,
    ifsc: DEFAULT_IFSC,
    bwi: DEFAULT_BWI,
    cwi: DEFAULT_CWI,
    errorDetection: 'LRC',
  };
  for (const b of ib) {
    const d = b.decoded;
    switch (d.kind) {
      case 'extra-guard-time':
        out.extraGuardTime = d.n;
        break;
      case 'waiting-integer':
        out.wi = d.wi;
        break;
      case 'specific-mode':
        out.specificMode = { protocol: d.protocol, canChange: d.canChange, implicit: d.implicit };
        break;
      case 'ifsc':
        out.ifsc = d.ifsc;
        break;
      case 'bwi-cwi':
        out.bwi = d.bwi;
        out.cwi = d.cwi;
        break;
      case 'error-detection':
        out.errorDetection = d.code;
        break;
      case 'clock-stop-class':
        out.clockStop = d.clockStop;
        out.classes = d.classes;
        break;
      default:
        break;
    }
  }
  return out;
}

function hex2(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, '0');
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !(o instanceof Uint8Array) && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

const fmt = (x: number): string => String(Math.round(x * 1000) / 1000);

/** One line of meaning for an interface byte, in the words ATR_analysis uses where it has any. */
export function describeInterfaceByte(b: InterfaceByte, clockHz: number = DEFAULT_CLOCK_HZ): string {
  const d = b.decoded;
  switch (d.kind) {
    case 'rate': {
      const base = `Fi=${d.fi ?? 'RFU'}, Di=${d.di ?? 'RFU'}`;
      if (d.fi === null || d.di === null || d.cyclesPerEtu === null) return base;
      let s = `${base}, ${fmt(d.cyclesPerEtu)} cycles/ETU, ${Math.floor(bitRate(d.fi, d.di, clockHz))} bits/s at ${fmt(clockHz / 1e6)} MHz`;
      if (d.fmaxMHz !== null) s += `, fMax for Fi = ${d.fmaxMHz} MHz => ${Math.floor(bitRate(d.fi, d.di, d.fmaxMHz * 1e6))} bits/s`;
      return s;
    }
    case 'vpp':
      if (!d.connected) return 'VPP is not electrically connected (deprecated)';
      return `programming param PI1: ${d.vppVolts === null ? `${d.pi1} (RFU)` : `${d.vppVolts} V`}, II: ${d.ippMilliamps === null ? `${d.ii} (RFU)` : `${d.ippMilliamps} mA`} (deprecated)`;
    case 'extra-guard-time':
      return d.special ? 'extra guard time: 255 (special value: minimum guard time, 12 etu for T=0, 11 etu for T=1)' : `extra guard time: ${d.n} etu`;
    case 'next':
      return `Y(i+1) = ${d.y.toString(2).padStart(4, '0')}, protocol T=${d.protocol}${d.globalFollows ? ' - global interface bytes following' : ''}`;
    case 'specific-mode':
      return `specific mode, protocol T=${d.protocol} - ${d.canChange ? 'capable to change' : 'unable to change'} - ${d.implicit ? 'parameters implicitly defined' : 'parameters defined by interface bytes'}`;
    case 'vpp2':
      return `programming param PI2: ${d.vppDecivolts === null ? `${d.pi2} (RFU)` : `${d.vppDecivolts} dV`} (deprecated)`;
    case 'waiting-integer':
      return `work waiting time: 960 x ${d.wi} x (Fi/f)${d.wi === 0 ? ' (WI=0 is RFU)' : ''}`;
    case 'ifsc':
      return `IFSC: ${d.ifsc}${d.rfu ? ' (RFU)' : ''}`;
    case 'bwi-cwi':
      return `block waiting integer: ${d.bwi}${d.rfu ? ' (RFU)' : ''} - character waiting integer: ${d.cwi}`;
    case 'error-detection':
      return `error detection code: ${d.code}${d.rfuBits ? ' (RFU bits set)' : ''}`;
    case 'clock-stop-class':
      return `clock stop: ${d.clockStop} - class accepted by the card: ${d.classes.join(', ') || 'none'}${d.rfuClassBits ? ' (+RFU bits)' : ''}`;
    case 'spu':
      return `SPU (C6): ${d.use}`;
    case 'undecoded':
      return d.reason;
  }
}
