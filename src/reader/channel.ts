/**
 * The seam of the whole system: bytes in, bytes out.
 *
 * Every transport (PC/SC, vpcd socket, serial CCID, in-process emulator) implements CardChannel.
 * Everything that is not moving bytes (T=0 GET RESPONSE, 6Cxx re-issue, command chaining, trace,
 * secure channel) is a Wrapper: a function from one CardChannel to another. Wrappers compose;
 * `compose(inner, a, b, c)` returns c(b(a(inner))), so the LAST wrapper listed is the OUTERMOST,
 * the one the caller talks to, and the first listed sits next to the transport.
 *
 * Behaviour every implementation keeps:
 * - `transmit` takes one full C-APDU and resolves to one full R-APDU, SW1 SW2 included. It never
 *   resolves with fewer than two bytes. Calls are not interleaved: a second transmit issued before
 *   the first resolved waits for it (implementations serialise).
 * - A card that leaves the reader during or before `transmit` rejects it with CardRemovedError.
 * - `reset(cold)` powers the card up again (warm reset by default, cold when asked) and resolves to
 *   the ATR. Any secure-channel state above is lost; wrappers that keep such state drop it.
 * - `close()` releases the transport. It is idempotent. Any pending or later transmit rejects with
 *   ChannelClosedError.
 */
export interface CardChannel {
  transmit(command: Uint8Array): Promise<Uint8Array>;
  reset(cold?: boolean): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A behaviour layered over a channel, returning a channel with the same contract. */
export type Wrapper = (inner: CardChannel) => CardChannel;

/** compose(t, a, b) = b(a(t)): the last wrapper is the outermost. */
export function compose(inner: CardChannel, ...wrappers: Wrapper[]): CardChannel {
  return wrappers.reduce<CardChannel>((ch, w) => w(ch), inner);
}
