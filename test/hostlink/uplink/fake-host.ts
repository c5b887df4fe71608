/**
 * A small gateway for the uplink tests: a real TCP server on an ephemeral loopback port, one
 * IsoChannel per connection, the real message parsers and the real reader-authentication checks
 * (reader-auth.ts, host side). State is in memory (a test inspects it directly); what the tests need
 * to break is a hook: close the connection before or after the "commit" of an advice, hold an
 * answer back, answer with a given code, block a reader, expire sessions.
 *
 * It keeps advices exactly as the real issuer must: applied once per (terminal id, STAN), a repeat
 * answered 94. Certificates are verified with the TEST purse master key, so a wrong purse record in
 * an advice is refused (05), and load authorizations get a real load cryptogram.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { IsoChannel } from '../../../src/hostlink/channel.js';
import type { IsoMessage } from '../../../src/hostlink/iso8583/message.js';
import { IsoMacError } from '../../../src/hostlink/iso8583/mac.js';
import {
  RC,
  adviceResponse,
  anomalyReportResponse,
  chunkNegativeListChanges,
  loadAuthorizationResponse,
  negativeListResponse,
  networkResponse,
  parseAdviceRequest,
  parseAnomalyReportRequest,
  parseLoadAuthorizationRequest,
  parseNegativeListRequest,
  parseNetworkRequest,
  parseReversalRequest,
  refusal,
  reversalResponse,
  type ReversalRequest,
  type AdviceRequest,
  type AnomalyReportRequest,
  type NegativeListChange,
  type ResponseCode,
} from '../../../src/hostlink/messages.js';
import { signOnResponse, signOnStep, verifyEnrolment, verifySignOnProof } from '../../../src/hostlink/reader-auth.js';
import { testTerminalMacKey } from '../../../src/hostlink/test-keys.js';
import { encodePurseDateTime, loadCryptogram, purseCardKey, testPurseMasterKey, verifyPurseCertificate } from '../../../src/crypto/purse-certificate.js';
import { toHex } from '../../../src/util/bytes.js';

export type AdviceFault = 'close-before-commit' | 'close-after-commit' | 'no-answer' | ResponseCode;

export interface FakeHostHooks {
  /** Called for each advice before it is applied; a fault breaks the exchange as named. */
  advice?: (a: AdviceRequest, key: string) => AdviceFault | undefined;
  /** Called for each load authorization; 'no-answer' holds the 0210 back, a code declines. */
  load?: () => 'no-answer' | ResponseCode | undefined;
  /** Called for each 0400/0401; 'no-answer' holds the 0410 back, a code answers with it (default 00). */
  reversal?: (r: ReversalRequest) => 'no-answer' | ResponseCode | undefined;
}

interface Reader {
  publicKey: Uint8Array | null;
  blocked: boolean;
}

interface Connection {
  channel: IsoChannel;
  signedOnUntil: number;
  challenge: Uint8Array | null;
}

const SESSION_MS = 60_000;

export class FakeHost {
  port = 0;
  hooks: FakeHostHooks = {};
  /** Every 0400/0401 received, with the 0200's STAN and what it was answered. */
  readonly reversalsReceived: { mti: string; originalStan: number; answered: string }[] = [];
  /** Applications per key `terminal/STAN`: exactly once means every value is 1. */
  readonly applied = new Map<string, number>();
  /** The applied advices, in the order they were applied. */
  readonly appliedOrder: string[] = [];
  /** Anomaly reports (0620) applied, per key `terminal/anomaly sequence`: exactly once means 1 each. */
  readonly reports = new Map<string, number>();
  /** Every report received (originals and repeats), in order. */
  readonly reportsReceived: Array<{ mti: string; key: string; report: AnomalyReportRequest }> = [];
  /** First applications of advices (`txn/<key>`) and reports (`anomaly/<key>`), in order. */
  readonly arrivals: string[] = [];
  /** Every advice received (originals and repeats), in order. */
  readonly received: Array<{ mti: string; key: string; advice: AdviceRequest }> = [];
  readonly readers = new Map<string, Reader>();
  readonly codes = new Map<string, string>();
  /** Negative list: versions[i] holds the changes from version i to i + 1. */
  readonly versions: NegativeListChange[][] = [];
  /** Deltas are served only from this version on; older ones get a snapshot. */
  deltaFloor = 0;
  /** Chunk size of field 63 (small in tests, so lists come in several chunks). */
  chunkBytes = 999;
  /** Certificates refused (wrong purse record). */
  badCertificates = 0;
  /** Advices answered 94. */
  duplicates = 0;
  signOns = 0;
  connections = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly channels = new Set<Connection>();

  static async start(port = 0): Promise<FakeHost> {
    const h = new FakeHost();
    await h.listen(port);
    return h;
  }

  async listen(port = this.port): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops listening and cuts every connection (a host crash, as the network sees it). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server !== null) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Cuts every open connection, keeps listening (a network cut). */
  cutConnections(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  issueCode(terminalId: string, readerId: string): string {
    const code = Array.from(randomBytes(10), (b) => '0123456789ABCDEFGHJKMNPQRSTVWXYZ'[b & 31]).join('');
    this.codes.set(code, `${terminalId}/${readerId}`);
    return code;
  }

  block(terminalId: string, readerId: string): void {
    const r = this.readers.get(`${terminalId}/${readerId}`) ?? { publicKey: null, blocked: false };
    r.blocked = true;
    this.readers.set(`${terminalId}/${readerId}`, r);
  }

  expireSessions(): void {
    for (const c of this.channels) c.signedOnUntil = 0;
  }

  negativeVersion(): number {
    return this.versions.length;
  }

  /** Publishes a new negative-list version with these changes. */
  publish(changes: NegativeListChange[]): number {
    this.versions.push(changes);
    return this.versions.length;
  }

  /** The listed cards at the current version, hex → reason. */
  negativeState(upTo = this.versions.length): Map<string, string> {
    const state = new Map<string, string>();
    for (const changes of this.versions.slice(0, upTo)) {
      for (const c of changes) {
        const k = toHex(c.serial).toUpperCase();
        if (c.action === 'add') state.set(k, c.reason);
        else state.delete(k);
      }
    }
    return state;
  }

  private accept(socket: Socket): void {
    this.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const conn: Connection = {
      channel: new IsoChannel(socket, { macKey: (m) => testTerminalMacKey(m.terminalId() ?? '', m.keyVersion() ?? 1), closeGraceMs: 100 }),
      signedOnUntil: 0,
      challenge: null,
    };
    this.channels.add(conn);
    void this.serve(conn).finally(() => this.channels.delete(conn));
  }

  private async serve(conn: Connection): Promise<void> {
    for (;;) {
      let req: IsoMessage;
      try {
        req = await conn.channel.receive();
      } catch (e) {
        if (e instanceof IsoMacError && e.isoMessage !== null) {
          await this.reply(conn, refusal(e.isoMessage, { responseCode: RC.securityViolation, at: new Date() }));
          continue;
        }
        return;
      }
      let answer: IsoMessage | null;
      try {
        answer = this.handle(conn, req);
      } catch {
        answer = refusal(req, { responseCode: RC.formatError, at: new Date() });
      }
      if (answer !== null) await this.reply(conn, answer);
    }
  }

  private async reply(conn: Connection, m: IsoMessage): Promise<void> {
    try {
      await conn.channel.send(m);
    } catch {
      // connection gone
    }
  }

  private reader(m: IsoMessage): Reader {
    const k = `${m.terminalId()}/${m.readerId()}`;
    let r = this.readers.get(k);
    if (r === undefined) {
      r = { publicKey: null, blocked: false };
      this.readers.set(k, r);
    }
    return r;
  }

  /** The answer to a request, or null to send none (a fault). */
  private handle(conn: Connection, req: IsoMessage): IsoMessage | null {
    const at = new Date();
    const reader = this.reader(req);
    if (req.mti === '0800') {
      const n = parseNetworkRequest(req);
      if (n.code === 'signOn') return this.signOn(conn, req, reader);
      if (reader.blocked) return refusal(req, { responseCode: RC.blockedReader, at });
      if (conn.signedOnUntil < Date.now()) return refusal(req, { responseCode: RC.readerNotSignedOn, at });
      return networkResponse(req, { responseCode: n.code === 'echo' ? RC.approved : RC.notSupported, at });
    }
    if (reader.blocked) return refusal(req, { responseCode: RC.blockedReader, at });
    if (conn.signedOnUntil < Date.now()) return refusal(req, { responseCode: RC.readerNotSignedOn, at });
    switch (req.mti) {
      case '0220':
      case '0221':
        return this.advice(conn, req);
      case '0620':
      case '0621':
        return this.report(req);
      case '0300':
        return this.negativeList(req);
      case '0200':
        return this.loadAuthorization(req, this.hooks.load?.());
      case '0400':
      case '0401': {
        const r = parseReversalRequest(req);
        const fault = this.hooks.reversal?.(r);
        this.reversalsReceived.push({ mti: req.mti, originalStan: r.original.stan, answered: fault ?? RC.approved });
        if (fault === 'no-answer') return null;
        return reversalResponse(req, { responseCode: fault ?? RC.approved, at });
      }
      default:
        return refusal(req, { responseCode: RC.notSupported, at });
    }
  }

  private signOn(conn: Connection, req: IsoMessage, reader: Reader): IsoMessage {
    const at = new Date();
    const step = signOnStep(parseNetworkRequest(req));
    const key = `${step.terminalId}/${step.readerId}`;
    if (reader.blocked) return signOnResponse(req, { responseCode: RC.blockedReader, at });
    if (step.step === 'enrolment') {
      if (this.codes.get(step.code) !== key) return signOnResponse(req, { responseCode: RC.badEnrolmentCode, at });
      if (!verifyEnrolment(step)) return signOnResponse(req, { responseCode: RC.badReaderSignature, at });
      this.codes.delete(step.code);
      reader.publicKey = step.publicKey;
      conn.signedOnUntil = Date.now() + SESSION_MS;
      this.signOns++;
      return signOnResponse(req, { responseCode: RC.approved, at });
    }
    if (reader.publicKey === null) return signOnResponse(req, { responseCode: RC.unknownReader, at });
    if (step.step === 'challenge') {
      conn.challenge = randomBytes(16);
      return signOnResponse(req, { responseCode: RC.approved, at, challenge: conn.challenge });
    }
    const expected = conn.challenge;
    conn.challenge = null;
    if (expected === null || toHex(expected) !== toHex(step.challenge)) return signOnResponse(req, { responseCode: RC.badChallenge, at });
    if (!verifySignOnProof(step, reader.publicKey)) return signOnResponse(req, { responseCode: RC.badReaderSignature, at });
    conn.signedOnUntil = Date.now() + SESSION_MS;
    this.signOns++;
    return signOnResponse(req, { responseCode: RC.approved, at });
  }

  private advice(conn: Connection, req: IsoMessage): IsoMessage | null {
    const at = new Date();
    const a = parseAdviceRequest(req);
    const key = `${a.header.terminalId}/${a.header.stan}`;
    this.received.push({ mti: req.mti, key, advice: a });
    if (a.purse !== undefined) {
      const cardKey = purseCardKey(testPurseMasterKey(), a.purse.serial);
      if (!verifyPurseCertificate(cardKey, a.purse, a.purse.certificate)) {
        this.badCertificates++;
        return adviceResponse(req, { responseCode: RC.doNotHonour, at });
      }
    }
    const fault = this.hooks.advice?.(a, key);
    if (fault === 'close-before-commit') {
      void conn.channel.close();
      return null;
    }
    if (fault !== undefined && fault !== 'close-after-commit' && fault !== 'no-answer') return adviceResponse(req, { responseCode: fault, at });
    if (this.applied.has(key)) {
      this.duplicates++;
      return adviceResponse(req, { responseCode: RC.duplicate, at });
    }
    this.applied.set(key, 1);
    this.appliedOrder.push(key);
    this.arrivals.push(`txn/${key}`);
    if (fault === 'close-after-commit') {
      void conn.channel.close();
      return null;
    }
    if (fault === 'no-answer') return null;
    return adviceResponse(req, { responseCode: RC.approved, at });
  }

  private report(req: IsoMessage): IsoMessage {
    const r = parseAnomalyReportRequest(req);
    const key = `${r.header.terminalId}/${r.header.stan}`;
    this.reportsReceived.push({ mti: req.mti, key, report: r });
    const seen = this.reports.get(key);
    if (seen !== undefined) {
      return anomalyReportResponse(req, { responseCode: RC.duplicate, at: new Date() });
    }
    this.reports.set(key, 1);
    this.arrivals.push(`anomaly/${key}`);
    return anomalyReportResponse(req, { responseCode: RC.approved, at: new Date() });
  }

  private negativeList(req: IsoMessage): IsoMessage {
    const at = new Date();
    const r = parseNegativeListRequest(req);
    const current = this.versions.length;
    if (r.version > current) return negativeListResponse(req, { responseCode: RC.recordNotFound, at });
    let kind: 'delta' | 'snapshot';
    let changes: NegativeListChange[];
    if (r.version === current) {
      kind = 'delta';
      changes = [];
    } else if (r.version >= this.deltaFloor && r.version > 0) {
      kind = 'delta';
      changes = this.versions.slice(r.version).flat();
    } else {
      kind = 'snapshot';
      changes = [...this.negativeState()].map(([hex, reason]) => ({ action: 'add' as const, serial: Uint8Array.from(Buffer.from(hex, 'hex')), reason }));
    }
    if (r.version === current) {
      return negativeListResponse(req, { responseCode: RC.approved, at, update: { kind, fromVersion: current, toVersion: current, chunk: 0, chunkCount: 1, changes: [] } });
    }
    const chunks = chunkNegativeListChanges(changes, this.chunkBytes);
    if (r.chunk >= chunks.length) return refusal(req, { responseCode: RC.formatError, at });
    return negativeListResponse(req, {
      responseCode: RC.approved,
      at,
      update: { kind, fromVersion: r.version, toVersion: current, chunk: r.chunk, chunkCount: chunks.length, changes: chunks[r.chunk] },
    });
  }

  private loadAuthorization(req: IsoMessage, fault: 'no-answer' | ResponseCode | undefined): IsoMessage | null {
    const at = new Date();
    if (fault === 'no-answer') return null;
    if (fault !== undefined) return loadAuthorizationResponse(req, { responseCode: fault, at });
    const r = parseLoadAuthorizationRequest(req);
    const issuerReference = `R${String(r.header.stan).padStart(11, '0')}`;
    const terminalId = Uint8Array.from((req.text(41) as string).split(''), (c) => c.charCodeAt(0));
    const cryptogram = loadCryptogram(purseCardKey(testPurseMasterKey(), r.serial), {
      serial: r.serial,
      counter: r.cardCounter,
      amount: r.amount.minor,
      currency: Number(r.amount.currency),
      terminalId,
      terminalSequence: r.header.stan,
      dateTime: encodePurseDateTime(r.dateTime),
      issuerReference: Uint8Array.from(issuerReference.split(''), (c) => c.charCodeAt(0)),
    });
    return loadAuthorizationResponse(req, { responseCode: RC.approved, at, issuerReference, authorizationId: 'A00001', loadCryptogram: cryptogram });
  }
}
