export type {
  DstackClientOptions,
  DstackInfo,
  DstackKey,
  DstackQuoteResponse,
  DstackTlsKey,
} from './client.js';
export {
  DEFAULT_DSTACK_SOCKET,
  DstackClient,
  getKeyResponseSchema,
  getQuoteResponseSchema,
  getTlsKeyResponseSchema,
  infoResponseSchema,
} from './client.js';
export { composeHash, MRCONFIGID_COMPOSE_HASH_TAG, mrConfigIdBindsComposeHash } from './compose-hash.js';
export type { DstackEvent, DstackIdentity } from './event-log.js';
export {
  DSTACK_RUNTIME_EVENT_TYPE,
  dstackIdentity,
  EventLogError,
  eventDigest,
  findRuntimeEvent,
  parseEventLog,
  RTMR_BYTES,
  replayRtmr,
  replayRtmrs,
  runtimeEventDigest,
} from './event-log.js';
