/**
 * The e-money stored-value purse (applets-spec/emoney-purse.md; the command table the conformance
 * test runs is applets-spec/emoney-purse.commands.json).
 *
 * A prepaid balance in minor units of one currency, with a maximum balance and a per-transaction
 * maximum for debits; a monotonic card transaction counter (the card's serial numbers of the NEC
 * model); a cyclic log of the last PURSE_LOG_SIZE transactions; a transaction certificate for every
 * debit and load, a MAC under the card's purse key that only the card and the issuer hold. Loads
 * are credited only against the issuer's load cryptogram, which covers the counter, so it is good
 * once. Balance, counter and the log record change in one store transaction: after a power cut the
 * card holds all of a transaction or none of it.
 *
 * The applet trusts the card OS for the secure channel: it reads `ctx.security` (what the security
 * domain of its provider established on the command's logical channel) and refuses value commands
 * without C-MAC (6982). Commands reach it with the plain class 80; a class with secure messaging
 * bits that reaches it was not unwrapped by any security domain, so it is refused with 6982 too.
 *
 * Checks run in the order of the spec's tables ("Order of checks"); the first failing one answers.
 */
import { ResponseApdu } from '../../src/apdu/response.js';
import type { CommandApdu } from '../../src/apdu/command.js';
import { decodeCla } from '../../src/apdu/cla.js';
import { bytesEqual, concatBytes, constantTimeEqual, zeroize } from '../../src/util/bytes.js';
import { keyCheckValue, KCV_LENGTH } from '../../src/crypto/diversify.js';
import { AES_KEY_LENGTHS } from '../../src/crypto/aes.js';
import {
  PURSE_FIELD_LENGTH,
  PURSE_U32_MAX,
  purseCertificate,
  verifyLoadCryptogram,
  type PurseTransactionType,
} from '../../src/crypto/purse-certificate.js';
import { SwError, type Applet, type AppletContext } from '../os/applet.js';
import { defaultFci } from '../os/card-data.js';
import {
  DEBIT_DATA_LENGTH,
  LOAD_DATA_LENGTH,
  LOAD_OFFSET,
  PARAMETERS_LENGTH,
  PERSONALIZE_OBJECT,
  PURSE_AID,
  PURSE_INS,
  PURSE_LIFE_CYCLE,
  PURSE_LOG_SIZE,
  PURSE_NAME,
  PURSE_RECORD,
  PURSE_SW,
  decodeLogRecord,
  decodeParameters,
  decodeRequest,
  decodeState,
  encodeLogRecord,
  encodeState,
  encodeStatus,
  encodeTransactionResponse,
  logSlot,
  type PurseLifeCycle,
  type PurseLogRecord,
  type PurseParameters,
  type PurseState,
  type PurseTransactionRequest,
} from './purse-records.js';

export { PURSE_AID, PURSE_NAME } from './purse-records.js';

/** Bits of ctx.security.level a command needs (SCP03: 01 C-MAC, 02 C-DECRYPTION), with an authenticated session. */
export const PURSE_SECURITY = {
  none: 0x00,
  cMac: 0x01,
  cMacCDec: 0x03,
} as const;

interface CommandRule {
  lifeCycles: readonly PurseLifeCycle[];
  security: number;
}

/** Where each command may run and what protection it needs; the spec's command table, as data. */
const RULES: ReadonlyMap<number, CommandRule> = new Map([
  [PURSE_INS.READ_STATUS, { lifeCycles: [PURSE_LIFE_CYCLE.ISSUANCE, PURSE_LIFE_CYCLE.ACTIVE], security: PURSE_SECURITY.none }],
  [PURSE_INS.READ_LOG, { lifeCycles: [PURSE_LIFE_CYCLE.ACTIVE], security: PURSE_SECURITY.none }],
  [PURSE_INS.DEBIT, { lifeCycles: [PURSE_LIFE_CYCLE.ACTIVE], security: PURSE_SECURITY.cMac }],
  [PURSE_INS.LOAD, { lifeCycles: [PURSE_LIFE_CYCLE.ACTIVE], security: PURSE_SECURITY.cMac }],
  [PURSE_INS.PERSONALIZE, { lifeCycles: [PURSE_LIFE_CYCLE.ISSUANCE], security: PURSE_SECURITY.cMacCDec }],
  [PURSE_INS.LOCK, { lifeCycles: [PURSE_LIFE_CYCLE.ISSUANCE], security: PURSE_SECURITY.cMac }],
]);

function fail(sw: number, why?: string): never {
  throw new SwError(sw, why);
}

const ok = (data: Uint8Array = new Uint8Array(0)): ResponseApdu => new ResponseApdu(data, PURSE_SW.OK);

export class PurseApplet implements Applet {
  /** A new purse: issuance state, counter 0, balance 0, no parameters, no key. */
  install(ctx: AppletContext): void {
    ctx.store.put(PURSE_RECORD.state, encodeState({ lifeCycle: PURSE_LIFE_CYCLE.ISSUANCE, counter: 0, balance: 0 }));
  }

  fci(): Uint8Array {
    return defaultFci(PURSE_AID, PURSE_NAME);
  }

  process(ctx: AppletContext, apdu: CommandApdu): ResponseApdu {
    const cla = decodeCla(apdu.cla);
    if (!cla.proprietary) fail(PURSE_SW.CLA_NOT_SUPPORTED);
    if (cla.secureMessaging !== 'none') fail(PURSE_SW.SECURITY_STATUS_NOT_SATISFIED, 'a protected command reached the applet without a session');
    const rule = RULES.get(apdu.ins) ?? fail(PURSE_SW.INS_NOT_SUPPORTED);
    this.checkP1P2(apdu);
    const state = this.readState(ctx);
    if (!rule.lifeCycles.includes(state.lifeCycle)) fail(PURSE_SW.CONDITIONS_NOT_SATISFIED, 'not in this life cycle state');
    if (rule.security !== PURSE_SECURITY.none) {
      const s = ctx.security;
      if (!s.authenticated || (s.level & rule.security) !== rule.security) fail(PURSE_SW.SECURITY_STATUS_NOT_SATISFIED, 'secure channel missing or too weak');
    }
    switch (apdu.ins) {
      case PURSE_INS.READ_STATUS:
        this.requireLength(apdu, 0);
        return ok(encodeStatus(state, this.readParameters(ctx, false), ctx.serial));
      case PURSE_INS.READ_LOG:
        this.requireLength(apdu, 0);
        return this.readLog(ctx, state, apdu.p1);
      case PURSE_INS.DEBIT:
        this.requireLength(apdu, DEBIT_DATA_LENGTH);
        return this.debit(ctx, state, apdu.data);
      case PURSE_INS.LOAD:
        this.requireLength(apdu, LOAD_DATA_LENGTH);
        return this.load(ctx, state, apdu.data);
      case PURSE_INS.PERSONALIZE:
        return this.personalize(ctx, apdu);
      case PURSE_INS.LOCK:
        this.requireLength(apdu, 0);
        return this.lock(ctx);
      default:
        return fail(PURSE_SW.INS_NOT_SUPPORTED);
    }
  }

  // ---- checks -------------------------------------------------------------------------------------

  private checkP1P2(apdu: CommandApdu): void {
    const { ins, p1, p2 } = apdu;
    const good =
      ins === PURSE_INS.READ_LOG
        ? p1 <= PURSE_LOG_SIZE && p2 === 0
        : ins === PURSE_INS.PERSONALIZE
          ? p1 === 0 && (p2 === PERSONALIZE_OBJECT.PARAMETERS || p2 === PERSONALIZE_OBJECT.PURSE_KEY)
          : p1 === 0 && p2 === 0;
    if (!good) fail(PURSE_SW.INCORRECT_P1P2);
  }

  private requireLength(apdu: CommandApdu, ...lengths: number[]): void {
    if (!lengths.includes(apdu.nc)) fail(PURSE_SW.WRONG_LENGTH);
  }

  // ---- records ------------------------------------------------------------------------------------

  private readState(ctx: AppletContext): PurseState {
    return decodeState(ctx.store.get(PURSE_RECORD.state)) ?? fail(PURSE_SW.MEMORY_FAILURE, 'state record unreadable');
  }

  /** The parameters; absent is an error only when `required` (an active purse always has them). */
  private readParameters(ctx: AppletContext, required: true): PurseParameters;
  private readParameters(ctx: AppletContext, required: false): PurseParameters | null;
  private readParameters(ctx: AppletContext, required: boolean): PurseParameters | null {
    const raw = ctx.store.get(PURSE_RECORD.parameters);
    if (raw === undefined && !required) return null;
    return decodeParameters(raw) ?? fail(PURSE_SW.MEMORY_FAILURE, 'parameters record unreadable');
  }

  private readKey(ctx: AppletContext): Uint8Array {
    const key = ctx.keys.get(PURSE_RECORD.key);
    if (!key || !(AES_KEY_LENGTHS as readonly number[]).includes(key.length)) fail(PURSE_SW.MEMORY_FAILURE, 'purse key missing');
    return key as Uint8Array;
  }

  /** The k-th most recent logged transaction (k = 1 newest); its counter must be the one expected there. */
  private logRecord(ctx: AppletContext, state: PurseState, k: number): PurseLogRecord {
    const counter = state.counter - (k - 1);
    const record = decodeLogRecord(ctx.store.get(PURSE_RECORD.log(logSlot(counter))));
    if (!record || record.counter !== counter) fail(PURSE_SW.MEMORY_FAILURE, `log record of transaction ${counter} unreadable`);
    return record as PurseLogRecord;
  }

  private logCount(state: PurseState): number {
    return Math.min(state.counter, PURSE_LOG_SIZE);
  }

  // ---- READ LOG -----------------------------------------------------------------------------------

  private readLog(ctx: AppletContext, state: PurseState, p1: number): ResponseApdu {
    const n = this.logCount(state);
    if (p1 === 0) {
      const raws: Uint8Array[] = [];
      for (let k = 1; k <= n; k++) raws.push(encodeLogRecord(this.logRecord(ctx, state, k)));
      return ok(concatBytes(...raws));
    }
    if (p1 > n) fail(PURSE_SW.RECORD_NOT_FOUND);
    return ok(encodeLogRecord(this.logRecord(ctx, state, p1)));
  }

  // ---- DEBIT and LOAD -----------------------------------------------------------------------------

  private debit(ctx: AppletContext, state: PurseState, data: Uint8Array): ResponseApdu {
    const request = decodeRequest(data) ?? fail(PURSE_SW.WRONG_DATA, 'zero amount, or currency or date-time not BCD');
    const params = this.readParameters(ctx, true);
    if (request.currency !== params.currency) fail(PURSE_SW.CURRENCY_MISMATCH);
    if (request.amount > params.maxPerTransaction) fail(PURSE_SW.ABOVE_TRANSACTION_MAXIMUM);
    if (request.amount > state.balance) fail(PURSE_SW.INSUFFICIENT_BALANCE);
    if (state.counter === PURSE_U32_MAX) fail(PURSE_SW.COUNTER_EXHAUSTED);
    this.checkTerminalSequence(ctx, state, request);
    return this.commit(ctx, state, 'debit', request, state.balance - request.amount);
  }

  private load(ctx: AppletContext, state: PurseState, data: Uint8Array): ResponseApdu {
    const request = decodeRequest(data) ?? fail(PURSE_SW.WRONG_DATA, 'zero amount, or currency or date-time not BCD');
    if (state.counter === PURSE_U32_MAX) fail(PURSE_SW.COUNTER_EXHAUSTED);
    const key = this.readKey(ctx);
    const genuine = verifyLoadCryptogram(
      key,
      {
        serial: ctx.serial,
        counter: state.counter,
        amount: request.amount,
        currency: request.currency,
        terminalId: request.terminalId,
        terminalSequence: request.terminalSequence,
        dateTime: request.dateTime,
        issuerReference: data.subarray(LOAD_OFFSET.issuerReference, LOAD_OFFSET.cryptogram),
      },
      data.subarray(LOAD_OFFSET.cryptogram, LOAD_OFFSET.cryptogram + PURSE_FIELD_LENGTH.mac),
    );
    zeroize(key);
    if (!genuine) fail(PURSE_SW.CRYPTOGRAM_INVALID);
    const params = this.readParameters(ctx, true);
    if (request.currency !== params.currency) fail(PURSE_SW.CURRENCY_MISMATCH);
    if (state.balance + request.amount > params.maxBalance) fail(PURSE_SW.ABOVE_MAXIMUM_BALANCE);
    this.checkTerminalSequence(ctx, state, request);
    return this.commit(ctx, state, 'load', request, state.balance + request.amount);
  }

  /**
   * A terminal numbers its transactions in increasing order: a logged transaction of the same
   * terminal with this sequence number or a later one means a replay (or a terminal rolled back).
   */
  private checkTerminalSequence(ctx: AppletContext, state: PurseState, request: PurseTransactionRequest): void {
    for (let k = 1; k <= this.logCount(state); k++) {
      const r = this.logRecord(ctx, state, k);
      if (bytesEqual(r.terminalId, request.terminalId) && r.terminalSequence >= request.terminalSequence) {
        fail(PURSE_SW.TERMINAL_SEQUENCE_NOT_INCREASING);
      }
    }
  }

  /** Certifies the transaction, then writes state and log record in one transaction. */
  private commit(ctx: AppletContext, state: PurseState, type: PurseTransactionType, request: PurseTransactionRequest, balanceAfter: number): ResponseApdu {
    const counter = state.counter + 1;
    const key = this.readKey(ctx);
    const certificate = purseCertificate(key, { serial: ctx.serial, counter, type, ...request, balanceAfter });
    zeroize(key);
    const record = encodeLogRecord({ counter, type, ...request, balanceAfter, certificate });
    ctx.transaction.begin();
    ctx.store.put(PURSE_RECORD.state, encodeState({ lifeCycle: state.lifeCycle, counter, balance: balanceAfter }));
    ctx.store.put(PURSE_RECORD.log(logSlot(counter)), record);
    ctx.transaction.commit();
    return ok(encodeTransactionResponse(counter, balanceAfter, certificate));
  }

  // ---- issuance -----------------------------------------------------------------------------------

  private personalize(ctx: AppletContext, apdu: CommandApdu): ResponseApdu {
    if (apdu.p2 === PERSONALIZE_OBJECT.PARAMETERS) {
      this.requireLength(apdu, PARAMETERS_LENGTH);
      if (decodeParameters(apdu.data) === null) fail(PURSE_SW.WRONG_DATA, 'currency not BCD, or limits not 1 <= max per transaction <= max balance');
      ctx.store.put(PURSE_RECORD.parameters, apdu.data);
      return ok();
    }
    this.requireLength(apdu, ...AES_KEY_LENGTHS.map((n) => n + KCV_LENGTH));
    const key = apdu.data.slice(0, apdu.nc - KCV_LENGTH);
    const kcv = keyCheckValue(key);
    const match = constantTimeEqual(kcv, apdu.data.subarray(apdu.nc - KCV_LENGTH));
    if (match) ctx.keys.set(PURSE_RECORD.key, key);
    zeroize(key);
    if (!match) fail(PURSE_SW.WRONG_DATA, 'key check value mismatch');
    return ok();
  }

  /** Ends issuance: parameters and key must be there; counter and balance start at 0, the log empty. */
  private lock(ctx: AppletContext): ResponseApdu {
    if (ctx.store.get(PURSE_RECORD.parameters) === undefined || !ctx.keys.has(PURSE_RECORD.key)) {
      fail(PURSE_SW.REFERENCED_DATA_NOT_FOUND, 'personalization incomplete');
    }
    this.readParameters(ctx, true);
    zeroize(this.readKey(ctx));
    ctx.transaction.begin();
    ctx.store.put(PURSE_RECORD.state, encodeState({ lifeCycle: PURSE_LIFE_CYCLE.ACTIVE, counter: 0, balance: 0 }));
    for (const name of ctx.store.keys(PURSE_RECORD.logPrefix)) ctx.store.delete(name);
    ctx.transaction.commit();
    return ok();
  }
}
