/**
 * Where the sidecar's signing keys come from: `ephemeral` (OS CSPRNG at start), `dstack` (KMS-derived
 * through the guest agent's GetKey, stable across restarts of the same app) or `tapp` (0G Tapp's
 * per-app key). One file per implementation.
 *
 * The returned bytes are handed once to `createSigners`, which keeps them in closures and zeroes the
 * copies it was given; nothing can read them back afterwards.
 */
export interface KeyMaterial {
  /** secp256k1 secret scalar, 32 bytes. */
  secp256k1: Uint8Array;
  /** Ed25519 seed, 32 bytes. */
  ed25519: Uint8Array;
}

export interface KeySource {
  readonly kind: 'ephemeral' | 'dstack' | 'tapp';
  load(signal?: AbortSignal): Promise<KeyMaterial>;
}
