#!/usr/bin/env node
/**
 * Builds test/fixtures/atr/atr-analysis.json: what pcsc-tools' ATR_analysis says about a diverse
 * set of real ATRs, so that test/apdu/atr-fixture.test.ts can compare hilt's ATR parser with it
 * field by field without ATR_analysis installed.
 *
 *   node scripts/make-atr-fixture.mjs [--list <smartcard_list.txt>] [--out <file>] [--all]
 *
 * The ATRs come from smartcard_list.txt lines without wildcards. They are picked for coverage:
 * every feature below is represented by a few ATRs (first ones in file order, so the pick is
 * deterministic for a given list), and every distinct TA1 value once. --all skips the pick and
 * writes every literal ATR of the list (for exploration; not the committed fixture).
 *
 * ATR_analysis is run with an empty PATH and a throw-away HOME: it then reads the system list and,
 * should an ATR be missing from it, its attempt to download a fresh list fails instead of
 * touching the network.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';

const ATR_ANALYSIS = '/usr/bin/ATR_analysis';
const TIMEOUT_MS = 15_000;
/** How many ATRs to take for each feature. */
const PER_FEATURE = 3;

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const listPath = arg('--list', '/usr/share/pcsc/smartcard_list.txt');
const outPath = arg('--out', 'test/fixtures/atr/atr-analysis.json');
const all = process.argv.includes('--all');

/** Literal ATR lines (hex bytes separated by single spaces, nothing else). */
function literalAtrs(text) {
  const seen = new Set();
  const out = [];
  for (const line of text.split('\n')) {
    if (!/^[0-9A-F]{2}( [0-9A-F]{2})*$/.test(line)) continue;
    if (seen.has(line)) continue;
    seen.add(line);
    out.push(line);
  }
  return out;
}

/**
 * A small independent structural scan, only to choose ATRs; it is deliberately not hilt's parser
 * (the fixture must not be shaped by the code it tests).
 */
function features(atr) {
  const b = atr.split(' ').map((h) => parseInt(h, 16));
  const f = new Set();
  f.add(b[0] === 0x3f ? 'inverse' : b[0] === 0x3b ? 'direct' : 'bad-ts');
  if (b.length >= 28) f.add('long');
  if (b.length < 2) return { f, ta1: undefined };
  const k = b[1] & 15;
  let y = b[1] >> 4;
  let p = 2;
  let i = 1;
  let t = 0;
  const protos = new Set();
  let ta1;
  const firstSeen = new Set();
  for (;;) {
    for (let bit = 0; bit < 4; bit++) {
      if (!(y & (1 << bit))) continue;
      if (p >= b.length) {
        f.add('interface-past-end');
        return { f, ta1 };
      }
      const v = b[p];
      const name = 'ABCD'[bit];
      if (i === 1 && name === 'A') ta1 = v;
      if (i === 1 && name === 'B' && v !== 0) f.add('TB1-nonzero');
      if (i === 1 && name === 'C') f.add(v === 255 ? 'TC1-255' : v !== 0 ? 'TC1-nonzero' : 'TC1-zero');
      if (i === 2 && name !== 'D') f.add(`T${name}2`);
      if (i >= 3 && name !== 'D') {
        const key = `${name}/${t}`;
        f.add(`T${name}i-T${t}${firstSeen.has(key) ? '-again' : ''}`);
        firstSeen.add(key);
        if (name === 'C' && t === 1) f.add(v === 1 ? 'CRC' : v === 0 ? 'LRC' : 'EDC-RFU');
      }
      if (name === 'D') {
        t = v & 15;
        protos.add(t);
        if (i === 1 && t === 15) f.add('TD1-T15');
      }
      p++;
    }
    if (!(y & 8)) break;
    y = b[p - 1] >> 4;
    i++;
  }
  const list = [...protos].filter((x) => x !== 15).sort((a, c) => a - c);
  f.add(protos.size === 0 ? 'no-TD' : `T=${list.join('+') || 'none'}`);
  if (protos.has(15)) f.add('T15-global');
  if (list.some((x) => x !== 0 && x !== 1)) f.add('other-protocol');
  const required = [...protos].some((x) => x !== 0);
  const remain = b.length - p;
  if (remain === 0) f.add('ends-after-interface-bytes');
  if (remain < k) f.add('historical-truncated');
  else if (remain === k && required) f.add('tck-missing');
  else if (remain === k + 1) {
    let x = 0;
    for (let j = 1; j < b.length; j++) x ^= b[j];
    f.add(x === 0 ? 'tck-good' : 'tck-wrong');
    if (!required) f.add('tck-with-T0-only');
  } else if (remain > k + 1) f.add('too-long');
  const h = b.slice(p, p + k);
  if (h.length === 0) f.add('no-historical');
  else {
    const c = h[0];
    const cat = c === 0x00 ? '00' : c === 0x10 ? '10' : c === 0x80 ? '80' : c > 0x80 && c <= 0x8f ? 'rfu' : 'proprietary';
    f.add(`category-${cat}`);
    if (cat === '80' && h.length === 15 && h[1] === 0x4f && h[2] === 0x0c) f.add('pcsc-part3');
    if (cat === '00' || cat === '80') {
      const end = cat === '00' ? h.length - 3 : h.length;
      let q = 1;
      while (q < end) {
        const tag = h[q] >> 4;
        const len = h[q] & 15;
        f.add(`ctlv-tag-${tag.toString(16).toUpperCase()}${tag === 7 || tag === 8 ? `-len${len}` : ''}`);
        if (q + 1 + len > end) f.add('ctlv-truncated');
        q += 1 + len;
      }
    }
  }
  return { f, ta1 };
}

function pick(atrs) {
  const chosen = new Set();
  const byFeature = new Map();
  const ta1Seen = new Set();
  for (const atr of atrs) {
    const { f, ta1 } = features(atr);
    if (ta1 !== undefined && !ta1Seen.has(ta1)) {
      ta1Seen.add(ta1);
      chosen.add(atr);
    }
    for (const name of f) {
      const n = byFeature.get(name) ?? 0;
      if (n < PER_FEATURE) {
        byFeature.set(name, n + 1);
        chosen.add(atr);
      }
    }
  }
  return atrs.filter((a) => chosen.has(a));
}

/**
 * No ATR in the list uses some FI/DI codes (DI 9 = 20, the RFU codes, ...). A few synthetic ATRs,
 * marked as such, give every FI code and every DI code to ATR_analysis at least twice:
 * "3B 11 <TA1> 41" (TA1 only, one proprietary historical byte).
 */
function syntheticAtrs() {
  const out = [];
  for (let fi = 0; fi < 16; fi++) {
    for (const di of [fi, (fi * 7 + 3) & 15]) out.push(`3B 11 ${((fi << 4) | di).toString(16).toUpperCase().padStart(2, '0')} 41`);
  }
  return [...new Set(out)];
}

// ---- ATR_analysis output ----------------------------------------------------------------------

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

function runAtrAnalysis(atr, home) {
  const r = spawnSync(ATR_ANALYSIS, [atr], {
    encoding: 'utf8',
    timeout: TIMEOUT_MS,
    env: { HOME: home, PATH: '', LANG: 'C' },
  });
  if (r.error) throw new Error(`ATR_analysis failed on ${atr}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`ATR_analysis exited ${r.status} on ${atr}: ${r.stderr}`);
  const text = stripAnsi(r.stdout);
  const cut = text.indexOf('\nPossibly identified card');
  return (cut >= 0 ? text.slice(0, cut) : text).replace(/\s+$/, '');
}

/** Turns ATR_analysis's printout into fields, keeping its own words and notation. */
function parseAnalysis(raw) {
  const lines = raw.split('\n');
  const a = { interfaceBytes: [], errors: [], complete: false };
  let current; // the interface byte whose text may continue on the next line
  let section = 'interface';
  let ctlv; // the compact-TLV object being printed
  for (const line of lines) {
    let m;
    if ((m = line.match(/^\+ TS = ([0-9A-F]{2}) --> (.*)$/))) {
      a.ts = { value: m[1], text: m[2] };
    } else if ((m = line.match(/^\+ T0 = ([0-9A-F]{2}), Y\(1\): ([01]{4}), K: (\d+) \(historical bytes\)$/))) {
      a.t0 = { value: m[1], y1: m[2], k: Number(m[3]) };
    } else if ((m = line.match(/^  T([ABCD])\((\d+)\) = ([0-9A-F]{2}) --> ?(.*)$/))) {
      current = { name: `T${m[1]}`, i: Number(m[2]), value: m[3], text: m[4].trim() };
      a.interfaceBytes.push(current);
    } else if (line === '-----') {
      current = undefined;
    } else if (section === 'interface' && current && /^    \S/.test(line)) {
      current.text += ' ' + line.trim();
    } else if ((m = line.match(/^\+ Historical bytes: ?(.*)$/))) {
      section = 'historical';
      current = undefined;
      a.complete = true;
      a.historicalBytes = m[1].trim() === '' ? [] : m[1].trim().split(' ');
    } else if ((m = line.match(/^ ERROR! (.*)$/))) {
      a.errors.push(m[1]);
    } else if ((m = line.match(/^  Category indicator byte: ([0-9A-F]{2}) \((.*)\)$/))) {
      a.category = { value: m[1], text: m[2] };
    } else if ((m = line.match(/^   DIR data reference: ([0-9A-F]{2})$/))) {
      a.dirReference = m[1];
    } else if ((m = line.match(/^    Tag: ([0-9A-F]), len: ([0-9A-F]) \((.*)\)$/))) {
      ctlv = { tag: m[1], len: m[2], name: m[3], lines: [] };
      (a.compactTlv ??= []).push(ctlv);
    } else if (/^    Mandatory status indicator \(3 last bytes\)$/.test(line)) {
      ctlv = undefined;
      a.statusIndicator = {};
    } else if ((m = line.match(/^      LCS \(life card cycle\): ([0-9A-F]{2})(?: \((.*)\))?$/))) {
      const target = ctlv ?? a.statusIndicator;
      if (target) {
        target.lcs = m[1];
        if (m[2] !== undefined) target.lcsText = m[2];
      }
      if (ctlv) ctlv.lines.push(line.trim());
    } else if ((m = line.match(/^      SW: ([0-9A-F]{4})(?: \((.*)\))?$/))) {
      const target = ctlv ?? a.statusIndicator;
      if (target) {
        target.sw = m[1];
        if (m[2] !== undefined) target.swText = m[2];
      }
      if (ctlv) ctlv.lines.push(line.trim());
    } else if ((m = line.match(/^    Error in the ATR: (.*)$/))) {
      a.errors.push(m[1]);
    } else if ((m = line.match(/^      (.*)$/)) && ctlv) {
      ctlv.lines.push(m[1].trim());
    } else if ((m = line.match(/^\+ TCK = ([0-9A-F]{2}) \(?(correct checksum|WRONG CHECKSUM, expected ([0-9A-F]{2}))\)?$/))) {
      a.tck = { value: m[1], correct: m[2] === 'correct checksum' };
      if (m[3] !== undefined) a.tck.expected = m[3];
    } else if (/^Your card is not a microprocessor card/.test(line)) {
      a.notMicroprocessor = true;
    }
  }
  for (const b of a.interfaceBytes) b.fields = interfaceFields(b);
  return a;
}

/** The numbers and flags in one interface byte's line, as ATR_analysis printed them. */
function interfaceFields(b) {
  const t = b.text;
  let m;
  const f = {};
  if ((m = t.match(/^Fi=(\S+), Di=([^,\s]+)/))) {
    f.Fi = m[1].replace(/,$/, '');
    f.Di = m[2];
    if ((m = t.match(/, (\S+) cycles\/ETU (\d+) bits\/s at 4 MHz, fMax for Fi = (\d+) MHz => (\d+) bits\/s/))) {
      f.cyclesPerEtu = m[1];
      f.bitsPerSecondAt4MHz = m[2];
      f.fmaxMHz = m[3];
      f.bitsPerSecondAtFmax = m[4];
    }
  } else if (t === 'VPP is not electrically connected') {
    f.vppConnected = false;
  } else if ((m = t.match(/^Programming Param P: (\d+) Volts, I: (\d+) milliamperes$/))) {
    f.vppConnected = true;
    f.P = m[1];
    f.I = m[2];
  } else if ((m = t.match(/^Extra guard time: (\d+)( \(special value\))?$/))) {
    f.extraGuardTime = m[1];
    f.special = m[2] !== undefined;
  } else if ((m = t.match(/^Y\(i\+1\) = ([01]{4}), Protocol T = (\d+)( - Global interface bytes following)?$/))) {
    f.y = m[1];
    f.protocol = m[2];
    f.globalFollows = m[3] !== undefined;
  } else if ((m = t.match(/^Protocol to be used in spec mode: T=(\d+) - (Unable|Capable) to change - (implicity defined|defined by interface bytes)$/))) {
    f.protocol = m[1];
    f.change = m[2];
    f.definition = m[3];
  } else if ((m = t.match(/^Programming param PI2 \(PI1 should be ignored\): (\d+) (\(dV\)|is RFU)$/))) {
    f.PI2 = m[1];
    f.rfu = m[2] === 'is RFU';
  } else if ((m = t.match(/^Work waiting time: 960 x (\d+) x \(Fi\/F\)$/))) {
    f.WI = m[1];
  } else if ((m = t.match(/^IFSC: (\d+)$/))) {
    f.IFSC = m[1];
  } else if ((m = t.match(/^Clock stop: (.*) - Class accepted by the card: \(3G\) ?(.*)$/))) {
    f.clockStop = m[1];
    f.classes = m[2].trim();
  } else if ((m = t.match(/^Block Waiting Integer: (\d+) - Character Waiting Integer: (\d+)$/))) {
    f.BWI = m[1];
    f.CWI = m[2];
  } else if ((m = t.match(/^Error detection code: (CRC|LRC|RFU)$/))) {
    f.errorDetection = m[1];
  }
  return f;
}

// ---- main -------------------------------------------------------------------------------------

const listText = readFileSync(listPath, 'latin1');
const atrs = literalAtrs(listText);
const listed = new Set(atrs);
const selected = [...(all ? atrs : pick(atrs)).map((atr) => ({ atr, source: 'smartcard_list' })), ...syntheticAtrs().filter((a) => !listed.has(a)).map((atr) => ({ atr, source: 'synthetic' }))];
const home = mkdtempSync(join(tmpdir(), 'atr-fixture-'));
const entries = [];
try {
  for (const { atr, source } of selected) {
    const raw = runAtrAnalysis(atr, home);
    entries.push({ atr, source, features: [...features(atr).f].sort(), analysis: parseAnalysis(raw), raw });
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify(entries, null, 2) + '\n');
const covered = new Map();
for (const e of entries) for (const f of e.features) covered.set(f, (covered.get(f) ?? 0) + 1);
const fromList = entries.filter((e) => e.source === 'smartcard_list').length;
process.stdout.write(`${fromList} of ${atrs.length} literal ATRs of the list and ${entries.length - fromList} synthetic ones written to ${outPath}\n`);
process.stdout.write([...covered.entries()].sort().map(([f, n]) => `  ${f}: ${n}`).join('\n') + '\n');
