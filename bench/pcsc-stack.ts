/**
 * What the benchmarks that go through the real PC/SC stack share: a pcscd that answers (the one
 * running, or one started for the run when we are root), and a PcscChannel to an emulated card
 * plugged into the vpcd driver's port. Each returns a string instead of throwing when the stack is
 * not there, so the bench prints the row as skipped with the reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { PcscChannel } from '../src/reader/pcsc.js';
import { establishContext, loadPcscBinding } from '../src/reader/pcsc-binding.js';
import { VpcdCardClient } from '../emulator/vpcd/client.js';
import { SILENT_LOGGER } from '../src/util/logger.js';
import type { CardOs } from '../emulator/os/card-os.js';

/** Bounds of getting the pcscd row ready. */
export const PCSCD_START_BOUND_MS = 10_000;
export const CARD_SEEN_BOUND_MS = 10_000;
const POLL_MS = 100;


export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `body` with a pcscd answering: the one running, or one started for the bench (root only). */
export async function withPcscd<T>(body: () => Promise<T>): Promise<T | string> {
  let binding: ReturnType<typeof loadPcscBinding>;
  try {
    binding = loadPcscBinding();
  } catch (e) {
    return (e as Error).message;
  }
  const up = (): boolean => {
    try {
      establishContext(binding).close();
      return true;
    } catch {
      return false;
    }
  };
  let child: ChildProcess | null = null;
  if (!up()) {
    if (process.getuid?.() !== 0) return 'no pcscd running (start it with `pcscd`), and starting one needs root';
    child = spawn('pcscd', ['-f'], { stdio: 'ignore' });
    const deadline = Date.now() + PCSCD_START_BOUND_MS;
    while (!up()) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        return `pcscd did not start within ${PCSCD_START_BOUND_MS} ms`;
      }
      await sleep(POLL_MS);
    }
  }
  try {
    return await body();
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

/**
 * Plugs `os` into the vpcd driver's `port`, opens `reader` once pcscd sees the card, and runs
 * `body` on the channel; unplugs afterwards.
 */
export async function withPcscCard<T>(os: CardOs, reader: string, port: number, body: (ch: PcscChannel) => Promise<T>): Promise<T | string> {
  const client = new VpcdCardClient(os, { port, logger: SILENT_LOGGER });
  client.insertCard();
  let ch: PcscChannel | null = null;
  try {
    const deadline = Date.now() + CARD_SEEN_BOUND_MS;
    for (;;) {
      try {
        ch = await PcscChannel.open(reader);
        break;
      } catch (e) {
        if (Date.now() > deadline) return `no card seen in "${reader}" (vpcd port ${port}) within ${CARD_SEEN_BOUND_MS} ms: ${(e as Error).message}`;
        await sleep(POLL_MS);
      }
    }
    return await body(ch);
  } finally {
    await ch?.close();
    await client.close();
  }
}
