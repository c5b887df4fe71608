/**
 * What an applet is to the card OS, modelled on Java Card's `javacard.framework.Applet` as a reader
 * sees its effects. Types only, plus SwError (ISOException).
 *
 * Life cycle (see applets-spec/card-os.md for the APDU side):
 * - `install(ctx)` runs once in the card's life: the OS remembers in the persistent store that the
 *   applet is installed, so reopening the same store does not install again. It runs inside an OS
 *   transaction together with that marker (a tear during install leaves the applet uninstalled, and
 *   it is installed again at the next start); install must therefore not begin its own transaction.
 * - `select(ctx, channel)` when SELECT (or MANAGE CHANNEL OPEN, or power-on for the default applet)
 *   makes it the applet of `channel`. Returning `false` or throwing refuses: the OS answers 6999 and no
 *   applet is selected on that channel (Java Card: the previous applet was deselected first).
 * - `deselect(ctx, channel)` when another SELECT or MANAGE CHANNEL CLOSE takes it off the channel. Not
 *   called on power loss or reset (a real card just stops). Errors are logged and ignored.
 * - `process(ctx, apdu, channel)` for every command on a channel where it is selected, except those the
 *   OS keeps for itself (SELECT by AID, MANAGE CHANNEL, GET RESPONSE, GET DATA for card-wide tags).
 *   Return a ResponseApdu (data + SW); the OS fits the data to the command's Le (61xx/GET RESPONSE).
 *   Throw SwError to answer a bare status word. Any other error answers 6F00 and is logged.
 *
 * Transactions (Java Card's JCSystem.beginTransaction): card-wide, one at a time. If process/select/
 * deselect/install throws while a transaction is open, the OS aborts it. If one of them *returns* with a
 * transaction still open, the OS aborts it too (Java Card does the same) and, for process, answers 6F00
 * instead of the applet's response: the response would describe writes that were just undone.
 */
import type { CommandApdu } from '../../src/apdu/command.js';
import type { ResponseApdu } from '../../src/apdu/response.js';
import { HiltError, BadInputError } from '../../src/util/errors.js';
import { hexWord } from '../../src/util/bytes.js';
import type { PersistentStore } from '../store/types.js';
import type { KeySlot } from './scoped-store.js';
import { isStatusWord } from './sw.js';

/**
 * How an applet takes command chaining (CLA b5 set: "more parts follow"):
 * - 'accumulate': the OS answers 9000 to every non-last part and calls `process` once, at the last
 *   part, with the concatenated data (CLA b5 cleared, Le of the last part), up to 65535 bytes.
 * - 'pass-through': every part reaches `process` as it came; the applet reads b5 from the CLA.
 * Without a mode the OS refuses chained parts with 6884.
 */
export type ChainingMode = 'accumulate' | 'pass-through';

/** An ISOException: throw it from an applet to answer with a bare status word. */
export class SwError extends HiltError {
  readonly sw: number;
  constructor(sw: number, message?: string) {
    if (!isStatusWord(sw)) {
      throw new BadInputError(`SwError: expected a status word with SW1 61..6F or 90..9F, got ${String(sw)}`);
    }
    super('SW', message ?? `status word ${hexWord(sw)}`);
    this.sw = sw;
  }
}

/** Where the OS reports applet faults; it never throws into the OS (calls are guarded). */
export interface OsLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** Java Card's JCSystem transaction calls, on the card-wide transaction of the persistent store. */
export interface AppletTransaction {
  begin(): void;
  commit(): void;
  abort(): void;
  readonly inProgress: boolean;
}

/**
 * What the card's security domain has established on the logical channel of the current command
 * (GlobalPlatform's SecureChannel.getSecurityLevel). Applets decide from it whether a command may run:
 * a value-changing command outside an authenticated channel is refused with 6982.
 */
export interface SecureChannelStatus {
  /** SCP03 security level of the session: 0x00 none; bits 0x01 C-MAC, 0x02 C-DECRYPTION, 0x10 R-MAC, 0x20 R-ENCRYPTION. */
  readonly level: number;
  /** True once EXTERNAL AUTHENTICATE succeeded and the session is open on this channel. */
  readonly authenticated: boolean;
  /** Hex AID of the security domain that owns the session, or null. */
  readonly domain: string | null;
}

export const NO_SECURE_CHANNEL: SecureChannelStatus = Object.freeze({ level: 0, authenticated: false, domain: null });

/**
 * Everything an applet may reach, built by the OS for each call. The firewall: `store` and `keys` are
 * views restricted to this applet's own records; nothing here leads to another applet's store, keys
 * or object except `getShareable`, which hands over only what the other applet chooses to share.
 * After a power cut or reset, a context handed out before it is dead: every store or key access
 * throws StoreError('POWER_LOST'), as a CPU without power does nothing more.
 */
export interface AppletContext {
  /** This applet's AID (a copy). */
  readonly aid: Uint8Array;
  /** The card serial (a copy). */
  readonly serial: Uint8Array;
  /** Persistent records of this applet only (keys are names local to the applet). */
  readonly store: PersistentStore;
  /** This applet's named keys, persistent, unreachable from other applets' contexts. */
  readonly keys: KeySlot;
  /** RAM of this applet: cleared at every power-on and reset (Java Card CLEAR_ON_RESET). */
  readonly transient: Map<string, Uint8Array>;
  readonly transaction: AppletTransaction;
  readonly logger: OsLogger;
  /** The secure channel of the current command's logical channel (NO_SECURE_CHANNEL when none). */
  readonly security: SecureChannelStatus;
  /**
   * Java Card's getAppletShareableInterfaceObject: asks the applet `serverAid` (exact AID) for an
   * object to share with this applet. Null when no such applet exists, it offers no shareable
   * interface, or it refuses.
   */
  getShareable<T extends object = object>(serverAid: Uint8Array, param: number): T | null;
}

export interface Applet {
  readonly chaining?: ChainingMode;
  /**
   * May be selected on several logical channels at once (Java Card's MultiSelectable). Without it,
   * selecting the applet on a second channel answers 6985.
   */
  readonly multiSelectable?: boolean;
  install?(ctx: AppletContext): void;
  select?(ctx: AppletContext, channel: number): boolean | void;
  deselect?(ctx: AppletContext, channel: number): void;
  process(ctx: AppletContext, apdu: CommandApdu, channel: number): Promise<ResponseApdu> | ResponseApdu;
  /**
   * The whole response data to a SELECT that asks for the FCI (P2 b4b3 = 00). Without it (or when it
   * returns undefined) the OS answers 6F { 84 AID, A5 { 50 name } }.
   */
  fci?(ctx: AppletContext, channel: number): Uint8Array | undefined;
  /**
   * Java Card's getShareableInterfaceObject: `ctx` is this (server) applet's own context, so the object
   * returned may act on the server's records; return null to refuse `clientAid`.
   */
  getShareableInterface?(ctx: AppletContext, clientAid: Uint8Array, param: number): object | null;
}
