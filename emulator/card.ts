/**
 * What a reader (vpcd socket, in-process channel) sees of an emulated card: power, ATR, APDUs.
 * The card OS implements it; transports drive it. Mirrors the vpcd control codes
 * (00 power off, 01 power on, 02 reset, 04 get ATR, anything longer an APDU).
 */
export interface VirtualCard {
  /** The ATR the card answers to power-on and to a vpcd GET ATR. */
  readonly atr: Uint8Array;
  /** Contacts powered: volatile state (selected applets, open channels, sessions) starts fresh. */
  powerOn(): void;
  /** Contacts unpowered: volatile state is lost; persistent state is whatever was committed. */
  powerOff(): void;
  /** Warm reset: like powerOff then powerOn. */
  reset(): void;
  /**
   * One C-APDU in, one R-APDU out (SW included). Never rejects for bad input: malformed APDUs get a
   * status word (6700, 6D00, 6E00, ...). Rejects only if the card itself is broken (store failure).
   */
  process(command: Uint8Array): Promise<Uint8Array>;
}
