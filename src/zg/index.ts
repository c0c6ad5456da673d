// The public surface of src/zg (docs/architecture.md, code habit 1): re-exports only. test/exports.test.ts pins the list.
export { adaptBrokerQuote, BROKER_QUOTE_SCHEME } from './broker-quote.js';
export type { ZgFlags } from './cli-options.js';
export { isZgMode, zgLinkOptionsFromFlags } from './cli-options.js';
export type { WalletKeyInput } from './wallet-key.js';
export { readWalletKey } from './wallet-key.js';
export type { ZgLayout, ZgLinkOptions } from './zg-link.js';
export { createZgLink, MIN_LEDGER_0G, signerOfService, usageOf, ZgLink } from './zg-link.js';
