export { callerIdentity, SALTED_PATHS, withCacheSalt } from './cache-salt.js';
export type { UpstreamCall } from './dispatch.js';
export { callPool, dispatchCall, UpstreamResponse } from './dispatch.js';
export type { JsonAnswer } from './json-body.js';
export {
  assertJsonRequest,
  jsonDepthExceeds,
  MAX_JSON_DEPTH,
  parseJsonAnswer,
  withResponseId,
} from './json-body.js';
export type { ModelCheck, ModelPolicy } from './model-policy.js';
export { modelCheckedStream } from './model-policy.js';
export type { ProxyContext, ProxyRoute } from './proxy.js';
export { proxyRequest, tokenMatches } from './proxy.js';
export { generateResponseId, idOf, RESPONSE_ID_PATTERN } from './response-id.js';
export type { SseEvent } from './sse-parser.js';
export { SseLimitError, SseParser } from './sse-parser.js';
export type { SseOutcome, SseTapLimits } from './sse-tap.js';
export { SseTap } from './sse-tap.js';
export type { UpstreamOptions } from './upstream.js';
export { forwardRequestHeaders, forwardResponseHeaders, Upstream } from './upstream.js';
