/**
 * Shared by the purse terminal tests: bureau-issued cards (in memory, on image files, or on a
 * tearing medium), a terminal (TEST key store domain for 'emoney', a journal in a temp folder, a
 * hand-moved clock, captured log lines), and a wire that counts APDUs and can lose a request or an
 * answer at a chosen APDU like a card pulled from the reader.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issuePurseCard, buildPurseCard, type BureauCard, type PurseCardOrder } from '../../../emulator/bureau.js';
import { InProcessChannel } from '../../../emulator/in-process.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import { openScp03 } from '../../../src/reader/scp03.js';
import { testStaticKeys } from '../../../src/crypto/diversify.js';
import { purseCardKey, testPurseMasterKey, verifyPurseCertificate, type PurseCertificateFields } from '../../../src/crypto/purse-certificate.js';
import { CardRemovedError } from '../../../src/util/errors.js';
import { fromHex, toHex } from '../../../src/util/bytes.js';
import { KeyStore, type ProviderDomain } from '../../../src/terminal/keystore.js';
import type { Journal, JournalRow } from '../../../src/terminal/journal/index.js';
import {
  openPurseJournal,
  purseDateTime,
  purseTerminalConfig,
  terminalIdBytes,
  type PurseEvent,
  type PurseLimits,
  type PurseTerminal,
  type PurseTerminalConfig,
} from '../../../src/terminal/purse/index.js';

export const SERIAL = fromHex('48494C5400000001');
export const JPY = 392;
/** 2025-03-14 00:30:15 UTC = 09:30:15 in Japan (offset 540). */
export const START = Date.UTC(2025, 2, 14, 0, 30, 15);
export const OFFSET = 540;

export function cardOrder(over: Partial<PurseCardOrder> = {}): PurseCardOrder {
  return {
    serial: SERIAL,
    provider: 'emoney',
    masterKeys: testStaticKeys('emoney'),
    issuerMaster: testPurseMasterKey(),
    currency: JPY,
    maxBalance: 100_000,
    maxPerTransaction: 30_000,
    initialLoad: 50_000,
    clock: () => START,
    ...over,
  };
}

export function issueCard(over: Partial<PurseCardOrder> = {}): Promise<BureauCard> {
  return issuePurseCard(cardOrder(over), openScp03);
}

export { buildPurseCard };

export type CutMode = 'request-lost' | 'answer-lost';

/**
 * The reader: counts and records every APDU that crosses it; `cut` takes the card out at APDU k,
 * either before it reaches the card (request lost) or after the card processed it (answer lost).
 */
export class Wire implements CardChannel {
  readonly raw: InProcessChannel;
  readonly log: { command: string; response: string }[] = [];
  count = 0;
  cut: { at: number; mode: CutMode } | null = null;
  tamper: ((command: Uint8Array, index: number) => Uint8Array) | null = null;

  constructor(card: BureauCard | { os: ConstructorParameters<typeof InProcessChannel>[0] }) {
    this.raw = new InProcessChannel(card.os);
  }

  async transmit(command: Uint8Array): Promise<Uint8Array> {
    this.count++;
    const k = this.count;
    const sent = this.tamper ? this.tamper(command, k) : command;
    if (this.cut?.at === k && this.cut.mode === 'request-lost') {
      this.raw.removeCard();
      throw new CardRemovedError(`card pulled before APDU ${k}`);
    }
    const answer = await this.raw.transmit(sent);
    this.log.push({ command: toHex(sent).toUpperCase(), response: toHex(answer).toUpperCase() });
    if (this.cut?.at === k && this.cut.mode === 'answer-lost') {
      this.raw.removeCard();
      throw new CardRemovedError(`card pulled after APDU ${k}, its answer lost`);
    }
    return answer;
  }

  reset(cold?: boolean): Promise<Uint8Array> {
    return this.raw.reset(cold);
  }

  close(): Promise<void> {
    return this.raw.close();
  }

  /** Puts the card back (powered up afresh) and forgets the cut. */
  reinsert(): void {
    this.cut = null;
    this.raw.insertCard();
  }

  /** INS bytes of the commands sent, upper-case hex, in order (the CLA tells wrapped ones). */
  get instructions(): string[] {
    return this.log.map((x) => x.command.slice(2, 4));
  }
}

export interface TestTerminal extends Omit<PurseTerminal, 'channel'> {
  keys: KeyStore;
  events: PurseEvent[];
  clock: { now: () => number; advance(ms: number): void; set(ms: number): void };
  dir: string;
  journalPath: string;
  close(): void;
}

export interface TerminalOptions {
  terminalId?: string;
  readerId?: string;
  limits?: Partial<PurseLimits>;
  loadLimits?: Partial<PurseLimits>;
  currency?: string;
  /** A folder to put the journal in (default: a fresh temp folder, removed by close()). */
  dir?: string;
  journalFile?: string;
}

export async function openTerminal(options: TerminalOptions = {}): Promise<TestTerminal> {
  const own = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'hilt-purse-'));
  let t = START;
  const clock = { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
  const events: PurseEvent[] = [];
  const config: PurseTerminalConfig = purseTerminalConfig({
    terminalId: options.terminalId ?? 'TERM0001',
    readerId: options.readerId ?? 'R-01',
    currency: options.currency ?? 'JPY',
    limits: options.limits ?? { perTransaction: 20_000, perCardPerDay: 40_000, perReaderPerDay: 1_000_000 },
    loadLimits: options.loadLimits,
    utcOffsetMinutes: OFFSET,
    clock: () => clock.now(),
    log: (e) => events.push(e),
  });
  const keys = await KeyStore.open({ sources: [{ kind: 'test', providers: ['emoney'] }], warn: () => undefined });
  const domain: ProviderDomain = keys.domain('emoney');
  const journalPath = join(dir, options.journalFile ?? 'terminal.db');
  const journal: Journal = openPurseJournal(journalPath, config);
  return {
    domain,
    journal,
    config,
    keys,
    events,
    clock,
    dir,
    journalPath,
    close: () => {
      journal.close();
      keys.close();
      if (own) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function tempDir(prefix = 'hilt-purse-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The certificate fields of a journaled purchase, as the issuer rebuilds them from the uplinked record. */
export function certificateFields(row: JournalRow, config: PurseTerminalConfig, serial: Uint8Array = SERIAL): PurseCertificateFields {
  if (row.counterAfter === null || row.balanceAfter === null) throw new Error(`row ${row.id} has no counter after / balance after`);
  return {
    serial,
    counter: row.counterAfter,
    type: 'debit',
    amount: row.amount,
    currency: JPY,
    terminalId: terminalIdBytes(row.terminalId),
    terminalSequence: row.readerSeq,
    dateTime: purseDateTime(row.createdAt, config.utcOffsetMinutes),
    balanceAfter: row.balanceAfter,
  };
}

/** The issuer's check of a certificate, with its own copy of the card's purse key. */
export function issuerVerifies(fields: PurseCertificateFields, certificate: Uint8Array): boolean {
  return verifyPurseCertificate(purseCardKey(testPurseMasterKey(), fields.serial), fields, certificate);
}
