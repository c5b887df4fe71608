/**
 * What the terminal does with each kind of answer to a load reversal (reversal.ts), against the fake
 * host: 00 reverses; 12 is the host's final word (refused, never sent again); 91 and 96 (retry codes)
 * and a missing answer keep it pending with backoff, the next send is a 0401, and a later 00 reverses it
 * once.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Journal } from '../../../src/terminal/journal/index.js';
import type { Uplink } from '../../../src/hostlink/uplink/index.js';
import { sendReversal } from '../../../src/hostlink/uplink/reversal.js';
import { RC, type ResponseCode } from '../../../src/hostlink/messages.js';
import type { FakeHost } from './fake-host.js';
import { useFakeHostWorld } from './fake-host-world.js';
import { PROVIDER, cardSerial } from './helpers.js';

const world = useFakeHostWorld();
let host: FakeHost;
let journal: Journal;
let u: Uplink;

beforeEach(() => {
  ({ host, journal } = world);
  u = world.uplink({ config: { requestTimeoutMs: 300 } });
});

/** An approved load the terminal will not send to the card: its reversal is recorded and sent once. */
async function approvedThenReversed(n: number, answer: 'no-answer' | ResponseCode) {
  const { id, readerSeq } = journal.beginTransaction({ provider: PROVIDER, type: 'load', cardSerial: cardSerial(n), cardCounter: 0, amount: 500, currency: 'JPY' });
  expect((await u.authorizeLoad(id)).approved).toBe(true);
  journal.fail(id, { error: 'LOAD not sent' });
  host.hooks.reversal = () => answer;
  const record = await u.reverseLoad(id);
  return { id, readerSeq, record };
}

describe('answers to a load reversal', () => {
  it('00: reversed, one 0400, nothing left pending', async () => {
    const { readerSeq, record } = await approvedThenReversed(1, RC.approved);
    expect(record).toMatchObject({ readerSeq, status: 'reversed', responseCode: '00', sends: 1 });
    expect(host.reversalsReceived).toEqual([{ mti: '0400', originalStan: readerSeq, answered: '00' }]);
    expect(u.reversals({ pendingOnly: true })).toEqual([]);
  });

  it('12 (invalid transaction): refused, final; forward() never sends it again', async () => {
    const { id, record } = await approvedThenReversed(2, RC.invalidTransaction);
    expect(record).toMatchObject({ status: 'refused', responseCode: '12', sends: 1, attempts: 0 });
    host.hooks.reversal = () => RC.approved;
    const stats = await u.forward({ untilEmpty: true });
    expect(stats.reversals).toMatchObject({ reversed: 0, refused: 0, repeats: 0 });
    expect(host.reversalsReceived.map((r) => r.mti)).toEqual(['0400']);
    expect(u.reversalOf(id)).toMatchObject({ status: 'refused', responseCode: '12', sends: 1 });
  });

  for (const code of [RC.issuerUnavailable, RC.systemMalfunction] as ResponseCode[]) {
    it(`${code} (retry): pending with backoff; the next send is a 0401, and 00 then reverses it once`, async () => {
      const { id, readerSeq, record } = await approvedThenReversed(3, code);
      expect(record).toMatchObject({ status: 'pending', responseCode: null, sends: 1, attempts: 1 });
      expect(record.lastError).toContain(code);
      expect(record.nextAttemptAt).toBeGreaterThan(Date.now());
      host.hooks.reversal = () => RC.approved;
      const again = await sendReversal({ link: u.link }, readerSeq);
      expect(again).toMatchObject({ status: 'reversed', responseCode: '00', sends: 2 });
      expect(host.reversalsReceived.map((r) => `${r.mti} ${r.answered}`)).toEqual([`0400 ${code}`, '0401 00']);
      expect(u.reversalOf(id)).toMatchObject({ status: 'reversed' });
    });
  }

  it('no answer: pending, the link dropped; resent as 0401 on a new session', async () => {
    const { readerSeq, record } = await approvedThenReversed(4, 'no-answer');
    expect(record).toMatchObject({ status: 'pending', sends: 1, attempts: 1 });
    host.hooks.reversal = () => undefined;
    const again = await sendReversal({ link: u.link }, readerSeq);
    expect(again).toMatchObject({ status: 'reversed', sends: 2 });
    expect(host.reversalsReceived.map((r) => r.mti)).toEqual(['0400', '0401']);
    expect(host.connections).toBe(2);
  });
});
