/**
 * Shared by the host tests: hosts on ephemeral loopback ports in a temporary folder, terminals that
 * talk to them over IsoChannel exactly as the uplink does (TEST keys), purse records with real
 * certificates, the admin API over HTTP, and a dump of every row of the hosts' databases (to prove
 * that bad input stored nothing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type BetterSqlite3 from 'better-sqlite3';
import { startHosts, HOST_FILES, type RunningHosts, type StartHostsOptions } from '../../src/hosts/index.js';
import { IsoChannel, connectIsoChannel } from '../../src/hostlink/channel.js';
import type { IsoMessage } from '../../src/hostlink/iso8583/message.js';
import { deriveTerminalKey } from '../../src/hostlink/iso8583/mac.js';
import { testHostMacMaster } from '../../src/hostlink/test-keys.js';
import {
  RC,
  adviceRequest,
  parseNetworkResponse,
  type AdviceInput,
  type PurseRecord,
  type RequestHeader,
  type TransactionKind,
} from '../../src/hostlink/messages.js';
import { challengeOf, enrolmentRequest, generateReaderKeyPair, signOnChallengeRequest, signOnProofRequest } from '../../src/hostlink/reader-auth.js';
import { encodePurseDateTime, purseCardKey, purseCertificate, testPurseMasterKey, type PurseDateTime } from '../../src/crypto/purse-certificate.js';
import { fromHex } from '../../src/util/bytes.js';

type Db = BetterSqlite3.Database;
const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string, o?: BetterSqlite3.Options) => Db;

export interface TestHosts extends RunningHosts {
  /** Closes the hosts (if still open) and removes the folder. */
  cleanup(): Promise<void>;
}

/** Hosts on ephemeral ports in a fresh temporary folder (or `dir`). */
export async function startTestHosts(o: Partial<StartHostsOptions> = {}): Promise<TestHosts> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'hilt-hosts-'));
  const hosts = await startHosts({ ...o, dir });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await hosts.close();
  };
  return {
    ...hosts,
    close,
    cleanup: async () => {
      await close();
      if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Admin API

export interface AdminReply<T = unknown> {
  status: number;
  body: T;
}

export async function adminGet<T = Record<string, unknown>>(h: { adminUrl: string }, path: string): Promise<AdminReply<T>> {
  const r = await fetch(h.adminUrl + path);
  return { status: r.status, body: (await r.json()) as T };
}

export async function adminPost<T = Record<string, unknown>>(h: { adminUrl: string }, path: string, body: unknown): Promise<AdminReply<T>> {
  const r = await fetch(h.adminUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as T };
}

// ---------------------------------------------------------------------------------------------
// Terminals

/** The MAC key a terminal holds for a key version (TEST host master). */
export function terminalKey(terminalId: string, version: number): Uint8Array {
  return deriveTerminalKey(testHostMacMaster(), 'mac', terminalId, version);
}

export const AT = new Date(Date.UTC(2025, 2, 14, 9, 30, 15));
export const LOCAL: PurseDateTime = { year: 2025, month: 3, day: 14, hour: 18, minute: 30, second: 15 };
export const JPY = '392';

/** A terminal as the uplink would be: one channel, its own key version(s), a STAN counter. */
export class TestTerminal {
  readonly terminalId: string;
  readonly readerId: string;
  readonly ch: IsoChannel;
  keyVersion = 1;
  /** Keys by version (a key change adds one). */
  readonly keys = new Map<number, Uint8Array>();
  privateKey: Uint8Array | null = null;
  publicKey: Uint8Array | null = null;
  private managementStan = 1_000_000;

  constructor(ch: IsoChannel, terminalId: string, readerId: string) {
    this.ch = ch;
    this.terminalId = terminalId;
    this.readerId = readerId;
  }

  static async connect(h: { host: string; gatewayPort: number }, terminalId: string, readerId: string, keys?: Map<number, Uint8Array>): Promise<TestTerminal> {
    let self: TestTerminal | null = null;
    const ch = await connectIsoChannel({
      host: h.host,
      port: h.gatewayPort,
      requestTimeoutMs: 5_000,
      macKey: (m) => {
        const v = m.keyVersion();
        if (v === undefined || self === null) return undefined;
        return self.keys.get(v) ?? terminalKey(terminalId, v);
      },
    });
    self = new TestTerminal(ch, terminalId, readerId);
    if (keys !== undefined) for (const [v, k] of keys) self.keys.set(v, k);
    return self;
  }

  header(stan: number): RequestHeader {
    return { terminalId: this.terminalId, readerId: this.readerId, stan, at: AT, keyVersion: this.keyVersion };
  }

  nextStan(): number {
    return this.managementStan++;
  }

  request(m: IsoMessage): Promise<IsoMessage> {
    return this.ch.request(m);
  }

  async close(): Promise<void> {
    await this.ch.close();
  }

  /** Enrolment with a code from the admin API; returns the 0810's response code. */
  async enrol(code: string): Promise<string> {
    const kp = generateReaderKeyPair();
    this.privateKey = kp.privateKey;
    this.publicKey = kp.publicKey;
    const res = await this.request(enrolmentRequest(this.header(this.nextStan()), { code, ...kp }));
    return res.responseCode() as string;
  }

  /** The two-step sign-on; returns the proof's response code (or the challenge's refusal). */
  async signOn(): Promise<string> {
    const c = parseNetworkResponse(await this.request(signOnChallengeRequest(this.header(this.nextStan()))));
    const challenge = challengeOf(c);
    if (challenge === null) return c.responseCode;
    const res = await this.request(signOnProofRequest(this.header(this.nextStan()), challenge, this.privateKey as Uint8Array));
    return res.responseCode() as string;
  }
}

/** Registers, enrols (signed on) and returns a terminal. */
export async function enrolledTerminal(h: TestHosts, terminalId: string, readerId: string): Promise<TestTerminal> {
  const code = await adminPost<{ code: string }>(h, '/readers', { terminalId, readerId });
  if (code.status !== 201) throw new Error(`POST /readers: ${code.status} ${JSON.stringify(code.body)}`);
  const t = await TestTerminal.connect(h, terminalId, readerId);
  const rc = await t.enrol(code.body.code);
  if (rc !== RC.approved) throw new Error(`enrolment answered ${rc}`);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Purse records

/** Field 41's 8 bytes for a terminal id (space padded). */
export function field41(terminalId: string): Uint8Array {
  return Uint8Array.from(terminalId.padEnd(8, ' '), (c) => c.charCodeAt(0));
}

export const SERIAL = fromHex('48494C5400000001');

/** A purse record certified with the TEST purse master, as the card would make it. */
export function certifiedRecord(o: {
  serial?: Uint8Array;
  counter: number;
  type: 'debit' | 'load';
  amount: number;
  terminalId: string;
  terminalSequence: number;
  balanceAfter: number;
  currency?: number;
  dateTime?: PurseDateTime;
}): PurseRecord {
  const serial = o.serial ?? SERIAL;
  const fields = {
    serial,
    counter: o.counter,
    type: o.type,
    amount: o.amount,
    currency: o.currency ?? 392,
    terminalId: field41(o.terminalId),
    terminalSequence: o.terminalSequence,
    dateTime: encodePurseDateTime(o.dateTime ?? LOCAL),
    balanceAfter: o.balanceAfter,
  };
  const key = purseCardKey(testPurseMasterKey(), serial);
  return { ...fields, certificate: purseCertificate(key, fields) };
}

/** An advice of a completed transaction, with a certified purse record. */
export function completedAdvice(
  t: TestTerminal,
  o: { stan: number; kind?: TransactionKind; counter: number; amount: number; balanceAfter: number; serial?: Uint8Array; repeat?: boolean; retrievalReference?: string },
): IsoMessage {
  const kind = o.kind ?? 'purchase';
  const input: AdviceInput & { repeat?: boolean } = {
    kind,
    outcome: 'complete',
    serial: o.serial ?? SERIAL,
    amount: { minor: o.amount, currency: JPY },
    dateTime: LOCAL,
    purse: certifiedRecord({ serial: o.serial, counter: o.counter, type: kind === 'purchase' ? 'debit' : 'load', amount: o.amount, terminalId: t.terminalId, terminalSequence: o.stan, balanceAfter: o.balanceAfter }),
    repeat: o.repeat,
  };
  if (o.retrievalReference !== undefined) input.retrievalReference = o.retrievalReference;
  return adviceRequest(t.header(o.stan), input);
}

// ---------------------------------------------------------------------------------------------
// Raw sockets and database dumps

/** A raw TCP connection to the gateway; resolves when it is open. */
export async function rawSocket(h: { host: string; gatewayPort: number }): Promise<Socket> {
  const s = connect({ host: h.host, port: h.gatewayPort });
  await once(s, 'connect');
  return s;
}

/** Resolves when the peer has closed the socket (or after `ms`, with false). */
export function closedWithin(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed || s.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    s.once('end', done);
    s.once('close', done);
    s.on('error', () => undefined);
    s.resume();
  });
}

/** Every row of every table of both host files, as one string (read through a separate connection). */
export function dumpDatabases(dir: string): string {
  const out: Record<string, unknown> = {};
  for (const file of Object.values(HOST_FILES)) {
    const db = new Database(join(dir, file), { readonly: true, fileMustExist: true });
    try {
      const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[];
      for (const t of tables) out[`${file}:${t}`] = db.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).all();
    } finally {
      db.close();
    }
  }
  return JSON.stringify(out, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
}

/** Waits until `check` holds (bounded). */
export async function until(check: () => boolean | Promise<boolean>, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`condition not met within ${ms} ms`);
}
