/**
 * `hilt hosts` in-process (registerHosts on a commander program, as main.ts wires it): prints where
 * it listens (text and --json), serves until the context's signal aborts, and keeps its storage in
 * --dir across runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerHosts } from '../../src/cli/commands/hosts.js';
import type { Output } from '../../src/cli/output.js';
import { RC, echoRequest } from '../../src/hostlink/messages.js';
import { adminGet, adminPost, until, TestTerminal } from './helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function start(args: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: Output = { out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
  const stop = new AbortController();
  const program = new Command('hilt').exitOverride();
  registerHosts(program, { io, signal: stop.signal }, () => undefined);
  const done = program.parseAsync(['node', 'hilt', 'hosts', ...args]);
  return { stdout, stderr, done, stop: async () => (stop.abort(), done) };
}

describe('hilt hosts', () => {
  it('--json: a ready line with the addresses; serves; stops on the signal; the storage stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hilt-cli-hosts-'));
    dirs.push(dir);
    const run = start(['--dir', dir, '--port', '0', '--admin-port', '0', '--json']);
    await until(() => run.stdout.length > 0, 10_000);
    const ready = JSON.parse(run.stdout[0]) as { event: string; gateway: string; admin: string };
    expect(ready.event).toBe('ready');
    expect(run.stderr.join('\n')).toMatch(/TEST KEYS/);
    const [host, port] = ready.gateway.split(':');
    const hosts = { host, gatewayPort: Number(port), adminUrl: ready.admin };
    const code = (await adminPost<{ code: string }>(hosts, '/readers', { terminalId: 'T1', readerId: 'R1' })).body.code;
    const t = await TestTerminal.connect(hosts, 'T1', 'R1');
    expect(await t.enrol(code)).toBe(RC.approved);
    expect((await t.request(echoRequest(t.header(9)))).responseCode()).toBe(RC.approved);
    await t.close();
    await run.stop();
    expect(JSON.parse(run.stdout[run.stdout.length - 1]).event).toBe('stopped');
    expect(run.stdout.some((l) => JSON.parse(l).event === 'connected')).toBe(true);
    expect(existsSync(join(dir, 'registry.sqlite'))).toBe(true);

    const again = start(['--dir', dir, '--port', '0', '--admin-port', '0']);
    await until(() => again.stdout.length > 0, 10_000);
    expect(again.stdout[0]).toMatch(/^gateway on 127\.0\.0\.1:\d+, admin API on http:\/\/127\.0\.0\.1:\d+/);
    const adminUrl = /admin API on (\S+),/.exec(again.stdout[0])![1];
    const readers = await adminGet<{ readers: { readerId: string; status: string }[] }>({ adminUrl }, '/readers');
    expect(readers.body.readers).toMatchObject([{ readerId: 'R1', status: 'enrolled' }]);
    await again.stop();
  });

  it('refuses a bad port', async () => {
    const program = new Command('hilt').exitOverride();
    const io: Output = { out: () => undefined, err: () => undefined };
    registerHosts(program, { io }, () => undefined);
    program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    await expect(program.parseAsync(['node', 'hilt', 'hosts', '--port', '70000'])).rejects.toThrow(/--port/);
  });
});
