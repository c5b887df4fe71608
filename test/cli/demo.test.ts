/**
 * `hilt demo`: the scripted day runs end to end on loopback (mock hosts, bureau cards in hilt's vpcd
 * reader), every scripted event shows the outcome it must, value is conserved, --json parses; and an
 * injected fault makes the demo fail, naming the step that caught it.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { runDemo, type DemoReport } from '../../src/cli/demo/run-demo.js';
import { dayWidths, renderReport, wrap } from '../../src/cli/demo/render.js';

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

interface JsonReport extends Omit<DemoReport, 'transport'> {
  transport: {
    steps: { name: string; ok: boolean; wireExchanges: number; note: string }[];
    trace?: { dir: string; hex: string }[];
  } | null;
}

const yen = (s: string): number => Number(s.replace(/[^0-9]/g, ''));

describe('hilt demo --json: the scripted day', () => {
  let code: number;
  let io: ReturnType<typeof capture>;
  let report: JsonReport;

  beforeAll(async () => {
    io = capture();
    code = await run(['node', 'hilt', 'demo', '--json', '--trace'], io);
    report = JSON.parse(io.stdout.join('\n')) as JsonReport;
  }, 60_000);

  const step = (name: string): JsonReport['steps'][number] => {
    const s = report.steps.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no step "${name}" in ${report.steps.map((x) => x.name).join(' | ')}`);
    return s;
  };

  it('exits 0, quietly, with every step ok', () => {
    expect(io.stderr).toEqual([]);
    expect(report.failed).toEqual([]);
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
    for (const s of report.steps) expect(s.ok, `${s.section}: ${s.name}: ${s.happened}`).toBe(true);
    expect(report.durationMs).toBeLessThan(20_000);
  });

  it('runs every scripted event, in order', () => {
    const sections = [...new Set(report.steps.map((s) => s.section))];
    expect(sections).toEqual(['reader check', 'setup', 'open', 'sales', 'blocked card', 'stolen reader', 'torn purchase', 'rolled-back card', 'host outage', 'close of day']);
    expect(report.steps.filter((s) => s.section === 'sales' && s.name.startsWith('load ')).length).toBeGreaterThanOrEqual(4);
    expect(new Set(report.steps.filter((s) => s.name.startsWith('purchase ')).map((s) => s.name.slice(-1))).size).toBeGreaterThanOrEqual(1);
  });

  it('enrols the reader with an operator code and syncs the negative list', () => {
    expect(step('reader enrolment + sign-on').happened).toMatch(/enrolled.*signed on/);
    expect(step('negative-list sync').happened).toMatch(/version 0 → 1, 1 snapshot, 1 card/);
  });

  it('loads and purchases move exactly their amounts; advices reach the host', () => {
    const load = step('load JPY 20,000 on card A').happened;
    expect(load).toMatch(/approved: JPY 0 → JPY 20,000, counter 1/);
    const buy = step('purchase JPY 1,250 on card A').happened.match(/(JPY [\d,]+) → (JPY [\d,]+)/);
    expect(buy).not.toBeNull();
    expect(yen(buy![1]) - yen(buy![2])).toBe(1_250);
    expect(step('advices forwarded').happened).toMatch(/^(\d+) queued → \1 delivered \(0 repeats, 0 refused\); host at seq \1, 0 gaps/);
  });

  it('refuses the card blocked at the host once the delta arrived, before any debit', () => {
    expect(step('negative-list update').happened).toMatch(/1 delta, \+1/);
    expect(step('blocked card C refused').happened).toMatch(/^refused \(negative-file\)/);
  });

  it('refuses the stolen reader at sign-on and keeps the terminal’s reader', () => {
    expect(step('stolen reader R-02 refused').happened).toMatch(/sign-on refused \(80 blocked\)/);
    expect(step('reader R-01 unaffected').ok).toBe(true);
  });

  it('recovers the torn purchase from the card, debited once', () => {
    expect(step('answer to DEBIT lost on card B').happened).toMatch(/interrupted \(CARD_REMOVED\): journal row \d+ pending/);
    expect(step('card B presented again').happened).toMatch(/row \d+ recovered at counter \d+; JPY 400 approved/);
    // The terminal's own log says the same: one interruption, one recovery.
    expect(report.terminalLog.filter((e) => e.kind === 'interrupted')).toHaveLength(1);
    expect(report.terminalLog.filter((e) => e.kind === 'recovered')).toHaveLength(1);
  });

  it('refuses the rolled-back card and shows the rollback in the reconciliation', () => {
    expect(step('copy restored onto card D').ok).toBe(true);
    expect(step('rolled-back card D refused').happened).toMatch(/^refused \(CARD_ROLLBACK, (repeat|rollback)\)/);
    expect(step('load on rolled-back card D refused').happened).toMatch(/^refused \(CARD_ROLLBACK/);
    // The terminal's anomaly reached the issuer as an 0620 and is listed there once, as journaled.
    const kind = /^refused \(CARD_ROLLBACK, (repeat|rollback)\): card counter (\d+), terminal saw (\d+)/.exec(step('rolled-back card D refused').happened)!;
    const reported = step("card D's anomaly reaches the issuer");
    expect(reported.ok).toBe(true);
    expect(reported.happened).toContain(`issuer lists 1 terminal anomaly for D: ${kind[1]} (anomaly seq `);
    expect(reported.happened).toMatch(new RegExp(`counter ${kind[2]}, terminal saw ${kind[3]}\\)$`));
    expect(reported.happened).toMatch(/\d+ anomaly reports?\)/);
    const d = report.reconciliation!.cards.find((c) => c.card === 'D')!;
    expect(d.card_balance - d.ledger).toBe(600 + 900);
    expect(d.host_shadow).toBe(d.ledger);
  });

  it('queues advices through the host outage and delivers them once after the restart', () => {
    const held = Number(/(\d+) still queued/.exec(step('advices held in the journal').happened)?.[1]);
    expect(held).toBeGreaterThanOrEqual(4);
    expect(step('hosts restarted, queue delivered').happened).toMatch(new RegExp(`^${held} delivered \\(0 repeats, 0 refused\\)`));
    expect(step('load JPY 2,000 on card A offline').happened).toMatch(/issuer unavailable/);
    expect(step('nothing lost or doubled').happened).toMatch(/journal (\d+) final rows; host \1 advices, gaps 0, repeats 0/);
  });

  it('reconciles: per card issued + loaded − spent = card = host shadow; the host ledger matches', () => {
    const r = report.reconciliation!;
    expect(r.cards.map((c) => c.card)).toEqual(['A', 'B', 'C', 'D']);
    for (const c of r.cards) {
      expect(c.ok, `${c.card}: ${c.note}`).toBe(true);
      expect(c.ledger).toBe(c.issued + c.loaded - c.spent);
      expect(c.host_shadow).toBe(c.ledger);
      if (c.card !== 'D') expect(c.card_balance).toBe(c.ledger);
    }
    expect(r.ledger.ok).toBe(true);
    expect(r.ledger.host).toEqual(r.ledger.journal);
    expect(r.ledger.shadows).toBe(r.cards.reduce((s, c) => s + c.ledger, 0));
  });

  it('ends with the terminal’s 0500 answered 00: in balance with the issuer', () => {
    expect(step('0500 reconciliation').happened).toMatch(/^in-balance, reader seq 1\.\.\d+; JPY 00: 4 loads, 12 purchases/);
    const st = report.reconciliation!.settlement!;
    expect(st.status).toBe('in-balance');
    expect(st.unsent).toBe(0);
    const jpy = st.currencies.find((c) => c.currencyName === 'JPY')!;
    expect(jpy.terminal.purchases).toEqual(report.reconciliation!.ledger.journal.purchases);
    expect(jpy.host.loads).toEqual(report.reconciliation!.ledger.host.loads);
  });

  it('keeps the reader check: wrapper stack on the wire, SCP03, hot-plug', () => {
    const t = report.transport!;
    const byName = new Map(t.steps.map((s) => [s.name, s]));
    expect(t.steps.every((s) => s.ok)).toBe(true);
    expect(byName.get('600 bytes to a short Le')?.wireExchanges).toBe(3);
    expect(byName.get('wrong Le (EXACT LE 32)')?.wireExchanges).toBe(2);
    expect(byName.get('chained HASH of 1000 bytes')?.wireExchanges).toBe(4);
    expect(byName.get('card pulled, re-inserted, reset')?.note).toMatch(/CARD_REMOVED.*00000002/);
    const wire = (t.trace ?? []).filter((r) => r.dir === '>').map((r) => r.hex);
    expect(wire.some((h) => h.startsWith('8418'))).toBe(true);
    expect(wire.filter((h) => h.startsWith('8418')).every((h) => !h.includes('AABBCC'))).toBe(true);
  });
});

describe('hilt demo: the text report', () => {
  it('prints the reader check (--transport), the day table, the reconciliation and PASS', async () => {
    const io = capture();
    expect(await run(['node', 'hilt', 'demo', '--transport'], io)).toBe(0);
    expect(io.stderr).toEqual([]);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/^ +section +step +SW +meaning +out +in +wire +µs +what it shows$/m);
    expect(text).toMatch(/^ok +hot-plug +card pulled, re-inserted, reset /m);
    expect(text).toMatch(/^step +what happened +expected +ok$/m);
    for (const section of ['[open]', '[sales]', '[blocked card]', '[stolen reader]', '[torn purchase]', '[rolled-back card]', '[host outage]', '[close of day]']) expect(text).toContain(section);
    expect(text).toMatch(/^card +serial +loaded +spent +ledger +card balance +host shadow +ok +note$/m);
    expect(text).toMatch(/^0500\/0510 JPY seq 1\.\.\d+ .* answer 00 \(in balance\) +ok$/m);
    expect(text).toMatch(/^PASS: (\d+)\/\1 steps as expected, value conserved, in [\d.]+ s/m);
    expect(text).not.toMatch(/FAIL/);
  }, 60_000);
});

describe('hilt demo with an injected fault', () => {
  it('a terminal that misses the negative-list update lets the blocked card pay: that step fails, by name', async () => {
    const report = await runDemo({ faults: ['skip-negative-sync'], skipTransport: true });
    expect(report.ok).toBe(false);
    expect(report.failed).toContain('blocked card: blocked card C refused');
    const s = report.steps.find((x) => x.name === 'blocked card C refused')!;
    expect(s.happened).toMatch(/APPROVED/);
    // The day still balances: the fault moved real value, and every book saw it.
    expect(report.reconciliation?.cards.every((c) => c.ok)).toBe(true);
  }, 60_000);

  it('an advice lost during the outage fails the delivery, the host check and the reconciliation; exit 1 names the step', async () => {
    const io = capture();
    const code = await run(['node', 'hilt', 'demo', '--fault', 'drop-advice'], io);
    expect(code).toBe(1);
    expect(io.stderr).toEqual([expect.stringMatching(/^hilt: demo failed at "host outage: hosts restarted, queue delivered" \(and \d+ more\)$/)]);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/^INJECTED FAULTS: drop-advice$/m);
    expect(text).toMatch(/^nothing lost or doubled .* FAIL$/m);
    expect(text).toMatch(/^FAIL: \d+ of \d+ steps not as expected \(.*host outage: nothing lost or doubled.*close of day: cards reconciled/m);
  }, 60_000);

  it('an unknown fault is a one-line usage error', async () => {
    const io = capture();
    const code = await run(['node', 'hilt', 'demo', '--fault', 'nope'], io);
    expect(code).not.toBe(0);
    expect(io.stderr.join('\n')).toMatch(/^hilt: .*unknown fault "nope"/);
    expect(io.stdout).toEqual([]);
  });
});

describe('wrap', () => {
  it('breaks at spaces within the width and cuts words longer than it', () => {
    expect(wrap('aa bb cc', 5)).toEqual(['aa bb', 'cc']);
    expect(wrap('abcdefghij', 4)).toEqual(['abcd', 'efgh', 'ij']);
    expect(wrap('', 4)).toEqual(['']);
  });
});

describe('the day table fits the terminal', () => {
  it('full widths off a terminal or on a wide one; shrunk in proportion on a narrow one, never below the minimum', () => {
    expect(dayWidths(undefined)).toEqual({ step: 38, happened: 60, expected: 46 });
    expect(dayWidths(200)).toEqual({ step: 38, happened: 60, expected: 46 });
    const w = dayWidths(100);
    expect(w.step + w.happened + w.expected + 10).toBeLessThanOrEqual(100);
    expect(w.happened).toBeGreaterThan(w.expected);
    expect(dayWidths(40)).toEqual({ step: 20, happened: 28, expected: 22 });
  });

  it('every line of the day table is at most 100 columns on a 100-column terminal', async () => {
    const report = await runDemo({ skipTransport: true });
    const text = renderReport(report, { transport: false, trace: false, columns: 100 });
    const day = text.split('\n').slice(2, text.split('\n').indexOf('', 3));
    expect(day.length).toBeGreaterThan(report.steps.length);
    for (const line of day) expect(line.length, line).toBeLessThanOrEqual(100);
  });
});
