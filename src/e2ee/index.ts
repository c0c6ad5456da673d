export type { E2eeClient, E2eeClientOptions } from './client.js';
export { createE2eeClient } from './client.js';
export type { E2eeEndpoint, FieldKind, FieldVisitor } from './fields.js';
export { fieldsProtected, visitRequest, visitResponse } from './fields.js';
export type { E2eeScheme, KeyAgreement } from './scheme.js';
export { E2eeDecryptError } from './scheme.js';
export type { HeaderLookup } from './session.js';
export {
  E2EE_HEADERS,
  E2eeSession,
  e2eeUnencryptable,
  e2eeUpstreamError,
  openE2eeSession,
  withoutE2eeHeaders,
} from './session.js';
export { SseEncryptor } from './sse-encryptor.js';
export type { E2eeVersion } from './suite.js';
export { E2EE_VERSIONS, recipientKeyOf, schemeFor } from './suite.js';
