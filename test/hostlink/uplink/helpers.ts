/**
 * Shared by the uplink tests: temp folders, a terminal journal filled with purchases whose purse
 * records and certificates are what a real card would have produced (TEST purse master key), and an
 * Uplink pointed at a host on loopback with short bounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../../../src/terminal/journal/index.js';
import { Uplink, field41Bytes, localDateTime, type UplinkConfigInput } from '../../../src/hostlink/uplink/index.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { encodePurseDateTime, purseCardKey, purseCertificate, testPurseMasterKey } from '../../../src/crypto/purse-certificate.js';
import { fromHex } from '../../../src/util/bytes.js';

export const TERMINAL = 'TUP00001';
export const READER = 'RDR-01';
export const PROVIDER = 'emoney';
/** Local time of the test terminal: Japan. */
export const OFFSET_MINUTES = 540;
/** What each test card holds before its first purchase here (the issuer's demo maximum). */
export const START_BALANCE = 100_000;

export function tempDir(prefix = 'hilt-uplink-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function openJournal(path: string, terminalId = TERMINAL, readerId = READER): Journal {
  return Journal.open(path, { identity: { terminalId, readerId }, dayOffsetMinutes: OFFSET_MINUTES });
}

/** Card serial i: 8 bytes, "C4" then i. */
export function cardSerial(i: number): string {
  return `C4${i.toString(16).toUpperCase().padStart(14, '0')}`;
}

/** A certificate as the card computes it for this transaction. */
export function certificateFor(f: { serial: string; counter: number; type: 'debit' | 'load'; amount: number; terminalId: string; readerSeq: number; createdAt: number; balanceAfter: number }): Uint8Array {
  const serial = fromHex(f.serial);
  return purseCertificate(purseCardKey(testPurseMasterKey(), serial), {
    serial,
    counter: f.counter,
    type: f.type,
    amount: f.amount,
    currency: 392,
    terminalId: field41Bytes(f.terminalId),
    terminalSequence: f.readerSeq,
    dateTime: encodePurseDateTime(localDateTime(f.createdAt, OFFSET_MINUTES)),
    balanceAfter: f.balanceAfter,
  });
}

export interface FillOptions {
  cards?: number;
  /** Every n-th transaction fails on the card instead (0: none). */
  failEvery?: number;
  terminalId?: string;
  seed?: number;
}

/**
 * Writes `n` final purchase rows through the Journal API as the purse flow would (begin, then
 * complete with the card's certificate, or fail). Returns the reader sequences, in order.
 */
export function fillPurchases(journal: Journal, n: number, o: FillOptions = {}): number[] {
  const cards = o.cards ?? 16;
  const terminalId = o.terminalId ?? TERMINAL;
  const seqs: number[] = [];
  let state = (o.seed ?? 7) >>> 0 || 1;
  const random = (k: number): number => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % k;
  };
  for (let i = 0; i < n; i++) {
    const card = cardSerial(random(cards));
    const history = journal.cardHistory(card);
    const counter = history?.lastCounter ?? 0;
    const balance = journal.query({ cardSerial: card, status: ['complete', 'recovered'], limit: 1 })[0]?.balanceAfter ?? START_BALANCE;
    const amount = 10 + random(90);
    const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'purchase', cardSerial: card, cardCounter: counter, amount, currency: 'JPY' });
    seqs.push(readerSeq);
    if (o.failEvery && (i + 1) % o.failEvery === 0) {
      journal.fail(id, { error: 'card answered 6985', cardCounter: counter });
      continue;
    }
    const row = journal.get(id)!;
    const balanceAfter = balance - amount;
    const certificate = certificateFor({ serial: card, counter: counter + 1, type: 'debit', amount, terminalId, readerSeq, createdAt: row.createdAt, balanceAfter });
    journal.complete(id, { cardCounter: counter + 1, certificate, balanceAfter });
  }
  return seqs;
}

/** Short bounds for loopback tests. */
export function testConfig(port: number, overrides: Partial<UplinkConfigInput> = {}): UplinkConfigInput {
  return {
    terminalId: TERMINAL,
    readerId: READER,
    host: '127.0.0.1',
    port,
    macKey: testTerminalMacKey(overrides.terminalId ?? TERMINAL),
    requestTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    backoff: { baseMs: 10, maxMs: 200 },
    ...overrides,
  };
}

export function openUplink(journal: Journal, port: number, o: { enrolmentCode?: string; config?: Partial<UplinkConfigInput> } = {}): Uplink {
  return Uplink.open({ config: testConfig(port, o.config), journal, enrolmentCode: o.enrolmentCode });
}
