/**
 * Hot-plug through the real PC/SC stack: `hilt monitor` sees the emulated card taken out of
 * "Virtual PCD 00 01" and put back; a command in flight when the card is pulled fails with
 * CardRemovedError (and nothing else does); pcscd is restarted under a running monitor, which
 * reports the outage and carries on. Skipped, with the reason in the title, where the stack is
 * missing; the restart test also needs a pcscd the harness started (see test/helpers/pcscd.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { PcscChannel } from '../../src/reader/pcsc.js';
import { monitorPcsc } from '../../src/reader/pcsc-monitor.js';
import type { MonitorEvent } from '../../src/reader/events.js';
import { CardRemovedError, HiltError } from '../../src/util/errors.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import { captureIo, ensurePcscd, pcscStackMissing, restartPcscd, runHilt, stopPcscd, waitForCardState, type PcscdInstance } from '../helpers/pcscd.js';

const SKIP = pcscStackMissing();
const SELECT = fromHex('00A4040C09F068696C7444494147');
/** SLEEP 1500 ms: the card answers after 1.5 s, time enough to pull it mid-command. */
const SLEEP_1500 = fromHex('803005DC');
/** Bound of waiting for one monitor line (pcscd notices a vpcd card within about a second). */
const EVENT_BOUND_MS = 15_000;
/** Bound of the whole pcscd restart: stop, start, readers back, emulator reconnected. */
const RESTART_BOUND_MS = 30_000;

/** Collects JSON lines of a running `hilt monitor --json` and waits for the ones a test needs. */
class EventLog {
  readonly events: MonitorEvent[] = [];
  #waiters: { from: number; pred: (e: MonitorEvent) => boolean; resolve: (i: number) => void }[] = [];

  push(text: string): void {
    for (const line of text.split('\n').filter(Boolean)) {
      this.events.push(JSON.parse(line) as MonitorEvent);
      const i = this.events.length - 1;
      for (const w of [...this.#waiters]) {
        if (i >= w.from && w.pred(this.events[i])) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(i);
        }
      }
    }
  }

  /** Index of the first event from `from` on matching `pred`; waits up to `boundMs`. */
  waitFor(what: string, pred: (e: MonitorEvent) => boolean, from = 0, boundMs = EVENT_BOUND_MS): Promise<number> {
    const found = this.events.findIndex((e, i) => i >= from && pred(e));
    if (found >= 0) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { from, pred, resolve: (i: number) => (clearTimeout(timer), resolve(i)) };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no ${what} event within ${boundMs} ms; events: ${JSON.stringify(this.events.map((e) => e.type))}`));
      }, boundMs);
      this.#waiters.push(w);
    });
  }
}

describe.skipIf(SKIP !== null)(`hot-plug through pcscd + vpcd${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let pcscd: PcscdInstance;
  let reader: string;
  let client: VpcdCardClient;
  const card = makeCard({ serial: fromHex('0102030405060708'), applets: [{ name: 'diagnostic' }] });
  const atrHex = toHex(card.os.atr).toUpperCase();
  const clientLog: string[] = [];

  beforeAll(async () => {
    pcscd = await ensurePcscd();
    reader = pcscd.readers[1];
    client = new VpcdCardClient(card.os, {
      port: pcscd.ports[1],
      logger: { info: () => undefined, warn: (m) => clientLog.push(m) },
    });
    client.insertCard();
    await waitForCardState(reader, true);
  });

  afterAll(async () => {
    await client?.close();
    await stopPcscd();
  });

  it('hilt monitor shows the card removed and inserted again, with timestamps and the ATR; abort ends it cleanly', async () => {
    const log = new EventLog();
    const stop = new AbortController();
    const running = runHilt(['monitor', '--json'], { signal: stop.signal }, captureIo((t) => log.push(t)));
    try {
      const initial = await log.waitFor('initial card-inserted', (e) => e.type === 'card-inserted' && e.reader === reader);
      expect(log.events[initial]).toMatchObject({ type: 'card-inserted', reader, atr: atrHex, initial: true, source: 'pcsc' });
      expect(log.events.filter((e) => e.type === 'reader-attached').map((e) => (e.type === 'reader-attached' ? e.reader : ''))).toEqual([...pcscd.readers]);

      await client.removeCard();
      const removed = await log.waitFor('card-removed', (e) => e.type === 'card-removed' && e.reader === reader, initial + 1);
      client.insertCard();
      const inserted = await log.waitFor('card-inserted', (e) => e.type === 'card-inserted' && e.reader === reader, removed + 1);
      const e = log.events[inserted];
      expect(e).toMatchObject({ type: 'card-inserted', reader, atr: atrHex, source: 'pcsc' });
      expect(e).not.toHaveProperty('initial');
      expect((e as unknown as { atrSummary: string }).atrSummary).toMatch(/^T=0, T=1; /);
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(Date.parse(log.events[removed].time));
    } finally {
      stop.abort();
    }
    const r = await running;
    expect(r.code, r.err).toBe(0);
  });

  it('text output reads like pcsc_scan: time, event, reader, ATR and its decoding', async () => {
    const lines: string[] = [];
    let seen: (() => void) | null = null;
    const io = captureIo((t) => {
      lines.push(t);
      if (/card inserted/.test(t)) seen?.();
    });
    const got = new Promise<void>((resolve) => (seen = resolve));
    const r = await Promise.all([runHilt(['monitor', '--reader', 'PCD 00 01', '--count', '2'], {}, io), got]);
    expect(r[0].code, r[0].err).toBe(0);
    const text = lines.join('\n');
    expect(text).toContain('monitoring PC/SC readers matching "PCD 00 01" (Ctrl-C to stop)');
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}reader attached +Virtual PCD 00 01 \(present at start\)$/m);
    expect(text).toMatch(/^\d{4}-.*Z {2}card inserted +Virtual PCD 00 01 \(present at start\)\n {4}ATR 3B 8A/m);
    expect(text).not.toContain('Virtual PCD 00 00');
    expect(text).toContain('monitor stopped');
  });

  it('a command in flight when the card is pulled fails with CardRemovedError; so do later ones until reset()', async () => {
    const ch = await PcscChannel.open(reader);
    try {
      expect(toHex(await ch.transmit(SELECT))).toBe('9000');
      const inFlight = ch.transmit(SLEEP_1500);
      const settled = inFlight.then(
        () => 'resolved',
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 200));
      await client.removeCard();
      const err = await settled;
      expect(err).toBeInstanceOf(CardRemovedError);
      expect((err as HiltError).code).toBe('CARD_REMOVED');
      await expect(ch.transmit(SELECT)).rejects.toBeInstanceOf(CardRemovedError);

      client.insertCard();
      await waitForCardState(reader, true);
      // The old session stays dead (state kept for the old card must not reach the new one)...
      await expect(ch.transmit(SELECT)).rejects.toBeInstanceOf(CardRemovedError);
      // ... until reset() binds the channel to the card now present.
      expect(toHex(await ch.reset())).toBe(toHex(card.os.atr));
      expect(toHex(await ch.transmit(SELECT))).toBe('9000');
    } finally {
      await ch.close();
    }
  });

  it('hilt send on a card pulled mid-command exits 1 with "card removed"', async () => {
    const running = runHilt(['send', '--reader', '1', '00A4040C09F068696C7444494147', '803005DC']);
    await new Promise((r) => setTimeout(r, 300));
    await client.removeCard();
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^hilt: Virtual PCD 00 01: card removed/m);
    client.insertCard();
    await waitForCardState(reader, true);
  });

  it('pcscd restarts under a running monitor: service lost, then restored, and the monitor carries on', async (ctx) => {
    if (!pcscd.owned) {
      ctx.skip(); // pcscd was running before the tests and is not the harness's to restart
      return;
    }
    const events: MonitorEvent[] = [];
    const stop = new AbortController();
    const monitor = monitorPcsc({ signal: stop.signal, retryMaxDelayMs: 500 });
    const wake: { notify: (() => void) | null } = { notify: null };
    const consumer = (async () => {
      for await (const e of monitor) {
        events.push(e);
        wake.notify?.();
      }
    })();
    const until = async (what: string, pred: (e: MonitorEvent, i: number) => boolean, boundMs: number): Promise<number> => {
      const deadline = Date.now() + boundMs;
      for (;;) {
        const i = events.findIndex(pred);
        if (i >= 0) return i;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${what} within ${boundMs} ms: ${JSON.stringify(events.map((e) => e.type))}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake.notify = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
    };
    try {
      await until('initial card', (e) => e.type === 'card-inserted' && e.reader === reader, EVENT_BOUND_MS);
      await restartPcscd();
      const lost = await until('service-lost', (e) => e.type === 'service-lost', RESTART_BOUND_MS);
      const restored = await until('service-restored', (e, i) => i > lost && e.type === 'service-restored', RESTART_BOUND_MS);
      // Everything known was reported gone at the outage...
      const between = events.slice(lost, restored).map((e) => `${e.type}${'reader' in e ? `:${e.reader}` : ''}`);
      expect(between).toContain(`card-removed:${reader}`);
      expect(between).toContain(`reader-detached:${reader}`);
      // ... and comes back: the readers, then the card (the emulator reconnects to the new pcscd).
      await until('reader re-attached', (e, i) => i > restored && e.type === 'reader-attached' && e.reader === reader, RESTART_BOUND_MS);
      const back = await until('card back', (e, i) => i > restored && e.type === 'card-inserted' && e.reader === reader, RESTART_BOUND_MS);
      expect(events[back]).toMatchObject({ atr: card.os.atr });

      // The monitor carries on: one more removal and insertion.
      await client.removeCard();
      const out = await until('removal after restart', (e, i) => i > back && e.type === 'card-removed' && e.reader === reader, EVENT_BOUND_MS);
      client.insertCard();
      await until('insertion after restart', (e, i) => i > out && e.type === 'card-inserted' && e.reader === reader, EVENT_BOUND_MS);

      // And the stack works again end to end.
      const r = await runHilt(['send', '--reader', '1', '00A4040C09F068696C7444494147']);
      expect(r.code, r.err).toBe(0);
    } finally {
      stop.abort();
      await consumer;
    }
  }, 2 * RESTART_BOUND_MS);
});
