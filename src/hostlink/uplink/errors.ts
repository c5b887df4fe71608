/**
 * The uplink's errors. Callers branch on `code` and `reason`, never on message text.
 *
 * ReaderRefusedError (AUTH_FAILED): the host will not talk to this reader, and retrying will not
 * change that until a person acts: the reader is on the negative reader list (blocked, 80), unknown
 * to the host and no enrolment code was given (79), the enrolment code is bad (77), or the host does
 * not accept the reader's signature (78). The forwarder stops on it, leaving the outbox as it is.
 *
 * UplinkError: the uplink itself cannot go on: a journal record the message set cannot express
 * ('unsendable', BAD_INPUT), a journal or state file of another terminal ('identity', BAD_INPUT), a
 * host answer that breaks the exchange ('protocol', PROTOCOL).
 */
import { HiltError } from '../../util/errors.js';
import { RC } from '../messages.js';
import type { ReversalRecord } from './store.js';

export type ReaderRefusal = 'blocked' | 'unknown' | 'bad-code' | 'bad-signature';

/** Which refusal each reader-authentication response code means. */
export const READER_REFUSALS: ReadonlyMap<string, ReaderRefusal> = new Map<string, ReaderRefusal>([
  [RC.blockedReader, 'blocked'],
  [RC.unknownReader, 'unknown'],
  [RC.badEnrolmentCode, 'bad-code'],
  [RC.badReaderSignature, 'bad-signature'],
]);

export class ReaderRefusedError extends HiltError {
  readonly reason: ReaderRefusal;
  /** Field 39 of the refusal. */
  readonly responseCode: string;
  constructor(reason: ReaderRefusal, responseCode: string, message: string) {
    super('AUTH_FAILED', message);
    this.reason = reason;
    this.responseCode = responseCode;
  }
}

export type UplinkErrorReason = 'unsendable' | 'identity' | 'protocol';

export class UplinkError extends HiltError {
  readonly reason: UplinkErrorReason;
  constructor(reason: UplinkErrorReason, message: string, options?: { cause?: unknown }) {
    super(reason === 'protocol' ? 'PROTOCOL' : 'BAD_INPUT', message, options);
    this.reason = reason;
  }
}

/**
 * A load authorization (0200) went out and no answer came back (timeout, connection lost, an answer
 * that does not parse): the issuer may have approved it. The uplink has recorded its reversal
 * (`reversal`: its state after the first attempt, 'pending' until the host answers it) and retries
 * it until answered. Do not send LOAD; fail the journal row. `code` is the cause's (TIMEOUT,
 * CHANNEL_CLOSED, PROTOCOL...).
 */
export class LoadInDoubtError extends HiltError {
  readonly transactionId: number;
  readonly reversal: ReversalRecord;
  constructor(transactionId: number, reversal: ReversalRecord, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      cause instanceof HiltError ? cause.code : 'TIMEOUT',
      `load authorization of journal row ${transactionId} (reader sequence ${reversal.readerSeq}) got no answer (${why}): do not load; its reversal is ${reversal.status === 'pending' ? 'pending (retried until the host answers)' : reversal.status}`,
      { cause },
    );
    this.transactionId = transactionId;
    this.reversal = reversal;
  }
}
