export type { MemoryStoreOptions } from './memory.js';
export { MemorySignatureStore } from './memory.js';
export { PendingSignatures } from './pending.js';
export { signPair } from './sign-pair.js';
export type { SignatureRecord, SignatureStore } from './signature-store.js';
