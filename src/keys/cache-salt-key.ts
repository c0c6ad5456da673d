import { createHmac } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

/**
 * HKDF-SHA256 (RFC 5869) salt and info for the cache-salt key. Fixed forever: changing either changes
 * every caller's salt, which only costs the prefix cache one warm-up, but there is no reason to.
 */
export const CACHE_SALT_HKDF_SALT = 'teeml-sidecar';
export const CACHE_SALT_HKDF_INFO = 'teeml-sidecar/cache-salt-key/v1';

/** Maps a caller's identity to the `cache_salt` the model server sees (64 lowercase hex). */
export type CacheSalter = (identity: string) => string;

/**
 * The key behind per-user cache salts (docs/protocol.md, Cache salt), derived inside the TEE from the
 * signing key exactly as the Tapp Ed25519 seed is (keys/tapp.ts): HKDF-SHA256 of the secp256k1 key
 * under a fixed salt and its own info. So it is as stable as the signing key (Dstack: per app, across
 * restarts and replicas; Tapp: per Tapp daemon run; ephemeral: per start), it exists only where the
 * signing key does, and neither key reveals the other.
 *
 * The key stays in the returned function's closure; the salt is HMAC-SHA-256(key, identity), so a
 * salt reveals nothing about the identity (a bearer token) to the model server or its logs, and
 * nobody without the key can compute another caller's salt.
 */
export const createCacheSalter = (secp256k1Key: Uint8Array): CacheSalter => {
  const key = hkdf(
    sha256,
    secp256k1Key,
    new TextEncoder().encode(CACHE_SALT_HKDF_SALT),
    new TextEncoder().encode(CACHE_SALT_HKDF_INFO),
    32,
  );
  const keyBuffer = Buffer.from(key);
  key.fill(0);
  return (identity: string): string => createHmac('sha256', keyBuffer).update(identity, 'utf8').digest('hex');
};
