/**
 * The issuer's negative-card-file deltas (issuer.ts negativeUpdateFrom): the net change per card
 * between a terminal's version and the current one. A card that stays listed with another reason is
 * a change the terminal must receive (it was lost once: the delta netted it away), whether the
 * reason changed by re-adding the card or by removing and adding it again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IssuerHost } from '../../src/hosts/issuer.js';
import { testPurseMasterKey } from '../../src/crypto/purse-certificate.js';
import { toHex } from '../../src/util/bytes.js';
import type { NegativeListChange } from '../../src/hostlink/messages.js';

let dir: string;
let issuer: IssuerHost;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hilt-negdelta-'));
  issuer = IssuerHost.open(join(dir, 'issuer.sqlite'), { master: testPurseMasterKey() });
});

afterEach(async () => {
  await issuer.close();
  rmSync(dir, { recursive: true, force: true });
});

const shown = (changes: NegativeListChange[]) => changes.map((c) => (c.action === 'add' ? `+${toHex(c.serial).toUpperCase()}:${c.reason}` : `-${toHex(c.serial).toUpperCase()}`));

/** What a terminal at `from` would hold after applying the delta to `held` (serial → reason). */
function apply(held: Map<string, string>, changes: NegativeListChange[]): Map<string, string> {
  const next = new Map(held);
  for (const c of changes) {
    const s = toHex(c.serial).toUpperCase();
    if (c.action === 'add') next.set(s, c.reason);
    else next.delete(s);
  }
  return next;
}

const listed = (): Map<string, string> => new Map(issuer.negativeCards().cards.map((c) => [c.serial, c.reason]));

describe('negative card file deltas', () => {
  it('a reason changed by removing and re-adding the card reaches a terminal that held the old reason', () => {
    const v1 = issuer.editNegativeCards({ add: [{ serial: 'AA01', reason: 'lost' }, { serial: 'AA02', reason: 'lost' }] }).version;
    issuer.editNegativeCards({ remove: ['AA01'] });
    issuer.editNegativeCards({ add: [{ serial: 'AA01', reason: 'stolen' }] });
    const u = issuer.negativeUpdateFrom(v1)!;
    expect(u.kind).toBe('delta');
    expect(shown(u.changes)).toEqual(['+AA01:stolen']);
    expect(apply(new Map([['AA01', 'lost'], ['AA02', 'lost']]), u.changes)).toEqual(listed());
  });

  it('re-adding a listed card with another reason is a new version that carries the new reason', () => {
    const v1 = issuer.editNegativeCards({ add: [{ serial: 'BB01', reason: 'lost' }] }).version;
    const same = issuer.editNegativeCards({ add: [{ serial: 'BB01', reason: 'lost' }] });
    expect(same).toEqual({ version: v1, added: 0, removed: 0 });
    const changed = issuer.editNegativeCards({ add: [{ serial: 'BB01', reason: 'stolen' }] });
    expect(changed).toEqual({ version: v1 + 1, added: 1, removed: 0 });
    expect(listed().get('BB01')).toBe('stolen');
    expect(shown(issuer.negativeUpdateFrom(v1)!.changes)).toEqual(['+BB01:stolen']);
    // From version 0 (a snapshot): the card with the reason it has now.
    expect(shown(issuer.negativeUpdateFrom(0)!.changes)).toEqual(['+BB01:stolen']);
  });

  it('changes that net to nothing stay out of the delta; every version reproduces the list', () => {
    const versions = [issuer.negativeVersion()];
    const edits = [
      { add: [{ serial: 'C1', reason: 'a' }, { serial: 'C2', reason: 'a' }, { serial: 'C3', reason: 'a' }] },
      { remove: ['C2'], add: [{ serial: 'C4', reason: 'b' }] },
      { add: [{ serial: 'C1', reason: 'b' }, { serial: 'C2', reason: 'a' }] },
      { add: [{ serial: 'C1', reason: 'a' }], remove: ['C4'] },
      { remove: ['C3'] },
      { add: [{ serial: 'C3', reason: 'c' }] },
    ];
    const held: Map<string, string>[] = [new Map()];
    for (const e of edits) {
      versions.push(issuer.editNegativeCards(e).version);
      held.push(listed());
    }
    const now = listed();
    for (let i = 1; i < versions.length; i++) {
      const u = issuer.negativeUpdateFrom(versions[i])!;
      expect(apply(held[i], u.changes), `from version ${versions[i]}`).toEqual(now);
    }
    // C1: a → b → a since version 1: no change; C2 removed and re-added with the same reason: none.
    expect(shown(issuer.negativeUpdateFrom(versions[1])!.changes)).toEqual(['+C3:c']);
  });
});
