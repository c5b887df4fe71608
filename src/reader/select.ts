/**
 * Reader selection, as every command takes it (`--reader`), and what it opens.
 *
 *   --reader 1                     the PC/SC reader at index 1 in pcscd's list (from 0, as pcsc_scan prints)
 *   --reader "PCD 00 01"           the one PC/SC reader whose name contains the text (any case)
 *   --reader "pcsc:Virtual PCD 00 01"   the PC/SC reader with exactly this name
 *   --reader vpcd://127.0.0.1:35970     hilt's own vpcd server on that address: no pcscd; a card side
 *                                  (`hilt emulator --vpcd 127.0.0.1:35970`, jCardSim, vicc) connects to it
 *   (no --reader)                  the first PC/SC reader holding a card, else the first reader
 *
 * The channel stack the CLI uses, from the caller inwards (compose: last listed is outermost):
 *
 *   trace (if asked; outermost: one record per command the user gave)
 *     GET RESPONSE on 61xx and re-issue on 6Cxx (unless raw)
 *       command chaining (only when asked: extended commands otherwise go as they are)
 *         transport (PC/SC or vpcd server)
 *
 * `trace.wire` moves the trace next to the transport instead, to see every APDU on the wire.
 */
import { compose, type CardChannel, type Wrapper } from './channel.js';
import { withGetResponse, type GetResponseOptions } from './get-response.js';
import { withChaining, type ChainingOptions } from './chaining.js';
import { withTrace, type TraceOptions, type TraceSink } from './trace.js';
import { VpcdServer, type VpcdLogger } from './vpcd-server.js';
import { PcscChannel, listPcscReaders, type PcscProtocol, type PcscProtocolPreference, type PcscShareMode } from './pcsc.js';
import type { PcscBindingSource } from './pcsc-binding.js';
import { monitorPcsc } from './pcsc-monitor.js';
import { vpcdServerEvents, type MonitorEvent } from './events.js';
import { BadInputError, HiltError, TimeoutError } from '../util/errors.js';
import { assertInt } from '../util/assert.js';

export type ReaderSelection =
  | { kind: 'index'; index: number }
  | { kind: 'match'; text: string }
  | { kind: 'pcsc'; name: string }
  | { kind: 'vpcd'; host: string; port: number };

/** Bound of waiting for a card side to connect to a vpcd server before a command. */
export const DEFAULT_VPCD_WAIT_MS = 10_000;
export const VPCD_DEFAULT_SELECTION_HOST = '127.0.0.1';
/** Readers pcsc-lite can list (PCSCLITE_MAX_READERS_CONTEXTS); an index above is a typo. */
export const MAX_READER_INDEX = 255;

/** Parses a --reader value. Refuses empty text and malformed vpcd:// or pcsc: forms with BadInputError. */
export function parseReaderSelection(text: string): ReaderSelection {
  if (typeof text !== 'string' || text.trim() === '') throw new BadInputError('--reader: expected an index, a name, pcsc:NAME or vpcd://host:port');
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const index = Number(t);
    if (index > MAX_READER_INDEX) throw new BadInputError(`--reader: index ${t} is out of range (0 to ${MAX_READER_INDEX})`);
    return { kind: 'index', index };
  }
  const pcsc = /^pcsc:(.*)$/i.exec(t);
  if (pcsc) {
    if (pcsc[1] === '') throw new BadInputError('--reader: pcsc: needs the exact reader name, e.g. "pcsc:Virtual PCD 00 00"');
    return { kind: 'pcsc', name: pcsc[1] };
  }
  if (/^vpcd:/i.test(t)) {
    const m = /^vpcd:\/\/(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})\/?$/i.exec(t);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new BadInputError(`--reader: expected vpcd://host:port (port 1 to 65535), got "${text}"`);
    const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : VPCD_DEFAULT_SELECTION_HOST;
    return { kind: 'vpcd', host, port };
  }
  return { kind: 'match', text: t };
}

/** The selection as people write it (for messages). */
export function formatReaderSelection(s: ReaderSelection): string {
  switch (s.kind) {
    case 'index':
      return String(s.index);
    case 'match':
      return s.text;
    case 'pcsc':
      return `pcsc:${s.name}`;
    case 'vpcd':
      return `vpcd://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`;
  }
}

function readerList(names: readonly string[]): string {
  return names.length === 0 ? 'no readers' : names.map((n, i) => `${i}: ${n}`).join('; ');
}

/**
 * Picks the PC/SC reader a selection means among `readers` (pcscd's order). Without a selection:
 * the first reader with a card, else the first reader. Throws READER_UNAVAILABLE naming the
 * readers there are when nothing (or, for a name substring, more than one reader) matches.
 */
export function resolvePcscReader(
  selection: Exclude<ReaderSelection, { kind: 'vpcd' }> | undefined,
  readers: readonly { name: string; cardPresent: boolean }[],
): string {
  const names = readers.map((r) => r.name);
  if (readers.length === 0) throw new HiltError('READER_UNAVAILABLE', 'no PC/SC reader found (is the reader plugged in and its driver installed?)');
  if (!selection) return (readers.find((r) => r.cardPresent) ?? readers[0]).name;
  switch (selection.kind) {
    case 'index': {
      const r = readers[selection.index];
      if (!r) throw new HiltError('READER_UNAVAILABLE', `no PC/SC reader at index ${selection.index} (${readerList(names)})`);
      return r.name;
    }
    case 'pcsc': {
      if (!names.includes(selection.name)) throw new HiltError('READER_UNAVAILABLE', `no PC/SC reader named "${selection.name}" (${readerList(names)})`);
      return selection.name;
    }
    case 'match': {
      if (names.includes(selection.text)) return selection.text;
      const needle = selection.text.toLowerCase();
      const hits = names.filter((n) => n.toLowerCase().includes(needle));
      if (hits.length === 1) return hits[0];
      if (hits.length === 0) throw new HiltError('READER_UNAVAILABLE', `no PC/SC reader name contains "${selection.text}" (${readerList(names)})`);
      throw new HiltError('READER_UNAVAILABLE', `"${selection.text}" matches ${hits.length} readers (${hits.join('; ')}); give more of the name, an index, or pcsc:NAME`);
    }
  }
}

/** Whether a reader name is one the selection covers (for filtering lists and events). */
export function selectionMatches(selection: Exclude<ReaderSelection, { kind: 'vpcd' | 'index' }>, name: string): boolean {
  return selection.kind === 'pcsc' ? name === selection.name : name.toLowerCase().includes(selection.text.toLowerCase());
}

export interface OpenReaderOptions {
  share?: PcscShareMode;
  protocol?: PcscProtocolPreference;
  binding?: PcscBindingSource;
  /** vpcd: bound of waiting for a card side to connect. Default DEFAULT_VPCD_WAIT_MS. */
  waitMs?: number;
  /** vpcd: where the server logs (default: warnings to stderr). */
  vpcdLogger?: VpcdLogger;
}

export interface OpenedReader {
  transport: 'pcsc' | 'vpcd';
  /** The PC/SC reader name, or vpcd://host:port. */
  name: string;
  /** The transport itself, no wrappers; closing it releases the reader (and stops a vpcd server). */
  channel: CardChannel;
  atr: Uint8Array;
  /** T=0 / T=1 on PC/SC; null on vpcd, which carries APDUs, not TPDUs. */
  protocol: PcscProtocol | null;
}

/**
 * Opens the card in the selected reader. PC/SC: connects (share mode, protocol). vpcd: listens on
 * the address and waits up to `waitMs` for a card side to connect (TimeoutError otherwise, saying
 * how to start one).
 */
export async function openReader(selection: ReaderSelection | undefined, options: OpenReaderOptions = {}): Promise<OpenedReader> {
  if (selection?.kind === 'vpcd') {
    const waitMs = options.waitMs ?? DEFAULT_VPCD_WAIT_MS;
    assertInt(waitMs, 'waitMs', 1, 3_600_000);
    const name = formatReaderSelection(selection);
    const server = await VpcdServer.listen({ host: selection.host, port: selection.port, logger: options.vpcdLogger });
    try {
      const atr = await server.waitForCard(waitMs);
      return { transport: 'vpcd', name, channel: server, atr, protocol: null };
    } catch (e) {
      await server.close();
      if (e instanceof TimeoutError) {
        throw new TimeoutError(`no card connected to ${name} within ${waitMs} ms (start one: hilt emulator --vpcd ${selection.host}:${selection.port})`);
      }
      throw e;
    }
  }
  const readers = await listPcscReaders({ binding: options.binding });
  const name = resolvePcscReader(selection, readers);
  const channel = await PcscChannel.open(name, { share: options.share, protocol: options.protocol, binding: options.binding });
  return { transport: 'pcsc', name, channel, atr: channel.atr, protocol: channel.protocol };
}

export interface StackOptions {
  /** T=0 GET RESPONSE and 6Cxx re-issue; false sends and returns APDUs as they are. Default true. */
  getResponse?: boolean | GetResponseOptions;
  /** Command chaining for commands with more data than `maxCommandData`; off unless given. */
  chaining?: false | ChainingOptions;
  /** Trace into a sink; outermost unless `wire`. */
  trace?: { sink: TraceSink; wire?: boolean; options?: TraceOptions };
}

/** The CLI's channel stack over a transport (see the module comment for the order). */
export function stackChannel(transport: CardChannel, options: StackOptions = {}): CardChannel {
  const wrappers: Wrapper[] = [];
  const trace = options.trace ? withTrace(options.trace.sink, options.trace.options) : undefined;
  if (trace && options.trace?.wire) wrappers.push(trace);
  if (options.chaining) wrappers.push(withChaining(options.chaining));
  const gr = options.getResponse ?? true;
  if (gr !== false) wrappers.push(withGetResponse(gr === true ? {} : gr));
  if (trace && !options.trace?.wire) wrappers.push(trace);
  return compose(transport, ...wrappers);
}

export interface ReaderInfo {
  /** Position in pcscd's list; null for a vpcd server. */
  index: number | null;
  name: string;
  transport: 'pcsc' | 'vpcd';
  cardPresent: boolean;
  atr?: Uint8Array;
  /** The protocol a shared connection gets (probed), null if not probed or not applicable. */
  protocol: PcscProtocol | null;
  inUse?: boolean;
  exclusive?: boolean;
  mute?: boolean;
  flags?: string[];
  /** Why the protocol could not be probed, when it could not. */
  note?: string;
}

export interface ListReadersOptions {
  binding?: PcscBindingSource;
  /** Connect shared to each present card to learn the protocol. Default true. */
  probeProtocol?: boolean;
  /** vpcd: how long to wait for a card side to connect. Default 3000 ms. */
  waitMs?: number;
  vpcdLogger?: VpcdLogger;
}

export const DEFAULT_LIST_VPCD_WAIT_MS = 3_000;

/** The readers a selection covers (all PC/SC readers without one), with card state. */
export async function listReaders(selection: ReaderSelection | undefined, options: ListReadersOptions = {}): Promise<ReaderInfo[]> {
  if (selection?.kind === 'vpcd') {
    const waitMs = options.waitMs ?? DEFAULT_LIST_VPCD_WAIT_MS;
    assertInt(waitMs, 'waitMs', 0, 3_600_000);
    const server = await VpcdServer.listen({ host: selection.host, port: selection.port, logger: options.vpcdLogger });
    try {
      let atr: Uint8Array | undefined;
      if (waitMs > 0) {
        try {
          atr = await server.waitForCard(waitMs);
        } catch (e) {
          if (!(e instanceof TimeoutError)) throw e;
        }
      }
      const info: ReaderInfo = { index: null, name: formatReaderSelection(selection), transport: 'vpcd', cardPresent: atr !== undefined, protocol: null };
      if (atr) info.atr = atr;
      return [info];
    } finally {
      await server.close();
    }
  }
  const readers = await listPcscReaders({ binding: options.binding });
  let chosen = readers.map((r, index) => ({ r, index }));
  if (selection) {
    if (selection.kind === 'index') {
      const name = resolvePcscReader(selection, readers);
      chosen = chosen.filter((c) => c.r.name === name);
    } else {
      chosen = chosen.filter((c) => selectionMatches(selection, c.r.name));
      if (chosen.length === 0) resolvePcscReader(selection, readers); // throws with the list of readers
    }
  }
  const out: ReaderInfo[] = [];
  for (const { r, index } of chosen) {
    const info: ReaderInfo = {
      index,
      name: r.name,
      transport: 'pcsc',
      cardPresent: r.cardPresent,
      protocol: null,
      inUse: r.inUse,
      exclusive: r.exclusive,
      mute: r.mute,
      flags: r.flags,
    };
    if (r.atr) info.atr = r.atr;
    if (r.cardPresent && (options.probeProtocol ?? true)) {
      if (r.exclusive) info.note = 'card in exclusive use by another application';
      else {
        try {
          const ch = await PcscChannel.open(r.name, { binding: options.binding });
          info.protocol = ch.protocol;
          await ch.close();
        } catch (e) {
          info.note = e instanceof Error ? e.message : String(e);
        }
      }
    }
    out.push(info);
  }
  return out;
}

export interface ReaderMonitorHandle {
  /** What is being watched, for the first line of output. */
  description: string;
  events: AsyncIterableIterator<MonitorEvent>;
  /** Stops the monitor and releases what it opened (a vpcd server). */
  close(): Promise<void>;
}

export interface OpenMonitorOptions {
  binding?: PcscBindingSource;
  vpcdLogger?: VpcdLogger;
  /** PC/SC backoff bounds (see pcsc-monitor.ts). */
  retryInitialDelayMs?: number;
  retryMaxDelayMs?: number;
}

/**
 * Starts watching the selection: a vpcd server (connect = card inserted, disconnect = removed), or
 * PC/SC readers (all of them, or those the selection names; an index is resolved to its name now).
 */
export async function openMonitor(selection: ReaderSelection | undefined, options: OpenMonitorOptions = {}): Promise<ReaderMonitorHandle> {
  const stop = new AbortController();
  if (selection?.kind === 'vpcd') {
    const name = formatReaderSelection(selection);
    const server = await VpcdServer.listen({ host: selection.host, port: selection.port, logger: options.vpcdLogger });
    const events = vpcdServerEvents(server, { reader: name, signal: stop.signal });
    return {
      description: `vpcd server ${name}`,
      events,
      close: async () => {
        stop.abort();
        await server.close();
      },
    };
  }
  let filter: ((name: string) => boolean) | undefined;
  let description = 'all PC/SC readers';
  if (selection?.kind === 'index') {
    const name = resolvePcscReader(selection, await listPcscReaders({ binding: options.binding }));
    filter = (n) => n === name;
    description = `PC/SC reader "${name}"`;
  } else if (selection) {
    const s = selection;
    filter = (n) => selectionMatches(s, n);
    description = `PC/SC readers matching "${formatReaderSelection(s)}"`;
  }
  const source = monitorPcsc({
    binding: options.binding,
    signal: stop.signal,
    retryInitialDelayMs: options.retryInitialDelayMs,
    retryMaxDelayMs: options.retryMaxDelayMs,
  });
  const events = filter ? filterEvents(source, filter) : source;
  return {
    description,
    events,
    close: async () => {
      stop.abort();
    },
  };
}

async function* filterEvents(source: AsyncIterableIterator<MonitorEvent>, keep: (name: string) => boolean): AsyncIterableIterator<MonitorEvent> {
  try {
    for await (const e of source) {
      if (e.type === 'service-lost' || e.type === 'service-restored' || keep(e.reader)) yield e;
    }
  } finally {
    await source.return?.();
  }
}
