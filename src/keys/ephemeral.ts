import { randomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { KeyMaterial, KeySource } from './key-source.js';

/**
 * Fresh keys from the OS CSPRNG at every start. Inside a TEE this is sound (the key never leaves the
 * enclave's memory), but the address changes on every restart: a 0G provider registers its address on
 * chain, so production deployments there use a `dstack` or `tapp` key source instead.
 */
export class EphemeralKeySource implements KeySource {
  readonly kind = 'ephemeral' as const;
  constructor(private readonly random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))) {}

  async load(): Promise<KeyMaterial> {
    let secp = this.random(32);
    // A uniformly random 32-byte string is out of range with probability ~2^-128; draw again if so.
    while (!secp256k1.utils.isValidSecretKey(secp)) secp = this.random(32);
    return { secp256k1: secp, ed25519: this.random(32) };
  }
}
