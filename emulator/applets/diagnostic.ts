/**
 * The diagnostic applet: one command per transport path a terminal must handle (cases 1-4, extended
 * length, 61xx/GET RESPONSE, 6Cxx, chaining, slow answers, chosen status words, a persistent counter
 * for tear and power tests). Specified command by command in applets-spec/diagnostic.md.
 *
 * AID F0 68 69 6C 74 44 49 41 47: F0 (a proprietary, unregistered RID) then "hiltDIAG".
 * Commands use the proprietary class (CLA 80..83, C0..CF); the interindustry class answers 6E00.
 */
import { createHash } from 'node:crypto';
import { ResponseApdu } from '../../src/apdu/response.js';
import type { CommandApdu } from '../../src/apdu/command.js';
import { decodeCla } from '../../src/apdu/cla.js';
import { fromHex, concatBytes } from '../../src/util/bytes.js';
import { SwError, type Applet, type AppletContext } from '../os/applet.js';
import { SW, isStatusWord, swCorrectLength } from '../os/sw.js';
import { defaultFci } from '../os/card-data.js';

export const DIAGNOSTIC_AID = fromHex('F0 68 69 6C 74 44 49 41 47');
export const DIAGNOSTIC_NAME = 'hiltDIAG';

export const DIAG_INS = {
  PING: 0x10,
  PATTERN: 0x12,
  PUT: 0x14,
  LAST_PUT: 0x16,
  ECHO: 0x18,
  HASH: 0x1a,
  EXACT_LE: 0x1c,
  SLEEP: 0x30,
  STATUS: 0x32,
  COUNTER_INCREMENT: 0x40,
  COUNTER_READ: 0x42,
} as const;

/** COUNTER INCREMENT P1: how the transaction ends. */
export const COUNTER_MODE = { COMMIT: 0x00, THROW_INSIDE: 0x01, RETURN_OPEN: 0x02 } as const;

/** Longest SLEEP, in milliseconds. */
export const MAX_SLEEP_MS = 10_000;
/** EXACT LE serves 1..256 bytes: what a 6Cxx status word can name. */
export const MAX_EXACT_LE = 256;

/** The applet's persistent records: the counter and its complement (a torn update shows as a mismatch). */
export const DIAG_RECORDS = { counter: 'counter', counterCheck: 'counter-check' } as const;
const RAM = { lastPut: 'last-put' } as const;

export interface DiagnosticOptions {
  /** How SLEEP waits; tests pass one that does not. Defaults to a timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** Byte i of a PATTERN answer is i & 0xff. */
export function diagnosticPattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i & 0xff;
  return out;
}

/** The 36-byte digest answer: Nc as 4 bytes big-endian, then SHA-256 of the data. */
export function diagnosticDigest(data: Uint8Array): Uint8Array {
  return concatBytes(u32(data.length), new Uint8Array(createHash('sha256').update(data).digest()));
}

function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

function readU32(b: Uint8Array): number {
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

const ok = (data: Uint8Array = new Uint8Array(0)): ResponseApdu => new ResponseApdu(data, SW.OK);

function requireNoData(apdu: CommandApdu): void {
  if (apdu.nc > 0) throw new SwError(SW.WRONG_LENGTH);
}

function requireP1P2Zero(apdu: CommandApdu): void {
  if (apdu.p1 !== 0 || apdu.p2 !== 0) throw new SwError(SW.INCORRECT_P1P2);
}

export class DiagnosticApplet implements Applet {
  readonly chaining = 'accumulate' as const;
  readonly multiSelectable = true;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: DiagnosticOptions = {}) {
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  install(ctx: AppletContext): void {
    this.writeCounter(ctx, 0);
  }

  /** The OS's default layout, fixed to this applet's name whatever the card configuration calls it. */
  fci(): Uint8Array {
    return defaultFci(DIAGNOSTIC_AID, DIAGNOSTIC_NAME);
  }

  async process(ctx: AppletContext, apdu: CommandApdu): Promise<ResponseApdu> {
    const cla = decodeCla(apdu.cla);
    if (!cla.proprietary) throw new SwError(SW.CLA_NOT_SUPPORTED);
    if (cla.secureMessaging !== 'none') throw new SwError(SW.SECURE_MESSAGING_NOT_SUPPORTED);
    const p1p2 = (apdu.p1 << 8) | apdu.p2;
    switch (apdu.ins) {
      case DIAG_INS.PING:
        requireNoData(apdu);
        requireP1P2Zero(apdu);
        return ok();
      case DIAG_INS.PATTERN:
        requireNoData(apdu);
        return ok(diagnosticPattern(p1p2));
      case DIAG_INS.PUT:
        requireP1P2Zero(apdu);
        ctx.transient.set(RAM.lastPut, diagnosticDigest(apdu.data));
        return ok();
      case DIAG_INS.LAST_PUT: {
        requireNoData(apdu);
        requireP1P2Zero(apdu);
        const last = ctx.transient.get(RAM.lastPut);
        if (!last) throw new SwError(SW.CONDITIONS_NOT_SATISFIED);
        return ok(last);
      }
      case DIAG_INS.ECHO:
        requireP1P2Zero(apdu);
        return ok(apdu.data);
      case DIAG_INS.HASH:
        requireP1P2Zero(apdu);
        return ok(diagnosticDigest(apdu.data));
      case DIAG_INS.EXACT_LE:
        requireNoData(apdu);
        if (p1p2 < 1 || p1p2 > MAX_EXACT_LE) throw new SwError(SW.INCORRECT_P1P2);
        if (apdu.ne !== p1p2) throw new SwError(swCorrectLength(p1p2));
        return ok(diagnosticPattern(p1p2));
      case DIAG_INS.SLEEP:
        requireNoData(apdu);
        if (p1p2 > MAX_SLEEP_MS) throw new SwError(SW.INCORRECT_P1P2);
        await this.sleep(p1p2);
        return ok();
      case DIAG_INS.STATUS:
        if (!isStatusWord(p1p2)) throw new SwError(SW.INCORRECT_P1P2);
        return new ResponseApdu(apdu.data, p1p2);
      case DIAG_INS.COUNTER_INCREMENT:
        requireNoData(apdu);
        return this.increment(ctx, apdu);
      case DIAG_INS.COUNTER_READ:
        requireNoData(apdu);
        requireP1P2Zero(apdu);
        return ok(u32(this.readCounter(ctx)));
      default:
        throw new SwError(SW.INS_NOT_SUPPORTED);
    }
  }

  /** Counter and its check record (the complement) are written in one transaction. */
  private increment(ctx: AppletContext, apdu: CommandApdu): ResponseApdu {
    const mode = apdu.p1;
    if (apdu.p2 !== 0 || (mode !== COUNTER_MODE.COMMIT && mode !== COUNTER_MODE.THROW_INSIDE && mode !== COUNTER_MODE.RETURN_OPEN)) {
      throw new SwError(SW.INCORRECT_P1P2);
    }
    ctx.transaction.begin();
    const value = this.readCounter(ctx);
    if (value === 0xffffffff) throw new SwError(SW.CONDITIONS_NOT_SATISFIED, 'counter exhausted');
    this.writeCounter(ctx, value + 1);
    if (mode === COUNTER_MODE.THROW_INSIDE) throw new Error('diagnostic: deliberate failure inside a transaction');
    if (mode === COUNTER_MODE.COMMIT) ctx.transaction.commit();
    return ok(u32(value + 1));
  }

  private readCounter(ctx: AppletContext): number {
    const v = ctx.store.get(DIAG_RECORDS.counter);
    const check = ctx.store.get(DIAG_RECORDS.counterCheck);
    if (!v || !check || v.length !== 4 || check.length !== 4) throw new SwError(SW.MEMORY_FAILURE, 'counter records missing');
    const value = readU32(v);
    if ((~readU32(check) >>> 0) !== value) throw new SwError(SW.MEMORY_FAILURE, 'counter records disagree');
    return value;
  }

  private writeCounter(ctx: AppletContext, value: number): void {
    ctx.store.put(DIAG_RECORDS.counter, u32(value));
    ctx.store.put(DIAG_RECORDS.counterCheck, u32(~value >>> 0));
  }
}
