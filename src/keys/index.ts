export type { CacheSalter } from './cache-salt-key.js';
export { CACHE_SALT_HKDF_INFO, CACHE_SALT_HKDF_SALT, createCacheSalter } from './cache-salt-key.js';
export type { DstackKeySourceOptions } from './dstack.js';
export { DSTACK_KEY_PURPOSE, DstackKeySource } from './dstack.js';
export { addressOfPublicKey, checksumAddress, hashMessage } from './eip191.js';
export { EphemeralKeySource } from './ephemeral.js';
export type { KeyMaterial, KeySource } from './key-source.js';
export { hasNativeSecp256k1, recoverPublicKeyNative } from './native-secp256k1.js';
export type { Signer, Signers, SigningAlgo } from './signer.js';
export { createSigners, SIGNING_ALGOS } from './signer.js';
export type { TappKeySourceOptions } from './tapp.js';
export {
  deriveTappEd25519Seed,
  TAPP_ED25519_HKDF_INFO,
  TAPP_ED25519_HKDF_SALT,
  TappKeySource,
} from './tapp.js';
