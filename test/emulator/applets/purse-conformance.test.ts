/**
 * Conformance of the purse to its command table, applets-spec/emoney-purse.commands.json.
 *
 * 1. Every command is built from the table (class, INS, P1 P2, data fields by name, length and
 *    encoding, Le), and for every status word the table lists, the situation its `case` names is
 *    built on a real card (the purse behind its security domain, sessions through the real SCP03
 *    wrapper) and the answer must be exactly that word. A case without a scenario here fails, and so
 *    does a scenario whose case the table no longer lists.
 * 2. Every exchange of this file crosses a recording wire; with a seeded sweep of well-formed and
 *    malformed commands in every state, with and without sessions, every status word a purse command
 *    answers must be one the table lists for that command.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PURSE_AID, PURSE_INS, PURSE_LOG_SIZE } from '../../../emulator/applets/purse-records.js';
import type { CardOs } from '../../../emulator/os/card-os.js';
import type { PersistentStore } from '../../../emulator/store/types.js';
import { CommandApdu } from '../../../src/apdu/command.js';
import { ResponseApdu } from '../../../src/apdu/response.js';
import type { CardChannel } from '../../../src/reader/channel.js';
import type { SecurityLevel } from '../../../src/crypto/scp03.js';
import { keyCheckValue } from '../../../src/crypto/diversify.js';
import { encodeCurrency, loadCryptogram } from '../../../src/crypto/purse-certificate.js';
import { concatBytes, fromHex, hexWord, toHex } from '../../../src/util/bytes.js';
import {
  ISSUER_REFERENCE,
  JPY,
  PURSE_SCOPE,
  SELECT_PURSE,
  SERIAL,
  TERMINAL,
  WHEN,
  Wire,
  flipLastDataBit,
  forgeCounter,
  issue,
  issuerPurseKey,
  openSession,
  purseCard,
  readStatus,
} from './purse-helpers.js';

// ---------------------------------------------------------------------------------------------
// The table

interface FieldSpec {
  name: string;
  length: number | string;
  encoding: 'u8' | 'u32' | 'bcd-currency' | 'bcd-datetime' | 'bytes' | 'key+kcv';
}
interface SwEntry {
  sw: string;
  case: string;
  condition: string;
}
interface CommandSpec {
  name: string;
  ins: string;
  p1: string;
  p2: string;
  lifeCycles: string[];
  security: string;
  data: FieldSpec[] | Record<string, FieldSpec[]>;
  le: string;
  statusWords: SwEntry[];
}
interface Table {
  aid: string;
  class: { plain: string; wrapped: string };
  lifeCycles: Record<string, string>;
  security: Record<string, { authenticated: boolean; levelBits: string }>;
  limits: { logSize: number };
  commands: CommandSpec[];
  otherInstructions: { statusWords: SwEntry[] };
}

const TABLE = JSON.parse(readFileSync('applets-spec/emoney-purse.commands.json', 'utf8')) as Table;
const byName = new Map(TABLE.commands.map((c) => [c.name, c]));
const byIns = new Map(TABLE.commands.map((c) => [parseInt(c.ins, 16), c]));

function spec(name: string): CommandSpec {
  const c = byName.get(name);
  if (!c) throw new Error(`the table has no command ${name}`);
  return c;
}

type Value = number | Uint8Array;
type Values = Record<string, Value>;

/** The command's data, field by field as the table lays it out. */
function encodeData(fields: FieldSpec[], values: Values): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    const v = values[f.name];
    if (v === undefined) throw new Error(`no value for field ${f.name}`);
    let bytes: Uint8Array;
    switch (f.encoding) {
      case 'u8':
        bytes = Uint8Array.of(v as number);
        break;
      case 'u32': {
        const n = v as number;
        bytes = Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
        break;
      }
      case 'bcd-currency':
        bytes = typeof v === 'number' ? encodeCurrency(v) : v;
        break;
      default:
        bytes = v as Uint8Array;
    }
    if (typeof f.length === 'number' && bytes.length !== f.length) throw new Error(`field ${f.name}: ${bytes.length} bytes, the table says ${f.length}`);
    parts.push(bytes);
  }
  return concatBytes(...parts);
}

interface Build {
  values?: Values;
  cla?: number;
  p1?: number;
  p2?: number;
  data?: Uint8Array;
}

function fixedByte(text: string, what: string): number {
  if (!/^[0-9A-F]{2}$/.test(text)) throw new Error(`${what} "${text}" is not one byte: the scenario must give it`);
  return parseInt(text, 16);
}

/** A C-APDU for command `name`, everything from the table unless overridden. */
function build(name: string, b: Build = {}): CommandApdu {
  const c = spec(name);
  const p1 = b.p1 ?? fixedByte(c.p1, `${name} P1`);
  const p2 = b.p2 ?? fixedByte(c.p2, `${name} P2`);
  const fields = Array.isArray(c.data) ? c.data : c.data[p2.toString(16).padStart(2, '0').toUpperCase()];
  const data = b.data ?? (fields && fields.length > 0 ? encodeData(fields, b.values ?? {}) : new Uint8Array(0));
  return new CommandApdu({ cla: b.cla ?? parseInt(TABLE.class.plain, 16), ins: parseInt(c.ins, 16), p1, p2, data, ne: c.le === 'none' ? 0 : 256 });
}

// ---------------------------------------------------------------------------------------------
// The recording wire: every exchange of this file, attributed to the command's INS

const observed = new Map<number, Set<string>>();

class RecordingWire extends Wire {
  override async transmit(command: Uint8Array): Promise<Uint8Array> {
    const answer = await super.transmit(command);
    const entry = this.log[this.log.length - 1];
    const cmd = fromHex(entry.command);
    const sw = entry.response.slice(-4);
    const cla = cmd[0];
    const ins = cmd[1];
    const transport = ins === 0xc0 || ins === 0x70 || (ins === 0xa4 && (cla & 0x80) === 0) || ins === 0x50 || ins === 0x82;
    if (!transport && !sw.startsWith('61')) {
      const set = observed.get(ins) ?? new Set<string>();
      set.add(sw);
      observed.set(ins, set);
    }
    return answer;
  }
}

// ---------------------------------------------------------------------------------------------
// Situations

interface Fixture {
  card: CardOs;
  store: PersistentStore;
  wire: RecordingWire;
}

async function fresh(): Promise<Fixture> {
  const { card, store } = purseCard();
  const wire = new RecordingWire(card);
  expect(await wire.send(SELECT_PURSE)).toBe('9000');
  return { card, store, wire };
}

/** An issued purse (max balance 50000, max per transaction 10000), loaded with `balance` by terminal TERM0001 seq 1. */
async function active(balance = 30_000): Promise<Fixture> {
  const f = await fresh();
  await issue(f.wire);
  if (balance > 0) {
    const s = await openSession(f.wire, 0x01);
    expect(await sw(s, 'LOAD', { values: loadValues({ amount: balance, terminalSequence: 1 }, 0) })).toBe('9000');
    await f.wire.reset();
  }
  expect(await f.wire.send(SELECT_PURSE)).toBe('9000');
  return f;
}

const session = (f: Fixture, level: SecurityLevel): Promise<CardChannel> => openSession(f.wire, level);

async function sw(channel: CardChannel, name: string, b: Build = {}): Promise<string> {
  const r = ResponseApdu.decode(await channel.transmit(build(name, b).encode()));
  return hexWord(r.sw);
}

function requestValues(v: Partial<Record<'amount' | 'terminalSequence' | 'currency', number>> & { dateTime?: Uint8Array; terminalId?: Uint8Array } = {}): Values {
  return { amount: 100, currency: JPY, terminalId: TERMINAL, terminalSequence: 2, dateTime: WHEN, ...v };
}

/** LOAD values with a genuine issuer cryptogram over `counterBefore`. */
function loadValues(v: Parameters<typeof requestValues>[0], counterBefore: number, key = issuerPurseKey()): Values {
  const r = requestValues(v);
  const cryptogram = loadCryptogram(key, {
    serial: SERIAL,
    counter: counterBefore,
    amount: r.amount as number,
    currency: r.currency as number,
    terminalId: r.terminalId as Uint8Array,
    terminalSequence: r.terminalSequence as number,
    dateTime: r.dateTime as Uint8Array,
    issuerReference: ISSUER_REFERENCE,
  });
  return { ...r, issuerReference: ISSUER_REFERENCE, cryptogram };
}

const personalizeValues = (p: Partial<Record<'currency' | 'maxBalance' | 'maxPerTransaction', number>> = {}): Values => ({
  currency: JPY,
  maxBalance: 50_000,
  maxPerTransaction: 10_000,
  ...p,
});

function keyValues(tamperKcv = false): Values {
  const key = issuerPurseKey();
  const kcv = keyCheckValue(key);
  if (tamperKcv) kcv[0] ^= 0xff;
  return { purseKey: concatBytes(key, kcv) };
}

/** How each command runs when everything is right: the state, a sufficient level, and its build. */
interface Good {
  state: 'issuance' | 'active';
  level: SecurityLevel;
  /** A level that is authenticated but does not satisfy the command (for the 'level' case). */
  weakLevel?: SecurityLevel;
  build: Build;
  badP1P2: Build;
  badLength: Build;
}

const GOOD: Record<string, Good> = {
  'READ STATUS': { state: 'issuance', level: 0x01, build: {}, badP1P2: { p2: 0x01 }, badLength: { data: Uint8Array.of(0) } },
  'READ LOG': { state: 'active', level: 0x01, build: { p1: 1 }, badP1P2: { p1: PURSE_LOG_SIZE + 1 }, badLength: { p1: 1, data: Uint8Array.of(0) } },
  DEBIT: {
    state: 'active',
    level: 0x01,
    weakLevel: 0x00,
    build: { values: requestValues() },
    badP1P2: { p1: 0x01, values: requestValues() },
    badLength: { data: new Uint8Array(24) },
  },
  LOAD: {
    state: 'active',
    level: 0x01,
    weakLevel: 0x00,
    build: { values: loadValues({ terminalSequence: 2 }, 1) },
    badP1P2: { p2: 0x01, values: loadValues({}, 1) },
    badLength: { data: new Uint8Array(52) },
  },
  PERSONALIZE: {
    state: 'issuance',
    level: 0x03,
    weakLevel: 0x01,
    // values for both objects: whichever P2 the sweep picks finds its fields
    build: { p2: 0x01, values: { ...personalizeValues(), ...keyValues() } },
    badP1P2: { p1: 0x01, p2: 0x01, values: personalizeValues() },
    badLength: { p2: 0x01, data: new Uint8Array(9) },
  },
  LOCK: { state: 'issuance', level: 0x01, weakLevel: 0x00, build: {}, badP1P2: { p2: 0x01 }, badLength: { data: Uint8Array.of(0) } },
};

/** A card in the command's state, selected, with the PERSONALIZE objects written for LOCK. */
async function ready(name: string): Promise<Fixture> {
  const g = GOOD[name];
  if (g.state === 'active') return active();
  const f = await fresh();
  if (name === 'LOCK') {
    const s = await session(f, 0x03);
    expect(await sw(s, 'PERSONALIZE', { p2: 1, values: personalizeValues() })).toBe('9000');
    expect(await sw(s, 'PERSONALIZE', { p2: 2, values: keyValues() })).toBe('9000');
    await f.wire.reset();
    expect(await f.wire.send(SELECT_PURSE)).toBe('9000');
  }
  return f;
}

type Scenario = () => Promise<string>;

/** The cases every command has, built from GOOD. */
function commonScenarios(name: string): Record<string, Scenario> {
  const g = GOOD[name];
  const out: Record<string, Scenario> = {
    cla: async () => sw((await ready(name)).wire, name, { ...g.build, cla: 0x00 }),
    smClass: async () => {
      const f = await ready(name);
      const plain = build(name, g.build);
      // what a wrapper would send, with a MAC the card cannot check: no session exists
      const data = concatBytes(plain.data, new Uint8Array(8).fill(0x5a));
      return sw(f.wire, name, { ...g.build, cla: parseInt(TABLE.class.wrapped, 16), data });
    },
    unprotected: async () => {
      const f = await ready(name);
      await session(f, g.level);
      return sw(f.wire, name, g.build);
    },
    badMac: async () => {
      const f = await ready(name);
      const s = await session(f, g.level);
      f.wire.tamperNext = flipLastDataBit;
      return sw(s, name, g.build);
    },
    p1p2: async () => sw((await ready(name)).wire, name, g.badP1P2),
    length: async () => {
      const f = await ready(name);
      return sw(await session(f, g.level), name, g.badLength);
    },
    memory: async () => {
      const f = await ready(name);
      f.store.put(`${PURSE_SCOPE}state`, fromHex('0F00'));
      return sw(await session(f, g.level), name, g.build);
    },
  };
  if (spec(name).security !== 'none') {
    out.noSession = async () => sw((await ready(name)).wire, name, g.build);
    out.level = async () => {
      const f = await ready(name);
      return sw(await session(f, g.weakLevel as SecurityLevel), name, g.build);
    };
  }
  if (spec(name).lifeCycles.length === 1) {
    out.lifeCycle = async () => {
      const f = g.state === 'active' ? await fresh() : await active(0);
      return sw(await session(f, 0x03), name, g.build);
    };
  }
  return out;
}

/** DEBIT on an active purse funded with `balance`, in a level 01 session. */
async function debit(values: Values, balance = 30_000): Promise<string> {
  const f = await active(balance);
  return sw(await session(f, 0x01), 'DEBIT', { values });
}

async function loadOn(values: Values, balance = 30_000): Promise<string> {
  const f = await active(balance);
  return sw(await session(f, 0x01), 'LOAD', { values });
}

/** The data of `name` built from `values`, with byte `at` of field `field` replaced (offsets from the table). */
function corrupt(name: string, values: Values, field: string, at: number, byte: number): Build {
  const fields = spec(name).data as FieldSpec[];
  const data = encodeData(fields, values);
  let offset = 0;
  for (const f of fields) {
    if (f.name === field) break;
    offset += f.length as number;
  }
  data[offset + at] = byte;
  return { data };
}

const SCENARIOS: Record<string, Record<string, Scenario>> = {
  'READ STATUS': {
    ...commonScenarios('READ STATUS'),
    ok: async () => sw((await fresh()).wire, 'READ STATUS'),
    okActive: async () => sw((await active()).wire, 'READ STATUS'),
  },
  'READ LOG': {
    ...commonScenarios('READ LOG'),
    ok: async () => sw((await active()).wire, 'READ LOG', { p1: 1 }),
    okAll: async () => sw((await active(0)).wire, 'READ LOG', { p1: 0 }),
    recordNotFound: async () => sw((await active()).wire, 'READ LOG', { p1: 2 }),
    memoryLog: async () => {
      const f = await active();
      f.store.put(`${PURSE_SCOPE}log/01`, new Uint8Array(50));
      return sw(f.wire, 'READ LOG', { p1: 1 });
    },
  },
  DEBIT: {
    ...commonScenarios('DEBIT'),
    ok: () => debit(requestValues()),
    replayedApdu: async () => {
      const f = await active();
      const s = await session(f, 0x01);
      expect(await sw(s, 'DEBIT', { values: requestValues() })).toBe('9000');
      return f.wire.send(f.wire.lastCommand);
    },
    zeroAmount: () => debit(requestValues({ amount: 0 })),
    badCurrency: () => debit({ ...requestValues(), currency: fromHex('1392') }),
    badDateTime: async () => sw(await session(await active(), 0x01), 'DEBIT', corrupt('DEBIT', requestValues(), 'dateTime', 2, 0x13)),
    currencyMismatch: () => debit(requestValues({ currency: 978 })),
    aboveTransactionMaximum: () => debit(requestValues({ amount: 10_001 })),
    insufficientBalance: () => debit(requestValues({ amount: 5_001 }), 5_000),
    counterExhausted: async () => {
      const f = await active();
      forgeCounter(f.store, 0xffffffff, 30_000);
      return sw(await session(f, 0x01), 'DEBIT', { values: requestValues() });
    },
    terminalSequence: () => debit(requestValues({ terminalSequence: 1 })),
  },
  LOAD: {
    ...commonScenarios('LOAD'),
    ok: () => loadOn(loadValues({ amount: 100 }, 1)),
    zeroAmount: () => loadOn(loadValues({ amount: 0 }, 1)),
    badCurrency: async () => sw(await session(await active(), 0x01), 'LOAD', corrupt('LOAD', loadValues({}, 1), 'currency', 0, 0x10)),
    badDateTime: async () => sw(await session(await active(), 0x01), 'LOAD', corrupt('LOAD', loadValues({}, 1), 'dateTime', 6, 0x60)),
    counterExhausted: async () => {
      const f = await active();
      forgeCounter(f.store, 0xffffffff, 30_000);
      return sw(await session(f, 0x01), 'LOAD', { values: loadValues({}, 0xffffffff) });
    },
    badCryptogram: () => loadOn({ ...loadValues({}, 1), cryptogram: new Uint8Array(16) }),
    replayedCryptogram: async () => {
      const f = await active();
      const s = await session(f, 0x01);
      const values = loadValues({ amount: 100 }, 1);
      expect(await sw(s, 'LOAD', { values })).toBe('9000');
      return sw(s, 'LOAD', { values: { ...values, terminalSequence: 3 } });
    },
    currencyMismatch: () => loadOn(loadValues({ currency: 840 }, 1)),
    aboveMaximumBalance: () => loadOn(loadValues({ amount: 20_001 }, 1)),
    terminalSequence: () => loadOn(loadValues({ terminalSequence: 1 }, 1)),
  },
  PERSONALIZE: {
    ...commonScenarios('PERSONALIZE'),
    ok: async () => sw(await session(await fresh(), 0x03), 'PERSONALIZE', { p2: 1, values: personalizeValues() }),
    okKey: async () => sw(await session(await fresh(), 0x33), 'PERSONALIZE', { p2: 2, values: keyValues() }),
    badCurrency: async () => sw(await session(await fresh(), 0x03), 'PERSONALIZE', { p2: 1, values: { ...personalizeValues(), currency: fromHex('0000') } }),
    badLimits: async () => sw(await session(await fresh(), 0x03), 'PERSONALIZE', { p2: 1, values: personalizeValues({ maxPerTransaction: 50_001 }) }),
    badKcv: async () => sw(await session(await fresh(), 0x03), 'PERSONALIZE', { p2: 2, values: keyValues(true) }),
  },
  LOCK: {
    ...commonScenarios('LOCK'),
    ok: async () => sw(await session(await ready('LOCK'), 0x01), 'LOCK'),
    incomplete: async () => sw(await session(await fresh(), 0x01), 'LOCK'),
  },
};

const OTHER: Record<string, Scenario> = {
  unknownIns: async () => {
    const f = await active();
    return hexWord(ResponseApdu.decode(await f.wire.transmit(fromHex('80100000'))).sw);
  },
};

// ---------------------------------------------------------------------------------------------

describe('the command table', () => {
  it('names the applet the emulator installs, and every instruction it has', () => {
    expect(TABLE.aid).toBe(toHex(PURSE_AID).toUpperCase());
    expect([...byIns.keys()].sort()).toEqual(Object.values(PURSE_INS).sort());
    expect(TABLE.limits.logSize).toBe(PURSE_LOG_SIZE);
    for (const c of TABLE.commands) {
      for (const lc of c.lifeCycles) expect(TABLE.lifeCycles[lc], `${c.name}: life cycle ${lc}`).toBeDefined();
      expect(TABLE.security[c.security], `${c.name}: security ${c.security}`).toBeDefined();
      const cases = c.statusWords.map((s) => s.case);
      expect(new Set(cases).size, `${c.name}: cases are unique`).toBe(cases.length);
    }
  });

  it('has a scenario for every case and lists every scenario', () => {
    for (const c of TABLE.commands) {
      const have = Object.keys(SCENARIOS[c.name] ?? {}).sort();
      expect(have, c.name).toEqual(c.statusWords.map((s) => s.case).sort());
    }
    expect(Object.keys(SCENARIOS).sort()).toEqual(TABLE.commands.map((c) => c.name).sort());
    expect(Object.keys(OTHER).sort()).toEqual(TABLE.otherInstructions.statusWords.map((s) => s.case).sort());
  });
});

describe('every command x every status word of the table', () => {
  for (const c of TABLE.commands) {
    for (const entry of c.statusWords) {
      it(`${c.name}: ${entry.sw} ${entry.case} (${entry.condition})`, async () => {
        const run = SCENARIOS[c.name]?.[entry.case];
        if (!run) throw new Error(`no scenario for ${c.name} / ${entry.case}`);
        expect(await run()).toBe(entry.sw);
      });
    }
  }
  for (const entry of TABLE.otherInstructions.statusWords) {
    it(`other INS: ${entry.sw} ${entry.case}`, async () => {
      expect(await OTHER[entry.case]()).toBe(entry.sw);
    });
  }
});

describe('no status word outside the table', () => {
  it('a seeded sweep of commands in every state and channel answers only listed words', async () => {
    let seed = 0x5eed;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return (seed >>> 8) % n;
    };
    const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rnd(256));
    const names = TABLE.commands.map((c) => c.name);
    let sent = 0;
    for (const start of ['issuance', 'personalized', 'active'] as const) {
      const f = start === 'active' ? await active() : start === 'personalized' ? await ready('LOCK') : await fresh();
      for (const level of [null, 0x00, 0x01, 0x03, 0x33] as const) {
        await f.wire.reset();
        expect(await f.wire.send(SELECT_PURSE)).toBe('9000');
        const channel: CardChannel = level === null ? f.wire : await session(f, level);
        for (let n = 0; n < 60; n++) {
          const name = names[rnd(names.length)];
          const g = GOOD[name];
          const shape = rnd(6);
          let b: Build;
          if (shape === 0) b = g.build;
          else if (shape === 1) b = { ...g.build, p1: rnd(256), p2: rnd(4) };
          else if (shape === 2) b = { ...g.build, data: bytes(rnd(60)) };
          else if (shape === 3 && name === 'DEBIT') b = { values: requestValues({ amount: rnd(12_000), terminalSequence: 100 + rnd(1000), currency: [JPY, 978][rnd(2)] }) };
          else if (shape === 3 && name === 'LOAD') b = { values: loadValues({ amount: rnd(60_000), terminalSequence: 100 + rnd(1000) }, rnd(3)) };
          else if (shape === 4) b = { ...g.build, cla: [0x00, 0x80, 0x81][rnd(3)] };
          else b = { ...g.build, p1: rnd(12), p2: rnd(3) };
          if (b.cla === 0x81) continue; // channel 1 is not open: the OS answers (card-os.md)
          sent++;
          await channel.transmit(build(name, b).encode());
        }
      }
    }
    // and unknown instructions
    const f = await active();
    for (const ins of [0x00, 0x10, 0x20, 0xa4, 0xb0, 0xd8, 0xe2, 0xfe]) await f.wire.transmit(new CommandApdu({ cla: 0x80, ins, p1: 0, p2: 0 }).encode());
    expect((await readStatus(f.wire)).lifeCycle).toBe(0x0f);
    expect(sent).toBeGreaterThan(600);
  });

  // Last in the file (vitest runs a file's tests in order): every scenario above and the sweep crossed a RecordingWire.
  it('observed only listed status words, and every listed word', () => {
    const problems: string[] = [];
    for (const [ins, seen] of observed) {
      const c = byIns.get(ins);
      const allowed = new Set((c ? c.statusWords : TABLE.otherInstructions.statusWords).map((s) => s.sw));
      for (const s of seen) if (!allowed.has(s)) problems.push(`${c?.name ?? `INS ${ins.toString(16)}`}: ${s} is not in the table`);
    }
    expect(problems).toEqual([]);
    // every command was seen answering every word the table lists for it
    for (const c of TABLE.commands) {
      for (const s of c.statusWords) expect(observed.get(parseInt(c.ins, 16))?.has(s.sw), `${c.name} ${s.sw} observed`).toBe(true);
    }
  });
});
