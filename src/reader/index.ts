/**
 * The reader layer: the CardChannel contract, its wrappers and the test channels.
 *
 * A typical stack, listed from the transport outwards (compose: the last wrapper is the outermost):
 *
 *   compose(transport, withGetResponse(), withExtendedFallback(), withTrace(sink))
 *
 * List withTrace first instead (next to the transport) to see every APDU on the wire, each GET
 * RESPONSE and each chain link, rather than one exchange per application command.
 * Names starting with `_` in the modules are internals shared between wrappers and are not
 * re-exported here.
 */
export { compose, type CardChannel, type Wrapper } from './channel.js';
export { SerialQueue, serialChannel, serialized, type SerialBehaviour } from './serialize.js';
export {
  withGetResponse,
  getResponseCommand,
  DEFAULT_MAX_GET_RESPONSES,
  MAX_GET_RESPONSES_LIMIT,
  MAX_6C_REISSUES,
  INS_GET_RESPONSE,
  type GetResponseOptions,
} from './get-response.js';
export { withChaining, splitChain, DEFAULT_MAX_COMMAND_DATA, MAX_CHAIN_LINKS, type ChainingOptions } from './chaining.js';
export {
  withExtendedFallback,
  EXTENDED_LENGTH_SUPPORT,
  type ExtendedLengthSupport,
  type ExtendedFallbackOptions,
  type ExtendedFallbackChannel,
} from './extended-fallback.js';
export {
  withTrace,
  textTraceSink,
  jsonTraceSink,
  formatTraceLine,
  formatTraceJson,
  formatTraceTime,
  parseTraceLine,
  TRACE_LINE_PATTERN,
  TRACE_BODY_PATTERNS,
  type TraceRecord,
  type TraceCommandRecord,
  type TraceResponseRecord,
  type TraceResetRecord,
  type TraceErrorRecord,
  type TraceSink,
  type LineWriter,
  type TraceOptions,
} from './trace.js';
export {
  ScriptedChannel,
  HandlerChannel,
  ScriptError,
  DEFAULT_MOCK_ATR,
  MAX_MOCK_DELAY_MS,
  type HexOrBytes,
  type ScriptResponse,
  type ScriptStep,
  type ScriptEntry,
  type ExchangeLogEntry,
  type CardHandler,
  type HandlerChannelOptions,
  type HandlerCounters,
} from './mock.js';
