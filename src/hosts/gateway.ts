/**
 * The gateway: the TCP server terminals connect to (the NEC paper's multi-service gateway). One
 * IsoChannel per connection (src/hostlink/channel.ts). For each message, in order:
 *
 * 1. Framing and codec: bytes that are not a frame (empty, oversized, bad header) or a frame that is
 *    not a message (garbage, truncated, unknown MTI) close the connection (the channel does it:
 *    without a readable message there is no one to answer). Nothing is stored.
 * 2. MAC, under the terminal's key for the message's key version (field 53):
 *    deriveTerminalKey(macMaster, 'mac', terminal id, version), for the terminal's current version or
 *    the one a key change has just handed out (registry.ts). A MAC that does not verify → 63, the
 *    message is not looked at further. No key for the version → the connection is closed (the
 *    answer could not be MACed with a key the terminal holds).
 * 3. The message's fields (messages.ts parsers): refused → 30 (format error).
 * 4. The reader (registry.ts): 0800 sign-on steps are the registry's (enrol, challenge, proof); every
 *    other message, network management included, needs the reader enrolled for this terminal (79),
 *    not on the negative reader list (80) and signed on (76).
 * 5. Network management is the gateway's own: sign-on, sign-off, echo, key change (the new MAC key,
 *    derived for the next version, wrapped under the terminal's KEK version 1, in an 0810 MACed with
 *    the old key). Everything else is routed by the routing table to a provider host (provider.ts):
 *    the first route whose MTIs, processing codes (field 3) and NII (field 24) match. No route → 40;
 *    the provider failed → 96.
 *
 * Bounds: MAX_CONNECTIONS at once; a connection idle for idleTimeoutMs is closed; at most
 * MAX_IN_FLIGHT_PER_CONNECTION requests of one connection are being handled at once (then the
 * gateway stops reading it; past the channel's queue the peer is disconnected). Refusals and
 * disconnections are reported through `onEvent` and counted in `stats`; none is stored.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { IsoChannel } from '../hostlink/channel.js';
import { IsoMacError, deriveTerminalKey, wrapKey } from '../hostlink/iso8583/mac.js';
import { Iso8583Error } from '../hostlink/iso8583/errors.js';
import type { IsoMessage } from '../hostlink/iso8583/message.js';
import { PROCESSING_CODES, RC, networkResponse, parseHiltMessage, refusal, type HiltMessage, type NetworkRequest, type ResponseCode } from '../hostlink/messages.js';
import { signOnResponse, signOnStep } from '../hostlink/reader-auth.js';
import { assertAesKey } from '../crypto/aes.js';
import { BadInputError, HiltError, TimeoutError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';
import { zeroize } from '../util/bytes.js';
import type { ProviderHost, ProviderParsed } from './provider.js';
import type { ReaderRegistry } from './registry.js';

/** Connections served at once; more are refused by the listening socket. */
export const MAX_CONNECTIONS = 1_024;
/** A connection with no message for this long is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 15 * 60_000;
/** Requests of one connection handled at once. */
export const MAX_IN_FLIGHT_PER_CONNECTION = 16;
/** Derived terminal MAC keys kept in memory (by terminal and version); past this the cache is emptied. */
export const MAX_CACHED_KEYS = 4_096;
/** The KEK version new MAC keys are wrapped under (key change). */
export const KEK_VERSION = 1;

/** A line of the routing table. */
export interface Route {
  /** The provider's name (ProviderHost.name). */
  provider: string;
  mtis: readonly string[];
  /** Field 3 values; absent: any (or none). */
  processingCodes?: readonly string[];
  /** Field 24; absent: any (or none). */
  nii?: number;
}

const PURSE_CODES = Object.values(PROCESSING_CODES);

// prettier-ignore
/**
 * Today's table: the e-money issuer takes the purse's transactions, its negative card file,
 * reconciliation, and the terminals' anomaly reports (0620: the purse terminal's card anomalies).
 */
export const DEFAULT_ROUTES: readonly Route[] = Object.freeze([
  { provider: 'emoney', mtis: ['0200', '0220', '0221', '0400', '0401'], processingCodes: PURSE_CODES },
  { provider: 'emoney', mtis: ['0300'] },
  { provider: 'emoney', mtis: ['0500'] },
  { provider: 'emoney', mtis: ['0620', '0621'] },
].map((r) => Object.freeze(r)));

export type GatewayEventName = 'listening' | 'connected' | 'disconnected' | 'refused' | 'bad-mac' | 'provider-error';

export interface GatewayEvent {
  event: GatewayEventName;
  remote?: string;
  terminalId?: string;
  readerId?: string;
  mti?: string;
  responseCode?: string;
  reason?: string;
}

export interface GatewayStats {
  connections: number;
  connectionsTotal: number;
  messages: number;
  refused: Record<string, number>;
  badMac: number;
  disconnectedForBadInput: number;
}

export interface GatewayOptions {
  registry: ReaderRegistry;
  providers: readonly ProviderHost[];
  routes?: readonly Route[];
  /** Master keys of the terminals' MAC keys and KEKs (copied; zeroed at close()). */
  macMaster: Uint8Array;
  kekMaster: Uint8Array;
  host?: string;
  /** 0: an ephemeral port. */
  port?: number;
  clock?: () => number;
  idleTimeoutMs?: number;
  maxConnections?: number;
  onEvent?: (e: GatewayEvent) => void;
}

const REQUEST_KINDS: readonly ProviderParsed['kind'][] = ['load-authorization', 'advice', 'reversal', 'negative-list', 'reconciliation', 'anomaly-report'];

function isProviderParsed(p: HiltMessage): p is ProviderParsed {
  return (REQUEST_KINDS as readonly string[]).includes(p.kind);
}

export class Gateway {
  readonly host: string;
  readonly stats: GatewayStats = { connections: 0, connectionsTotal: 0, messages: 0, refused: {}, badMac: 0, disconnectedForBadInput: 0 };
  private readonly server: Server;
  private readonly registry: ReaderRegistry;
  private readonly providers = new Map<string, ProviderHost>();
  private readonly routes: readonly Route[];
  private readonly macMaster: Uint8Array;
  private readonly kekMaster: Uint8Array;
  private readonly clock: () => number;
  private readonly idleTimeoutMs: number;
  private readonly onEvent: (e: GatewayEvent) => void;
  private readonly channels = new Set<IsoChannel>();
  private readonly serving = new Set<Promise<void>>();
  private readonly keyCache = new Map<string, Uint8Array>();
  private closed = false;
  private boundPort = 0;

  private constructor(o: GatewayOptions) {
    assertAesKey(o.macMaster, 'host MAC master key');
    assertAesKey(o.kekMaster, 'host KEK master key');
    this.registry = o.registry;
    for (const p of o.providers) this.providers.set(p.name, p);
    this.routes = o.routes ?? DEFAULT_ROUTES;
    for (const r of this.routes) {
      if (!this.providers.has(r.provider)) throw new BadInputError(`route to ${JSON.stringify(r.provider)}: no such provider (have ${[...this.providers.keys()].join(', ')})`);
    }
    this.macMaster = o.macMaster.slice();
    this.kekMaster = o.kekMaster.slice();
    this.host = o.host ?? '127.0.0.1';
    this.clock = o.clock ?? Date.now;
    this.idleTimeoutMs = o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    assertInt(this.idleTimeoutMs, 'idleTimeoutMs', 1, 2 ** 31 - 1);
    this.onEvent = o.onEvent ?? (() => undefined);
    this.server = createServer((socket) => this.accept(socket));
    this.server.maxConnections = o.maxConnections ?? MAX_CONNECTIONS;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(o: GatewayOptions): Promise<Gateway> {
    const g = new Gateway(o);
    const port = o.port ?? 0;
    assertInt(port, 'gateway port', 0, 65535);
    await new Promise<void>((resolve, reject) => {
      g.server.once('error', reject);
      g.server.listen(port, g.host, () => {
        g.server.off('error', reject);
        resolve();
      });
    });
    const addr = g.server.address();
    g.boundPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    g.onEvent({ event: 'listening', remote: `${g.host}:${g.boundPort}` });
    return g;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Stops listening, closes every connection, waits for their handlers. Providers are the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.all([...this.channels].map((c) => c.close()));
    await Promise.allSettled([...this.serving]);
    await stopped;
    this.forgetKeys();
    zeroize(this.macMaster, this.kekMaster);
  }

  // -------------------------------------------------------------------------------------------

  /** The MAC key of a message, by its terminal id and key version; undefined when none is valid. */
  private macKey(m: IsoMessage): Uint8Array | undefined {
    const tid = m.terminalId();
    const version = m.keyVersion();
    if (tid === undefined || tid === '' || version === undefined) return undefined;
    const { current, pending } = this.registry.keyVersions(tid);
    if (version !== current && version !== pending) return undefined;
    const id = `${version}|${tid}`;
    let key = this.keyCache.get(id);
    if (key === undefined) {
      if (this.keyCache.size >= MAX_CACHED_KEYS) this.forgetKeys();
      key = deriveTerminalKey(this.macMaster, 'mac', tid, version);
      this.keyCache.set(id, key);
    }
    return key;
  }

  private forgetKeys(): void {
    for (const k of this.keyCache.values()) zeroize(k);
    this.keyCache.clear();
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const ch = new IsoChannel(socket, { macKey: (m) => this.macKey(m) });
    this.channels.add(ch);
    this.stats.connections++;
    this.stats.connectionsTotal++;
    this.onEvent({ event: 'connected', remote });
    const done: Promise<void> = this.serve(ch, remote)
      .catch((e: unknown) => {
        this.onEvent({ event: 'disconnected', remote, reason: `internal: ${e instanceof Error ? e.message : String(e)}` });
        return ch.close();
      })
      .finally(() => {
        this.channels.delete(ch);
        this.serving.delete(done);
        this.stats.connections--;
      });
    this.serving.add(done);
  }

  private async serve(ch: IsoChannel, remote: string): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      let msg: IsoMessage;
      try {
        msg = await ch.receive(this.idleTimeoutMs);
      } catch (e) {
        if (e instanceof IsoMacError && e.reason === 'bad-mac' && e.isoMessage !== null && !ch.closed) {
          this.stats.badMac++;
          this.onEvent({ event: 'bad-mac', remote, terminalId: e.isoMessage.terminalId(), mti: e.isoMessage.mti, responseCode: RC.securityViolation });
          if (await this.refuse(ch, e.isoMessage, RC.securityViolation, remote)) continue;
        } else if (e instanceof IsoMacError) {
          this.stats.badMac++;
          this.onEvent({ event: 'bad-mac', remote, terminalId: e.isoMessage?.terminalId(), mti: e.isoMessage?.mti, reason: e.reason });
        } else if (e instanceof TimeoutError) {
          this.onEvent({ event: 'disconnected', remote, reason: 'idle' });
          await ch.close();
          break;
        }
        const reason = ch.closeReason;
        if (reason !== null) this.stats.disconnectedForBadInput++;
        await ch.close();
        this.onEvent({ event: 'disconnected', remote, reason: reason === null ? (e instanceof HiltError ? e.code : 'closed') : `${reason.code}: ${reason.message}` });
        break;
      }
      this.stats.messages++;
      const p: Promise<void> = this.onMessage(ch, msg, remote)
        .catch((e: unknown) => this.failed(ch, msg, e, remote))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= MAX_IN_FLIGHT_PER_CONNECTION) await Promise.race(inFlight);
    }
    await Promise.allSettled([...inFlight]);
  }

  /** A bug or a storage failure while handling a message: reported, answered 96, the host goes on. */
  private async failed(ch: IsoChannel, msg: IsoMessage, e: unknown, remote: string): Promise<void> {
    this.onEvent({ event: 'provider-error', remote, terminalId: msg.terminalId(), mti: msg.mti, reason: e instanceof Error ? e.message : String(e) });
    try {
      await this.refuse(ch, msg, RC.systemMalfunction, remote);
    } catch {
      await ch.close().catch(() => undefined);
    }
  }

  /** Sends a refusal; false when none can be built (the connection is then closed). */
  private async refuse(ch: IsoChannel, request: IsoMessage, rc: ResponseCode, remote: string): Promise<boolean> {
    this.stats.refused[rc] = (this.stats.refused[rc] ?? 0) + 1;
    this.onEvent({ event: 'refused', remote, terminalId: request.terminalId(), readerId: request.readerId(), mti: request.mti, responseCode: rc });
    let answer: IsoMessage;
    try {
      answer = refusal(request, { responseCode: rc, at: new Date(this.clock()) });
    } catch {
      await ch.close();
      return false;
    }
    return this.send(ch, answer);
  }

  private async send(ch: IsoChannel, answer: IsoMessage): Promise<boolean> {
    try {
      await ch.send(answer);
      return true;
    } catch {
      await ch.close();
      return false;
    }
  }

  private async onMessage(ch: IsoChannel, msg: IsoMessage, remote: string): Promise<void> {
    let parsed: HiltMessage;
    try {
      parsed = parseHiltMessage(msg);
    } catch (e) {
      if (!(e instanceof Iso8583Error)) throw e;
      await this.refuse(ch, msg, RC.formatError, remote);
      return;
    }
    if (parsed.kind === 'network') {
      this.registry.keyUsed(parsed.data.header.terminalId, parsed.data.header.keyVersion);
      await this.network(ch, msg, parsed.data, remote);
      return;
    }
    if (!isProviderParsed(parsed)) return; // responses never reach receive()
    const { terminalId, readerId, keyVersion } = parsed.data.header;
    this.registry.keyUsed(terminalId, keyVersion);
    const refused = this.registry.check(terminalId, readerId);
    if (refused !== null) {
      await this.refuse(ch, msg, refused, remote);
      return;
    }
    const provider = this.route(msg);
    if (provider === undefined) {
      await this.refuse(ch, msg, RC.notSupported, remote);
      return;
    }
    let answer: IsoMessage;
    try {
      answer = await provider.handle({ message: msg, parsed });
    } catch (e) {
      this.onEvent({ event: 'provider-error', remote, terminalId, mti: msg.mti, reason: e instanceof Error ? e.message : String(e) });
      await this.refuse(ch, msg, RC.systemMalfunction, remote);
      return;
    }
    const rc = answer.responseCode();
    if (rc !== undefined && rc !== RC.approved && rc !== RC.duplicate) this.onEvent({ event: 'refused', remote, terminalId, readerId, mti: msg.mti, responseCode: rc });
    await this.send(ch, answer);
  }

  /** The provider of a message by the routing table. */
  route(msg: IsoMessage): ProviderHost | undefined {
    const pc = msg.text(3);
    const niiText = msg.text(24);
    const nii = niiText === undefined ? undefined : Number(niiText);
    for (const r of this.routes) {
      if (!r.mtis.includes(msg.mti)) continue;
      if (r.processingCodes !== undefined && (pc === undefined || !r.processingCodes.includes(pc))) continue;
      if (r.nii !== undefined && r.nii !== nii) continue;
      return this.providers.get(r.provider);
    }
    return undefined;
  }

  private async network(ch: IsoChannel, msg: IsoMessage, req: NetworkRequest, remote: string): Promise<void> {
    const at = new Date(this.clock());
    const { terminalId, readerId } = req.header;
    const answer = (responseCode: ResponseCode): IsoMessage => networkResponse(msg, { responseCode, at });
    let out: IsoMessage;
    switch (req.code) {
      case 'signOn': {
        let step;
        try {
          step = signOnStep(req);
        } catch (e) {
          if (!(e instanceof Iso8583Error)) throw e;
          await this.refuse(ch, msg, RC.formatError, remote);
          return;
        }
        if (step.step === 'enrolment') out = answer(this.registry.enrol(step));
        else if (step.step === 'proof') out = answer(this.registry.proof(step));
        else {
          const c = this.registry.challenge(terminalId, readerId);
          out = signOnResponse(msg, { responseCode: c.responseCode, at, challenge: c.challenge });
        }
        break;
      }
      case 'signOff':
        out = answer(this.registry.signOff(terminalId, readerId));
        break;
      case 'echo':
        out = answer(this.registry.check(terminalId, readerId) ?? RC.approved);
        break;
      case 'keyChange': {
        const refused = this.registry.check(terminalId, readerId);
        if (refused !== null) {
          out = answer(refused);
          break;
        }
        const version = this.registry.beginKeyChange(terminalId, readerId);
        if (version === null) {
          out = answer(RC.invalidTransaction);
          break;
        }
        const key = deriveTerminalKey(this.macMaster, 'mac', terminalId, version);
        const kek = deriveTerminalKey(this.kekMaster, 'kek', terminalId, KEK_VERSION);
        try {
          out = networkResponse(msg, { responseCode: RC.approved, at, keyChange: { newKeyVersion: version, key: wrapKey(kek, key) } });
        } finally {
          zeroize(key, kek);
        }
        break;
      }
    }
    const rc = out.responseCode();
    if (rc !== RC.approved) {
      this.stats.refused[rc ?? '?'] = (this.stats.refused[rc ?? '?'] ?? 0) + 1;
      this.onEvent({ event: 'refused', remote, terminalId, readerId, mti: msg.mti, responseCode: rc });
    }
    await this.send(ch, out);
  }
}
