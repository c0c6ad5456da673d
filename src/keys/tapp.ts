import { secp256k1 } from '@noble/curves/secp256k1.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { unavailableIn } from '../errors/index.js';
import { TappClient } from '../tapp/index.js';
import { addressOfPublicKey } from './eip191.js';
import type { KeyMaterial, KeySource } from './key-source.js';

export interface TappKeySourceOptions {
  /** Config TAPP_ENDPOINT. */
  endpoint: string;
  /** Config TAPP_APP_ID. */
  appId: string;
  timeoutMs?: number;
  /** Injected client (tests). */
  client?: TappClient;
}

/**
 * HKDF-SHA256 (RFC 5869) salt and info for the Ed25519 seed. Fixed forever: changing either changes
 * every deployment's Ed25519 identity.
 */
export const TAPP_ED25519_HKDF_SALT = 'teeml-sidecar';
export const TAPP_ED25519_HKDF_INFO = 'teeml-sidecar/tapp/ed25519-seed/v1';

/** Ed25519 seed = HKDF-SHA256(ikm = secp256k1 key, salt, info, 32 bytes). */
export const deriveTappEd25519Seed = (secp256k1Key: Uint8Array): Uint8Array =>
  hkdf(
    sha256,
    secp256k1Key,
    new TextEncoder().encode(TAPP_ED25519_HKDF_SALT),
    new TextEncoder().encode(TAPP_ED25519_HKDF_INFO),
    32,
  );

const unavailable = unavailableIn('tapp GetAppSecretKey failed: ');

/**
 * The app's key from 0G Tapp's GetAppSecretKey (key_type "ethereum"; docs/platforms.md, 0G Tapp row).
 *
 * What that key is (0g-tapp `tapp-common/src/app_key/mod.rs`): Tapp generates a random "common
 * signer" when its daemon starts and derives each app's key from it and the app id. So the key, and
 * our ECDSA address, is stable while the Tapp daemon runs and changes when it restarts (the CVM
 * reboots); replicas on other nodes have other keys. It is the same `signer` Tapp writes into every
 * quote's runtime_data, which is the identity the TappRegistry and the 0G broker register on chain;
 * after a reboot the operator re-registers the new address. Tapp measures every GetAppSecretKey call
 * into RTMR3, so it is called once per start.
 *
 * Tapp gives one secp256k1 key per app; the Ed25519 seed is derived from it with HKDF-SHA256 under a
 * fixed salt and info, so both identities rotate together and neither reveals the other.
 */
export class TappKeySource implements KeySource {
  readonly kind = 'tapp' as const;
  private readonly options: TappKeySourceOptions;

  constructor(options: TappKeySourceOptions) {
    if (options.appId === '') throw new RangeError('"appId" must not be empty');
    this.options = options;
  }

  async load(signal?: AbortSignal): Promise<KeyMaterial> {
    const { endpoint, appId, timeoutMs } = this.options;
    // Keys are loaded once per start: an own channel for the call, closed right after.
    const client =
      this.options.client ?? new TappClient({ endpoint, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    let answer: Awaited<ReturnType<TappClient['getAppSecretKey']>>;
    try {
      answer = await client.getAppSecretKey(appId, signal);
    } finally {
      if (this.options.client === undefined) client.close();
    }
    const key = answer.privateKey;
    answer.privateKey = new Uint8Array(0);
    if (key.length !== 32) {
      key.fill(0);
      throw unavailable(`key expected 32 bytes, got length=${key.length}`, 'tapp_bad_key');
    }
    if (!secp256k1.utils.isValidSecretKey(key)) {
      key.fill(0);
      throw unavailable('key is not a valid secp256k1 scalar', 'tapp_bad_key');
    }
    // Tapp also sends the address; a key that does not match it is not the registered identity.
    if (answer.ethAddress.length > 0) {
      const derived = addressOfPublicKey(secp256k1.getPublicKey(key, false));
      if (Buffer.compare(Buffer.from(derived), Buffer.from(answer.ethAddress)) !== 0) {
        key.fill(0);
        throw unavailable('key does not match the address Tapp reported', 'tapp_bad_key');
      }
    }
    return { secp256k1: key, ed25519: deriveTappEd25519Seed(key) };
  }
}
