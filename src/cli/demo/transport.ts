/**
 * The reader check that opens the demo: an emulated card with the diagnostic applet plugged into
 * hilt's own vpcd reader over a real loopback socket, driven by the terminal-side wrapper stack
 * (cases 1-4, 61xx/GET RESPONSE, 6Cxx, chaining, extended length, SCP03 level 33, a card pulled
 * mid-session), every wire exchange traced. `hilt demo` prints one line of it; `--transport` the
 * whole table, `--trace` every APDU.
 */
import { demoTempDir } from './temp-dir.js';
import { join } from 'node:path';
import { compose, type CardChannel } from '../../reader/channel.js';
import { withTrace, type TraceRecord } from '../../reader/trace.js';
import { withGetResponse } from '../../reader/get-response.js';
import { withChaining } from '../../reader/chaining.js';
import { VpcdServer } from '../../reader/vpcd-server.js';
import { CommandApdu } from '../../apdu/command.js';
import { ResponseApdu } from '../../apdu/response.js';
import { describeSw } from '../../apdu/sw.js';
import { fromHex, toHex } from '../../util/bytes.js';
import { isHiltError } from '../../util/errors.js';
// The demo starts the emulator, like `hilt emulator` (DESIGN.md allows the CLI that).
import { makeCard } from '../../../emulator/make-card.js';
import { VpcdCardClient } from '../../../emulator/vpcd/client.js';
import { TRANSPORT_STEPS, SECURE_STEPS } from './transport-steps.js';
import { KeyStore } from '../../terminal/keystore.js';
import { SECURITY_LEVEL } from '../../crypto/scp03.js';
import type { Scp03Channel } from '../../reader/scp03.js';

export interface StepResult {
  section: string;
  name: string;
  ok: boolean;
  sw: string;
  swMeaning: string;
  bytesIn: number;
  bytesOut: number;
  wireExchanges: number;
  micros: number;
  note: string;
}

export interface TransportReport {
  atr: Uint8Array;
  serial: Uint8Array;
  vpcdPort: number;
  steps: StepResult[];
  trace: TraceRecord[];
}

export const DEMO_SERIAL = fromHex('48494C5400000042');

export async function runTransportCheck(): Promise<TransportReport> {
  const temp = demoTempDir('hilt-demo-transport-');
  const dir = temp.dir;
  const card = makeCard({ serial: DEMO_SERIAL, applets: [{ name: 'diagnostic' }], image: join(dir, 'card.img'), testKeys: true });
  const server = await VpcdServer.listen({ port: 0 });
  const client = new VpcdCardClient(card.os, { port: server.port, logger: { info: () => undefined, warn: () => undefined } });
  const trace: TraceRecord[] = [];
  const steps: StepResult[] = [];
  try {
    client.insertCard();
    const atr = await server.waitForCard();
    // Innermost: the trace sees every wire exchange; outermost: chaining splits long commands.
    const channel: CardChannel = compose(server, withTrace((r) => trace.push(r)), withGetResponse(), withChaining());

    for (const step of TRANSPORT_STEPS) {
      steps.push(await runStep(channel, trace, 'transport', step.name, fromHex(step.command), step.sw, step.check, step.shows));
    }
    // The secure channel closes what it runs over when it is closed: lend it a view of the reader.
    const borrowed: CardChannel = { transmit: (c) => server.transmit(c), reset: (cold) => server.reset(cold), close: async () => undefined };
    steps.push(...(await secureChannelSteps(compose(borrowed, withTrace((r) => trace.push(r))), trace)));
    steps.push(await cardRemovalStep(channel, client, server, trace));
    await channel.close();
    return { atr, serial: DEMO_SERIAL, vpcdPort: server.port, steps, trace };
  } finally {
    await client.close();
    await server.close();
    temp.remove();
  }
}

async function runStep(
  channel: CardChannel,
  trace: TraceRecord[],
  section: string,
  name: string,
  command: Uint8Array,
  sw: number,
  check: ((d: Uint8Array) => string | null) | undefined,
  shows: string,
): Promise<StepResult> {
  const before = trace.length;
  const t0 = process.hrtime.bigint();
  const cmd = CommandApdu.decode(command);
  try {
    const resp = ResponseApdu.decode(await channel.transmit(cmd.encode()));
    const micros = Number((process.hrtime.bigint() - t0) / 1000n);
    const problem = resp.sw !== sw ? `expected SW ${sw.toString(16).toUpperCase()}` : (check?.(resp.data) ?? null);
    return {
      section,
      name,
      ok: problem === null,
      sw: resp.swHex,
      swMeaning: describeSw(resp.sw).meaning,
      bytesIn: resp.data.length,
      bytesOut: cmd.data.length,
      wireExchanges: trace.slice(before).filter((r) => r.dir === '>').length,
      micros,
      note: problem ?? shows,
    };
  } catch (e) {
    return failed(section, name, trace.length - before, t0, e);
  }
}

function failed(section: string, name: string, wire: number, t0: bigint, e: unknown): StepResult {
  return {
    section,
    name,
    ok: false,
    sw: '----',
    swMeaning: isHiltError(e) ? e.code : 'error',
    bytesIn: 0,
    bytesOut: 0,
    wireExchanges: wire,
    micros: Number((process.hrtime.bigint() - t0) / 1000n),
    note: e instanceof Error ? e.message : String(e),
  };
}

/**
 * SCP03 with the card's issuer security domain (GlobalPlatform TEST KEYS, from the terminal key store's
 * gp-test domain) at level 33: every command MACed and encrypted, every answer MACed and encrypted.
 * The channel under SCP03 has no GET RESPONSE/6Cxx wrapper: the secure channel collects 61xx itself
 * and a 6Cxx re-issue would replay a MAC.
 */
async function secureChannelSteps(wire: CardChannel, trace: TraceRecord[]): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const store = await KeyStore.open({ sources: [{ kind: 'test', providers: ['gp-test'] }], warn: () => undefined });
  try {
    const select = ResponseApdu.decode(await wire.transmit(fromHex('00A4040C09F068696C7444494147')));
    if (select.sw !== 0x9000) throw new Error(`SELECT answered ${select.swHex}`);
    const before = trace.length;
    const t0 = process.hrtime.bigint();
    let secure: Scp03Channel;
    try {
      secure = await store.domain('gp-test').openScp03(wire, { provider: 'gp-test', securityLevel: SECURITY_LEVEL.C_MAC_C_DEC_R_MAC_R_ENC });
    } catch (e) {
      return [failed('scp03', 'mutual authentication, level 33', trace.length - before, t0, e)];
    }
    results.push({
      section: 'scp03',
      name: 'mutual authentication, level 33',
      ok: true,
      sw: '9000',
      swMeaning: describeSw(0x9000).meaning,
      bytesIn: 0,
      bytesOut: 0,
      wireExchanges: trace.slice(before).filter((r) => r.dir === '>').length,
      micros: Number((process.hrtime.bigint() - t0) / 1000n),
      note: `TEST KEYS kvn ${secure.info.kvn.toString(16)}, sequence counter ${secure.info.sequenceCounter ?? '-'}, card cryptogram verified`,
    });
    for (const step of SECURE_STEPS) {
      results.push(await runStep(secure, trace, 'scp03', step.name, fromHex(step.command), step.sw, step.check, step.shows));
    }
    // A plain command in the middle of the session: the card refuses it and drops the session.
    const plain = await runStep(wire, trace, 'scp03', 'plain command during the session', fromHex('80100000'), 0x6982, undefined, 'refused: security status not satisfied, session dropped');
    results.push(plain);
    await secure.close();
    return results;
  } finally {
    store.close();
  }
}

/** Pull the card mid-session: the next transmit must fail with CARD_REMOVED; re-insert and reset. */
async function cardRemovalStep(channel: CardChannel, client: VpcdCardClient, server: VpcdServer, trace: TraceRecord[]): Promise<StepResult> {
  const t0 = process.hrtime.bigint();
  const before = trace.length;
  await channel.reset();
  await channel.transmit(fromHex('00A4040C09F068696C7444494147'));
  const counterBefore = toHex(ResponseApdu.decode(await channel.transmit(fromHex('8042000004'))).data);
  await client.removeCard();
  await server.waitForRemoval();
  let code = 'none';
  try {
    await channel.transmit(fromHex('80100000'));
  } catch (e) {
    code = isHiltError(e) ? e.code : 'other';
  }
  client.insertCard();
  await server.waitForCard();
  const atr = await channel.reset();
  const after = ResponseApdu.decode(await channel.transmit(fromHex('00A4040C09F068696C7444494147')));
  // The counter survived the power loss: it lives in the tear-safe card image.
  const counter = ResponseApdu.decode(await channel.transmit(fromHex('8042000004')));
  const ok = code === 'CARD_REMOVED' && after.sw === 0x9000 && counter.sw === 0x9000 && toHex(counter.data) === counterBefore;
  return {
    section: 'hot-plug',
    name: 'card pulled, re-inserted, reset',
    ok,
    sw: after.swHex,
    swMeaning: describeSw(after.sw).meaning,
    bytesIn: atr.length,
    bytesOut: 0,
    wireExchanges: trace.slice(before).filter((r) => r.dir === '>').length,
    micros: Number((process.hrtime.bigint() - t0) / 1000n),
    note: `transmit while out: ${code}; counter after re-insert ${toHex(counter.data)}`,
  };
}
