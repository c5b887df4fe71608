/**
 * Cost of GlobalPlatform SCP03 between the terminal's host side (openScp03) and the emulator's card
 * side (the security domain the card OS routes to), in process (InProcessChannel → CardOs), all
 * measured in one run:
 *
 *   handshake        INITIALIZE UPDATE + EXTERNAL AUTHENTICATE (openScp03), mean µs, and as a
 *                    multiple of one plain short APDU
 *   per APDU         a short APDU (PATTERN, 16 bytes back) and a 200-byte ECHO, plain (no session)
 *                    and wrapped at each level 01, 03, 11, 13, 33; ratio wrapped / plain
 *
 * Both ends' crypto runs in this process, so "wrapped" pays for wrapping on the host, unwrapping
 * and wrapping on the card, and unwrapping on the host. Le is 00 so no answer needs GET RESPONSE.
 * No assertions: numbers only.
 *
 * Run: `npm run build && node dist/bench/scp03.js [iterations]`, or call runScp03Bench().
 */
import { pathToFileURL } from 'node:url';
import { makeCard } from '../emulator/make-card.js';
import { InProcessChannel } from '../emulator/in-process.js';
import { DIAGNOSTIC_AID } from '../emulator/applets/diagnostic.js';
import { openScp03 } from '../src/reader/scp03.js';
import type { CardChannel } from '../src/reader/channel.js';
import { SECURITY_LEVEL, type SecurityLevel } from '../src/crypto/scp03.js';
import { testStaticKeys } from '../src/crypto/diversify.js';
import { concatBytes, fromHex, hexByte, toHex } from '../src/util/bytes.js';
import { ProtocolError } from '../src/util/errors.js';

/** Timed exchanges per row (after WARMUP_ITERATIONS not counted). */
export const DEFAULT_ITERATIONS = 2_000;
export const WARMUP_ITERATIONS = 200;

const SERIAL = fromHex('0102030405060708');
const SELECT_DIAG = concatBytes(fromHex('00A4040C09'), DIAGNOSTIC_AID);
const SHORT = fromHex('80 12 00 10 00');
const ECHO_DATA = Uint8Array.from({ length: 200 }, (_, i) => (i * 7) & 0xff);
const ECHO = concatBytes(fromHex('80 18 00 00 C8'), ECHO_DATA, fromHex('00'));
const APDUS = [
  { name: 'short (PATTERN, 16 bytes back)', bytes: SHORT, answer: 16 },
  { name: 'ECHO 200 bytes', bytes: ECHO, answer: 200 },
] as const;
const LEVELS: readonly SecurityLevel[] = [
  SECURITY_LEVEL.C_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC,
  SECURITY_LEVEL.C_MAC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC,
  SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC,
];

export interface Scp03ApduRow {
  apdu: string;
  /** Security level as two hex digits. */
  level: string;
  plainUs: number;
  wrappedUs: number;
  /** wrappedUs / plainUs. */
  ratio: number;
}

export interface Scp03BenchResult {
  iterations: number;
  handshakeUs: number;
  /** handshakeUs / plain short APDU µs. */
  handshakeRatio: number;
  apdus: Scp03ApduRow[];
}

async function meanUs(iterations: number, op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP_ITERATIONS; i++) await op();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await op();
  return Number(process.hrtime.bigint() - start) / 1e3 / iterations;
}

/** Sends `bytes` and checks the answer is `length` data bytes + 9000, so a broken run is not timed. */
function exchange(channel: CardChannel, bytes: Uint8Array, length: number): () => Promise<void> {
  return async () => {
    const r = await channel.transmit(bytes);
    if (r.length !== length + 2 || r[r.length - 2] !== 0x90 || r[r.length - 1] !== 0x00) {
      throw new ProtocolError(`bench: unexpected answer ${toHex(r.subarray(Math.max(0, r.length - 2)))} (${r.length} bytes) to ${toHex(bytes.subarray(0, 4))}`);
    }
  };
}

export async function runScp03Bench(iterations = DEFAULT_ITERATIONS, print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<Scp03BenchResult> {
  const card = makeCard({ serial: SERIAL, applets: [{ name: 'diagnostic' }], testKeys: true });
  const reader = new InProcessChannel(card.os);
  const keys = testStaticKeys('gp-test');
  const select = async (): Promise<void> => {
    await reader.transmit(SELECT_DIAG);
  };

  // One untimed pass over every path first, so no row pays for compiling the crypto.
  for (const level of LEVELS) {
    await select();
    const ch = await openScp03(reader, { keys, securityLevel: level });
    for (const a of APDUS) for (let i = 0; i < WARMUP_ITERATIONS; i++) await exchange(ch, a.bytes, a.answer)();
  }

  // Each wrapped row has its plain baseline measured just before it, on the same channel with no
  // session (plain commands are then processed as they are), so drift in the machine's load shows
  // in both. The handshake's baseline likewise.
  await select();
  const handshakePlainUs = await meanUs(iterations, exchange(reader, SHORT, 16));
  // Each openScp03 is one INITIALIZE UPDATE (sequence counter written) + one EXTERNAL AUTHENTICATE.
  const handshakeUs = await meanUs(iterations, () => openScp03(reader, { keys, securityLevel: SECURITY_LEVEL.C_MAC }));

  const apdus: Scp03ApduRow[] = [];
  for (const level of LEVELS) {
    for (const a of APDUS) {
      await select();
      const plainUs = await meanUs(iterations, exchange(reader, a.bytes, a.answer));
      const ch = await openScp03(reader, { keys, securityLevel: level });
      const wrappedUs = await meanUs(iterations, exchange(ch, a.bytes, a.answer));
      apdus.push({ apdu: a.name, level: hexByte(level), plainUs, wrappedUs, ratio: wrappedUs / plainUs });
    }
  }
  await reader.close();

  const result: Scp03BenchResult = { iterations, handshakeUs, handshakeRatio: handshakeUs / handshakePlainUs, apdus };
  print(`SCP03 in process: openScp03 over InProcessChannel to the diagnostic applet behind the TEST KEYS ISD (AES-128, i=70), n = ${iterations}`);
  print(`handshake (INITIALIZE UPDATE + EXTERNAL AUTHENTICATE): ${handshakeUs.toFixed(1)} µs = ${result.handshakeRatio.toFixed(1)} x a plain short APDU`);
  print(`${'APDU'.padEnd(32)} ${'level'.padStart(5)} ${'plain µs'.padStart(10)} ${'wrapped µs'.padStart(11)} ${'x plain'.padStart(8)}`);
  for (const r of apdus) {
    print(`${r.apdu.padEnd(32)} ${r.level.padStart(5)} ${r.plainUs.toFixed(1).padStart(10)} ${r.wrappedUs.toFixed(1).padStart(11)} ${r.ratio.toFixed(2).padStart(8)}`);
  }
  return result;
}

/** True when run as a script: `node dist/bench/scp03.js [iterations]`. */
const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const arg = process.argv.find((a) => /^\d+$/.test(a));
  const n = arg ? Number(arg) : DEFAULT_ITERATIONS;
  runScp03Bench(Number.isInteger(n) && n > 0 ? n : DEFAULT_ITERATIONS).catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
