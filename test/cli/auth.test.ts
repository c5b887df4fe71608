/**
 * `hilt auth` against the emulator's issuer security domain (GP test keys), through hilt's own vpcd
 * reader (`--reader vpcd://…`, no pcscd): every level, wrapped APDUs after the handshake, and the
 * failures a user meets (wrong keys, a provider the card has no domain for, an unknown domain).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/cli/main.js';
import type { Output } from '../../src/cli/output.js';
import { makeCard } from '../../emulator/make-card.js';
import { VpcdCardClient } from '../../emulator/vpcd/client.js';
import { fromHex } from '../../src/util/bytes.js';

function capture(): Output & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const clients: VpcdCardClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

/** An emulated GP card (test-key ISD + diagnostic applet) that keeps trying to plug into `port`. */
async function card(): Promise<number> {
  const port = await freePort();
  const { os } = makeCard({ serial: fromHex('0102030405060708'), applets: [{ name: 'diagnostic' }], testKeys: true });
  const client = new VpcdCardClient(os, { port, initialDelayMs: 10, maxDelayMs: 50, logger: { info: () => undefined, warn: () => undefined } });
  client.insertCard();
  clients.push(client);
  return port;
}

describe('hilt auth', () => {
  it.each(['0x01', '0x03', '0x11', '0x13', '0x33'])('authenticates at level %s and sends wrapped APDUs', async (level) => {
    const port = await card();
    const io = capture();
    const code = await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`, '--level', level, '--send', '80CA006600', '--send', '80CADF0100', '--json'], io);
    expect(io.stderr, io.stderr.join('\n')).toEqual([]);
    expect(code).toBe(0);
    const doc = JSON.parse(io.stdout.join('\n'));
    expect(doc.securityLevel).toBe(level.slice(2));
    expect(doc.card.kvn).toBe('30');
    expect(doc.keys).toMatchObject({ kvn: '30', testKeys: true, kcv: { enc: '504A77', mac: '504A77', dek: '504A77' } });
    expect(doc.selected).toBe('A000000151000000');
    expect(doc.answers.map((a: { sw: string }) => a.sw)).toEqual(['9000', '9000']);
    expect(doc.answers[1].response).toBe('DF01080102030405060708');
  });

  it('the sequence counter moves with every handshake; the text output labels the test keys', async () => {
    const port = await card();
    const first = capture();
    expect(await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`], first)).toBe(0);
    const second = capture();
    expect(await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`], second)).toBe(0);
    const counter = (io: { stdout: string[] }) => Number(/sequence counter\s+(\d+)/.exec(io.stdout.join('\n'))?.[1]);
    expect(counter(second)).toBe(counter(first) + 1);
    expect(second.stdout.join('\n')).toMatch(/TEST KEYS/);
    expect(second.stdout.join('\n')).not.toMatch(/40414243/i);
  });

  it('wrong keys: one clear line, exit 1, nothing after INITIALIZE UPDATE', async () => {
    const port = await card();
    const dir = mkdtempSync(join(tmpdir(), 'hilt-auth-'));
    try {
      const file = join(dir, 'keys.ini');
      writeFileSync(file, ['[gp-test]', 'kvn = 30', `enc = ${'11'.repeat(16)}`, `mac = ${'22'.repeat(16)}`, `dek = ${'33'.repeat(16)}`, 'diversify = no', ''].join('\n'), { mode: 0o600 });
      const io = capture();
      const code = await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`, '--keys', file, '--trace'], io);
      expect(code).toBe(1);
      const errors = io.stderr.filter((l) => l.startsWith('hilt:'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/card cryptogram does not verify/);
      const sent = io.stderr.filter((l) => / > /.test(l)).map((l) => l.split(' > ')[1]);
      expect(sent.at(-1)).toMatch(/^8050300008/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a provider the card has no domain for, and an unknown provider', async () => {
    const port = await card();
    const io = capture();
    expect(await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`, '--domain', 'emoney'], io)).toBe(1);
    expect(io.stderr.join('\n')).toMatch(/INITIALIZE UPDATE refused \(SW 6A88\)/);
    const io2 = capture();
    expect(await run(['node', 'hilt', 'auth', '--reader', `vpcd://127.0.0.1:${port}`, '--domain', 'nope'], io2)).toBe(2);
    expect(io2.stderr).toEqual(['hilt: --domain: no keys for "nope" (key store has: bank, credit, emoney, gp-test)']);
    const io3 = capture();
    expect(await run(['node', 'hilt', 'auth', '--level', '0x02'], io3)).toBe(2);
    expect(io3.stderr.join('\n')).toMatch(/--level: expected one of 0x01, 0x03, 0x11, 0x13, 0x33/);
  });
});
