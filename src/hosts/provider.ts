/**
 * The contract between the gateway and a service provider's host (the e-money issuer today; a bank
 * or credit host tomorrow). Types only.
 *
 * The gateway hands a provider only requests it has already authenticated (MAC under the terminal's
 * key), parsed (messages.ts), and checked against the reader registry (enrolled, not blocked, signed
 * on). The provider answers with the unsigned response (the gateway's channel MACs it). Behaviour:
 *
 * - handle() resolves with the response to send, whatever the decision (a decline is a response);
 *   it rejects only when the provider failed (the gateway then answers 96, system malfunction), and
 *   in that case it has stored nothing for the request;
 * - a provider answers a request it has already applied (same terminal id and reader sequence) with
 *   the stored outcome and applies nothing twice (exactly once, whatever the terminal resends);
 * - a provider resolves only after what it decided is durable (committed), so an acknowledged advice
 *   survives a crash of the host right after the answer;
 * - close() lets queued requests finish, then releases the provider's storage; handle() after close()
 *   rejects.
 */
import type { IsoMessage } from '../hostlink/iso8583/message.js';
import type { HiltMessage } from '../hostlink/messages.js';

/** The request kinds a provider can be given (responses never reach a provider). */
export type ProviderRequestKind = 'load-authorization' | 'advice' | 'reversal' | 'negative-list' | 'reconciliation' | 'anomaly-report';

export type ProviderParsed = Extract<HiltMessage, { kind: ProviderRequestKind }>;

export interface ProviderRequest {
  /** The request as received (authenticated). */
  message: IsoMessage;
  parsed: ProviderParsed;
}

export interface ProviderHost {
  /** The routing table's name for it ("emoney"). */
  readonly name: string;
  handle(request: ProviderRequest): Promise<IsoMessage>;
  close(): Promise<void>;
}
