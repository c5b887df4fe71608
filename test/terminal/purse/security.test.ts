/**
 * The purse's security cases, each refused with the status word or error the spec and the terminal
 * policy name, each leaving the card's value where it was, and each logged by the terminal (a
 * journal row's status, an anomaly, or a log line):
 *
 *   debit without a secure channel, or with a bad C-MAC            6982
 *   amount above the balance / the card's maximum per transaction  9401 / 9402
 *   above the terminal's limits (per transaction, per day)         POLICY limit-…
 *   amount zero, negative, not an integer, 2^32 or more            POLICY amount (the card: 6A80, 9402)
 *   a replayed debit (same terminal sequence number)                9406 (byte-for-byte replay: 6982)
 *   a card on the negative card file                                POLICY negative-file, before any value command
 *   a card image restored to an older state                        CARD_ROLLBACK, anomaly rollback / repeat
 *   a tampered certificate                                         fails verification with the issuer's key
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../../../emulator/store/file-store.js';
import { openScp03 } from '../../../src/reader/scp03.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import { diversifyStaticKeys, kddFromSerial, testStaticKeys } from '../../../src/crypto/diversify.js';
import { encodePurseDateTime, type PurseCertificateFields } from '../../../src/crypto/purse-certificate.js';
import { HiltError } from '../../../src/util/errors.js';
import { toHex } from '../../../src/util/bytes.js';
import {
  CardRefusedError,
  CardRollbackError,
  PurseRefusedError,
  debitCommand,
  purchase,
  readPurseBalance,
  selectPurse,
  terminalIdBytes,
  type PurseTerminal,
} from '../../../src/terminal/purse/index.js';
import { certificateFields, issueCard, issuerVerifies, openTerminal, SERIAL, tempDir, Wire, type TestTerminal } from './helpers.js';
import type { BureauCard } from '../../../emulator/bureau.js';

let term: TestTerminal;
beforeEach(async () => {
  term = await openTerminal();
});
afterEach(() => term.close());

const WHEN = encodePurseDateTime({ year: 2025, month: 3, day: 14, hour: 9, minute: 30, second: 15 });
const TID = terminalIdBytes('TERM0001');

async function balanceOf(card: BureauCard): Promise<{ balance: number; counter: number }> {
  const { status } = await readPurseBalance(new Wire(card));
  return { balance: status.balance, counter: status.counter };
}

async function sw(channel: { transmit(b: Uint8Array): Promise<Uint8Array> }, cmd: CommandApdu): Promise<string> {
  return ResponseApdu.decode(await channel.transmit(cmd.encode())).swHex;
}

/** An attacker's (or a test bench's) own SCP03 session with the card's real keys, over `wire`. */
async function rawSession(wire: Wire) {
  expect(await sw(wire, selectPurse())).toBe('9000');
  return openScp03(wire, { keys: diversifyStaticKeys(testStaticKeys('emoney'), kddFromSerial(SERIAL)), securityLevel: 0x33 });
}

const debit = (amount: number, seq: number) => debitCommand({ amount, currency: 392, terminalId: TID, terminalSequence: seq, dateTime: WHEN });

async function expectRejects<E extends HiltError>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'the purchase must be refused').toBeInstanceOf(type);
  return e as E;
}

function terminalFor(card: BureauCard, t: TestTerminal = term, wire = new Wire(card)): PurseTerminal & { channel: Wire } {
  return { ...t, channel: wire };
}

describe('value commands without a valid secure channel', () => {
  it('a DEBIT in the clear, with no session: 6982, nothing moves', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    expect(await sw(wire, selectPurse())).toBe('9000');
    expect(await sw(wire, debit(100, 1))).toBe('6982');
    expect(await sw(wire, debit(100, 1).with({ cla: 0x84 }))).toBe('6982'); // claims protection it does not have
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });

  it('a DEBIT with a bad C-MAC (an amount changed on the wire): 6982, the terminal journals the refusal', async () => {
    const card = await issueCard();
    const t = terminalFor(card);
    t.channel.tamper = (bytes) => {
      if (bytes[1] !== 0x54) return bytes;
      const cmd = CommandApdu.decode(bytes);
      const data = cmd.data.slice();
      data[0] ^= 0x01; // any bit of the protected data: the C-MAC no longer matches
      return cmd.with({ data }).encode();
    };
    const e = await expectRejects(purchase(t, 1000), CardRefusedError);
    expect(e.swHex).toBe('6982');
    expect(term.journal.get(e.journalId)).toMatchObject({ status: 'failed', error: expect.stringMatching(/^card answered 6982/) });
    expect(term.events.at(-1)).toMatchObject({ kind: 'card-refused', code: '6982' });
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });

  it('a DEBIT stripped of its protection inside a session (sent in the clear): 6982, journaled', async () => {
    const card = await issueCard();
    const t = terminalFor(card);
    t.channel.tamper = (bytes) => (bytes[1] === 0x54 ? debit(1000, 1).encode() : bytes);
    const e = await expectRejects(purchase(t, 1000), CardRefusedError);
    expect(e.swHex).toBe('6982');
    expect(term.journal.get(e.journalId)?.status).toBe('failed');
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });
});

describe('amounts', () => {
  it('above the balance: the card answers 9401, the row fails', async () => {
    const card = await issueCard({ initialLoad: 900 });
    const e = await expectRejects(purchase(terminalFor(card), 901), CardRefusedError);
    expect(e.swHex).toBe('9401');
    expect(term.journal.get(e.journalId)).toMatchObject({ status: 'failed', error: expect.stringContaining('9401 amount above the balance') });
    expect(await balanceOf(card)).toEqual({ balance: 900, counter: 1 });
  });

  it("above the card's own maximum per transaction: 9402", async () => {
    const card = await issueCard({ maxPerTransaction: 1000 });
    const e = await expectRejects(purchase(terminalFor(card), 1001), CardRefusedError);
    expect(e.swHex).toBe('9402');
    expect(term.journal.get(e.journalId)?.status).toBe('failed');
  });

  it("above the terminal's maximum per transaction: refused before DEBIT, declined row", async () => {
    const card = await issueCard();
    const t = terminalFor(card);
    const e = await expectRejects(purchase(t, 20_001), PurseRefusedError);
    expect(e).toMatchObject({ code: 'POLICY', reason: 'limit-per-transaction' });
    expect(t.channel.instructions).not.toContain('54');
    const [row] = term.journal.query({ status: 'failed' });
    expect(row).toMatchObject({ amount: 20_001, error: expect.stringContaining('limit-per-transaction') });
    expect(term.journal.outbox().some((x) => x.record.kind === 'transaction' && x.record.status === 'failed')).toBe(true);
  });

  it('above the per-card daily maximum: the day of completed purchases counts, the next day starts afresh', async () => {
    const card = await issueCard();
    const t = terminalFor(card);
    await purchase(t, 20_000);
    await purchase(t, 15_000);
    const e = await expectRejects(purchase(t, 5001), PurseRefusedError);
    expect(e.reason).toBe('limit-per-card-day');
    expect(t.channel.instructions.filter((i) => i === '54')).toHaveLength(2);
    await purchase(t, 5000); // exactly the 40,000 of the day
    term.clock.advance(24 * 3_600_000);
    await purchase(t, 5001);
    expect(await balanceOf(card)).toEqual({ balance: 50_000 - 45_001, counter: 5 });
  });

  it('above the per-reader daily maximum, over every card', async () => {
    const t2 = await openTerminal({ limits: { perTransaction: 20_000, perCardPerDay: 40_000, perReaderPerDay: 30_000 } });
    try {
      const a = await issueCard();
      const b = await issueCard({ serial: Uint8Array.of(1, 2, 3, 4) });
      await purchase(terminalFor(a, t2), 20_000);
      const e = await expectRejects(purchase(terminalFor(b, t2), 10_001), PurseRefusedError);
      expect(e.reason).toBe('limit-per-reader-day');
      await purchase(terminalFor(b, t2), 10_000);
    } finally {
      t2.close();
    }
  });

  it('zero, negative, fractional and 2^32 or more: refused by the terminal with no APDU, logged', async () => {
    const card = await issueCard();
    for (const amount of [0, -1, -50_000, 1.5, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER + 2, NaN]) {
      const t = terminalFor(card);
      const e = await expectRejects(purchase(t, amount), PurseRefusedError);
      expect(e, String(amount)).toMatchObject({ code: 'POLICY', reason: 'amount' });
      expect(t.channel.count, String(amount)).toBe(0);
      expect(term.events.at(-1)).toMatchObject({ kind: 'refused', code: 'amount' });
    }
    expect(term.journal.query()).toEqual([]);
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });

  it('what the card does with them: amount 0 answers 6A80, FFFFFFFF (no sign on the card) answers 9402', async () => {
    const card = await issueCard();
    const s = await rawSession(new Wire(card));
    expect(await sw(s, debit(0, 1))).toBe('6A80');
    expect(await sw(s, debit(0xffff_ffff, 1))).toBe('9402');
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });

  it('a card in another currency: refused by the terminal, declined row', async () => {
    const card = await issueCard({ currency: 978 });
    const e = await expectRejects(purchase(terminalFor(card), 100), PurseRefusedError);
    expect(e.reason).toBe('currency');
    expect(term.journal.query({ status: 'failed' })).toHaveLength(1);
  });
});

describe('replays', () => {
  it('the same terminal sequence number again: 9406; the same wrapped APDU byte for byte: 6982', async () => {
    const card = await issueCard();
    const wire = new Wire(card);
    const s = await rawSession(wire);
    expect(await sw(s, debit(100, 7))).toBe('9000');
    const wrapped = wire.log.at(-1)!.command;
    expect(await sw(s, debit(100, 7))).toBe('9406');
    expect(await sw(s, debit(100, 6))).toBe('9406');
    expect(await sw(wire, CommandApdu.decode(Buffer.from(wrapped, 'hex')))).toBe('6982');
    expect(await balanceOf(card)).toEqual({ balance: 49_900, counter: 2 });
  });

  it('a terminal whose journal was reset (its sequence starts over): the card answers 9406, the row fails', async () => {
    const card = await issueCard();
    await purchase(terminalFor(card), 100);
    const reset = await openTerminal(); // same terminal id, a new journal: reader seq 1 again
    try {
      const e = await expectRejects(purchase(terminalFor(card, reset), 100), CardRefusedError);
      expect(e.swHex).toBe('9406');
      expect(e.readerSeq).toBe(1);
      expect(reset.journal.get(e.journalId)).toMatchObject({ status: 'failed', error: expect.stringContaining('9406') });
    } finally {
      reset.close();
    }
    expect(await balanceOf(card)).toEqual({ balance: 49_900, counter: 2 });
  });
});

describe('negative card file', () => {
  it('a listed card is refused after READ STATUS, before any value command; anomaly blocked-card', async () => {
    const card = await issueCard();
    term.journal.applyNegativeDelta({ fromVersion: 0, toVersion: 3, add: [{ cardSerial: SERIAL, reason: 'reported stolen' }], remove: [] });
    const t = terminalFor(card);
    const e = await expectRejects(purchase(t, 100), PurseRefusedError);
    expect(e).toMatchObject({ code: 'POLICY', reason: 'negative-file' });
    // SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, READ STATUS: nothing that moves value
    expect(t.channel.instructions).toEqual(['A4', '50', '82', 'B4']);
    expect(term.journal.anomalies()).toMatchObject([{ kind: 'blocked-card', cardSerial: toHex(SERIAL).toUpperCase(), details: { reason: 'reported stolen' } }]);
    expect(term.journal.query()).toEqual([]);
    expect(await balanceOf(card)).toEqual({ balance: 50_000, counter: 1 });
  });
});

describe('card image restored to an older state', () => {
  async function imageCard(dir: string): Promise<BureauCard> {
    return issueCard({ image: join(dir, 'card.img') });
  }

  function release(card: BureauCard): void {
    if (card.store instanceof FileStore) card.store.close();
  }

  it('restored to an older state: rollback detected, anomaly, refused before any DEBIT', async () => {
    const tmp = tempDir();
    const elsewhere = await openTerminal({ terminalId: 'TERM0002', readerId: 'R-02' });
    try {
      const card = await imageCard(tmp.dir);
      copyFileSync(join(tmp.dir, 'card.img'), join(tmp.dir, 'saved.img'));
      await purchase(terminalFor(card, elsewhere), 700); // counter 1 → 2, at another terminal
      await purchase(terminalFor(card), 1000); // 2 → 3
      await purchase(terminalFor(card), 2000); // 3 → 4
      release(card);
      copyFileSync(join(tmp.dir, 'saved.img'), join(tmp.dir, 'card.img'));
      const restored = await imageCard(tmp.dir);
      expect(restored.issued).toBe(false);
      expect(restored.status).toMatchObject({ counter: 1, balance: 50_000 });
      const t = terminalFor(restored);
      const e = await expectRejects(purchase(t, 500), CardRollbackError);
      expect(e).toMatchObject({ code: 'CARD_ROLLBACK', kind: 'rollback', counter: 1, lastCounter: 4 });
      expect(t.channel.instructions).not.toContain('54');
      expect(term.journal.anomalies()[0]).toMatchObject({ kind: 'rollback', counter: 1, lastCounter: 4 });
      expect(term.journal.outbox().some((x) => x.record.kind === 'anomaly' && x.record.anomaly === 'rollback')).toBe(true);
      expect(term.events.at(-1)).toMatchObject({ kind: 'anomaly', code: 'CARD_ROLLBACK' });
      // refused again next time: the terminal never lowers what it saw
      await expectRejects(purchase(terminalFor(restored), 500), CardRollbackError);
      expect(await balanceOf(restored)).toEqual({ balance: 50_000, counter: 1 });
      release(restored);
    } finally {
      elsewhere.close();
      tmp.remove();
    }
  });

  it('restored to just before the last purchase: detected as a repeat of that debit', async () => {
    const tmp = tempDir();
    try {
      const card = await imageCard(tmp.dir);
      await purchase(terminalFor(card), 1000);
      copyFileSync(join(tmp.dir, 'card.img'), join(tmp.dir, 'saved.img'));
      const { receipt } = await purchase(terminalFor(card), 2000);
      release(card);
      copyFileSync(join(tmp.dir, 'saved.img'), join(tmp.dir, 'card.img'));
      const restored = await imageCard(tmp.dir);
      const e = await expectRejects(purchase(terminalFor(restored), 2000), CardRollbackError);
      expect(e).toMatchObject({ kind: 'repeat', counter: 2, lastCounter: 3 });
      expect(term.journal.anomalies()[0]).toMatchObject({ kind: 'repeat', transactionId: receipt.journalId });
      release(restored);
    } finally {
      tmp.remove();
    }
  });

  it('a card restored while a purchase of it is pending: rollback, the row stays pending', async () => {
    const tmp = tempDir();
    try {
      const card = await imageCard(tmp.dir);
      await purchase(terminalFor(card), 1000);
      copyFileSync(join(tmp.dir, 'card.img'), join(tmp.dir, 'saved.img'));
      await purchase(terminalFor(card), 1000);
      const t = terminalFor(card);
      t.channel.cut = { at: 5, mode: 'answer-lost' }; // the DEBIT of the third purchase
      await expect(purchase(t, 1000)).rejects.toMatchObject({ code: 'CARD_REMOVED' });
      release(card);
      copyFileSync(join(tmp.dir, 'saved.img'), join(tmp.dir, 'card.img'));
      const restored = await imageCard(tmp.dir);
      const e = await expectRejects(purchase(terminalFor(restored), 1000), CardRollbackError);
      expect(e).toMatchObject({ kind: 'rollback', counter: 2, lastCounter: 3 });
      expect(term.journal.pending()).toHaveLength(1);
      release(restored);
      rmSync(join(tmp.dir, 'saved.img'));
    } finally {
      tmp.remove();
    }
  });
});

describe('certificates', () => {
  it('the certificate verifies with the issuer key; any altered field or bit does not', async () => {
    const card = await issueCard();
    const { receipt } = await purchase(terminalFor(card), 1250);
    const row = term.journal.get(receipt.journalId)!;
    const fields = certificateFields(row, term.config);
    expect(issuerVerifies(fields, receipt.certificate)).toBe(true);
    const tampered: [string, Partial<PurseCertificateFields>][] = [
      ['serial', { serial: Uint8Array.of(...SERIAL.subarray(0, 7), 2) }],
      ['counter', { counter: fields.counter + 1 }],
      ['type', { type: 'load' }],
      ['amount', { amount: fields.amount - 1 }],
      ['currency', { currency: 978 }],
      ['terminal id', { terminalId: terminalIdBytes('TERM0002') }],
      ['terminal sequence', { terminalSequence: fields.terminalSequence + 1 }],
      ['date-time', { dateTime: encodePurseDateTime({ year: 2025, month: 3, day: 14, hour: 9, minute: 30, second: 16 }) }],
      ['balance after', { balanceAfter: fields.balanceAfter + 1 }],
    ];
    for (const [name, change] of tampered) expect(issuerVerifies({ ...fields, ...change }, receipt.certificate), name).toBe(false);
    for (let bit = 0; bit < 128; bit += 9) {
      const c = receipt.certificate.slice();
      c[bit >> 3] ^= 1 << (bit & 7);
      expect(issuerVerifies(fields, c), `certificate bit ${bit}`).toBe(false);
    }
    // another card's purse key does not verify it either
    expect(issuerVerifies({ ...fields, serial: Uint8Array.of(1, 2, 3, 4) }, receipt.certificate)).toBe(false);
  });
});

describe('keys', () => {
  it("a card whose e-money domain does not hold this provider's keys fails authentication: nothing journaled", async () => {
    const other = testStaticKeys('emoney');
    for (const k of [other.enc, other.mac, other.dek]) k[0] ^= 1;
    const card = await issueCard({ masterKeys: other });
    const t = terminalFor(card);
    await expect(purchase(t, 100)).rejects.toMatchObject({ code: 'AUTH_FAILED', reason: 'card-cryptogram' });
    expect(t.channel.instructions).toEqual(['A4', '50']);
    expect(term.journal.query()).toEqual([]);
  });
});
