// The public surface of src/gateway (docs/architecture.md, code habit 1): re-exports only. test/exports.test.ts pins the list.
export type { Attestation, AttestorOptions } from './attestor.js';
export { Attestor } from './attestor.js';
export type { DirectLinkOptions } from './direct-link.js';
export { DirectLink } from './direct-link.js';
export type { E2eeClient, E2eeSession } from './e2ee.js';
export { reportAdvertisesE2ee } from './e2ee.js';
export type { Gateway, GatewayOptions } from './gateway.js';
export { startGateway, VERIFICATION_HEADER } from './gateway.js';
export type { ProviderIdentity } from './identity.js';
export { nearE2eeClient } from './near-e2ee.js';
export type { Policy } from './policy.js';
export { defaultPolicy, PolicyError, parsePolicy, policySchema } from './policy.js';
export type { ProviderLink } from './provider-link.js';
export type { AttestationLine, Receipt, ReceiptSink, ReceiptVerdict } from './receipts.js';
export { fileReceiptSink, ReceiptLog, verifyReceipts } from './receipts.js';
export { SseEventSplitter } from './sse-events.js';
export type { GatewayCounters, StatusView } from './status-page.js';
export { escapeHtml, renderStatusPage } from './status-page.js';
