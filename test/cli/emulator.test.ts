/**
 * `hilt emulator` as a user runs it, driven in-process (run() with an abort signal and a control
 * stream), plugged into hilt's own vpcd reader (VpcdServer) over loopback: jCardSim configuration
 * files, several cards on consecutive ports, removal and insertion from the control stream, and the
 * one-line errors of bad options.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { VpcdServer } from '../../src/reader/vpcd-server.js';
import { fromHex, toHex } from '../../src/util/bytes.js';

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

/** Two free consecutive loopback ports, each with a VpcdServer listening (bounded retries). */
async function serverPair(): Promise<[VpcdServer, VpcdServer]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as AddressInfo).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    if (port >= 65535) continue;
    try {
      const a = await VpcdServer.listen({ port });
      try {
        return [a, await VpcdServer.listen({ port: port + 1 })];
      } catch {
        await a.close();
      }
    } catch {
      // taken meanwhile: try another
    }
  }
  throw new Error('no two consecutive free ports');
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Starts `hilt emulator …` in-process; returns its output, control stream and a stop function. */
function emulator(args: string[]) {
  const io = capture();
  const input = new PassThrough();
  const stop = new AbortController();
  const done = run(['node', 'hilt', 'emulator', ...args], io, { signal: stop.signal, input });
  const halt = async () => {
    stop.abort();
    return done;
  };
  cleanups.push(async () => {
    await halt();
  });
  return { io, input, halt };
}

const SELECT = (aid: string) => fromHex(`00A4040C${(aid.length / 2).toString(16).padStart(2, '0')}${aid}`);

describe('hilt emulator', () => {
  it('reads a jCardSim configuration: ATR, applet at its AID, vsmartcard host and port', async () => {
    const server = await VpcdServer.listen({ port: 0 });
    cleanups.push(() => server.close());
    const dir = mkdtempSync(join(tmpdir(), 'hilt-emu-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cfg = join(dir, 'card.cfg');
    writeFileSync(
      cfg,
      [
        '# a jCardSim card',
        'com.licel.jcardsim.card.ATR=3B80800101',
        'com.licel.jcardsim.card.applet.0.AID=A0000000626869',
        'com.licel.jcardsim.card.applet.0.Class=com.example.DiagnosticApplet',
        'com.licel.jcardsim.vsmartcard.host=127.0.0.1',
        `com.licel.jcardsim.vsmartcard.port=${server.port}`,
      ].join('\n'),
    );
    const emu = emulator(['--config', cfg, '--no-test-keys']);
    expect(toHex(await server.waitForCard())).toBe('3b80800101');
    expect(toHex(await server.transmit(SELECT('A0000000626869')))).toBe('9000');
    expect(toHex(await server.transmit(fromHex('8012000404')))).toBe('000102039000');
    expect(await emu.halt()).toBe(0);
    expect(emu.io.stdout.join('\n')).toMatch(/applets diagnostic/);
  });

  it('runs several cards on consecutive ports, each with its own serial; remove and insert one from the control stream', async () => {
    const [a, b] = await serverPair();
    cleanups.push(() => a.close(), () => b.close());
    const emu = emulator(['--vpcd', `127.0.0.1:${a.port}`, '--cards', '2', '--serial', '0000000000000010']);
    await Promise.all([a.waitForCard(), b.waitForCard()]);
    const serial = async (s: VpcdServer) => toHex(await s.transmit(fromHex('80CADF0100')));
    expect(await serial(a)).toBe('df0108000000000000001' + '09000');
    expect(await serial(b)).toBe('df0108000000000000001' + '19000');

    emu.input.write('remove 1\n');
    await b.waitForRemoval();
    expect(a.cardPresent).toBe(true);
    emu.input.write('insert 1\n');
    await b.waitForCard();
    await b.reset();
    expect(await serial(b)).toBe('df0108000000000000001' + '19000');
    emu.input.write('status\n');
    emu.input.write('bogus\n');
    expect(await emu.halt()).toBe(0);
    expect(emu.io.stdout.join('\n')).toMatch(/card 0: connected[\s\S]*card 1: connected/);
    expect(emu.io.stderr.join('\n')).toMatch(/unknown control "bogus"/);
  });

  it('a bad option is one line and exit 2', async () => {
    for (const [args, message] of [
      [['--applets', 'wallet'], /unknown applet "wallet" \(known: diagnostic/],
      [['--vpcd', 'localhost:99999'], /--vpcd: expected host:port/],
      [['--config', '/nonexistent/card.cfg'], /--config: cannot read \/nonexistent\/card\.cfg: ENOENT/],
    ] as const) {
      const io = capture();
      expect(await run(['node', 'hilt', 'emulator', ...args], io)).toBe(2);
      expect(io.stderr.filter((l) => l.startsWith('hilt:'))).toHaveLength(1);
      expect(io.stderr.join('\n')).toMatch(message);
    }
  });
});
