export { lazyRecord } from './lazy-record.js';
export type { SignatureLookupOptions } from './lookup.js';
export { SignatureLookup } from './lookup.js';
export type { MemoryStoreOptions } from './memory.js';
export { MemorySignatureStore } from './memory.js';
export { PendingSignatures } from './pending.js';
export type { RedisClientLike, RedisStoreOptions } from './redis.js';
export {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  RedisCommandTimeoutError,
  RedisSignatureStore,
} from './redis.js';
export { signPair } from './sign-pair.js';
export type { SignatureClaim, SignatureRecord, SignatureStore } from './signature-store.js';
export type { SignatureAnswer } from './signature-trailer.js';
export {
  decodeSignatureTrailer,
  encodeSignatureTrailer,
  SIGNATURE_TRAILER,
  SIGNATURE_TRAILER_REQUEST_HEADER,
  signatureAnswer,
  signatureTrailerRequest,
} from './signature-trailer.js';
export type { ParsedSignedText, SignedTextFormat } from './signed-text.js';
export {
  ECDSA_SIGNATURE_PATTERN,
  ED25519_SIGNATURE_PATTERN,
  MODEL_NAME_PATTERN,
  parseSignedText,
  SIGNED_TEXT_FORMATS,
  SIGNED_TEXT_PATTERN,
  sha256Hex,
  signatureRecordSchema,
  signedText,
} from './signed-text.js';
export type { RemoteSignatureStore, TieredStoreOptions } from './tiered.js';
export { TieredSignatureStore } from './tiered.js';
