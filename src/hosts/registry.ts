/**
 * The reader registry (the NEC paper's reader authentication and negative reader list), kept by the
 * gateway in its own SQLite file. What it decides, and the response code of each refusal, is the
 * contract of src/hostlink/reader-auth.ts:
 *
 * - Enrolment codes: an operator issues one for (terminal id, reader id) through the admin API; only
 *   its SHA-256 is stored; it is single use and expires (DEFAULT_CODE_TTL_MS). Issuing a code for a
 *   reader id the registry does not know registers the reader (pending: no key yet); a reader that is
 *   already enrolled keeps its key until the new code is used (re-keying, or moving it to another
 *   terminal: the terminal id of the code wins at enrolment).
 * - Enrolment (0800 with code, key, signature): code unknown/used/expired/for another reader or
 *   terminal → 77; reader blocked → 80; signature → 78; else the key is stored, the code burnt, and
 *   the reader signed on (00).
 * - Challenge: reader not enrolled for this terminal → 79; blocked → 80; else a fresh 16-byte
 *   challenge, the only one outstanding for the reader (a new one replaces it), valid
 *   DEFAULT_CHALLENGE_TTL_MS.
 * - Proof: 79 / 80 as above; the challenge must be the reader's outstanding one and unexpired (81);
 *   it is deleted whatever the outcome (single use); signature → 78; else signed on (00).
 * - Sessions: a sign-on opens (or renews) a session of DEFAULT_SESSION_MS; every message other than
 *   the sign-on steps needs one (76). Blocking a reader ends its session; sign-off ends it too.
 * - Negative reader list: blocked readers, refused (80) at every step and every message, until an
 *   operator unblocks them. A blocked reader keeps its key (an unblock needs no new enrolment).
 * - Terminal MAC key versions: the version each terminal's messages must use (1 until a key change),
 *   and, after a key change answered, the new version, accepted alongside until the terminal uses it.
 *
 * Every change is one transaction; nothing is written for a refused request, except that a proof
 * burns its challenge (so a signature cannot be tried twice against one challenge).
 */
import { createHash, randomBytes } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { openHostDb, statementCache, type HostDatabase, type HostSchema } from './store.js';
import { CHALLENGE_LENGTH, ENROLMENT_CODE_ALPHABET, READER_AUTH_CODES, verifyEnrolment, verifySignOnProof, type SignOnStep } from '../hostlink/reader-auth.js';
import type { ResponseCode } from '../hostlink/messages.js';
import { BadInputError, HiltError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { constantTimeEqual, toHex } from '../util/bytes.js';

/** PRAGMA application_id of the registry file: "HLTR". */
export const REGISTRY_APPLICATION_ID = 0x484c5452;
/** Enrolment codes expire after this (the admin API may ask for less or more, up to CODE_TTL_MAX_MS). */
export const DEFAULT_CODE_TTL_MS = 7 * 24 * 3600_000;
export const CODE_TTL_MAX_MS = 90 * 24 * 3600_000;
/** Characters of an enrolment code (5 bits each: 80 bits). */
export const ENROLMENT_CODE_CHARS = 16;
/** A sign-on challenge is good for this long. */
export const DEFAULT_CHALLENGE_TTL_MS = 60_000;
/** A sign-on holds for this long; then the reader must sign on again ("periodically thereafter"). */
export const DEFAULT_SESSION_MS = 12 * 3600_000;
/** Key versions are 1..255 (field 53, mac.ts). */
export const MAX_KEY_VERSION = 255;

export const TERMINAL_ID_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,6}[\x21-\x7e])?$/;
export const READER_ID_RE = /^[\x21-\x7e](?:[\x20-\x7e]{0,13}[\x21-\x7e])?$/;

export const REGISTRY_SCHEMA: HostSchema = {
  name: 'reader registry',
  applicationId: REGISTRY_APPLICATION_ID,
  migrations: [
    {
      version: 1,
      description: 'readers, enrolment codes, challenges, sessions, negative reader list, terminal key versions, events',
      sql: `
CREATE TABLE readers (
  reader_id TEXT PRIMARY KEY,
  terminal_id TEXT NOT NULL,
  public_key BLOB CHECK (public_key IS NULL OR length(public_key) = 65),
  created_at INTEGER NOT NULL,
  enrolled_at INTEGER,
  last_sign_on_at INTEGER,
  blocked_at INTEGER,
  blocked_reason TEXT,
  CHECK ((public_key IS NULL) = (enrolled_at IS NULL)),
  CHECK ((blocked_at IS NULL) = (blocked_reason IS NULL))
) STRICT;

CREATE TABLE enrolment_codes (
  code_hash BLOB PRIMARY KEY CHECK (length(code_hash) = 32),
  reader_id TEXT NOT NULL REFERENCES readers (reader_id),
  terminal_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
) STRICT;

CREATE TABLE challenges (
  reader_id TEXT PRIMARY KEY REFERENCES readers (reader_id),
  terminal_id TEXT NOT NULL,
  challenge BLOB NOT NULL CHECK (length(challenge) = ${CHALLENGE_LENGTH}),
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
  reader_id TEXT PRIMARY KEY REFERENCES readers (reader_id),
  terminal_id TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE terminal_keys (
  terminal_id TEXT PRIMARY KEY,
  key_version INTEGER NOT NULL CHECK (key_version BETWEEN 1 AND ${MAX_KEY_VERSION}),
  pending_version INTEGER CHECK (pending_version IS NULL OR pending_version = key_version + 1),
  changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE reader_events (
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  reader_id TEXT NOT NULL,
  terminal_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('code-issued', 'enrolled', 'signed-on', 'signed-off', 'blocked', 'unblocked', 'key-change')),
  details TEXT NOT NULL CHECK (json_valid(details))
) STRICT;
CREATE INDEX reader_events_reader ON reader_events (reader_id, id);
`,
    },
  ],
};

/** The registry refused an admin request: unknown reader (NOT_FOUND) or a bad argument (BAD_INPUT). */
export class RegistryError extends HiltError {
  readonly status: 400 | 404 | 409;
  constructor(status: 400 | 404 | 409, message: string) {
    super('BAD_INPUT', message);
    this.status = status;
  }
}

export type ReaderStatus = 'pending' | 'enrolled' | 'blocked';

export interface ReaderView {
  readerId: string;
  terminalId: string;
  status: ReaderStatus;
  /** Uncompressed P-256 public key, hex; null until enrolled. */
  publicKey: string | null;
  createdAt: number;
  enrolledAt: number | null;
  lastSignOnAt: number | null;
  /** When the current sign-on expires; null when not signed on. */
  signedOnUntil: number | null;
  blockedAt: number | null;
  blockedReason: string | null;
}

export interface IssuedCode {
  readerId: string;
  terminalId: string;
  code: string;
  expiresAt: number;
}

interface ReaderRow {
  reader_id: string;
  terminal_id: string;
  public_key: Uint8Array | null;
  created_at: number;
  enrolled_at: number | null;
  last_sign_on_at: number | null;
  blocked_at: number | null;
  blocked_reason: string | null;
}

export interface RegistryOptions {
  clock?: () => number;
  sessionMs?: number;
  challengeTtlMs?: number;
  /** Random bytes (tests may pin them); default node:crypto randomBytes. */
  random?: (n: number) => Uint8Array;
}

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

export function checkTerminalId(id: unknown): string {
  if (typeof id !== 'string' || !TERMINAL_ID_RE.test(id)) throw new RegistryError(400, `terminalId: expected 1 to 8 printable ASCII characters without surrounding spaces, got ${JSON.stringify(id)}`);
  return id;
}

export function checkReaderId(id: unknown): string {
  if (typeof id !== 'string' || !READER_ID_RE.test(id)) throw new RegistryError(400, `readerId: expected 1 to 15 printable ASCII characters without surrounding spaces, got ${JSON.stringify(id)}`);
  return id;
}

export class ReaderRegistry {
  readonly db: HostDatabase;
  readonly sessionMs: number;
  readonly challengeTtlMs: number;
  private readonly clock: () => number;
  private readonly random: (n: number) => Uint8Array;
  private closed = false;
  private readonly sql: (text: string) => BetterSqlite3.Statement;

  private constructor(db: HostDatabase, o: RegistryOptions) {
    this.db = db;
    this.sql = statementCache(db);
    this.clock = o.clock ?? Date.now;
    this.random = o.random ?? ((n) => new Uint8Array(randomBytes(n)));
    this.sessionMs = o.sessionMs ?? DEFAULT_SESSION_MS;
    this.challengeTtlMs = o.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
    assertInt(this.sessionMs, 'sessionMs', 1, 2 ** 31 - 1);
    assertInt(this.challengeTtlMs, 'challengeTtlMs', 1, 2 ** 31 - 1);
  }

  static open(path: string, o: RegistryOptions = {}): ReaderRegistry {
    return new ReaderRegistry(openHostDb(path, REGISTRY_SCHEMA, { clock: o.clock }), o);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private row(readerId: string): ReaderRow | undefined {
    return this.sql('SELECT * FROM readers WHERE reader_id = ?').get(readerId) as ReaderRow | undefined;
  }

  private event(at: number, readerId: string, terminalId: string, kind: string, details: Record<string, unknown> = {}): void {
    this.sql('INSERT INTO reader_events (at, reader_id, terminal_id, kind, details) VALUES (?, ?, ?, ?, ?)').run(at, readerId, terminalId, kind, JSON.stringify(details));
  }

  private openSession(now: number, readerId: string, terminalId: string): void {
    this.sql('INSERT INTO sessions (reader_id, terminal_id, started_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (reader_id) DO UPDATE SET terminal_id = excluded.terminal_id, started_at = excluded.started_at, expires_at = excluded.expires_at')
      .run(readerId, terminalId, now, now + this.sessionMs);
    this.sql('UPDATE readers SET last_sign_on_at = ? WHERE reader_id = ?').run(now, readerId);
  }

  // -------------------------------------------------------------------------------------------
  // Operator side (admin API)

  /** A new one-time enrolment code for (terminal, reader); registers the reader when new. */
  issueEnrolmentCode(terminalId: unknown, readerId: unknown, ttlMs: number = DEFAULT_CODE_TTL_MS): IssuedCode {
    const tid = checkTerminalId(terminalId);
    const rid = checkReaderId(readerId);
    if (!Number.isInteger(ttlMs) || ttlMs < 1_000 || ttlMs > CODE_TTL_MAX_MS) throw new RegistryError(400, `code lifetime: expected 1 s to ${CODE_TTL_MAX_MS / 86_400_000} days, got ${String(ttlMs)} ms`);
    const bytes = this.random(ENROLMENT_CODE_CHARS);
    const code = Array.from(bytes, (b) => ENROLMENT_CODE_ALPHABET[b & 31]).join('');
    const now = this.clock();
    this.db.transaction(() => {
      if (this.row(rid) === undefined) this.sql('INSERT INTO readers (reader_id, terminal_id, created_at) VALUES (?, ?, ?)').run(rid, tid, now);
      this.sql('INSERT INTO enrolment_codes (code_hash, reader_id, terminal_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(sha256(code), rid, tid, now, now + ttlMs);
      this.event(now, rid, tid, 'code-issued', { expiresAt: now + ttlMs });
    })();
    return { readerId: rid, terminalId: tid, code, expiresAt: now + ttlMs };
  }

  /** Puts a reader on the negative reader list (ends its session). */
  block(readerId: string, reason: unknown = 'blocked by operator'): ReaderView {
    if (typeof reason !== 'string' || reason.length < 1 || reason.length > 200) throw new RegistryError(400, 'reason: expected 1 to 200 characters');
    const now = this.clock();
    this.db.transaction(() => {
      const r = this.row(readerId);
      if (r === undefined) throw new RegistryError(404, `no reader ${JSON.stringify(readerId)}`);
      if (r.blocked_at !== null) return;
      this.sql('UPDATE readers SET blocked_at = ?, blocked_reason = ? WHERE reader_id = ?').run(now, reason, readerId);
      this.sql('DELETE FROM sessions WHERE reader_id = ?').run(readerId);
      this.sql('DELETE FROM challenges WHERE reader_id = ?').run(readerId);
      this.event(now, readerId, r.terminal_id, 'blocked', { reason });
    })();
    return this.reader(readerId) as ReaderView;
  }

  /** Takes a reader off the negative reader list (it must sign on again). */
  unblock(readerId: string): ReaderView {
    const now = this.clock();
    this.db.transaction(() => {
      const r = this.row(readerId);
      if (r === undefined) throw new RegistryError(404, `no reader ${JSON.stringify(readerId)}`);
      if (r.blocked_at === null) return;
      this.sql('UPDATE readers SET blocked_at = NULL, blocked_reason = NULL WHERE reader_id = ?').run(readerId);
      this.event(now, readerId, r.terminal_id, 'unblocked');
    })();
    return this.reader(readerId) as ReaderView;
  }

  private view(r: ReaderRow, now: number): ReaderView {
    const s = this.sql('SELECT expires_at FROM sessions WHERE reader_id = ? AND terminal_id = ? AND expires_at > ?').pluck().get(r.reader_id, r.terminal_id, now) as number | undefined;
    return {
      readerId: r.reader_id,
      terminalId: r.terminal_id,
      status: r.blocked_at !== null ? 'blocked' : r.public_key !== null ? 'enrolled' : 'pending',
      publicKey: r.public_key === null ? null : toHex(r.public_key),
      createdAt: r.created_at,
      enrolledAt: r.enrolled_at,
      lastSignOnAt: r.last_sign_on_at,
      signedOnUntil: s ?? null,
      blockedAt: r.blocked_at,
      blockedReason: r.blocked_reason,
    };
  }

  reader(readerId: string): ReaderView | null {
    const r = this.row(readerId);
    return r === undefined ? null : this.view(r, this.clock());
  }

  readers(): ReaderView[] {
    const now = this.clock();
    return (this.sql('SELECT * FROM readers ORDER BY reader_id').all() as ReaderRow[]).map((r) => this.view(r, now));
  }

  // -------------------------------------------------------------------------------------------
  // Host link side (the gateway)

  /** An enrolment (reader-auth.ts step 1): 00, 77, 80 or 78. */
  enrol(step: Extract<SignOnStep, { step: 'enrolment' }>): ResponseCode {
    const now = this.clock();
    return this.db.transaction((): ResponseCode => {
      const code = this.sql('SELECT * FROM enrolment_codes WHERE code_hash = ?').get(sha256(step.code)) as
        | { reader_id: string; terminal_id: string; expires_at: number; used_at: number | null }
        | undefined;
      if (code === undefined || code.used_at !== null || code.expires_at <= now || code.reader_id !== step.readerId || code.terminal_id !== step.terminalId) return READER_AUTH_CODES.badCode;
      const r = this.row(step.readerId);
      if (r === undefined) return READER_AUTH_CODES.badCode;
      if (r.blocked_at !== null) return READER_AUTH_CODES.blockedReader;
      if (!verifyEnrolment(step)) return READER_AUTH_CODES.badSignature;
      this.sql('UPDATE enrolment_codes SET used_at = ? WHERE code_hash = ?').run(now, sha256(step.code));
      this.sql('UPDATE readers SET terminal_id = ?, public_key = ?, enrolled_at = ? WHERE reader_id = ?').run(step.terminalId, step.publicKey, now, step.readerId);
      this.sql('DELETE FROM challenges WHERE reader_id = ?').run(step.readerId);
      this.openSession(now, step.readerId, step.terminalId);
      this.event(now, step.readerId, step.terminalId, 'enrolled', { publicKey: toHex(step.publicKey) });
      return READER_AUTH_CODES.enrolled;
    })();
  }

  /** The reader, when it is enrolled for this terminal; else the refusal (79 or 80). */
  private enrolled(terminalId: string, readerId: string): { row: ReaderRow } | { refusal: ResponseCode } {
    const r = this.row(readerId);
    if (r === undefined || r.public_key === null || r.terminal_id !== terminalId) return { refusal: READER_AUTH_CODES.unknownReader };
    if (r.blocked_at !== null) return { refusal: READER_AUTH_CODES.blockedReader };
    return { row: r };
  }

  /** Sign-on step 1: a challenge (00) or 79 / 80. */
  challenge(terminalId: string, readerId: string): { responseCode: ResponseCode; challenge?: Uint8Array } {
    const now = this.clock();
    return this.db.transaction(() => {
      const e = this.enrolled(terminalId, readerId);
      if ('refusal' in e) return { responseCode: e.refusal };
      const challenge = this.random(CHALLENGE_LENGTH);
      this.sql('INSERT INTO challenges (reader_id, terminal_id, challenge, issued_at, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (reader_id) DO UPDATE SET terminal_id = excluded.terminal_id, challenge = excluded.challenge, issued_at = excluded.issued_at, expires_at = excluded.expires_at')
        .run(readerId, terminalId, challenge, now, now + this.challengeTtlMs);
      return { responseCode: READER_AUTH_CODES.challengeIssued, challenge };
    })();
  }

  /** Sign-on step 2: 00, 79, 80, 81 or 78. */
  proof(step: Extract<SignOnStep, { step: 'proof' }>): ResponseCode {
    const now = this.clock();
    return this.db.transaction((): ResponseCode => {
      const e = this.enrolled(step.terminalId, step.readerId);
      if ('refusal' in e) return e.refusal;
      const c = this.sql('SELECT * FROM challenges WHERE reader_id = ?').get(step.readerId) as { terminal_id: string; challenge: Uint8Array; expires_at: number } | undefined;
      if (c === undefined || c.terminal_id !== step.terminalId || step.challenge.length !== CHALLENGE_LENGTH || !constantTimeEqual(c.challenge, step.challenge)) {
        return READER_AUTH_CODES.badChallenge;
      }
      this.sql('DELETE FROM challenges WHERE reader_id = ?').run(step.readerId);
      if (c.expires_at <= now) return READER_AUTH_CODES.badChallenge;
      if (!verifySignOnProof(step, e.row.public_key as Uint8Array)) return READER_AUTH_CODES.badSignature;
      this.openSession(now, step.readerId, step.terminalId);
      this.event(now, step.readerId, step.terminalId, 'signed-on', {});
      return READER_AUTH_CODES.signedOn;
    })();
  }

  /** Sign-off: ends the session (00), or the refusal of check(). */
  signOff(terminalId: string, readerId: string): ResponseCode {
    const refusal = this.check(terminalId, readerId);
    if (refusal !== null) return refusal;
    const now = this.clock();
    this.db.transaction(() => {
      this.sql('DELETE FROM sessions WHERE reader_id = ?').run(readerId);
      this.event(now, readerId, terminalId, 'signed-off', {});
    })();
    return READER_AUTH_CODES.signedOn;
  }

  /** The check of every message but the sign-on steps: null when the reader may go on, else 79, 80 or 76. */
  check(terminalId: string, readerId: string): ResponseCode | null {
    const e = this.enrolled(terminalId, readerId);
    if ('refusal' in e) return e.refusal;
    const s = this.sql('SELECT 1 FROM sessions WHERE reader_id = ? AND terminal_id = ? AND expires_at > ?').get(readerId, terminalId, this.clock());
    return s === undefined ? READER_AUTH_CODES.notSignedOn : null;
  }

  // -------------------------------------------------------------------------------------------
  // Terminal MAC key versions

  /** The key versions a terminal's messages may use: its current one, and a new one not yet used. */
  keyVersions(terminalId: string): { current: number; pending: number | null } {
    const r = this.sql('SELECT key_version, pending_version FROM terminal_keys WHERE terminal_id = ?').get(terminalId) as { key_version: number; pending_version: number | null } | undefined;
    return r === undefined ? { current: 1, pending: null } : { current: r.key_version, pending: r.pending_version };
  }

  /** A key change answered: the next version becomes acceptable (null when 255 is reached). */
  beginKeyChange(terminalId: string, readerId: string): number | null {
    const now = this.clock();
    return this.db.transaction(() => {
      const { current } = this.keyVersions(terminalId);
      if (current >= MAX_KEY_VERSION) return null;
      this.sql('INSERT INTO terminal_keys (terminal_id, key_version, pending_version, changed_at) VALUES (?, ?, ?, ?) ON CONFLICT (terminal_id) DO UPDATE SET pending_version = excluded.pending_version, changed_at = excluded.changed_at')
        .run(terminalId, current, current + 1, now);
      this.event(now, readerId, terminalId, 'key-change', { from: current, to: current + 1 });
      return current + 1;
    })();
  }

  /** A message authenticated under `version`: when it is the pending one, it becomes the current one. */
  keyUsed(terminalId: string, version: number): void {
    const { pending } = this.keyVersions(terminalId);
    if (pending === null || pending !== version) return;
    this.sql('UPDATE terminal_keys SET key_version = pending_version, pending_version = NULL, changed_at = ? WHERE terminal_id = ? AND pending_version = ?').run(this.clock(), terminalId, version);
  }
}

/** For admin input checks outside the class. */
export function assertTtlSeconds(v: unknown): number {
  if (v === undefined) return DEFAULT_CODE_TTL_MS;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v * 1000 > CODE_TTL_MAX_MS) throw new BadInputError(`ttlSeconds: expected an integer from 1 to ${CODE_TTL_MAX_MS / 1000}`);
  return v * 1000;
}
