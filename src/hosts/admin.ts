/**
 * The hosts' admin API: HTTP with JSON bodies (node:http), for operators and tests. It binds to the
 * loopback address by default and has no authentication: it is the operator console of a mock host,
 * not something to expose.
 *
 *   | Method | Path                    | Body / query                                  | Answer                                   |
 *   |--------|-------------------------|-----------------------------------------------|------------------------------------------|
 *   | GET    | /health                 |                                               | 200 { status, gateway, issuer, readers } |
 *   | POST   | /readers                | { terminalId, readerId, ttlSeconds? }         | 201 { terminalId, readerId, code, expiresAt } |
 *   | GET    | /readers                |                                               | 200 { readers: [reader + sequence] }     |
 *   | GET    | /readers/:id            |                                               | 200 reader, 404                          |
 *   | POST   | /readers/:id/block      | { reason? }                                   | 200 reader (negative reader list), 404   |
 *   | POST   | /readers/:id/unblock    |                                               | 200 reader, 404                          |
 *   | GET    | /negative-cards         |                                               | 200 { version, cards }                   |
 *   | POST   | /negative-cards         | { add?: [{ serial, reason }], remove?: [serial] } | 200 { version, added, removed }      |
 *   | GET    | /anomalies              | ?kind= &source= &serial= &terminalId= &limit= | 200 { anomalies }                        |
 *   | GET    | /totals                 | ?terminalId= &currency=                       | 200 { totals: [{ terminalId, currency, totals }] } |
 *   | GET    | /cards/:serial          |                                               | 200 card (shadow balance, counters), 404 |
 *   | GET    | /sequences              |                                               | 200 { sequences } (reader sequence coherence) |
 *
 * Errors are `{ "error": { "code", "message" } }` with 400 (bad JSON, bad field), 404 (no such
 * route or object), 405 (method; with Allow), 413 (body above MAX_BODY_BYTES), 500 (a bug: logged).
 * Times are milliseconds since the epoch; serials are upper-case hex; money is integer minor units.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ReaderRegistry } from './registry.js';
import { RegistryError, assertTtlSeconds } from './registry.js';
import type { IssuerHost } from './issuer.js';
import type { Gateway } from './gateway.js';
import { BadInputError, HiltError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

/** Largest request body. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Bound of reading one request (headers and body). */
export const REQUEST_TIMEOUT_MS = 10_000;

export interface AdminOptions {
  registry: ReaderRegistry;
  issuer: IssuerHost;
  gateway?: Gateway;
  host?: string;
  /** 0: an ephemeral port. */
  port?: number;
  /** Unexpected failures (500) are reported here. */
  onError?: (e: unknown) => void;
}

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** A handler's answer with a status other than 200. */
class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {}
}

type Handler = (ctx: { params: string[]; query: URLSearchParams; body: () => Promise<unknown> }) => unknown | Promise<unknown>;

interface RouteDef {
  pattern: RegExp;
  methods: Partial<Record<'GET' | 'POST', Handler>>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'TOO_LARGE', `request body above ${MAX_BODY_BYTES} bytes`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HttpError(400, 'BAD_JSON', `the body is not JSON: ${(e as Error).message}`);
  }
}

function object(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'BAD_INPUT', 'expected a JSON object');
  return v as Record<string, unknown>;
}

function optionalInt(q: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (!/^[0-9]+$/.test(v)) throw new BadInputError(`${name}: expected an integer, got ${JSON.stringify(v)}`);
  const n = Number(v);
  assertInt(n, name, min, max);
  return n;
}

/** A route as `GET /` lists it: its path with a `:param` for each parameter, and its methods. */
function describeRoute(r: RouteDef): { path: string; methods: string[] } {
  const path = r.pattern.source.replace(/^\^|\$$/g, '').replace(/\(\[\^\/\]\+\)/g, ':param').replace(/\\\//g, '/');
  return { path, methods: Object.keys(r.methods) };
}

export class AdminServer {
  readonly host: string;
  private readonly server: Server;
  private readonly routes: RouteDef[];
  private readonly o: AdminOptions;
  private boundPort = 0;

  private constructor(o: AdminOptions) {
    this.o = o;
    this.host = o.host ?? '127.0.0.1';
    this.routes = this.table();
    this.server = createServer((req, res) => {
      this.dispatch(req, res).catch((e: unknown) => {
        o.onError?.(e);
        if (!res.headersSent) send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
        else res.destroy();
      });
    });
    this.server.requestTimeout = REQUEST_TIMEOUT_MS;
    this.server.headersTimeout = REQUEST_TIMEOUT_MS;
  }

  static async start(o: AdminOptions): Promise<AdminServer> {
    const a = new AdminServer(o);
    const port = o.port ?? 0;
    assertInt(port, 'admin port', 0, 65535);
    await new Promise<void>((resolve, reject) => {
      a.server.once('error', reject);
      a.server.listen(port, a.host, () => {
        a.server.off('error', reject);
        resolve();
      });
    });
    const addr = a.server.address();
    a.boundPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    return a;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${h}:${this.boundPort}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private table(): RouteDef[] {
    const { registry, issuer } = this.o;
    const reader = (id: string) => {
      const r = registry.reader(id);
      if (r === null) throw new HttpError(404, 'NOT_FOUND', `no reader ${JSON.stringify(id)}`);
      return this.withSequence(r);
    };
    return [
      { pattern: /^\/$/, methods: { GET: () => ({ service: 'hilt mock hosts: admin API', routes: this.routes.map(describeRoute) }) } },
      {
        pattern: /^\/health$/,
        methods: {
          GET: () => ({
            status: 'ok',
            gateway: this.o.gateway === undefined ? null : { port: this.o.gateway.port, ...this.o.gateway.stats },
            issuer: { negativeCardVersion: issuer.negativeVersion(), limits: issuer.limits, ...issuer.stats },
            readers: registry.readers().length,
          }),
        },
      },
      {
        pattern: /^\/readers$/,
        methods: {
          GET: () => ({ readers: registry.readers().map((r) => this.withSequence(r)) }),
          POST: async ({ body }) => {
            const b = object(await body());
            return new Reply(201, registry.issueEnrolmentCode(b.terminalId, b.readerId, assertTtlSeconds(b.ttlSeconds)));
          },
        },
      },
      { pattern: /^\/readers\/([^/]+)$/, methods: { GET: ({ params }) => reader(params[0]) } },
      {
        pattern: /^\/readers\/([^/]+)\/block$/,
        methods: {
          POST: async ({ params, body }) => {
            const b = object(await body());
            registry.block(params[0], b.reason ?? 'blocked by operator');
            return reader(params[0]);
          },
        },
      },
      {
        pattern: /^\/readers\/([^/]+)\/unblock$/,
        methods: {
          POST: ({ params }) => {
            registry.unblock(params[0]);
            return reader(params[0]);
          },
        },
      },
      {
        pattern: /^\/negative-cards$/,
        methods: {
          GET: () => issuer.negativeCards(),
          POST: async ({ body }) => {
            const b = object(await body());
            return issuer.editNegativeCards({ add: b.add as never, remove: b.remove as never });
          },
        },
      },
      {
        pattern: /^\/anomalies$/,
        methods: {
          GET: ({ query }) => ({
            anomalies: issuer.anomalies({
              kind: query.get('kind') ?? undefined,
              source: query.get('source') ?? undefined,
              serial: query.get('serial') ?? undefined,
              terminalId: query.get('terminalId') ?? undefined,
              limit: optionalInt(query, 'limit', 1, 10_000),
            }),
          }),
        },
      },
      {
        pattern: /^\/totals$/,
        methods: {
          GET: ({ query }) => {
            const tid = query.get('terminalId');
            const cur = query.get('currency');
            return { totals: issuer.allTotals().filter((t) => (tid === null || t.terminalId === tid) && (cur === null || t.currency === cur)) };
          },
        },
      },
      {
        pattern: /^\/cards\/([^/]+)$/,
        methods: {
          GET: ({ params }) => {
            const c = issuer.cardView(params[0]);
            if (c === null) throw new HttpError(404, 'NOT_FOUND', `no card ${params[0]}`);
            return c;
          },
        },
      },
      { pattern: /^\/sequences$/, methods: { GET: () => ({ sequences: issuer.sequences() }) } },
    ];
  }

  private withSequence<T extends { terminalId: string; readerId: string }>(r: T): T & { sequence: { lastSequence: number; advices: number; missing: { from: number; to: number }[] } | null } {
    const s = this.o.issuer.sequences().find((x) => x.terminalId === r.terminalId && x.readerId === r.readerId);
    return { ...r, sequence: s === undefined ? null : { lastSequence: s.lastSequence, advices: s.advices, missing: s.missing } };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      const path = url.pathname.replace(/\/+$/, '') || '/';
      const route = this.routes.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m !== null);
      if (route === undefined || route.m === null) throw new HttpError(404, 'NOT_FOUND', `no route ${req.method ?? ''} ${path}`);
      const method = req.method === 'GET' || req.method === 'POST' ? req.method : undefined;
      const handler = method === undefined ? undefined : route.r.methods[method];
      if (handler === undefined) {
        const allow = Object.keys(route.r.methods).join(', ');
        throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed on ${path} (allowed: ${allow})`, { allow });
      }
      let params: string[];
      try {
        params = route.m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        throw new HttpError(400, 'BAD_INPUT', 'malformed percent-encoding in the path');
      }
      const result = await handler({ params, query: url.searchParams, body: () => readBody(req) });
      if (result instanceof Reply) send(res, result.status, result.body);
      else send(res, 200, result);
    } catch (e) {
      if (e instanceof HttpError) send(res, e.status, { error: { code: e.code, message: e.message } }, e.headers);
      else if (e instanceof RegistryError) send(res, e.status, { error: { code: e.status === 404 ? 'NOT_FOUND' : 'BAD_INPUT', message: e.message } });
      else if (e instanceof HiltError && e.code === 'BAD_INPUT') send(res, 400, { error: { code: 'BAD_INPUT', message: e.message } });
      else throw e;
    }
  }
}
