/**
 * The real mock hosts (src/hosts: gateway, reader registry, e-money issuer, admin API) for the
 * uplink's integration and fault tests, and the count of what a terminal's journal got applied on
 * them, read from the outside through the admin API (/sequences, /totals, /cards, /anomalies).
 */
import { startHosts, type RunningHosts } from '../../../src/hosts/index.js';
import type { Journal, JournalRow } from '../../../src/terminal/journal/index.js';

export async function adminGet<T>(hosts: { adminUrl: string }, path: string): Promise<T> {
  const res = await fetch(new URL(path, hosts.adminUrl));
  const body = (await res.json()) as T;
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function adminPost<T>(hosts: { adminUrl: string }, path: string, body: unknown): Promise<T> {
  const res = await fetch(new URL(path, hosts.adminUrl), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await res.json()) as T;
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** An operator-issued one-time enrolment code (POST /readers). */
export async function issueCode(hosts: { adminUrl: string }, terminalId: string, readerId: string): Promise<string> {
  return (await adminPost<{ code: string }>(hosts, '/readers', { terminalId, readerId })).code;
}

export { startHosts, type RunningHosts };

interface Tally {
  count: number;
  amount: number;
}
interface SequenceView {
  terminalId: string;
  readerId: string;
  lastSequence: number;
  advices: number;
  missing: { from: number; to: number }[];
}
interface CardView {
  serial: string;
  balance: number | null;
  lastCounter: number;
  records: number;
}

export interface HostCount {
  /** Journal rows in a final state (each must be applied once). */
  expected: number;
  /** Advices the issuer holds for the terminal. */
  advices: number;
  /** Journal rows the issuer does not hold, or did not accept (a value-moving row not in its totals). */
  lost: number;
  /** Applications beyond one per row: extra advices, extra totals, extra card records, repeat anomalies. */
  appliedTwice: number;
  /** Anomalies the issuer recorded for the terminal, by kind. */
  anomalies: Record<string, number>;
}

/** What the hosts applied of the journal's final rows, counted through the admin API. */
export async function countOnHost(hosts: { adminUrl: string }, journal: Journal): Promise<HostCount> {
  const identity = journal.identity!;
  const rows = journal.query({ order: 'asc', limit: 100_000 }).filter((r) => r.status !== 'pending');
  const { sequences } = await adminGet<{ sequences: SequenceView[] }>(hosts, '/sequences');
  const seq = sequences.find((s) => s.terminalId === identity.terminalId && s.readerId === identity.readerId);
  const missing = (n: number): boolean => seq === undefined || n > seq.lastSequence || seq.missing.some((r) => n >= r.from && n <= r.to);
  let lost = rows.filter((r) => missing(r.readerSeq)).length;
  const advices = seq?.advices ?? 0;
  let appliedTwice = Math.max(0, advices - rows.length);

  // Value: the issuer's totals of accepted, value-moving advices against the journal's.
  const moved = rows.filter((r) => r.status === 'complete' || r.status === 'recovered');
  const want = (type: JournalRow['type']): Tally => moved.filter((r) => r.type === type).reduce((t, r) => ({ count: t.count + 1, amount: t.amount + r.amount }), { count: 0, amount: 0 });
  const { totals } = await adminGet<{ totals: { terminalId: string; currency: string; totals: { purchases: Tally; loads: Tally } }[] }>(hosts, `/totals?terminalId=${encodeURIComponent(identity.terminalId)}`);
  const got = totals.reduce(
    (t, x) => ({ purchases: t.purchases + x.totals.purchases.count, loads: t.loads + x.totals.loads.count }),
    { purchases: 0, loads: 0 },
  );
  const wanted = { purchases: want('purchase').count, loads: want('load').count };
  lost += Math.max(0, wanted.purchases - got.purchases) + Math.max(0, wanted.loads - got.loads);
  appliedTwice += Math.max(0, got.purchases - wanted.purchases) + Math.max(0, got.loads - wanted.loads);

  // Per card: one certified record per value-moving row, and the shadow balance where the card is.
  const byCard = new Map<string, JournalRow[]>();
  for (const r of moved) byCard.set(r.cardSerial, [...(byCard.get(r.cardSerial) ?? []), r]);
  for (const [serial, list] of byCard) {
    const card = await adminGet<CardView>(hosts, `/cards/${serial}`).catch(() => null);
    const records = card?.records ?? 0;
    appliedTwice += Math.max(0, records - list.length);
    lost += Math.max(0, list.length - records);
    const last = list.reduce((a, b) => ((b.counterAfter ?? 0) > (a.counterAfter ?? 0) ? b : a));
    if (card !== null && (card.lastCounter !== last.counterAfter || card.balance !== last.balanceAfter)) lost++;
  }

  const { anomalies } = await adminGet<{ anomalies: { kind: string }[] }>(hosts, `/anomalies?terminalId=${encodeURIComponent(identity.terminalId)}&limit=10000`);
  const kinds: Record<string, number> = {};
  for (const a of anomalies) kinds[a.kind] = (kinds[a.kind] ?? 0) + 1;
  appliedTwice += (kinds['reader-repeat'] ?? 0) + (kinds['card-repeat'] ?? 0);
  return { expected: rows.length, advices, lost, appliedTwice, anomalies: kinds };
}
