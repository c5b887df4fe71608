/**
 * The e-money purse, command by command (applets-spec/emoney-purse.md): issuance, DEBIT and LOAD with
 * every limit at its boundary, certificates checked with the issuer's key, replays, the log, record
 * damage, and the spec's example blocks. Every authenticated exchange goes through the real SCP03
 * host wrapper (src/reader/scp03.ts) and the card's security domain: nothing fakes ctx.security.
 */
import { describe, expect, it } from 'vitest';
import {
  LOG_RECORD_LENGTH,
  PURSE_AID,
  PURSE_INS,
  PURSE_LIFE_CYCLE,
  PURSE_LOG_SIZE,
  PURSE_NAME,
  decodeLogRecord,
} from '../../../emulator/applets/purse-records.js';
import { personalizePurse, purseIssuanceCommands } from '../../../emulator/personalize.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { kcvHex, keyCheckValue } from '../../../src/crypto/diversify.js';
import { encodePurseDateTime, testPurseMasterKey } from '../../../src/crypto/purse-certificate.js';
import { HiltError } from '../../../src/util/errors.js';
import { concatBytes, fromHex, toHex } from '../../../src/util/bytes.js';
import { replay, specBlocks, tx } from '../os/helpers.js';
import {
  ISSUANCE,
  JPY,
  PURSE_SCOPE,
  SELECT_PURSE,
  SERIAL,
  TERMINAL,
  Wire,
  ascii,
  debitApdu,
  exchange,
  flipLastDataBit,
  forgeCounter,
  issue,
  issuerCryptogram,
  issuerPurseKey,
  issuerVerifies,
  load,
  loadApdu,
  openSession,
  purseCard,
  readLog,
  readStatus,
  request,
  u32,
} from './purse-helpers.js';

const U32_MAX = 0xffff_ffff;

async function activePurse(issuance = ISSUANCE) {
  const { card, store } = purseCard();
  const wire = new Wire(card);
  const issued = await issue(wire, issuance);
  return { card, store, wire, issued };
}

function personalizeApdu(p2: number, data: Uint8Array, cla = 0x80): CommandApdu {
  return new CommandApdu({ cla, ins: PURSE_INS.PERSONALIZE, p1: 0, p2, data });
}

const LOCK = new CommandApdu({ cla: 0x80, ins: PURSE_INS.LOCK, p1: 0, p2: 0 });

async function rejects(p: Promise<unknown>): Promise<HiltError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof HiltError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('purse: identity', () => {
  it('has the AID F0 + "hiltPURSE" and answers its FCI', async () => {
    expect(toHex(PURSE_AID)).toBe('f0' + toHex(ascii('hiltPURSE')));
    expect(PURSE_NAME).toBe('hiltPURSE');
    const { card } = purseCard();
    expect(await tx(card, `00A404000A${toHex(PURSE_AID)}00`)).toBe('6F19840AF068696C745055525345A50B50096869' + '6C745055525345' + '9000');
    // not multiselectable: a second channel cannot select it while channel 0 has it
    expect(await tx(card, `00A4040C0A${toHex(PURSE_AID)}`)).toBe('9000');
    expect(await tx(card, '0070000001')).toBe('019000');
    expect(await tx(card, `01A4040C0A${toHex(PURSE_AID)}`)).toBe('6985');
  });
});

describe('purse: issuance', () => {
  it('personalizes over SCP03 at level 03 and locks: active, counter 0, balance 0', async () => {
    const { wire, issued } = await activePurse();
    expect(toHex(issued.serial)).toBe(toHex(SERIAL));
    expect(issued.purseKeyKcv).toBe(kcvHex(issuerPurseKey()));
    expect(issued.status).toMatchObject({ lifeCycle: PURSE_LIFE_CYCLE.ACTIVE, counter: 0, balance: 0, currency: JPY, maxBalance: 50_000, maxPerTransaction: 10_000, logCapacity: 10, logCount: 0 });
    // the purse key never crossed the wire in the clear, nor did anything answer it
    const key = toHex(issuerPurseKey()).toUpperCase();
    for (const { command, response } of wire.log) {
      expect(command.includes(key)).toBe(false);
      expect(response.includes(key)).toBe(false);
    }
    // the card holds the purse key in its key slot: a certificate made with the issuer's copy verifies
    const s = await openSession(wire, 0x01);
    const req = request(3000, 1);
    const a = await load(s, req);
    expect(a.sw).toBe(0x9000);
    expect(issuerVerifies('load', req, 1, 3000, a.data.subarray(8))).toBe(true);
  });

  it('refuses to personalize or lock again once active (6985), and personalizePurse says why', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x33);
    const [params, key] = purseIssuanceCommands(SERIAL, ISSUANCE);
    expect((await exchange(s, params)).sw).toBe(0x6985);
    expect((await exchange(s, key)).sw).toBe(0x6985);
    expect((await exchange(s, LOCK)).sw).toBe(0x6985);
    const e = await rejects(personalizePurse(s, ISSUANCE));
    expect(e.code).toBe('BAD_INPUT');
    expect(e.message).toMatch(/not in the issuance state/);
  });

  it('refuses personalization outside a channel with C-DECRYPTION, and LOCK before both objects', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    const [params, key] = purseIssuanceCommands(SERIAL, ISSUANCE);
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    expect((await exchange(wire, params)).sw, 'no session').toBe(0x6982);
    expect((await exchange(wire, LOCK)).sw, 'no session').toBe(0x6982);
    const macOnly = await openSession(wire, 0x01);
    expect((await exchange(macOnly, key)).sw, 'C-MAC without C-DEC').toBe(0x6982);
    expect((await exchange(macOnly, LOCK)).sw, 'nothing personalized yet').toBe(0x6a88);
    expect((await exchange(macOnly, params)).sw, 'parameters need C-DEC too').toBe(0x6982);
    const secure = await openSession(wire, 0x13);
    expect((await exchange(secure, params)).sw).toBe(0x9000);
    expect((await exchange(secure, LOCK)).sw, 'key missing').toBe(0x6a88);
    expect((await exchange(secure, key)).sw).toBe(0x9000);
    expect((await exchange(secure, LOCK)).sw).toBe(0x9000);
    expect((await readStatus(secure)).lifeCycle).toBe(PURSE_LIFE_CYCLE.ACTIVE);
  });

  it('checks parameters and the key check value', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    const s = await openSession(wire, 0x03);
    const params = (hex: string) => exchange(s, personalizeApdu(1, fromHex(hex)));
    expect((await params('0392 0000C350 00002710')).sw).toBe(0x9000);
    expect((await params('0392 FFFFFFFF FFFFFFFF')).sw, 'both limits at 2^32-1').toBe(0x9000);
    expect((await params('0392 00000001 00000001')).sw, 'both limits at 1').toBe(0x9000);
    expect((await params('0392 0000C350 00000000')).sw, 'max per transaction 0').toBe(0x6a80);
    expect((await params('0392 00000000 00000000')).sw, 'max balance 0').toBe(0x6a80);
    expect((await params('0392 00002710 00002711')).sw, 'per transaction above balance').toBe(0x6a80);
    expect((await params('0000 0000C350 00002710')).sw, 'currency 000').toBe(0x6a80);
    expect((await params('1392 0000C350 00002710')).sw, 'not 0d dd').toBe(0x6a80);
    expect((await params('03A2 0000C350 00002710')).sw, 'not BCD').toBe(0x6a80);
    expect((await params('0392 0000C350 000027')).sw).toBe(0x6700);
    const key = issuerPurseKey();
    expect((await exchange(s, personalizeApdu(2, concatBytes(key, keyCheckValue(key))))).sw).toBe(0x9000);
    const badKcv = keyCheckValue(key);
    badKcv[2] ^= 1;
    expect((await exchange(s, personalizeApdu(2, concatBytes(key, badKcv)))).sw).toBe(0x6a80);
    expect((await exchange(s, personalizeApdu(2, key))).sw, 'no KCV').toBe(0x6700);
    const k256 = new Uint8Array(32).fill(7);
    expect((await exchange(s, personalizeApdu(2, concatBytes(k256, keyCheckValue(k256))))).sw, 'AES-256 purse key').toBe(0x9000);
    expect((await exchange(s, personalizeApdu(3, key))).sw).toBe(0x6a86);
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.PERSONALIZE, p1: 1, p2: 1, data: key }))).sw).toBe(0x6a86);
  });

  it('personalizePurse refuses a card whose serial is not the one ordered', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    const s = await openSession(wire, 0x03);
    const e = await rejects(personalizePurse(s, { ...ISSUANCE, serial: ascii('HILT0000002') }));
    expect(e.code).toBe('BAD_INPUT');
    expect((await readStatus(s)).lifeCycle, 'nothing was written').toBe(PURSE_LIFE_CYCLE.ISSUANCE);
  });

  it('personalizePurse reports a refused step with its status word', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    const s = await openSession(wire, 0x01); // no C-DECRYPTION: PERSONALIZE is refused
    const e = await rejects(personalizePurse(s, ISSUANCE));
    expect(e.code).toBe('SW');
    expect(e.message).toMatch(/PERSONALIZE 01.*6982/);
  });

  it('derives different purse keys for different cards', async () => {
    const other = ascii('HILT0000002');
    const { card } = purseCard({ serial: other });
    const wire = new Wire(card);
    const issued = await issue(wire, ISSUANCE, other);
    expect(issued.purseKeyKcv).toBe(kcvHex(issuerPurseKey(other)));
    expect(issued.purseKeyKcv).not.toBe(kcvHex(issuerPurseKey(SERIAL)));
  });
});

describe('purse: LOAD', () => {
  it('credits against the issuer cryptogram and certifies the load', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x33);
    const req = request(20_000, 1);
    const a = await load(s, req);
    expect(a.sw).toBe(0x9000);
    expect(toHex(a.data.subarray(0, 8)).toUpperCase()).toBe(u32(1) + u32(20_000));
    expect(issuerVerifies('load', req, 1, 20_000, a.data.subarray(8))).toBe(true);
    const [record] = await readLog(s);
    expect(record).toMatchObject({ counter: 1, type: 'load', amount: 20_000, currency: JPY, terminalSequence: 1, balanceAfter: 20_000 });
    expect(toHex(record.certificate)).toBe(toHex(a.data.subarray(8)));
  });

  it('refuses a replayed cryptogram, a forged one, an altered load and another card\'s (6988), changing nothing', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x01);
    const req = request(5000, 1);
    const cryptogram = issuerCryptogram(req, 0);
    expect((await exchange(s, loadApdu(req, cryptogram))).sw).toBe(0x9000);
    const replay = request(5000, 2); // even with a fresh terminal sequence number
    expect((await exchange(s, loadApdu(replay, issuerCryptogram(replay, 0)))).sw, 'cryptogram for the old counter').toBe(0x6988);
    expect((await exchange(s, loadApdu(req, cryptogram))).sw, 'the same LOAD again').toBe(0x6988);
    const fresh = request(5000, 3);
    const good = issuerCryptogram(fresh, 1);
    expect((await exchange(s, loadApdu({ ...fresh, amount: 50_000 }, good))).sw, 'amount raised').toBe(0x6988);
    expect((await exchange(s, loadApdu({ ...fresh, terminalId: ascii('TERM0002') }, good))).sw, 'terminal changed').toBe(0x6988);
    expect((await exchange(s, loadApdu(fresh, good, ascii('000000999999')))).sw, 'reference changed').toBe(0x6988);
    expect((await exchange(s, loadApdu(fresh, new Uint8Array(16)))).sw, 'forged').toBe(0x6988);
    const otherCard = issuerCryptogram(fresh, 1, { serial: ascii('HILT0000002') });
    expect((await exchange(s, loadApdu(fresh, otherCard))).sw, "another card's").toBe(0x6988);
    const wrongKey = issuerCryptogram(fresh, 1, { key: testPurseMasterKey() });
    expect((await exchange(s, loadApdu(fresh, wrongKey))).sw, 'the master key itself').toBe(0x6988);
    expect((await readStatus(s))).toMatchObject({ counter: 1, balance: 5000 });
    expect((await exchange(s, loadApdu(fresh, good))).sw, 'the genuine one still works').toBe(0x9000);
  });

  it('enforces the maximum balance at its boundary', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x01);
    expect((await load(s, request(50_001, 1))).sw, 'max + 1').toBe(0x9403);
    expect((await load(s, request(U32_MAX, 2))).sw, '2^32 - 1').toBe(0x9403);
    expect((await load(s, request(49_999, 3))).sw).toBe(0x9000);
    expect((await load(s, request(2, 4))).sw, 'would reach max + 1').toBe(0x9403);
    expect((await load(s, request(1, 5))).sw, 'exactly the maximum').toBe(0x9000);
    expect((await load(s, request(1, 6))).sw).toBe(0x9403);
    expect(await readStatus(s)).toMatchObject({ balance: 50_000, counter: 2 });
  });

  it('loads 2^32 - 1 into a purse whose maximum is 2^32 - 1, and not one unit more', async () => {
    const { wire } = await activePurse({ ...ISSUANCE, maxBalance: U32_MAX, maxPerTransaction: U32_MAX });
    const s = await openSession(wire, 0x01);
    expect((await load(s, request(U32_MAX, 1))).sw).toBe(0x9000);
    expect((await load(s, request(1, 2))).sw, 'balance + amount overflows 32 bits').toBe(0x9403);
    expect((await exchange(s, debitApdu(request(U32_MAX, 3)))).sw, 'debit the whole balance').toBe(0x9000);
    expect(await readStatus(s)).toMatchObject({ balance: 0, counter: 2 });
  });

  it('refuses zero, bad BCD and another currency; needs C-MAC', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x01);
    expect((await load(s, request(0, 1))).sw).toBe(0x6a80);
    const usd = request(100, 1, { currency: 840 });
    expect((await load(s, usd)).sw, 'a genuine cryptogram for USD').toBe(0x9404);
    const badDate = request(100, 1);
    const data = loadApdu(badDate, issuerCryptogram(badDate, 0)).data.slice();
    data[18 + 2] = 0x13; // month 13
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.LOAD, p1: 0, p2: 0, data }))).sw).toBe(0x6a80);
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.LOAD, p1: 0, p2: 0, data: data.subarray(1) }))).sw).toBe(0x6700);
    await wire.reset();
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    const req = request(100, 1);
    expect((await exchange(wire, loadApdu(req, issuerCryptogram(req, 0)))).sw, 'no session').toBe(0x6982);
    const level0 = await openSession(wire, 0x00);
    expect((await exchange(level0, loadApdu(req, issuerCryptogram(req, 0)))).sw, 'authenticated, no C-MAC').toBe(0x6982);
  });
});

describe('purse: DEBIT', () => {
  async function funded(amount = 30_000) {
    const p = await activePurse();
    const s = await openSession(p.wire, 0x33);
    expect((await load(s, request(amount, 1))).sw).toBe(0x9000);
    return { ...p, s };
  }

  it('debits, answers counter, balance and a certificate the issuer verifies, and logs it', async () => {
    const { s } = await funded();
    const req = request(1250, 2);
    const a = await exchange(s, debitApdu(req));
    expect(a.sw).toBe(0x9000);
    expect(a.data.length).toBe(24);
    expect(toHex(a.data.subarray(0, 8)).toUpperCase()).toBe(u32(2) + u32(28_750));
    const cert = a.data.subarray(8);
    expect(issuerVerifies('debit', req, 2, 28_750, cert)).toBe(true);
    const [newest, older] = await readLog(s);
    expect(newest).toMatchObject({ counter: 2, type: 'debit', amount: 1250, currency: JPY, terminalSequence: 2, balanceAfter: 28_750 });
    expect(toHex(newest.terminalId)).toBe(toHex(TERMINAL));
    expect(toHex(newest.certificate)).toBe(toHex(cert));
    expect(older.type).toBe('load');
  });

  it('a tampered certificate fails verification with the issuer key, whatever field is changed', async () => {
    const { s } = await funded();
    const req = request(777, 2);
    const a = await exchange(s, debitApdu(req));
    const cert = a.data.subarray(8);
    expect(issuerVerifies('debit', req, 2, 29_223, cert)).toBe(true);
    expect(issuerVerifies('debit', { ...req, amount: 77 }, 2, 29_223, cert), 'amount').toBe(false);
    expect(issuerVerifies('debit', req, 3, 29_223, cert), 'counter').toBe(false);
    expect(issuerVerifies('debit', req, 2, 29_224, cert), 'balance after').toBe(false);
    expect(issuerVerifies('load', req, 2, 29_223, cert), 'type').toBe(false);
    expect(issuerVerifies('debit', { ...req, terminalSequence: 3 }, 2, 29_223, cert), 'terminal sequence').toBe(false);
    expect(issuerVerifies('debit', { ...req, terminalId: ascii('TERM0002') }, 2, 29_223, cert), 'terminal id').toBe(false);
    expect(issuerVerifies('debit', { ...req, currency: 978 }, 2, 29_223, cert), 'currency').toBe(false);
    expect(issuerVerifies('debit', { ...req, dateTime: encodePurseDateTime({ year: 2025, month: 3, day: 14, hour: 9, minute: 30, second: 16 }) }, 2, 29_223, cert), 'date-time').toBe(false);
    expect(issuerVerifies('debit', req, 2, 29_223, cert, ascii('HILT0000002')), 'serial').toBe(false);
    const flipped = cert.slice();
    flipped[15] ^= 0x80;
    expect(issuerVerifies('debit', req, 2, 29_223, flipped), 'certificate bits').toBe(false);
  });

  it('enforces amount rules at every boundary: 0, per-transaction max, max + 1, balance, balance + 1, 2^32 - 1', async () => {
    const { s } = await funded(25_000);
    const d = async (amount: number, seq: number) => (await exchange(s, debitApdu(request(amount, seq)))).sw;
    expect(await d(0, 2), 'zero').toBe(0x6a80);
    expect(await d(10_001, 2), 'max per transaction + 1').toBe(0x9402);
    expect(await d(U32_MAX, 2), '2^32 - 1 ("-1" in two\'s complement)').toBe(0x9402);
    expect(await d(0x8000_0000, 2), '2^31 ("negative" as signed)').toBe(0x9402);
    expect(await d(10_000, 2), 'exactly the max per transaction').toBe(0x9000);
    expect(await d(10_000, 3)).toBe(0x9000);
    expect(await d(5_001, 4), 'balance + 1').toBe(0x9401);
    expect(await d(5_000, 4), 'exactly the balance').toBe(0x9000);
    expect(await d(1, 5), 'empty purse').toBe(0x9401);
    expect(await readStatus(s)).toMatchObject({ balance: 0, counter: 4 });
  });

  it('refuses another currency and malformed fields', async () => {
    const { s } = await funded();
    expect((await exchange(s, debitApdu(request(100, 2, { currency: 978 })))).sw).toBe(0x9404);
    const data = debitApdu(request(100, 2)).data.slice();
    const withByte = (i: number, v: number) => {
      const b = data.slice();
      b[i] = v;
      return debitApdu(b);
    };
    expect((await exchange(s, withByte(4, 0x10))).sw, 'currency 1d dd').toBe(0x6a80);
    expect((await exchange(s, withByte(5, 0x9a))).sw, 'currency not BCD').toBe(0x6a80);
    expect((await exchange(s, withByte(24, 0x60))).sw, 'second 60').toBe(0x6a80);
    expect((await exchange(s, withByte(21, 0x00))).sw, 'day 00').toBe(0x6a80);
    expect((await exchange(s, debitApdu(data.subarray(0, 24)))).sw).toBe(0x6700);
    expect((await exchange(s, debitApdu(concatBytes(data, Uint8Array.of(0))))).sw).toBe(0x6700);
    expect((await exchange(s, debitApdu(data))).sw, 'the well-formed original').toBe(0x9000);
  });

  it('refuses a debit without a secure channel, at level 00, and with a bad C-MAC (6982), changing nothing', async () => {
    const { wire, s } = await funded();
    const before = await readStatus(s);
    await wire.reset();
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    expect((await exchange(wire, debitApdu(request(100, 2)))).sw, 'plain, no session').toBe(0x6982);
    expect(await wire.send(`84540000${'19'}${toHex(debitApdu(request(100, 2)).data)}00`), 'protected class, no session').toBe('6982');
    const level0 = await openSession(wire, 0x00);
    expect((await exchange(level0, debitApdu(request(100, 2)))).sw, 'authenticated without C-MAC').toBe(0x6982);
    const s2 = await openSession(wire, 0x01);
    wire.tamperNext = flipLastDataBit;
    expect((await exchange(s2, debitApdu(request(100, 2)))).sw, 'bad C-MAC').toBe(0x6982);
    expect((await exchange(s2, debitApdu(request(100, 3)))).sw, 'the session is gone after a bad C-MAC').toBe(0x6982);
    expect(await readStatus(wire)).toEqual(before);
  });

  it('refuses a replayed debit: the same wrapped APDU (6982) and the same request in a new session (9406)', async () => {
    const { wire, s } = await funded();
    expect((await exchange(s, debitApdu(request(1000, 2)))).sw).toBe(0x9000);
    const captured = wire.lastCommand;
    expect(captured.startsWith('84540000')).toBe(true);
    expect(await wire.send(captured), 'the captured bytes again').toBe('6982');
    const s2 = await openSession(wire, 0x01);
    expect((await exchange(s2, debitApdu(request(1000, 2)))).sw, 'same terminal, same sequence number').toBe(0x9406);
    expect((await exchange(s2, debitApdu(request(1000, 1)))).sw, 'same terminal, an older sequence number').toBe(0x9406);
    expect((await exchange(s2, debitApdu(request(1000, 2, { terminalId: ascii('TERM0002') })))).sw, 'another terminal').toBe(0x9000);
    expect((await exchange(s2, debitApdu(request(1000, 3)))).sw, 'the next sequence number').toBe(0x9000);
    expect(await readStatus(s2)).toMatchObject({ counter: 4, balance: 27_000 });
  });

  it('stops at counter 2^32 - 1 (9405) for DEBIT and LOAD', async () => {
    const { wire, store } = await activePurse();
    forgeCounter(store, U32_MAX - 1, 40_000);
    const s = await openSession(wire, 0x01);
    const a = await exchange(s, debitApdu(request(1, 1)));
    expect(a.sw).toBe(0x9000);
    expect(toHex(a.data.subarray(0, 4))).toBe('ffffffff');
    expect((await exchange(s, debitApdu(request(1, 2)))).sw).toBe(0x9405);
    expect((await load(s, request(1, 3))).sw).toBe(0x9405);
    expect(await readStatus(s)).toMatchObject({ counter: U32_MAX, balance: 39_999 });
  });
});

describe('purse: READ LOG and READ STATUS', () => {
  it('keeps the last 10 transactions, most recent first, and refuses what is not there', async () => {
    const { wire } = await activePurse();
    const s = await openSession(wire, 0x11);
    expect(await readLog(s)).toEqual([]);
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: 1, p2: 0, ne: 256 }))).sw).toBe(0x6a83);
    expect((await load(s, request(40_000, 1))).sw).toBe(0x9000);
    for (let i = 2; i <= 12; i++) expect((await exchange(s, debitApdu(request(i * 10, i)))).sw).toBe(0x9000);
    const log = await readLog(s);
    expect(log.map((r) => r.counter)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
    expect(log.length).toBe(PURSE_LOG_SIZE);
    let balance = (await readStatus(s)).balance;
    for (const r of log) {
      expect(r.balanceAfter).toBe(balance);
      balance += r.amount; // all debits
    }
    for (let k = 1; k <= 10; k++) {
      const a = await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: k, p2: 0, ne: 256 }));
      expect(a.sw).toBe(0x9000);
      expect(decodeLogRecord(a.data)?.counter).toBe(13 - k);
    }
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: 11, p2: 0, ne: 256 }))).sw).toBe(0x6a86);
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: 0, p2: 1, ne: 256 }))).sw).toBe(0x6a86);
    // the whole log to a short Le comes as 256 bytes + 61 xx, then GET RESPONSE (card-os.md)
    await wire.reset();
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    const first = await wire.send('80B2000000');
    expect(first.length).toBe(2 * 256 + 4);
    expect(first.endsWith(`61${(10 * LOG_RECORD_LENGTH - 256).toString(16).toUpperCase()}`)).toBe(true);
  });

  it('answers READ STATUS in every state, with and without a session', async () => {
    const { card } = purseCard();
    const wire = new Wire(card);
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    expect(await readStatus(wire)).toMatchObject({ lifeCycle: PURSE_LIFE_CYCLE.ISSUANCE, currency: null, maxBalance: 0, counter: 0 });
    await issue(wire);
    expect(await wire.send(SELECT_PURSE)).toBe('9000');
    expect(await readStatus(wire)).toMatchObject({ lifeCycle: PURSE_LIFE_CYCLE.ACTIVE, currency: JPY });
    const s = await openSession(wire, 0x33);
    expect((await readStatus(s)).serial).toEqual(SERIAL);
  });

  it('reports altered records as a memory failure (6581)', async () => {
    const { wire, store } = await activePurse();
    const s = await openSession(wire, 0x01);
    expect((await load(s, request(1000, 1))).sw).toBe(0x9000);
    const logKey = `${PURSE_SCOPE}log/01`;
    const good = store.get(logKey) as Uint8Array;
    const shifted = good.slice();
    shifted[3] = 9; // claims to be transaction 9
    store.put(logKey, shifted);
    expect((await exchange(s, new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_LOG, p1: 1, p2: 0, ne: 256 }))).sw).toBe(0x6581);
    expect((await exchange(s, debitApdu(request(1, 2)))).sw, 'the replay check reads the log').toBe(0x6581);
    store.put(logKey, good);
    store.put(`${PURSE_SCOPE}state`, fromHex('0F0000000100'));
    expect((await exchange(s, readStatusLe())).sw).toBe(0x6581);
    store.put(`${PURSE_SCOPE}state`, fromHex('AA0000000100000000'));
    expect((await exchange(s, readStatusLe())).sw, 'unknown life cycle').toBe(0x6581);
  });
});

function readStatusLe(): CommandApdu {
  return new CommandApdu({ cla: 0x80, ins: PURSE_INS.READ_STATUS, p1: 0, p2: 0, ne: 256 });
}

describe('applets-spec/emoney-purse.md examples', () => {
  const blocks = specBlocks('applets-spec/emoney-purse.md');

  it('has example blocks', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
  });

  blocks.forEach((steps, i) => {
    it(`block ${i + 1}`, async () => {
      const { card } = purseCard();
      await replay(card, steps);
    });
  });
});
