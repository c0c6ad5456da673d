export { addressOfPublicKey, checksumAddress, hashMessage } from './eip191.js';
export { EphemeralKeySource } from './ephemeral.js';
export type { KeyMaterial, KeySource } from './key-source.js';
export type { Signer, Signers, SigningAlgo } from './signer.js';
export { createSigners, SIGNING_ALGOS } from './signer.js';
