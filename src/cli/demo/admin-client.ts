/**
 * The operator's side of the mock hosts' HTTP admin API (src/hosts/admin.ts), as the demo uses it:
 * enrolment codes, blocking a reader, the negative card file, and the issuer's books (cards,
 * totals, sequences, anomalies) that the reconciliation reads from the outside.
 */
import { HiltError } from '../../util/errors.js';
import type { AnomalyView, CardView, SequenceView, TotalsView } from '../../hosts/issuer.js';
import type { ReaderView } from '../../hosts/registry.js';

export class AdminApiError extends HiltError {
  readonly status: number;
  constructor(method: string, path: string, status: number, body: string) {
    super('PROTOCOL', `admin API ${method} ${path}: HTTP ${status} ${body.slice(0, 200)}`);
    this.status = status;
  }
}

export class AdminClient {
  private base: string;

  constructor(adminUrl: string) {
    this.base = adminUrl;
  }

  /** After the hosts restart (same port, but say so). */
  retarget(adminUrl: string): void {
    this.base = adminUrl;
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(new URL(path, this.base), {
      method,
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new AdminApiError(method, path, res.status, text);
    return JSON.parse(text) as T;
  }

  /** POST /readers: a one-time enrolment code for a reader of a terminal. */
  async enrolmentCode(terminalId: string, readerId: string): Promise<string> {
    return (await this.call<{ code: string }>('POST', '/readers', { terminalId, readerId })).code;
  }

  async blockReader(readerId: string, reason: string): Promise<ReaderView> {
    return this.call('POST', `/readers/${encodeURIComponent(readerId)}/block`, { reason });
  }

  async reader(readerId: string): Promise<ReaderView> {
    return this.call('GET', `/readers/${encodeURIComponent(readerId)}`);
  }

  async blockCard(serial: string, reason: string): Promise<{ version: number; added: number; removed: number }> {
    return this.call('POST', '/negative-cards', { add: [{ serial, reason }] });
  }

  async negativeCards(): Promise<{ version: number; cards: { serial: string; reason: string }[] }> {
    return this.call('GET', '/negative-cards');
  }

  /** GET /cards/:serial, null when the issuer has never seen the card. */
  async card(serial: string): Promise<CardView | null> {
    try {
      return await this.call<CardView>('GET', `/cards/${encodeURIComponent(serial)}`);
    } catch (e) {
      if (e instanceof AdminApiError && e.status === 404) return null;
      throw e;
    }
  }

  async totals(terminalId: string): Promise<TotalsView[]> {
    return (await this.call<{ totals: TotalsView[] }>('GET', `/totals?terminalId=${encodeURIComponent(terminalId)}`)).totals;
  }

  async sequence(terminalId: string, readerId: string): Promise<SequenceView | null> {
    const { sequences } = await this.call<{ sequences: SequenceView[] }>('GET', '/sequences');
    return sequences.find((s) => s.terminalId === terminalId && s.readerId === readerId) ?? null;
  }

  /** GET /anomalies; `source`: 'issuer' (found by the issuer) or 'terminal' (reported in an 0620). */
  async anomalies(filter: { serial?: string; terminalId?: string; kind?: string; source?: 'issuer' | 'terminal' } = {}): Promise<AnomalyView[]> {
    const q = new URLSearchParams({ limit: '10000' });
    if (filter.source !== undefined) q.set('source', filter.source);
    if (filter.serial !== undefined) q.set('serial', filter.serial);
    if (filter.terminalId !== undefined) q.set('terminalId', filter.terminalId);
    if (filter.kind !== undefined) q.set('kind', filter.kind);
    return (await this.call<{ anomalies: AnomalyView[] }>('GET', `/anomalies?${q.toString()}`)).anomalies;
  }
}
