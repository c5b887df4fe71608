/**
 * The error hierarchy of hilt. Every error a caller may want to branch on carries a stable `code`;
 * callers switch on `err.code`, never on message text. The CLI turns any HiltError into one line of
 * output and a non-zero exit code; anything else is a bug and is reported with its stack.
 */

/** Stable, documented error codes. Add new ones here, never inline. */
export type ErrorCode =
  | 'BAD_INPUT' // a user or caller supplied malformed input (hex, options, arguments)
  | 'APDU_MALFORMED' // bytes that are not a valid command or response APDU
  | 'TLV_MALFORMED' // bytes that are not valid BER-TLV or compact-TLV
  | 'ATR_MALFORMED' // bytes that are not a valid ATR
  | 'SW' // the card answered with an unexpected status word
  | 'CARD_REMOVED' // the card left the reader (mid-command or before)
  | 'NO_CARD' // no card in the reader
  | 'READER_UNAVAILABLE' // reader or daemon not reachable
  | 'TIMEOUT' // an operation did not finish within its bound
  | 'PROTOCOL' // the peer broke a protocol rule (framing, bounded loop exceeded, ...)
  | 'AUTH_FAILED' // mutual authentication or a MAC check failed
  | 'KEY_ACCESS' // a key was requested outside the domain that owns it
  | 'CHANNEL_CLOSED' // use of a closed channel or transport
  | 'STORE_CORRUPT' // persistent card or terminal storage failed its integrity check
  | 'NOT_SUPPORTED' // a feature the peer or the platform does not offer
  | 'POLICY' // the terminal's policy refused a transaction (limits, negative card file, amount, currency)
  | 'CARD_ROLLBACK' // a card shows an older state than this terminal saw (restored image, clone)
  | 'MISSING_DEPENDENCY'; // an optional native module or system package is not installed

export class HiltError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Malformed input given by a user or a caller (bad hex, out-of-range option). */
export class BadInputError extends HiltError {
  constructor(message: string) {
    super('BAD_INPUT', message);
  }
}

/** A decoder met bytes it refuses. `offset` is where in the input the problem was found. */
export class DecodeError extends HiltError {
  readonly offset: number;
  constructor(code: 'APDU_MALFORMED' | 'TLV_MALFORMED' | 'ATR_MALFORMED', message: string, offset: number) {
    super(code, offset >= 0 ? `${message} (at byte ${offset})` : message);
    this.offset = offset;
  }
}

export class TimeoutError extends HiltError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

export class ProtocolError extends HiltError {
  constructor(message: string) {
    super('PROTOCOL', message);
  }
}

export class ChannelClosedError extends HiltError {
  constructor(message = 'channel is closed') {
    super('CHANNEL_CLOSED', message);
  }
}

export class CardRemovedError extends HiltError {
  constructor(message = 'card removed') {
    super('CARD_REMOVED', message);
  }
}

export class MissingDependencyError extends HiltError {
  constructor(message: string) {
    super('MISSING_DEPENDENCY', message);
  }
}

export function isHiltError(e: unknown): e is HiltError {
  return e instanceof HiltError;
}
