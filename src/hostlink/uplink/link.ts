/**
 * The terminal's link to the gateway as the forwarder, the negative-list sync and the load flow share
 * it: at most one signed-on session at a time, opened when first needed, dropped after a transport
 * failure (a late answer on an abandoned connection can then never be taken for a new one's), and
 * opened again on the next need.
 */
import { UplinkSession, type UplinkSessionOptions } from './session.js';
import { ChannelClosedError } from '../../util/errors.js';

export interface UplinkLinkOptions extends UplinkSessionOptions {
  /** Opens a session; default UplinkSession.open (tests may count or wrap it). */
  open?: (o: UplinkSessionOptions) => Promise<UplinkSession>;
}

export class UplinkLink {
  private readonly options: UplinkLinkOptions;
  private current: UplinkSession | null = null;
  private opening: Promise<UplinkSession> | null = null;
  private opened = 0;
  private closedFlag = false;

  constructor(options: UplinkLinkOptions) {
    this.options = options;
  }

  /** The configuration sessions are opened with. */
  get config(): UplinkSessionOptions['config'] {
    return this.options.config;
  }

  /** The MAC key sessions sign with, when the link was given one. */
  get keys(): UplinkSessionOptions['keys'] {
    return this.options.keys;
  }

  /** The uplink state file sessions use. */
  get store(): UplinkSessionOptions['store'] {
    return this.options.store;
  }

  /** Sessions opened so far (connect + sign-on that succeeded). */
  get sessionsOpened(): number {
    return this.opened;
  }

  /** The open session, or a new one (connect and sign on). Rejects as UplinkSession.open does. */
  async session(): Promise<UplinkSession> {
    if (this.closedFlag) throw new ChannelClosedError('uplink link is closed');
    if (this.current !== null && !this.current.closed) return this.current;
    this.current = null;
    if (this.opening === null) {
      const open = this.options.open ?? ((o: UplinkSessionOptions) => UplinkSession.open(o));
      this.opening = open(this.options).then(
        (s) => {
          this.opening = null;
          this.opened++;
          if (this.closedFlag) {
            void s.close();
            throw new ChannelClosedError('uplink link is closed');
          }
          this.current = s;
          return s;
        },
        (e: unknown) => {
          this.opening = null;
          throw e;
        },
      );
    }
    return this.opening;
  }

  /** Closes the current session, if any; the next session() opens a new one. */
  async drop(): Promise<void> {
    const s = this.current;
    this.current = null;
    if (s !== null) await s.close();
  }

  async close(): Promise<void> {
    this.closedFlag = true;
    await this.drop();
  }
}
