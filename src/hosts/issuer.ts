/**
 * The mock e-money issuer host: the provider behind the gateway for the purse service
 * (applets-spec/emoney-purse.md), on its own SQLite file (store.ts). It holds the purse master key,
 * so it is the one party besides the card that can check a transaction certificate and make a load
 * cryptogram (src/crypto/purse-certificate.ts).
 *
 * What it does, per message (the gateway has authenticated and parsed it and checked the reader):
 *
 *   0200 → 0210  load authorization. Checks, first failure answers: card on the negative file 14;
 *                amount 0 or above 2^32-1 13; currency other than the card's 12; the card counter
 *                below the highest one the card has certified (a restored image) 05 + anomaly
 *                card-rollback; STAN above 2^32-1 (the purse's sequence field) 12; amount above
 *                maxLoad, the shadow balance + amount above maxBalance, or the card's approved loads
 *                of the day + amount above dailyLoadLimit 61. Approved: issuer reference (field 37,
 *                12 digits), authorization id (38) and the load cryptogram over the card's counter,
 *                the amount, currency, field 41's 8 bytes, the STAN, the DF04 date-time and the
 *                reference, under purseCardKey(master, serial).
 *   0220/0221 → 0230  advice: a transaction the terminal journaled. Value moved: the certificate is
 *                verified (bad: 12 + anomaly bad-certificate, the record is kept but not applied).
 *                Accepted advices answer 00, anomalies or not; the shadow balance of the card
 *                becomes the certified balance after its highest counter.
 *   0400/0401 → 0410  reversal of a load authorization (field 90 → the 0200 by its STAN): approved
 *                and not yet used by a load → reversed, 00; not found → 00 (nothing to reverse,
 *                recorded); declined → 00 (nothing to reverse); its load already certified, serial or
 *                amount differing, or a reversal of an advice (a certified purse transaction is
 *                final: refund instead) → 12.
 *   0300 → 0310  negative card file: version 0 → a snapshot; an older version → the delta from it
 *                (net changes per card: listed, unlisted, or listed with another reason); the current one → "up to date"; a version the host never issued → 25.
 *                In chunks of one field 63 each; a chunk number past the end → 12.
 *   0500 → 0510  reconciliation: the host's totals over the terminal's reader sequence range and
 *                currency; 00 when they equal the terminal's, 95 otherwise (recorded either way).
 *   0620/0621 → 0630  a terminal's anomaly report (administrative advice): stored once per (terminal
 *                id, anomaly sequence = STAN) in terminal_reports and as an anomaly with source
 *                'terminal' and the terminal's kind; 00. A repeat with the same content: 94 (or the
 *                stored code); the same key with other content: 12 and a reader-repeat anomaly.
 *
 * Load authorizations: approved → completed (its certified load advice), reversed (0400), or lapsed
 * (its load advice says failed / never-happened: no LOAD reached the card). A lapsed authorization no
 * longer counts for the daily load limit and cannot be completed: a certified load under it is an
 * unauthorized-load anomaly (and the authorization becomes completed: the value did move). A reversal
 * of a lapsed authorization reverses it (00, counted in 75/87 as the terminal counts it), so the
 * order in which a failed load's advice and its reversal arrive does not change the totals.
 *
 * Exactly once. Advices and authorizations are keyed by (terminal id, reader sequence = STAN),
 * reversals by (terminal id, original MTI, original STAN): the first one is applied and its answer
 * stored in the same transaction; a later one with the same key and the same content (every field but
 * 7, 11, 53 and the MAC; 0221 = 0220, 0401 = 0400) changes nothing and is answered from the store:
 * an advice first answered 00 gets 94 (duplicate, delivered), any other stored code is repeated as
 * it was, and an authorization gets its stored 0210 again (same reference, same cryptogram). The same
 * key with other content is a reader sequence number used twice: 12, and anomaly reader-repeat.
 *
 * Coherence (the NEC paper's serial numbers): per card, the counters its certificates carry; per
 * reader, the sequence numbers of its advices. Anomalies, recorded with the advice that shows them:
 *
 *   | kind              | meaning                                                                  |
 *   |-------------------|--------------------------------------------------------------------------|
 *   | reader-gap        | missing reader sequence numbers before this one (details: from, to)      |
 *   | reader-repeat     | a reader sequence number used again for another transaction (redundant) |
 *   | card-gap          | missing card counters between the highest seen and this one             |
 *   | card-repeat       | a card counter certified twice (clone or replayed card image)            |
 *   | card-rollback     | a card showing a counter below the highest it has certified             |
 *   | balance-mismatch  | certified balances that do not chain (previous ± amount ≠ balance after) |
 *   | bad-certificate   | a certificate that does not verify under the card's purse key            |
 *   | blocked-card      | value moved on a card of the negative card file                          |
 *   | unauthorized-load | a certified load with no approved, unreversed authorization on record     |
 *   | currency-mismatch | a card certifying in another currency than before                        |
 *
 * A card first seen at counter n starts its history there (the bureau's initial load is not advised);
 * missing counters are counted from it. Reader sequences start at 1. A late advice fills a gap: the
 * gap's anomaly stays (it happened), `missing` in the views is computed from what is on record now.
 *
 * Group commit. Every request goes through one queue; what arrived by the time the queue runs is
 * applied in one IMMEDIATE transaction (at most MAX_BATCH), each request inside its own savepoint (a
 * request that fails is rolled back alone and answered 96 by the gateway), and the answers leave only
 * after the commit (synchronous=FULL: on disk). One fsync serves many terminals.
 */
import { createHash } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { openHostDb, SERIAL_CHECK, statementCache, type HostDatabase, type HostSchema } from './store.js';
import type { ProviderHost, ProviderRequest } from './provider.js';
import { IsoMessage } from '../hostlink/iso8583/message.js';
import { pack } from '../hostlink/iso8583/packager.js';
import {
  ANOMALY_REPORT_KINDS,
  RC,
  VALUE_MOVED_OUTCOMES,
  adviceResponse,
  anomalyReportResponse,
  chunkNegativeListChanges,
  loadAuthorizationResponse,
  negativeListResponse,
  reconciliationResponse,
  refusal,
  reversalResponse,
  type AdviceRequest,
  type AnomalyReportKind,
  type AnomalyReportRequest,
  type LoadAuthorizationRequest,
  type NegativeListChange,
  type NegativeListRequest,
  type NegativeListUpdate,
  type ReconciliationRequest,
  type ReconciliationTotals,
  type ResponseCode,
  type ReversalRequest,
} from '../hostlink/messages.js';
import { PURSE_U32_MAX, encodePurseDateTime, loadCryptogram, purseCardKey, verifyPurseCertificate } from '../crypto/purse-certificate.js';
import { assertAesKey } from '../crypto/aes.js';
import { BadInputError, ChannelClosedError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { fromHex, toHex, zeroize } from '../util/bytes.js';

/** PRAGMA application_id of the issuer file: "HLTI". */
export const ISSUER_APPLICATION_ID = 0x484c5449;
/** Requests applied in one transaction at most. */
export const MAX_BATCH = 256;
/** Default limits, minor units (the demo purse's: JPY, maximum balance 100 000). */
export const DEFAULT_ISSUER_LIMITS: Readonly<IssuerLimits> = Object.freeze({ maxLoad: 50_000, maxBalance: 100_000, dailyLoadLimit: 200_000 });
/** Negative card file reasons: 1..100 characters. */
export const REASON_MAX = 100;
/** Changes one admin edit may carry. */
export const MAX_EDIT_CHANGES = 1_000;
/** Rows the list views return at most. */
export const LIST_LIMIT_MAX = 10_000;

export interface IssuerLimits {
  /** Largest single load. */
  maxLoad: number;
  /** Largest shadow balance after a load. */
  maxBalance: number;
  /** Largest sum of one card's approved loads in a UTC day. */
  dailyLoadLimit: number;
}

export const ANOMALY_KINDS = [
  'reader-gap',
  'reader-repeat',
  'card-gap',
  'card-repeat',
  'card-rollback',
  'balance-mismatch',
  'bad-certificate',
  'blocked-card',
  'unauthorized-load',
  'currency-mismatch',
] as const;
export type IssuerAnomalyKind = (typeof ANOMALY_KINDS)[number];
/** The kinds a terminal reports in an 0620 (stored with source 'terminal'). */
export const TERMINAL_ANOMALY_KINDS = Object.keys(ANOMALY_REPORT_KINDS) as AnomalyReportKind[];
/** Any kind the anomalies table holds: the issuer's own (source 'issuer') or a terminal's (source 'terminal'). */
export type AnomalyKind = IssuerAnomalyKind | AnomalyReportKind;
export const ANOMALY_SOURCES = ['issuer', 'terminal'] as const;
export type AnomalySource = (typeof ANOMALY_SOURCES)[number];
/** Statuses of a load authorization (see the top of the file). */
export const AUTHORIZATION_STATUSES = ['approved', 'declined', 'reversed', 'completed', 'lapsed'] as const;
export type AuthorizationStatus = (typeof AUTHORIZATION_STATUSES)[number];

const sqlList = (xs: readonly string[]) => xs.map((x) => `'${x}'`).join(', ');

export const ISSUER_SCHEMA: HostSchema = {
  name: 'e-money issuer',
  applicationId: ISSUER_APPLICATION_ID,
  migrations: [
    {
      version: 1,
      description: 'cards, advices, card records, authorizations, reversals, anomalies, negative card file, reconciliations',
      sql: `
-- The shadow of each card: what its certificates say. balance/last_counter follow the highest counter.
CREATE TABLE cards (
  serial TEXT PRIMARY KEY CHECK (${SERIAL_CHECK('serial')}),
  currency INTEGER CHECK (currency IS NULL OR currency BETWEEN 1 AND 999),
  balance INTEGER CHECK (balance IS NULL OR balance >= 0),
  first_counter INTEGER CHECK (first_counter IS NULL OR first_counter >= 1),
  last_counter INTEGER NOT NULL DEFAULT 0 CHECK (last_counter >= 0),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;

-- Every advice applied, keyed for exactly-once by (terminal id, reader sequence).
CREATE TABLE advices (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER NOT NULL CHECK (reader_seq >= 0),
  content_hash BLOB NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('purchase', 'refund', 'load')),
  outcome TEXT NOT NULL CHECK (outcome IN ('complete', 'recovered', 'failed', 'never-happened')),
  serial TEXT NOT NULL CHECK (${SERIAL_CHECK('serial')}),
  amount INTEGER NOT NULL CHECK (amount >= 0),
  currency TEXT NOT NULL,
  card_counter INTEGER,
  certificate BLOB,
  note TEXT,
  response_code TEXT NOT NULL,
  received_as TEXT NOT NULL CHECK (received_as IN ('0220', '0221')),
  received_at INTEGER NOT NULL,
  UNIQUE (terminal_id, reader_seq)
) STRICT;
CREATE INDEX advices_reader ON advices (terminal_id, reader_id, reader_seq);

-- Certified purse transactions (value-moved advices whose certificate verified).
CREATE TABLE card_records (
  id INTEGER PRIMARY KEY,
  serial TEXT NOT NULL REFERENCES cards (serial),
  counter INTEGER NOT NULL CHECK (counter >= 1),
  type TEXT NOT NULL CHECK (type IN ('debit', 'load')),
  amount INTEGER NOT NULL,
  currency INTEGER NOT NULL,
  balance_after INTEGER NOT NULL,
  advice_id INTEGER NOT NULL REFERENCES advices (id)
) STRICT;
CREATE INDEX card_records_counter ON card_records (serial, counter);

CREATE TABLE authorizations (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER NOT NULL,
  content_hash BLOB NOT NULL,
  serial TEXT NOT NULL CHECK (${SERIAL_CHECK('serial')}),
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  card_counter INTEGER NOT NULL,
  response_code TEXT NOT NULL,
  issuer_reference TEXT,
  authorization_id TEXT,
  cryptogram BLOB,
  status TEXT NOT NULL CHECK (status IN ('approved', 'declined', 'reversed', 'completed')),
  received_at INTEGER NOT NULL,
  UNIQUE (terminal_id, reader_seq),
  CHECK ((status = 'declined') = (cryptogram IS NULL))
) STRICT;
CREATE INDEX authorizations_card ON authorizations (serial, received_at);

CREATE TABLE reversals (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  stan INTEGER NOT NULL,
  original_mti TEXT NOT NULL,
  original_stan INTEGER NOT NULL,
  content_hash BLOB NOT NULL,
  kind TEXT NOT NULL,
  serial TEXT NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('reversed', 'no-original', 'nothing-to-reverse', 'refused')),
  response_code TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  UNIQUE (terminal_id, original_mti, original_stan)
) STRICT;

CREATE TABLE anomalies (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN (${sqlList(ANOMALY_KINDS)})),
  serial TEXT,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER,
  counter INTEGER,
  advice_id INTEGER REFERENCES advices (id),
  details TEXT NOT NULL CHECK (json_valid(details) AND json_type(details) = 'object')
) STRICT;
CREATE INDEX anomalies_kind ON anomalies (kind, id);
CREATE INDEX anomalies_serial ON anomalies (serial, id);

-- Negative card file: one version for the whole file; each admin edit is a new version.
CREATE TABLE negative_file (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  version INTEGER NOT NULL CHECK (version >= 0),
  updated_at INTEGER NOT NULL
) STRICT;
INSERT INTO negative_file (singleton, version, updated_at) VALUES (1, 0, 0);
CREATE TABLE negative_cards (
  serial TEXT PRIMARY KEY CHECK (${SERIAL_CHECK('serial')}),
  reason TEXT NOT NULL,
  added_version INTEGER NOT NULL
) STRICT;
CREATE TABLE negative_changes (
  id INTEGER PRIMARY KEY,
  version INTEGER NOT NULL CHECK (version >= 1),
  action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
  serial TEXT NOT NULL CHECK (${SERIAL_CHECK('serial')}),
  reason TEXT,
  at INTEGER NOT NULL
) STRICT;
CREATE INDEX negative_changes_version ON negative_changes (version, serial);
CREATE INDEX negative_changes_serial ON negative_changes (serial, version);

CREATE TABLE reconciliations (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  stan INTEGER NOT NULL,
  currency TEXT NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  terminal_totals TEXT NOT NULL CHECK (json_valid(terminal_totals)),
  host_totals TEXT NOT NULL CHECK (json_valid(host_totals)),
  response_code TEXT NOT NULL,
  at INTEGER NOT NULL,
  UNIQUE (terminal_id, stan, currency)
) STRICT;
`,
    },
    {
      version: 2,
      description: "authorization status 'lapsed'; terminal anomaly reports (0620) and the source of each anomaly",
      // Released step 1 is never edited: the CHECKs change by rebuilding the two tables (nothing
      // references them), ids kept (an issuer reference is its authorization's id).
      sql: `
CREATE TABLE authorizations_v2 (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER NOT NULL,
  content_hash BLOB NOT NULL,
  serial TEXT NOT NULL CHECK (${SERIAL_CHECK('serial')}),
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  card_counter INTEGER NOT NULL,
  response_code TEXT NOT NULL,
  issuer_reference TEXT,
  authorization_id TEXT,
  cryptogram BLOB,
  status TEXT NOT NULL CHECK (status IN ('approved', 'declined', 'reversed', 'completed', 'lapsed')),
  received_at INTEGER NOT NULL,
  UNIQUE (terminal_id, reader_seq),
  CHECK ((status = 'declined') = (cryptogram IS NULL))
) STRICT;
INSERT INTO authorizations_v2 SELECT id, terminal_id, reader_id, reader_seq, content_hash, serial, amount, currency, card_counter, response_code, issuer_reference, authorization_id, cryptogram, status, received_at FROM authorizations;
DROP TABLE authorizations;
ALTER TABLE authorizations_v2 RENAME TO authorizations;
CREATE INDEX authorizations_card ON authorizations (serial, received_at);

-- Terminal anomaly reports (0620/0621), keyed for exactly-once by (terminal id, anomaly sequence = STAN).
CREATE TABLE terminal_reports (
  id INTEGER PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  anomaly_seq INTEGER NOT NULL CHECK (anomaly_seq >= 0),
  content_hash BLOB NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN (${sqlList(Object.keys(ANOMALY_REPORT_KINDS))})),
  serial TEXT NOT NULL CHECK (${SERIAL_CHECK('serial')}),
  response_code TEXT NOT NULL,
  received_as TEXT NOT NULL CHECK (received_as IN ('0620', '0621')),
  received_at INTEGER NOT NULL,
  UNIQUE (terminal_id, anomaly_seq)
) STRICT;

CREATE TABLE anomalies_v2 (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  source TEXT NOT NULL CHECK (source IN ('issuer', 'terminal')),
  kind TEXT NOT NULL,
  serial TEXT,
  terminal_id TEXT NOT NULL,
  reader_id TEXT NOT NULL,
  reader_seq INTEGER,
  counter INTEGER,
  advice_id INTEGER REFERENCES advices (id),
  report_id INTEGER REFERENCES terminal_reports (id),
  details TEXT NOT NULL CHECK (json_valid(details) AND json_type(details) = 'object'),
  CHECK ((source = 'issuer' AND kind IN (${sqlList(ANOMALY_KINDS)}) AND report_id IS NULL)
      OR (source = 'terminal' AND kind IN (${sqlList(Object.keys(ANOMALY_REPORT_KINDS))}) AND report_id IS NOT NULL AND advice_id IS NULL))
) STRICT;
INSERT INTO anomalies_v2 (id, at, source, kind, serial, terminal_id, reader_id, reader_seq, counter, advice_id, report_id, details)
  SELECT id, at, 'issuer', kind, serial, terminal_id, reader_id, reader_seq, counter, advice_id, NULL, details FROM anomalies;
DROP TABLE anomalies;
ALTER TABLE anomalies_v2 RENAME TO anomalies;
CREATE INDEX anomalies_kind ON anomalies (kind, id);
CREATE INDEX anomalies_serial ON anomalies (serial, id);
`,
    },
  ],
};

// ---------------------------------------------------------------------------------------------
// Views (admin API)

export interface SeqRange {
  from: number;
  to: number;
}

export interface AnomalyView {
  id: number;
  at: number;
  /** issuer: found by the issuer in what it received; terminal: reported by a terminal (0620). */
  source: AnomalySource;
  kind: AnomalyKind;
  serial: string | null;
  terminalId: string;
  readerId: string;
  readerSequence: number | null;
  counter: number | null;
  details: Record<string, unknown>;
}

export interface CardView {
  serial: string;
  currency: number | null;
  /** Shadow balance: the certified balance after the highest counter; null before any certificate. */
  balance: number | null;
  firstCounter: number | null;
  lastCounter: number;
  records: number;
  missingCounters: SeqRange[];
  blocked: { reason: string; version: number } | null;
  anomalies: number;
}

export interface TotalsView {
  terminalId: string;
  currency: string;
  totals: ReconciliationTotals;
}

export interface SequenceView {
  terminalId: string;
  readerId: string;
  lastSequence: number;
  advices: number;
  missing: SeqRange[];
}

export interface NegativeEdit {
  add?: { serial: string; reason: string }[];
  remove?: string[];
}

export interface NegativeEditResult {
  version: number;
  added: number;
  removed: number;
}

// ---------------------------------------------------------------------------------------------

interface Job {
  req: ProviderRequest;
  resolve(m: IsoMessage): void;
  reject(e: Error): void;
}

interface CardRow {
  serial: string;
  currency: number | null;
  balance: number | null;
  first_counter: number | null;
  last_counter: number;
}

interface AuthRow {
  id: number;
  content_hash: Uint8Array;
  serial: string;
  amount: number;
  currency: string;
  response_code: string;
  issuer_reference: string | null;
  authorization_id: string | null;
  cryptogram: Uint8Array | null;
  status: AuthorizationStatus;
}

export interface IssuerOptions {
  /** The purse master key (TEST_PURSE_MASTER_HEX for the demo). Copied; zeroed at close(). */
  master: Uint8Array;
  limits?: Partial<IssuerLimits>;
  clock?: () => number;
  maxBatch?: number;
  /** How long a commit waits for another connection's lock before failing (store.ts default). */
  busyTimeoutMs?: number;
}

export interface IssuerStats {
  requests: number;
  batches: number;
  largestBatch: number;
  failed: number;
}

const ZERO_TALLY = () => ({ count: 0, amount: 0 });

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/** What makes two transmissions "the same request": every field but 7, 11, 53 and the MAC, MTI normalized. */
export function contentHash(msg: IsoMessage, mti: string): Uint8Array {
  return sha256(pack(msg.without(7, 11, 53, 64, 128).withMti(mti)));
}

const serialHex = (serial: Uint8Array): string => toHex(serial).toUpperCase();

function ranges(sorted: number[], start: number): SeqRange[] {
  const out: SeqRange[] = [];
  let expect = start;
  for (const n of sorted) {
    if (n > expect) out.push({ from: expect, to: n - 1 });
    if (n >= expect) expect = n + 1;
  }
  return out;
}

function startOfUtcDay(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
}

export class IssuerHost implements ProviderHost {
  readonly name = 'emoney';
  readonly db: HostDatabase;
  readonly limits: Readonly<IssuerLimits>;
  readonly stats: IssuerStats = { requests: 0, batches: 0, largestBatch: 0, failed: 0 };
  private readonly master: Uint8Array;
  private readonly clock: () => number;
  private readonly maxBatch: number;
  private readonly queue: Job[] = [];
  private scheduled = false;
  private closing = false;
  private closed = false;
  private idle: (() => void) | null = null;
  private readonly runBatch: BetterSqlite3.Transaction<(jobs: Job[], out: Array<IsoMessage | Error>) => void>;
  private readonly runOne: (req: ProviderRequest) => IsoMessage;
  private readonly sql: (text: string) => BetterSqlite3.Statement;

  private constructor(db: HostDatabase, o: IssuerOptions) {
    assertAesKey(o.master, 'purse master key');
    this.db = db;
    this.sql = statementCache(db);
    this.master = o.master.slice();
    this.clock = o.clock ?? Date.now;
    this.maxBatch = o.maxBatch ?? MAX_BATCH;
    assertInt(this.maxBatch, 'maxBatch', 1, 100_000);
    const limits = { ...DEFAULT_ISSUER_LIMITS, ...(o.limits ?? {}) };
    for (const [k, v] of Object.entries(limits)) assertInt(v, `limits.${k}`, 1, PURSE_U32_MAX);
    this.limits = Object.freeze(limits);
    this.runOne = db.transaction((req: ProviderRequest) => this.apply(req));
    this.runBatch = db.transaction((jobs: Job[], out: Array<IsoMessage | Error>) => {
      for (const job of jobs) {
        try {
          out.push(this.runOne(job.req)); // a savepoint inside the batch's transaction
        } catch (e) {
          out.push(e instanceof Error ? e : new Error(String(e)));
        }
      }
    });
  }

  static open(path: string, o: IssuerOptions): IssuerHost {
    assertAesKey(o?.master, 'purse master key');
    return new IssuerHost(openHostDb(path, ISSUER_SCHEMA, { clock: o.clock, busyTimeoutMs: o.busyTimeoutMs }), o);
  }

  // -------------------------------------------------------------------------------------------
  // The queue

  handle(req: ProviderRequest): Promise<IsoMessage> {
    if (this.closing) return Promise.reject(new ChannelClosedError('the issuer host is closed'));
    return new Promise<IsoMessage>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const jobs = this.queue.splice(0, this.maxBatch);
    if (jobs.length > 0) {
      const out: Array<IsoMessage | Error> = [];
      try {
        this.runBatch.immediate(jobs, out);
        this.stats.batches++;
        this.stats.requests += jobs.length;
        this.stats.largestBatch = Math.max(this.stats.largestBatch, jobs.length);
        jobs.forEach((job, i) => {
          const r = out[i];
          if (r instanceof IsoMessage) job.resolve(r);
          else {
            this.stats.failed++;
            job.reject(r);
          }
        });
      } catch (e) {
        // The commit failed: nothing of the batch is stored, every request is answered 96 (retry).
        this.stats.failed += jobs.length;
        for (const job of jobs) job.reject(e instanceof Error ? e : new Error(String(e)));
      }
    }
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    } else if (this.idle !== null) {
      this.idle();
    }
  }

  /** Lets queued requests finish, then closes the file and zeroes the master key. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    if (this.scheduled || this.queue.length > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    this.closed = true;
    zeroize(this.master);
    this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // One request, inside its savepoint

  private apply(req: ProviderRequest): IsoMessage {
    const now = this.clock();
    const { message: msg, parsed } = req;
    switch (parsed.kind) {
      case 'load-authorization':
        return this.authorize(msg, parsed.data, now);
      case 'advice':
        return this.advice(msg, parsed.data, now);
      case 'reversal':
        return this.reversal(msg, parsed.data, now);
      case 'negative-list':
        return this.negativeList(msg, parsed.data, now);
      case 'reconciliation':
        return this.reconcile(msg, parsed.data, now);
      case 'anomaly-report':
        return this.anomalyReport(msg, parsed.data, now);
      default:
        return refusal(msg, { responseCode: RC.notSupported, at: new Date(now) });
    }
  }

  private anomaly(now: number, kind: IssuerAnomalyKind, a: { serial?: string; terminalId: string; readerId: string; readerSeq?: number; counter?: number; adviceId?: number }, details: Record<string, unknown>): void {
    this.sql("INSERT INTO anomalies (at, source, kind, serial, terminal_id, reader_id, reader_seq, counter, advice_id, details) VALUES (?, 'issuer', ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(now, kind, a.serial ?? null, a.terminalId, a.readerId, a.readerSeq ?? null, a.counter ?? null, a.adviceId ?? null, JSON.stringify(details));
  }

  private card(serial: string): CardRow | undefined {
    return this.sql('SELECT serial, currency, balance, first_counter, last_counter FROM cards WHERE serial = ?').get(serial) as CardRow | undefined;
  }

  private blocked(serial: string): boolean {
    return this.sql('SELECT 1 FROM negative_cards WHERE serial = ?').get(serial) !== undefined;
  }

  // 0200 ----------------------------------------------------------------------------------------

  private authorize(msg: IsoMessage, r: LoadAuthorizationRequest, now: number): IsoMessage {
    const at = new Date(now);
    const { terminalId, readerId, stan } = r.header;
    const hash = contentHash(msg, '0200');
    const serial = serialHex(r.serial);
    const prior = this.sql('SELECT * FROM authorizations WHERE terminal_id = ? AND reader_seq = ?').get(terminalId, stan) as AuthRow | undefined;
    if (prior !== undefined) {
      if (Buffer.compare(prior.content_hash, hash) !== 0) {
        this.anomaly(now, 'reader-repeat', { serial, terminalId, readerId, readerSeq: stan }, { message: '0200', existing: 'authorization', id: prior.id });
        return loadAuthorizationResponse(msg, { responseCode: RC.invalidTransaction, at });
      }
      if (prior.cryptogram === null) return loadAuthorizationResponse(msg, { responseCode: prior.response_code as ResponseCode, at });
      return loadAuthorizationResponse(msg, {
        responseCode: RC.approved,
        at,
        issuerReference: prior.issuer_reference as string,
        authorizationId: prior.authorization_id as string,
        loadCryptogram: prior.cryptogram,
      });
    }
    const card = this.card(serial);
    const currency = Number(r.amount.currency);
    const amount = r.amount.minor;
    const decide = (): ResponseCode => {
      if (this.blocked(serial)) return RC.invalidCard;
      if (amount < 1 || amount > PURSE_U32_MAX) return RC.invalidAmount;
      if (card?.currency != null && card.currency !== currency) return RC.invalidTransaction;
      if (card !== undefined && r.cardCounter < card.last_counter) {
        this.anomaly(now, 'card-rollback', { serial, terminalId, readerId, readerSeq: stan, counter: r.cardCounter }, { message: '0200', lastCertified: card.last_counter });
        return RC.doNotHonour;
      }
      if (stan > PURSE_U32_MAX || r.cardCounter >= PURSE_U32_MAX) return RC.invalidTransaction;
      if (amount > this.limits.maxLoad) return RC.exceedsLimit;
      if (card?.balance != null && card.balance + amount > this.limits.maxBalance) return RC.exceedsLimit;
      const today = this.sql("SELECT coalesce(sum(amount), 0) FROM authorizations WHERE serial = ? AND status IN ('approved', 'completed') AND received_at >= ?")
        .pluck()
        .get(serial, startOfUtcDay(now)) as number;
      if (today + amount > this.limits.dailyLoadLimit) return RC.exceedsLimit;
      return RC.approved;
    };
    const rc = decide();
    const insert = this.sql(
      'INSERT INTO authorizations (terminal_id, reader_id, reader_seq, content_hash, serial, amount, currency, card_counter, response_code, issuer_reference, authorization_id, cryptogram, status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    if (rc !== RC.approved) {
      insert.run(terminalId, readerId, stan, hash, serial, amount, r.amount.currency, r.cardCounter, rc, null, null, null, 'declined', now);
      return loadAuthorizationResponse(msg, { responseCode: rc, at });
    }
    const id = Number(this.sql('SELECT coalesce(max(id), 0) + 1 FROM authorizations').pluck().get());
    const issuerReference = String(id).padStart(12, '0');
    const authorizationId = String(id % 1_000_000).padStart(6, '0');
    const key = purseCardKey(this.master, r.serial);
    let cryptogram: Uint8Array;
    try {
      cryptogram = loadCryptogram(key, {
        serial: r.serial,
        counter: r.cardCounter,
        amount,
        currency,
        terminalId: Uint8Array.from(msg.text(41) as string, (c) => c.charCodeAt(0)),
        terminalSequence: stan,
        dateTime: encodePurseDateTime(r.dateTime),
        issuerReference: Uint8Array.from(issuerReference, (c) => c.charCodeAt(0)),
      });
    } finally {
      zeroize(key);
    }
    this.sql(
        'INSERT INTO authorizations (id, terminal_id, reader_id, reader_seq, content_hash, serial, amount, currency, card_counter, response_code, issuer_reference, authorization_id, cryptogram, status, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(id, terminalId, readerId, stan, hash, serial, amount, r.amount.currency, r.cardCounter, rc, issuerReference, authorizationId, cryptogram, 'approved', now);
    return loadAuthorizationResponse(msg, { responseCode: RC.approved, at, issuerReference, authorizationId, loadCryptogram: cryptogram });
  }

  // 0220 / 0221 ---------------------------------------------------------------------------------

  private advice(msg: IsoMessage, a: AdviceRequest, now: number): IsoMessage {
    const at = new Date(now);
    const { terminalId, readerId, stan } = a.header;
    const hash = contentHash(msg, '0220');
    const serial = serialHex(a.serial);
    const who = { serial, terminalId, readerId, readerSeq: stan };
    const prior = this.sql('SELECT id, content_hash, response_code FROM advices WHERE terminal_id = ? AND reader_seq = ?').get(terminalId, stan) as
      | { id: number; content_hash: Uint8Array; response_code: string }
      | undefined;
    if (prior !== undefined) {
      if (Buffer.compare(prior.content_hash, hash) === 0) {
        return adviceResponse(msg, { responseCode: prior.response_code === RC.approved ? RC.duplicate : (prior.response_code as ResponseCode), at });
      }
      this.anomaly(now, 'reader-repeat', who, { message: msg.mti, existingAdvice: prior.id });
      return adviceResponse(msg, { responseCode: RC.invalidTransaction, at });
    }

    // Reader sequence coherence.
    const lastSeq = this.sql('SELECT max(reader_seq) FROM advices WHERE terminal_id = ? AND reader_id = ?').pluck().get(terminalId, readerId) as number | null;
    const gapFrom = (lastSeq ?? 0) + 1;

    const moved = VALUE_MOVED_OUTCOMES.includes(a.outcome);
    let certified = false;
    if (a.purse !== undefined) {
      const key = purseCardKey(this.master, a.purse.serial);
      try {
        certified = verifyPurseCertificate(key, a.purse, a.purse.certificate);
      } finally {
        zeroize(key);
      }
    }
    const rc: ResponseCode = moved && !certified ? RC.invalidTransaction : RC.approved;
    const counter = a.purse?.counter ?? a.cardCounter ?? null;
    const adviceId = Number(
      this.sql(
          'INSERT INTO advices (terminal_id, reader_id, reader_seq, content_hash, kind, outcome, serial, amount, currency, card_counter, certificate, note, response_code, received_as, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(terminalId, readerId, stan, hash, a.kind, a.outcome, serial, a.amount.minor, a.amount.currency, counter, a.purse?.certificate ?? null, a.note ?? null, rc, msg.mti, now).lastInsertRowid,
    );
    const where = { ...who, adviceId };
    if (stan > gapFrom) this.anomaly(now, 'reader-gap', where, { from: gapFrom, to: stan - 1 });
    if (this.blocked(serial) && moved) this.anomaly(now, 'blocked-card', where, { outcome: a.outcome });
    if (moved && !certified) {
      this.anomaly(now, 'bad-certificate', { ...where, counter: counter ?? undefined }, { outcome: a.outcome });
      return adviceResponse(msg, { responseCode: rc, at });
    }

    let card = this.card(serial);
    if (a.purse === undefined) {
      // failed / never-happened: at most the counter the card showed.
      if (card !== undefined && a.cardCounter !== undefined && a.cardCounter < card.last_counter) {
        this.anomaly(now, 'card-rollback', { ...where, counter: a.cardCounter }, { message: msg.mti, lastCertified: card.last_counter });
      }
      // A load that never reached the card releases its authorization: it lapses.
      if (a.kind === 'load') {
        this.sql("UPDATE authorizations SET status = 'lapsed' WHERE terminal_id = ? AND reader_seq = ? AND status = 'approved' AND serial = ? AND amount = ? AND currency = ?").run(
          terminalId,
          stan,
          serial,
          a.amount.minor,
          a.amount.currency,
        );
      }
      return adviceResponse(msg, { responseCode: rc, at });
    }

    const p = a.purse;
    if (card === undefined) {
      this.sql('INSERT INTO cards (serial, currency, balance, first_counter, last_counter, created_at, updated_at) VALUES (?, ?, NULL, ?, 0, ?, ?)').run(serial, p.currency, p.counter, now, now);
      card = this.card(serial) as CardRow;
    } else {
      if (card.currency !== null && card.currency !== p.currency) this.anomaly(now, 'currency-mismatch', { ...where, counter: p.counter }, { card: card.currency, certified: p.currency });
      if (card.first_counter === null || p.counter < card.first_counter) this.sql('UPDATE cards SET first_counter = ? WHERE serial = ?').run(p.counter, serial);
    }
    const seen = this.sql('SELECT count(*) FROM card_records WHERE serial = ? AND counter = ?').pluck().get(serial, p.counter) as number;
    if (seen > 0) {
      this.anomaly(now, 'card-repeat', { ...where, counter: p.counter }, { times: seen + 1 });
    } else if (card.last_counter > 0 && p.counter > card.last_counter + 1) {
      this.anomaly(now, 'card-gap', { ...where, counter: p.counter }, { from: card.last_counter + 1, to: p.counter - 1 });
    }
    const sign = p.type === 'load' ? 1 : -1;
    const near = this.sql('SELECT counter, type, amount, balance_after FROM card_records WHERE serial = ? AND counter IN (?, ?) ORDER BY id').all(serial, p.counter - 1, p.counter + 1) as {
      counter: number;
      type: 'debit' | 'load';
      amount: number;
      balance_after: number;
    }[];
    if (seen === 0) {
      for (const n of near) {
        const chained = n.counter < p.counter ? n.balance_after + sign * p.amount === p.balanceAfter : p.balanceAfter + (n.type === 'load' ? 1 : -1) * n.amount === n.balance_after;
        if (!chained) this.anomaly(now, 'balance-mismatch', { ...where, counter: p.counter }, { neighbour: n.counter, neighbourBalance: n.balance_after, balanceAfter: p.balanceAfter, amount: p.amount, type: p.type });
      }
    }
    this.sql('INSERT INTO card_records (serial, counter, type, amount, currency, balance_after, advice_id) VALUES (?, ?, ?, ?, ?, ?, ?)').run(serial, p.counter, p.type, p.amount, p.currency, p.balanceAfter, adviceId);
    if (p.counter > card.last_counter) {
      this.sql('UPDATE cards SET balance = ?, last_counter = ?, currency = coalesce(currency, ?), updated_at = ? WHERE serial = ?').run(p.balanceAfter, p.counter, p.currency, now, serial);
    } else {
      this.sql('UPDATE cards SET currency = coalesce(currency, ?), updated_at = ? WHERE serial = ?').run(p.currency, now, serial);
    }
    if (a.kind === 'load') {
      const auth = this.sql('SELECT * FROM authorizations WHERE terminal_id = ? AND reader_seq = ?').get(terminalId, stan) as AuthRow | undefined;
      const fits = auth !== undefined && auth.serial === serial && auth.amount === p.amount && (auth.status === 'approved' || auth.status === 'completed');
      if (!fits) this.anomaly(now, 'unauthorized-load', { ...where, counter: p.counter }, { authorization: auth === undefined ? null : { id: auth.id, status: auth.status } });
      if (auth !== undefined && auth.status !== 'declined') this.sql("UPDATE authorizations SET status = 'completed' WHERE id = ?").run(auth.id);
    }
    return adviceResponse(msg, { responseCode: rc, at });
  }

  // 0620 / 0621 ---------------------------------------------------------------------------------

  private anomalyReport(msg: IsoMessage, r: AnomalyReportRequest, now: number): IsoMessage {
    const at = new Date(now);
    const { terminalId, readerId, stan } = r.header;
    const hash = contentHash(msg, '0620');
    const serial = serialHex(r.serial);
    const prior = this.sql('SELECT id, content_hash, response_code FROM terminal_reports WHERE terminal_id = ? AND anomaly_seq = ?').get(terminalId, stan) as
      | { id: number; content_hash: Uint8Array; response_code: string }
      | undefined;
    if (prior !== undefined) {
      if (Buffer.compare(prior.content_hash, hash) === 0) {
        return anomalyReportResponse(msg, { responseCode: prior.response_code === RC.approved ? RC.duplicate : (prior.response_code as ResponseCode), at });
      }
      this.anomaly(now, 'reader-repeat', { serial, terminalId, readerId }, { message: msg.mti, anomalySequence: stan, existingReport: prior.id });
      return anomalyReportResponse(msg, { responseCode: RC.invalidTransaction, at });
    }
    const reportId = Number(
      this.sql('INSERT INTO terminal_reports (terminal_id, reader_id, anomaly_seq, content_hash, kind, serial, response_code, received_as, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(terminalId, readerId, stan, hash, r.kind, serial, RC.approved, msg.mti, now).lastInsertRowid,
    );
    const two = (v: number) => String(v).padStart(2, '0');
    const dt = r.dateTime;
    const details = {
      anomalySequence: stan,
      recordedAt: `${dt.year}-${two(dt.month)}-${two(dt.day)}T${two(dt.hour)}:${two(dt.minute)}:${two(dt.second)}`,
      lastCounter: r.lastCounter ?? null,
      reported: r.details,
    };
    this.sql(
        "INSERT INTO anomalies (at, source, kind, serial, terminal_id, reader_id, reader_seq, counter, report_id, details) VALUES (?, 'terminal', ?, ?, ?, ?, ?, ?, ?, ?)",
      )
      .run(now, r.kind, serial, terminalId, readerId, r.readerSequence ?? null, r.cardCounter ?? null, reportId, JSON.stringify(details));
    return anomalyReportResponse(msg, { responseCode: RC.approved, at });
  }

  // 0400 / 0401 ---------------------------------------------------------------------------------

  private reversal(msg: IsoMessage, r: ReversalRequest, now: number): IsoMessage {
    const at = new Date(now);
    const { terminalId, readerId, stan } = r.header;
    const originalMti = r.original.mti === '0221' ? '0220' : r.original.mti;
    const hash = contentHash(msg, '0400');
    const prior = this.sql('SELECT content_hash, response_code FROM reversals WHERE terminal_id = ? AND original_mti = ? AND original_stan = ?').get(terminalId, originalMti, r.original.stan) as
      | { content_hash: Uint8Array; response_code: string }
      | undefined;
    if (prior !== undefined) {
      if (Buffer.compare(prior.content_hash, hash) === 0) return reversalResponse(msg, { responseCode: prior.response_code as ResponseCode, at });
      this.anomaly(now, 'reader-repeat', { serial: serialHex(r.serial), terminalId, readerId, readerSeq: stan }, { message: msg.mti, original: r.original.stan });
      return reversalResponse(msg, { responseCode: RC.invalidTransaction, at });
    }
    const serial = serialHex(r.serial);
    let outcome: 'reversed' | 'no-original' | 'nothing-to-reverse' | 'refused';
    if (originalMti !== '0200') {
      outcome = 'refused';
    } else {
      const auth = this.sql('SELECT * FROM authorizations WHERE terminal_id = ? AND reader_seq = ?').get(terminalId, r.original.stan) as AuthRow | undefined;
      if (auth === undefined) outcome = 'no-original';
      else if (auth.serial !== serial || auth.amount !== r.amount.minor || auth.currency !== r.amount.currency) outcome = 'refused';
      else if (auth.status === 'declined' || auth.status === 'reversed') outcome = 'nothing-to-reverse';
      else if (auth.status === 'completed') outcome = 'refused';
      // approved or lapsed: reversed (a lapsed one is released already; the reversal is what the
      // terminal counts, so it counts here too whichever of advice and reversal came first)
      else {
        outcome = 'reversed';
        this.sql("UPDATE authorizations SET status = 'reversed' WHERE id = ?").run(auth.id);
      }
    }
    const rc: ResponseCode = outcome === 'refused' ? RC.invalidTransaction : RC.approved;
    this.sql('INSERT INTO reversals (terminal_id, reader_id, stan, original_mti, original_stan, content_hash, kind, serial, amount, currency, outcome, response_code, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(terminalId, readerId, stan, originalMti, r.original.stan, hash, r.kind, serial, r.amount.minor, r.amount.currency, outcome, rc, now);
    return reversalResponse(msg, { responseCode: rc, at });
  }

  // 0300 ----------------------------------------------------------------------------------------

  /** The update that takes a terminal from `from` to the current version (all of it, unchunked). */
  negativeUpdateFrom(from: number): { kind: 'delta' | 'snapshot'; to: number; changes: NegativeListChange[] } | null {
    const to = this.negativeVersion();
    if (!Number.isInteger(from) || from < 0 || from > to) return null;
    if (from === to) return { kind: 'delta', to, changes: [] };
    if (from === 0) {
      const rows = this.sql('SELECT serial, reason FROM negative_cards ORDER BY serial').all() as { serial: string; reason: string }[];
      return { kind: 'snapshot', to, changes: rows.map((x) => ({ action: 'add', serial: fromHex(x.serial), reason: x.reason })) };
    }
    // Net change per card touched since `from`: its entry then (listed, with which reason) against now.
    // A card listed then and now with another reason is an add (the terminal replaces the reason).
    const touched = this.sql('SELECT DISTINCT serial FROM negative_changes WHERE version > ? ORDER BY serial').pluck().all(from) as string[];
    const stateAt = this.sql('SELECT action, reason FROM negative_changes WHERE serial = ? AND version <= ? ORDER BY version DESC, id DESC LIMIT 1');
    const current = this.sql('SELECT reason FROM negative_cards WHERE serial = ?').pluck();
    const changes: NegativeListChange[] = [];
    for (const s of touched) {
      const then = stateAt.get(s, from) as { action: 'add' | 'remove'; reason: string | null } | undefined;
      const before = then?.action === 'add' ? (then.reason ?? '') : undefined;
      const reason = current.get(s) as string | undefined;
      if (before !== undefined && reason === undefined) changes.push({ action: 'remove', serial: fromHex(s) });
      else if (reason !== undefined && reason !== before) changes.push({ action: 'add', serial: fromHex(s), reason });
    }
    return { kind: 'delta', to, changes };
  }

  private negativeList(msg: IsoMessage, r: NegativeListRequest, now: number): IsoMessage {
    const at = new Date(now);
    const u = this.negativeUpdateFrom(r.version);
    if (u === null) return negativeListResponse(msg, { responseCode: RC.recordNotFound, at });
    const chunks = chunkNegativeListChanges(u.changes);
    if (r.chunk >= chunks.length) return negativeListResponse(msg, { responseCode: RC.invalidTransaction, at });
    const update: NegativeListUpdate = { kind: u.kind, fromVersion: r.version, toVersion: u.to, chunk: r.chunk, chunkCount: chunks.length, changes: chunks[r.chunk] };
    return negativeListResponse(msg, { responseCode: RC.approved, at, update });
  }

  // 0500 ----------------------------------------------------------------------------------------

  /** The host's totals for one terminal and currency, over reader sequences first..last. */
  totals(terminalId: string, currency: string, first = 0, last = Number.MAX_SAFE_INTEGER): ReconciliationTotals {
    const t: ReconciliationTotals = { loads: ZERO_TALLY(), loadReversals: ZERO_TALLY(), purchases: ZERO_TALLY(), purchaseReversals: ZERO_TALLY(), authorizations: 0 };
    const advices = this.sql(
        `SELECT kind, count(*) AS n, coalesce(sum(amount), 0) AS total FROM advices
         WHERE terminal_id = ? AND currency = ? AND reader_seq BETWEEN ? AND ? AND response_code = '00' AND outcome IN ('complete', 'recovered')
         GROUP BY kind`,
      )
      .all(terminalId, currency, first, last) as { kind: string; n: number; total: number }[];
    for (const row of advices) {
      const tally = row.kind === 'purchase' ? t.purchases : t.loads;
      tally.count += row.n;
      tally.amount += row.total;
    }
    const reversals = this.sql(
        `SELECT kind, count(*) AS n, coalesce(sum(amount), 0) AS total FROM reversals
         WHERE terminal_id = ? AND currency = ? AND original_stan BETWEEN ? AND ? AND outcome = 'reversed' GROUP BY kind`,
      )
      .all(terminalId, currency, first, last) as { kind: string; n: number; total: number }[];
    for (const row of reversals) {
      const tally = row.kind === 'purchase' ? t.purchaseReversals : t.loadReversals;
      tally.count += row.n;
      tally.amount += row.total;
    }
    t.authorizations = this.sql('SELECT count(*) FROM authorizations WHERE terminal_id = ? AND currency = ? AND reader_seq BETWEEN ? AND ?').pluck().get(terminalId, currency, first, last) as number;
    return t;
  }

  private reconcile(msg: IsoMessage, r: ReconciliationRequest, now: number): IsoMessage {
    const at = new Date(now);
    const { terminalId, readerId, stan } = r.header;
    const host = this.totals(terminalId, r.currency, r.firstSequence, r.lastSequence);
    const agree = JSON.stringify(host) === JSON.stringify(normalizeTotals(r.totals));
    const rc: ResponseCode = agree ? RC.approved : RC.reconcileError;
    this.sql(
        'INSERT INTO reconciliations (terminal_id, reader_id, stan, currency, first_seq, last_seq, terminal_totals, host_totals, response_code, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (terminal_id, stan, currency) DO NOTHING',
      )
      .run(terminalId, readerId, stan, r.currency, r.firstSequence, r.lastSequence, JSON.stringify(r.totals), JSON.stringify(host), rc, now);
    return reconciliationResponse(msg, { responseCode: rc, at, totals: host });
  }

  // -------------------------------------------------------------------------------------------
  // Admin side: the negative card file and the views

  negativeVersion(): number {
    return this.sql('SELECT version FROM negative_file').pluck().get() as number;
  }

  negativeCards(): { version: number; cards: { serial: string; reason: string; addedVersion: number }[] } {
    const rows = this.sql('SELECT serial, reason, added_version FROM negative_cards ORDER BY serial').all() as { serial: string; reason: string; added_version: number }[];
    return { version: this.negativeVersion(), cards: rows.map((r) => ({ serial: r.serial, reason: r.reason, addedVersion: r.added_version })) };
  }

  /**
   * One edit of the negative card file: a new version when anything changes (a card added, removed,
   * or re-added with another reason, which replaces its reason). BadInputError on bad input.
   */
  editNegativeCards(edit: NegativeEdit): NegativeEditResult {
    if (typeof edit !== 'object' || edit === null) throw new BadInputError('expected { add?: [{ serial, reason }], remove?: [serial] }');
    const add = edit.add ?? [];
    const remove = edit.remove ?? [];
    if (!Array.isArray(add) || !Array.isArray(remove)) throw new BadInputError('add and remove must be arrays');
    if (add.length + remove.length === 0) throw new BadInputError('nothing to change: give add or remove');
    if (add.length + remove.length > MAX_EDIT_CHANGES) throw new BadInputError(`at most ${MAX_EDIT_CHANGES} changes per edit`);
    const seen = new Set<string>();
    const norm = (s: unknown, where: string): string => {
      if (typeof s !== 'string' || !/^(?:[0-9a-fA-F]{2}){1,32}$/.test(s)) throw new BadInputError(`${where}: a card serial is 1 to 32 bytes of hex, got ${JSON.stringify(s)}`);
      const u = s.toUpperCase();
      if (seen.has(u)) throw new BadInputError(`${where}: serial ${u} appears twice in one edit`);
      seen.add(u);
      return u;
    };
    const adds = add.map((a, i) => {
      if (typeof a !== 'object' || a === null) throw new BadInputError(`add[${i}]: expected { serial, reason }`);
      const reason = a.reason;
      if (typeof reason !== 'string' || reason.trim() === '' || reason.length > REASON_MAX) throw new BadInputError(`add[${i}].reason: expected 1 to ${REASON_MAX} characters`);
      return { serial: norm(a.serial, `add[${i}].serial`), reason };
    });
    const removes = remove.map((s, i) => norm(s, `remove[${i}]`));
    const now = this.clock();
    return this.db.transaction((): NegativeEditResult => {
      const version = this.negativeVersion();
      const next = version + 1;
      let added = 0;
      let removed = 0;
      const log = this.sql('INSERT INTO negative_changes (version, action, serial, reason, at) VALUES (?, ?, ?, ?, ?)');
      for (const a of adds) {
        const listed = this.sql('SELECT reason FROM negative_cards WHERE serial = ?').pluck().get(a.serial) as string | undefined;
        if (listed === a.reason) continue; // no change
        // New, or listed with another reason: the reason is replaced (a change terminals must get).
        this.sql('INSERT INTO negative_cards (serial, reason, added_version) VALUES (?, ?, ?) ON CONFLICT (serial) DO UPDATE SET reason = excluded.reason, added_version = excluded.added_version').run(a.serial, a.reason, next);
        log.run(next, 'add', a.serial, a.reason, now);
        added++;
      }
      for (const s of removes) {
        if (!this.blocked(s)) continue;
        this.sql('DELETE FROM negative_cards WHERE serial = ?').run(s);
        log.run(next, 'remove', s, null, now);
        removed++;
      }
      if (added + removed === 0) return { version, added, removed };
      this.sql('UPDATE negative_file SET version = ?, updated_at = ?').run(next, now);
      return { version: next, added, removed };
    })();
  }

  anomalies(filter: { kind?: string; source?: string; serial?: string; terminalId?: string; limit?: number } = {}): AnomalyView[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.kind !== undefined) {
      const kinds: readonly string[] = [...ANOMALY_KINDS, ...TERMINAL_ANOMALY_KINDS.filter((k) => !(ANOMALY_KINDS as readonly string[]).includes(k))];
      if (!kinds.includes(filter.kind)) throw new BadInputError(`kind: expected one of ${kinds.join(', ')}`);
      where.push('kind = ?');
      args.push(filter.kind);
    }
    if (filter.source !== undefined) {
      if (!(ANOMALY_SOURCES as readonly string[]).includes(filter.source)) throw new BadInputError(`source: expected one of ${ANOMALY_SOURCES.join(', ')}`);
      where.push('source = ?');
      args.push(filter.source);
    }
    if (filter.serial !== undefined) {
      where.push('serial = ?');
      args.push(filter.serial.toUpperCase());
    }
    if (filter.terminalId !== undefined) {
      where.push('terminal_id = ?');
      args.push(filter.terminalId);
    }
    const limit = filter.limit ?? 1000;
    assertInt(limit, 'limit', 1, LIST_LIMIT_MAX);
    const rows = this.sql(`SELECT * FROM anomalies ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`).all(...args, limit) as {
      id: number;
      at: number;
      source: AnomalySource;
      kind: AnomalyKind;
      serial: string | null;
      terminal_id: string;
      reader_id: string;
      reader_seq: number | null;
      counter: number | null;
      details: string;
    }[];
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      source: r.source,
      kind: r.kind,
      serial: r.serial,
      terminalId: r.terminal_id,
      readerId: r.reader_id,
      readerSequence: r.reader_seq,
      counter: r.counter,
      details: JSON.parse(r.details) as Record<string, unknown>,
    }));
  }

  cardView(serialText: string): CardView | null {
    if (typeof serialText !== 'string' || !/^(?:[0-9a-fA-F]{2}){1,32}$/.test(serialText)) throw new BadInputError(`serial: expected 1 to 32 bytes of hex, got ${JSON.stringify(serialText)}`);
    const serial = serialText.toUpperCase();
    const c = this.card(serial);
    const neg = this.sql('SELECT reason, added_version FROM negative_cards WHERE serial = ?').get(serial) as { reason: string; added_version: number } | undefined;
    const anomalies = this.sql('SELECT count(*) FROM anomalies WHERE serial = ?').pluck().get(serial) as number;
    if (c === undefined && neg === undefined && anomalies === 0) return null;
    const counters = this.sql('SELECT DISTINCT counter FROM card_records WHERE serial = ? ORDER BY counter').pluck().all(serial) as number[];
    return {
      serial,
      currency: c?.currency ?? null,
      balance: c?.balance ?? null,
      firstCounter: c?.first_counter ?? null,
      lastCounter: c?.last_counter ?? 0,
      records: this.sql('SELECT count(*) FROM card_records WHERE serial = ?').pluck().get(serial) as number,
      missingCounters: c?.first_counter == null ? [] : ranges(counters, c.first_counter),
      blocked: neg === undefined ? null : { reason: neg.reason, version: neg.added_version },
      anomalies,
    };
  }

  /** Reader sequence coherence of every (terminal, reader) that sent advices. */
  sequences(): SequenceView[] {
    const rows = this.sql('SELECT terminal_id, reader_id, max(reader_seq) AS last, count(*) AS n FROM advices GROUP BY terminal_id, reader_id ORDER BY terminal_id, reader_id').all() as {
      terminal_id: string;
      reader_id: string;
      last: number;
      n: number;
    }[];
    const seqs = this.sql('SELECT reader_seq FROM advices WHERE terminal_id = ? AND reader_id = ? ORDER BY reader_seq').pluck();
    return rows.map((r) => ({ terminalId: r.terminal_id, readerId: r.reader_id, lastSequence: r.last, advices: r.n, missing: ranges(seqs.all(r.terminal_id, r.reader_id) as number[], 1) }));
  }

  /** Totals of every terminal and currency (all reader sequences). */
  allTotals(): TotalsView[] {
    const pairs = this.sql('SELECT terminal_id, currency FROM advices UNION SELECT terminal_id, currency FROM authorizations UNION SELECT terminal_id, currency FROM reversals ORDER BY 1, 2')
      .all() as { terminal_id: string; currency: string }[];
    return pairs.map((p) => ({ terminalId: p.terminal_id, currency: p.currency, totals: this.totals(p.terminal_id, p.currency) }));
  }
}

/** The totals with only the fields the comparison looks at, in a fixed order. */
function normalizeTotals(t: ReconciliationTotals): ReconciliationTotals {
  const tally = (x: { count: number; amount: number }) => ({ count: x.count, amount: x.amount });
  return { loads: tally(t.loads), loadReversals: tally(t.loadReversals), purchases: tally(t.purchases), purchaseReversals: tally(t.purchaseReversals), authorizations: t.authorizations };
}
