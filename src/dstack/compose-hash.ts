import { sha256 } from '@noble/hashes/sha2.js';

/**
 * Dstack's compose hash and how MRCONFIGID binds it (docs/platforms.md, "Dstack event log").
 *
 * - `compose_hash = sha256(app-compose.json)` over the exact bytes the CVM booted with: /Info returns
 *   them as `tcb_info.app_compose`, a string whose UTF-8 encoding is those bytes. Never re-serialize
 *   the JSON (key order and whitespace change the hash).
 * - Dstack ≥ 0.5 also sets MRCONFIGID (48 bytes at the TD report's mrconfigid) to
 *   `0x01 ‖ compose_hash ‖ zeros`, so the compose hash is bound at launch as well as in RTMR3. Older
 *   CVMs leave MRCONFIGID all zero; then only the RTMR3 `compose-hash` event binds it.
 */
export const MRCONFIGID_COMPOSE_HASH_TAG = 0x01;

/** sha256 of the exact app-compose.json bytes (a string is taken as its UTF-8 encoding). */
export const composeHash = (appCompose: Uint8Array | string): Uint8Array =>
  sha256(typeof appCompose === 'string' ? new TextEncoder().encode(appCompose) : appCompose);

/** True when `mrconfigid` starts with `0x01 ‖ composeHash`. */
export const mrConfigIdBindsComposeHash = (mrConfigId: Uint8Array, hash: Uint8Array): boolean => {
  if (mrConfigId.length !== 48 || hash.length !== 32) return false;
  if (mrConfigId[0] !== MRCONFIGID_COMPOSE_HASH_TAG) return false;
  return Buffer.compare(Buffer.from(mrConfigId.subarray(1, 33)), Buffer.from(hash)) === 0;
};
