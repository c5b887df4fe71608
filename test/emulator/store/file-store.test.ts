import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../../src/util/bytes.js';
import { HiltError } from '../../../src/util/errors.js';
import { FILE_STORE_FORMAT, FileStore, crc32, openFileStore } from '../../../emulator/store/file-store.js';
import { FileMedium, RamMedium, TearingMedium, type Medium } from '../../../emulator/store/medium.js';
import { StoreError } from '../../../emulator/store/errors.js';
import * as api from '../../../emulator/store/index.js';
import type { PersistentStore } from '../../../emulator/store/types.js';

const tmp = fs.mkdtempSync(join(os.tmpdir(), 'hilt-store-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const freshPath = (): string => join(tmp, `card-${++fileNo}`, 'eeprom.bin');

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));

function snap(store: PersistentStore): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of store.keys()) out[k] = toHex(store.get(k) as Uint8Array);
  return out;
}

function storeError(fn: () => unknown): StoreError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreError);
    return e as StoreError;
  }
  throw new Error('expected a StoreError, nothing was thrown');
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HiltError);
    return (e as HiltError).code;
  }
  throw new Error('expected an error, nothing was thrown');
}

describe('crc32', () => {
  it('matches the IEEE check value and known answers', () => {
    expect(crc32(enc('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(enc('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
  });
});

describe('FileStore: records', () => {
  it('puts, gets, overwrites, deletes, lists keys in order with a prefix filter', () => {
    const s = FileStore.open(new RamMedium());
    expect(s.get('a')).toBeUndefined();
    s.put('b/2', enc('two'));
    s.put('a', enc('one'));
    s.put('b/1', enc('uno'));
    s.put('', enc('empty key'));
    expect(s.keys()).toEqual(['', 'a', 'b/1', 'b/2']);
    expect(s.keys('b/')).toEqual(['b/1', 'b/2']);
    s.put('a', enc('ONE'));
    expect(dec(s.get('a'))).toBe('ONE');
    s.delete('b/1');
    s.delete('never-there');
    expect(s.keys()).toEqual(['', 'a', 'b/2']);
    s.put('zero', new Uint8Array(0));
    expect(s.get('zero')).toEqual(new Uint8Array(0));
  });

  it('copies values in and out', () => {
    const s = FileStore.open(new RamMedium());
    const v = new Uint8Array([1, 2, 3]);
    s.put('k', v);
    v[0] = 99;
    const out = s.get('k') as Uint8Array;
    out[1] = 99;
    expect([...(s.get('k') as Uint8Array)]).toEqual([1, 2, 3]);
  });

  it('takes UTF-8 keys up to 255 bytes and refuses longer or ill-formed ones', () => {
    const s = FileStore.open(new RamMedium());
    s.put('k'.repeat(255), enc('ok'));
    s.put('\uFEFFbom', enc('bom'));
    s.put('pièce-€-😀', enc('u'));
    expect(errorCode(() => s.put('k'.repeat(256), enc('x')))).toBe('BAD_INPUT');
    expect(errorCode(() => s.put('é'.repeat(128), enc('x')))).toBe('BAD_INPUT'); // 256 bytes of UTF-8
    expect(errorCode(() => s.put('lone \uD800', enc('x')))).toBe('BAD_INPUT');
    expect(errorCode(() => s.put('v', 'text' as unknown as Uint8Array))).toBe('BAD_INPUT');
    const again = FileStore.open(RamMedium.from((s.medium as RamMedium).read()));
    expect(again.keys()).toEqual(['k'.repeat(255), 'pièce-€-😀', '\uFEFFbom'].sort());
    expect(dec(again.get('\uFEFFbom'))).toBe('bom');
  });
});

describe('FileStore: on a file', () => {
  it('opens without creating anything, creates folder and file (0600) on the first write, persists across reopen', () => {
    const path = freshPath();
    const s = openFileStore(path);
    expect(fs.existsSync(path)).toBe(false);
    expect(s.capacity).toBe(FILE_STORE_FORMAT.defaultCapacity);
    s.put('balance', new Uint8Array([0, 0, 0x27, 0x10]));
    s.begin();
    s.put('counter', new Uint8Array([1]));
    s.put('log/1', enc('debit 10'));
    s.commit();
    s.close();
    expect(fs.statSync(path).mode & 0o777).toBe(0o600);
    const r = openFileStore(path);
    expect(snap(r)).toEqual({ balance: '00002710', counter: '01', 'log/1': toHex(enc('debit 10')) });
    expect(r.sequence).toBe(2);
    r.delete('counter');
    r.close();
    expect(openFileStore(path).keys()).toEqual(['balance', 'log/1']);
  });

  it('FileMedium reads null for a missing file, and writes, truncates, syncs', () => {
    const m = new FileMedium(freshPath());
    expect(m.read()).toBeNull();
    m.write(3, new Uint8Array([7, 8]));
    m.sync();
    expect([...(m.read() as Uint8Array)]).toEqual([0, 0, 0, 7, 8]);
    m.truncate(4);
    expect([...(m.read() as Uint8Array)]).toEqual([0, 0, 0, 7]);
    m.close();
    m.close();
  });

  it('keeps several cards on separate files apart, interleaved', () => {
    const paths = [freshPath(), freshPath(), freshPath()];
    const cards = paths.map((p) => openFileStore(p, { capacity: 1024 }));
    for (let round = 0; round < 5; round++) {
      cards.forEach((c, i) => {
        c.begin();
        c.put('balance', new Uint8Array([i, round]));
        c.put(`log/${round}`, enc(`card ${i} round ${round}`));
        if (i === 1) c.abort();
        else c.commit();
      });
    }
    cards.forEach((c) => c.close());
    const back = paths.map((p) => openFileStore(p));
    expect(back[0].keys()).toEqual(['balance', 'log/0', 'log/1', 'log/2', 'log/3', 'log/4']);
    expect([...(back[0].get('balance') as Uint8Array)]).toEqual([0, 4]);
    expect(back[1].keys()).toEqual([]);
    expect(dec(back[2].get('log/3'))).toBe('card 2 round 3');
    expect(back[2].capacity).toBe(1024);
  });
});

describe('FileStore: transactions', () => {
  it('commit makes all changes durable at once; reads inside see the new values', () => {
    const ram = new RamMedium();
    const s = FileStore.open(ram);
    s.put('balance', enc('100'));
    s.put('old', enc('x'));
    s.begin();
    expect(s.inTransaction).toBe(true);
    s.put('balance', enc('90'));
    s.put('counter', enc('1'));
    s.delete('old');
    expect(dec(s.get('balance'))).toBe('90');
    expect(s.get('old')).toBeUndefined();
    expect(s.keys()).toEqual(['balance', 'counter']);
    // Nothing of the open transaction is on the medium yet.
    expect(snap(FileStore.open(RamMedium.from(ram.read())))).toEqual({ balance: toHex(enc('100')), old: toHex(enc('x')) });
    s.commit();
    expect(s.inTransaction).toBe(false);
    expect(snap(FileStore.open(RamMedium.from(ram.read())))).toEqual({ balance: toHex(enc('90')), counter: toHex(enc('1')) });
  });

  it('abort discards every change and writes nothing', () => {
    const counting = new TearingMedium(new RamMedium());
    const s = FileStore.open(counting);
    s.put('balance', enc('100'));
    const before = counting.writes;
    s.begin();
    s.put('balance', enc('0'));
    s.delete('balance');
    s.put('other', enc('y'));
    s.abort();
    expect(counting.writes).toBe(before);
    expect(snap(s)).toEqual({ balance: toHex(enc('100')) });
    expect(s.size).toBe(5 + 7 + 3);
  });

  it('a change costs 4 writes; a transaction or put that changes nothing costs none', () => {
    const counting = new TearingMedium(new RamMedium());
    const s = FileStore.open(counting);
    s.put('a', enc('1'));
    expect(counting.writes).toBe(FILE_STORE_FORMAT.writesPerCommit);
    s.put('a', enc('1'));
    s.delete('nope');
    s.begin();
    s.put('a', enc('2'));
    s.put('a', enc('1'));
    s.put('tmp', enc('t'));
    s.delete('tmp');
    s.commit();
    expect(counting.writes).toBe(FILE_STORE_FORMAT.writesPerCommit);
    expect(s.sequence).toBe(1);
  });

  it('refuses nested begin and commit/abort outside a transaction', () => {
    const s = FileStore.open(new RamMedium());
    expect(storeError(() => s.commit()).reason).toBe('NOT_IN_PROGRESS');
    expect(storeError(() => s.abort()).reason).toBe('NOT_IN_PROGRESS');
    s.begin();
    s.put('k', enc('v'));
    expect(storeError(() => s.begin()).reason).toBe('IN_PROGRESS');
    // the outer transaction is intact
    s.commit();
    expect(dec(s.get('k'))).toBe('v');
  });

  it('stops after a power loss, and close() drops the open transaction', () => {
    const s = FileStore.open(new TearingMedium(new RamMedium(), { cutAfter: 2 }));
    expect(storeError(() => s.put('a', enc('1'))).reason).toBe('POWER_LOST');
    expect(s.inTransaction).toBe(false);
    expect(storeError(() => s.keys()).reason).toBe('POWER_LOST');
    const t = FileStore.open(new RamMedium());
    t.begin();
    t.put('a', enc('1'));
    t.close();
    expect(t.inTransaction).toBe(false);
    expect(storeError(() => t.get('a')).message).toMatch(/closed/);
  });

  it('turns an I/O failure of the medium into POWER_LOST and stops; an unreadable image into ACCESS', () => {
    const ram = new RamMedium();
    let failNext = false;
    const flaky: Medium = {
      label: 'flaky',
      read: () => ram.read(),
      write: (o, b) => {
        if (failNext) throw new Error('EIO: i/o error, write');
        ram.write(o, b);
      },
      truncate: (n) => ram.truncate(n),
      sync: () => ram.sync(),
      close: () => ram.close(),
    };
    const s = FileStore.open(flaky);
    s.put('a', enc('1'));
    failNext = true;
    const e = storeError(() => s.put('a', enc('2')));
    expect(e.reason).toBe('POWER_LOST');
    expect(e.message).toMatch(/persistent write to flaky failed: EIO/);
    failNext = false;
    expect(storeError(() => s.put('a', enc('3'))).message).toMatch(/stopped.*reopen/);
    expect(dec(FileStore.open(flaky).get('a'))).toBe('1');

    const notDir = join(tmp, 'not-a-folder');
    fs.writeFileSync(notDir, 'a file where a folder should be');
    const a = storeError(() => openFileStore(join(notDir, 'eeprom.bin')));
    expect(a.reason).toBe('ACCESS');
    expect(a.message).toMatch(/ENOTDIR/);
  });
});

describe('FileStore: capacity', () => {
  it('refuses a write past the capacity (6A84) and leaves the store as it was', () => {
    const s = FileStore.open(new RamMedium(), { capacity: 128 });
    s.put('k', new Uint8Array(100)); // 5 + 1 + 100 = 106
    const e = storeError(() => s.put('j', new Uint8Array(20))); // +26 = 132 > 128
    expect(e.reason).toBe('FULL');
    expect(e.message).toMatch(/6A84.*132 of the 128 bytes/);
    expect(s.keys()).toEqual(['k']);
    s.put('j', new Uint8Array(16)); // exactly 128
    expect(s.size).toBe(128);
    s.put('k', new Uint8Array(90)); // shrinking frees room
    s.put('j', new Uint8Array(26));
    expect(s.size).toBe(128);
    expect(storeError(() => s.put('z', new Uint8Array(0))).reason).toBe('FULL');
    s.delete('k');
    s.put('z', new Uint8Array(0));
  });

  it('inside a transaction the failing put is refused but the transaction stays open', () => {
    const ram = new RamMedium();
    const s = FileStore.open(ram, { capacity: 128 });
    s.begin();
    s.put('a', new Uint8Array(50));
    expect(storeError(() => s.put('b', new Uint8Array(70))).reason).toBe('FULL');
    expect(s.inTransaction).toBe(true);
    s.commit();
    expect(FileStore.open(RamMedium.from(ram.read())).keys()).toEqual(['a']);
  });

  it('records the capacity in the image and refuses to reopen it with another', () => {
    const ram = new RamMedium();
    FileStore.open(ram, { capacity: 4096 }).put('a', enc('1'));
    expect(FileStore.open(RamMedium.from(ram.read())).capacity).toBe(4096);
    expect(errorCode(() => FileStore.open(RamMedium.from(ram.read()), { capacity: 8192 }))).toBe('BAD_INPUT');
    expect(errorCode(() => FileStore.open(new RamMedium(), { capacity: 10 }))).toBe('BAD_INPUT');
  });
});

describe('FileStore: corruption', () => {
  const F = FILE_STORE_FORMAT;
  const CAP = 1024;

  /** An image with three commits: slot A holds sequence 3 (newest), slot B sequence 2. */
  function image(): Uint8Array {
    const ram = new RamMedium();
    const s = FileStore.open(ram, { capacity: CAP });
    s.put('balance', enc('100'));
    s.put('balance', enc('90'));
    s.put('counter', enc('2'));
    return ram.read() as Uint8Array;
  }
  const open = (img: Uint8Array): FileStore => FileStore.open(RamMedium.from(img), { capacity: CAP });
  const newest = { balance: toHex(enc('90')), counter: toHex(enc('2')) };
  const previous = { balance: toHex(enc('90')) };

  function header(img: Uint8Array, slot: 0 | 1): DataView {
    return new DataView(img.buffer, img.byteOffset + slot * F.headerSize, F.headerSize);
  }
  function resealHeader(img: Uint8Array, slot: 0 | 1): void {
    const h = header(img, slot);
    h.setUint32(28, crc32(img.subarray(slot * F.headerSize, slot * F.headerSize + 28)));
  }
  function corruptWith(img: Uint8Array, pattern: RegExp): void {
    const e = storeError(() => open(img));
    expect(e.reason).toBe('CORRUPT');
    expect(e.code).toBe('STORE_CORRUPT');
    expect(e.message).toMatch(pattern);
  }

  it('the fixture is what the tests assume', () => {
    const img = image();
    expect(Number(header(img, 0).getBigUint64(8))).toBe(3);
    expect(Number(header(img, 1).getBigUint64(8))).toBe(2);
    expect(snap(open(img))).toEqual(newest);
  });

  it('a flipped byte in the newest body is CORRUPT', () => {
    const img = image();
    img[F.headerArea + 3] ^= 0x01;
    corruptWith(img, /slot A \(sequence 3\).*body checksum/);
  });

  it('both headers damaged is CORRUPT; no magic at all says it is not a store image', () => {
    const img = image();
    img[10] ^= 0xff;
    img[F.headerSize + 10] ^= 0xff;
    corruptWith(img, /both slot headers fail their checksum/);
    const junk = new Uint8Array(3000).map((_, i) => (i * 131 + 7) & 0xff);
    corruptWith(junk, /not a hilt store image/);
  });

  it('a short image is CORRUPT', () => {
    corruptWith(image().slice(0, 40), /shorter than its 64-byte header area/);
    const img = image();
    corruptWith(img.slice(0, F.headerArea + 5), /image ends at byte 69/);
  });

  it('intact headers that no commit writes are CORRUPT', () => {
    let img = image();
    img[4] = 2;
    resealHeader(img, 0);
    corruptWith(img, /format version 2/);
    img = image();
    header(img, 1).setBigUint64(8, 7n);
    resealHeader(img, 1);
    corruptWith(img, /sequence numbers 3 and 7/);
    img = image();
    header(img, 0).setUint32(20, CAP + 1);
    resealHeader(img, 0);
    corruptWith(img, /more than its capacity/);
    img = image();
    img.fill(0, 0, F.headerSize); // slot A wiped, slot B valid
    corruptWith(img, /slot A was never written/);
  });

  it('a valid-looking body that does not parse is CORRUPT', () => {
    const ram = new RamMedium();
    FileStore.open(ram, { capacity: CAP }).put('k', enc('v'));
    const img = ram.read() as Uint8Array;
    img[F.headerArea] = 200; // key length past the body
    header(img, 0).setUint32(24, crc32(img.subarray(F.headerArea, F.headerArea + 7)));
    resealHeader(img, 0);
    corruptWith(img, /record header runs past the body at body byte 0/);
  });

  it('damage only a power cut could cause reads as one: the older slot, or the newest header alone', () => {
    let img = image();
    img[F.headerArea + CAP + 2] ^= 0x40; // older body (slot B): as if its rewrite had been torn
    expect(snap(open(img))).toEqual(newest);
    img = image();
    img[F.headerSize + 12] ^= 0x40; // older header
    expect(snap(open(img))).toEqual(newest);
    img = image();
    img[12] ^= 0x40; // newest header: indistinguishable from a torn header write (README.md)
    expect(snap(open(img))).toEqual(previous);
  });

  it('any single damaged byte gives CORRUPT or exactly the newest or previous state, never a crash or a mix', () => {
    const base = image();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: base.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, mask) => {
        const img = base.slice();
        img[at] ^= mask;
        let got: Record<string, string>;
        try {
          got = snap(open(img));
        } catch (e) {
          expect(e).toBeInstanceOf(StoreError);
          expect((e as StoreError).reason).toBe('CORRUPT');
          return;
        }
        expect([newest, previous]).toContainEqual(got);
      }),
      { numRuns: 2000 },
    );
  });

  it('a blank or empty medium is an empty store; a torn first commit is too', () => {
    expect(open(new Uint8Array(0)).keys()).toEqual([]);
    expect(open(new Uint8Array(F.headerArea + 10)).keys()).toEqual([]);
    const img = image();
    img.fill(0, F.headerSize, F.headerSize * 2); // as if slot B never written...
    img[5] ^= 0x01; // ...and slot A's first header write torn
    expect(open(img).keys()).toEqual([]);
  });
});

describe('index', () => {
  it('re-exports the store API', () => {
    expect(api.FileStore).toBe(FileStore);
    expect(api.StoreError).toBe(StoreError);
    expect(typeof api.MemoryStore).toBe('function');
    expect(typeof api.scopeStore).toBe('function');
    expect(new api.PowerLostError('x').reason).toBe('POWER_LOST');
    expect(api.TEAR_MODES).toContain('garbage');
  });
});
