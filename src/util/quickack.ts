/**
 * TCP_QUICKACK for request/response sockets (both sides of the vpcd protocol).
 *
 * Why: pcscd's vpcd driver writes a frame's 2-byte length and its payload with two send() calls and
 * Nagle on. The card side answers every request, so Linux puts its end of the connection in delayed-ACK
 * "pingpong" mode and holds the ACK of the length segment up to ~40 ms; Nagle holds vpcd's payload
 * until that ACK comes. Every APDU then stalls ~40 ms. Setting TCP_QUICKACK after a read sends the
 * pending ACK at once and leaves pingpong mode. The kernel clears it again on its own (it is not
 * sticky), so callers re-arm it after every read ('data' event).
 *
 * Node has no API for it; the optional native module `sockopt` provides setsockopt(2). When it is
 * missing (no C++ toolchain at install time), everything still works, only slower through pcscd, and
 * one warning per QuickAck instance says how to fix it. Share one instance between the sockets of a
 * process to warn once.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/** Linux <netinet/in.h>: IPPROTO_TCP. */
export const IPPROTO_TCP = 6;
/** Linux <netinet/tcp.h>: TCP_QUICKACK. */
export const TCP_QUICKACK = 12;

export const QUICKACK_MISSING_WARNING =
  "TCP_QUICKACK is unavailable: the optional native module 'sockopt' could not be loaded, so every APDU " +
  'through pcscd may stall ~40 ms (delayed ACK). Install a C++ toolchain (g++, make, python3) and run ' +
  '`npm install` so the optional module builds.';

interface SockoptModule {
  setsockopt(socket: Socket, level: number, option: number, value: number): void;
  getsockopt(socket: Socket, level: number, option: number): number;
}

export interface QuickAckOptions {
  /** false turns quickack off (for measurements); default true. */
  enabled?: boolean;
  /** Where the one-time warning goes; default process.emitWarning with code HILT_NO_QUICKACK. */
  warn?: (message: string) => void;
  /** Platform to act for; default process.platform. TCP_QUICKACK exists only on Linux. */
  platform?: NodeJS.Platform;
  /** Loads the native module; default require('sockopt'). Injectable for tests. */
  load?: () => unknown;
}

export type QuickAckStatus =
  | 'active' // armed after every read
  | 'disabled' // turned off by the caller
  | 'unsupported-platform' // not Linux: the option does not exist, nothing to do
  | 'missing-module' // Linux but `sockopt` did not load: warned once, runs without
  | 'failed'; // setsockopt failed on an open socket: warned once, runs without

function defaultWarn(message: string): void {
  process.emitWarning(message, { code: 'HILT_NO_QUICKACK' });
}

function isSockopt(value: unknown): value is SockoptModule {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return typeof m.setsockopt === 'function' && typeof m.getsockopt === 'function';
}

function defaultLoad(): unknown {
  return createRequire(import.meta.url)('sockopt');
}

export class QuickAck {
  private readonly warnFn: (message: string) => void;
  private readonly native: SockoptModule | null;
  private statusValue: QuickAckStatus;
  private warned = false;

  constructor(options: QuickAckOptions = {}) {
    this.warnFn = options.warn ?? defaultWarn;
    const platform = options.platform ?? process.platform;
    let native: SockoptModule | null = null;
    if (options.enabled === false) {
      this.statusValue = 'disabled';
    } else if (platform !== 'linux') {
      this.statusValue = 'unsupported-platform';
    } else {
      try {
        const loaded = (options.load ?? defaultLoad)();
        if (isSockopt(loaded)) native = loaded;
      } catch {
        native = null;
      }
      this.statusValue = native ? 'active' : 'missing-module';
    }
    this.native = native;
  }

  get status(): QuickAckStatus {
    return this.statusValue;
  }

  /** True when arm() really sets the option. */
  get active(): boolean {
    return this.statusValue === 'active';
  }

  /**
   * Call after every read on `socket`. Never throws: a socket already closing has no descriptor
   * (ignored); an unexpected setsockopt failure turns quickack off for this instance with one warning.
   */
  arm(socket: Socket): void {
    if (this.statusValue === 'missing-module') {
      this.warnOnce(QUICKACK_MISSING_WARNING);
      return;
    }
    if (this.statusValue !== 'active' || this.native === null) return;
    if (socket.destroyed || socket.readyState !== 'open') return;
    try {
      this.native.setsockopt(socket, IPPROTO_TCP, TCP_QUICKACK, 1);
    } catch (e) {
      if (socket.destroyed || socket.readyState !== 'open') return;
      this.statusValue = 'failed';
      this.warnOnce(`TCP_QUICKACK could not be set (${e instanceof Error ? e.message : String(e)}); continuing without it`);
    }
  }

  private warnOnce(message: string): void {
    if (this.warned) return;
    this.warned = true;
    this.warnFn(message);
  }
}

/** Options accepted by the vpcd endpoints: a shared instance, or true/false to build one. */
export type QuickAckSetting = QuickAck | boolean | undefined;

export function resolveQuickAck(setting: QuickAckSetting, warn?: (message: string) => void): QuickAck {
  if (setting instanceof QuickAck) return setting;
  return new QuickAck({ enabled: setting !== false, warn });
}
