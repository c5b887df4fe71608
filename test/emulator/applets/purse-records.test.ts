/**
 * The purse's byte layouts (emulator/applets/purse-records.ts): round trips of every record and
 * command field (fast-check), 100,000 arbitrary inputs per decoder (never a throw, and whatever is
 * accepted re-encodes to the same bytes), and random APDUs against a live purse: no applet fault,
 * and value stays accounted for.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DEBIT_DATA_LENGTH,
  LOG_RECORD_LENGTH,
  PARAMETERS_LENGTH,
  PURSE_INS,
  PURSE_LIFE_CYCLE,
  STATE_LENGTH,
  decodeLogRecord,
  decodeParameters,
  decodeRequest,
  decodeState,
  decodeStatus,
  encodeLogRecord,
  encodeParameters,
  encodeRequest,
  encodeState,
  encodeStatus,
  type PurseLogRecord,
} from '../../../emulator/applets/purse-records.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { encodePurseDateTime } from '../../../src/crypto/purse-certificate.js';
import { toHex } from '../../../src/util/bytes.js';
import { Wire, issue, load, openSession, purseCard, readLog, readStatus, request } from './purse-helpers.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const currency = fc.integer({ min: 1, max: 999 });
const dateTime = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 31 }),
    hour: fc.integer({ min: 0, max: 23 }),
    minute: fc.integer({ min: 0, max: 59 }),
    second: fc.integer({ min: 0, max: 59 }),
  })
  .map(encodePurseDateTime);
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const lifeCycle = fc.constantFrom(PURSE_LIFE_CYCLE.ISSUANCE, PURSE_LIFE_CYCLE.ACTIVE);

const logRecord: fc.Arbitrary<PurseLogRecord> = fc.record({
  counter: u32,
  type: fc.constantFrom('debit' as const, 'load' as const),
  amount: u32,
  currency,
  terminalId: bytes(8),
  terminalSequence: u32,
  dateTime,
  balanceAfter: u32,
  certificate: bytes(16),
});

describe('purse records: round trips', () => {
  it('state, parameters, log record, request, status', () => {
    fc.assert(
      fc.property(lifeCycle, u32, u32, (lc, counter, balance) => {
        const s = { lifeCycle: lc, counter, balance };
        expect(decodeState(encodeState(s))).toEqual(s);
      }),
    );
    fc.assert(
      fc.property(currency, u32, u32, (c, a, b) => {
        const p = { currency: c, maxBalance: Math.max(a, b, 1), maxPerTransaction: Math.max(1, Math.min(a, b)) };
        expect(decodeParameters(encodeParameters(p))).toEqual(p);
      }),
    );
    fc.assert(
      fc.property(logRecord, (r) => {
        const raw = encodeLogRecord(r);
        expect(raw.length).toBe(LOG_RECORD_LENGTH);
        expect(decodeLogRecord(raw)).toEqual(r);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0xffffffff }), currency, bytes(8), u32, dateTime, (amount, c, terminalId, terminalSequence, dt) => {
        const r = { amount, currency: c, terminalId, terminalSequence, dateTime: dt };
        const raw = encodeRequest(r);
        expect(raw.length).toBe(DEBIT_DATA_LENGTH);
        expect(decodeRequest(raw)).toEqual(r);
      }),
    );
    fc.assert(
      fc.property(lifeCycle, u32, u32, currency, fc.uint8Array({ minLength: 1, maxLength: 32 }), (lc, counter, balance, c, serial) => {
        const st = decodeStatus(encodeStatus({ lifeCycle: lc, counter, balance }, { currency: c, maxBalance: 9, maxPerTransaction: 3 }, serial));
        expect(st).toEqual({ lifeCycle: lc, counter, balance, currency: c, maxBalance: 9, maxPerTransaction: 3, logCapacity: 10, logCount: Math.min(counter, 10), serial });
      }),
    );
  });

  it('refuses what is not a record', () => {
    expect(decodeState(undefined)).toBeNull();
    expect(decodeState(new Uint8Array(STATE_LENGTH))).toBeNull();
    expect(decodeParameters(new Uint8Array(PARAMETERS_LENGTH))).toBeNull();
    expect(decodeParameters(encodeParameters({ currency: 392, maxBalance: 5, maxPerTransaction: 5 }).map((b, i) => (i === 9 ? 6 : b)))).toBeNull();
    expect(decodeRequest(new Uint8Array(DEBIT_DATA_LENGTH))).toBeNull();
    expect(decodeLogRecord(new Uint8Array(LOG_RECORD_LENGTH))).toBeNull();
    expect(decodeStatus(new Uint8Array(22))).toBeNull();
  });
});

describe('purse records: 100,000 arbitrary inputs per decoder', () => {
  const decoders: [string, (b: Uint8Array) => unknown, (v: never) => Uint8Array, number][] = [
    ['state', decodeState, encodeState as (v: never) => Uint8Array, STATE_LENGTH],
    ['parameters', decodeParameters, encodeParameters as (v: never) => Uint8Array, PARAMETERS_LENGTH],
    ['log record', decodeLogRecord, encodeLogRecord as (v: never) => Uint8Array, LOG_RECORD_LENGTH],
    ['request', decodeRequest, encodeRequest as (v: never) => Uint8Array, DEBIT_DATA_LENGTH],
  ];
  for (const [name, decode, encode, length] of decoders) {
    it(name, () => {
      let seed = 0xc0ffee ^ length;
      const next = (): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return seed >>> 8;
      };
      let accepted = 0;
      for (let n = 0; n < 100_000; n++) {
        // mostly the right length, digits where BCD is expected often enough that some inputs pass
        const len = next() % 8 === 0 ? next() % (length + 4) : length;
        const b = Uint8Array.from({ length: len }, () => (next() % 3 === 0 ? next() & 0xff : ((next() % 3) << 4) | next() % 10));
        if (name === 'state' && len > 0) b[0] = [0x07, 0x0f, next() & 0xff][next() % 3];
        if (name === 'log record' && len > 4) b[4] = [1, 2, next() & 0xff][next() % 3];
        const v = decode(b);
        if (v !== null) {
          accepted++;
          // a request is the first 25 bytes of DEBIT or LOAD data: only those are decoded
          expect(toHex(encode(v as never))).toBe(toHex(name === 'request' ? b.subarray(0, DEBIT_DATA_LENGTH) : b));
        }
      }
      expect(accepted).toBeGreaterThan(50);
    });
  }

  it('status', () => {
    let seed = 77;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 8;
    };
    let accepted = 0;
    for (let n = 0; n < 100_000; n++) {
      const len = next() % 60;
      const b = Uint8Array.from({ length: len }, () => next() & 0xff);
      if (len > 21) {
        b[0] = next() % 2 ? 0x07 : 0x0f;
        b[21] = next() % 4 === 0 ? next() & 0xff : len - 22;
        b[9] = 0;
        b[10] = next() % 2 ? 0 : 0x99;
      }
      if (decodeStatus(b) !== null) accepted++;
    }
    expect(accepted).toBeGreaterThan(50);
  });
});

describe('purse applet: random APDUs', () => {
  it('never faults (6F00), and the balance stays the loads minus the debits of the log', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    await issue(wire);
    const s = await openSession(wire, 0x01);
    expect((await load(s, request(40_000, 1))).sw).toBe(0x9000);
    let seed = 4242;
    const next = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed >>> 8;
    };
    const insList = [...Object.values(PURSE_INS), 0x00, 0x10, 0xca];
    const seen = new Set<number>();
    for (let n = 0; n < 3000; n++) {
      const ins = insList[next() % insList.length];
      const len = [0, 1, 9, 10, 19, 24, 25, 26, 53, next() % 200][next() % 10];
      const data = Uint8Array.from({ length: len }, () => next() & 0xff);
      if (ins === PURSE_INS.DEBIT && len === 25 && next() % 2) {
        data.set(encodeRequest(request(1 + (next() % 200), 10 + n)));
      }
      const cmd = new CommandApdu({ cla: 0x80, ins, p1: next() % 3 === 0 ? next() & 0xff : 0, p2: next() % 3 === 0 ? next() & 3 : 0, data, ne: 256 });
      const r = ResponseApdu.decode(await s.transmit(cmd.encode()));
      seen.add(r.sw);
      expect(r.sw, cmd.toString()).not.toBe(0x6f00);
      expect(r.sw >> 8, cmd.toString()).not.toBe(0x61);
    }
    expect(seen.has(0x9000)).toBe(true);
    const status = await readStatus(s);
    const log = await readLog(s);
    expect(status.counter).toBeGreaterThan(1);
    if (status.counter <= 10) {
      expect(status.balance).toBe(log.reduce((sum, r) => sum + (r.type === 'load' ? r.amount : -r.amount), 0));
    } else {
      // the log wrapped: each record's balance follows from the one before it
      for (let i = 0; i + 1 < log.length; i++) {
        const delta = log[i].type === 'load' ? log[i].amount : -log[i].amount;
        expect(log[i + 1].balanceAfter + delta).toBe(log[i].balanceAfter);
        expect(log[i + 1].counter + 1).toBe(log[i].counter);
      }
    }
  });
});
