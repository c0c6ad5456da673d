import { secp256k1 } from '@noble/curves/secp256k1.js';
import { DstackClient } from '../dstack/index.js';
import { unavailable } from '../errors/index.js';
import type { KeyMaterial, KeySource } from './key-source.js';

export interface DstackKeySourceOptions {
  /** Guest agent socket (config DSTACK_SOCKET). */
  socketPath: string;
  /** Key path (config DSTACK_KEY_PATH); the Ed25519 seed comes from `<path>/ed25519`. */
  path: string;
  timeoutMs?: number;
  /** Injected client (tests). */
  client?: DstackClient;
}

/** GetKey's `purpose`; it is part of what the KMS signs in the key's signature chain. */
export const DSTACK_KEY_PURPOSE = 'signing';

/**
 * Signing keys derived by the Dstack KMS through the guest agent's GetKey (docs/platforms.md, Dstack row).
 *
 * The KMS derives each key from the app's root key and the path, so:
 * - the same app gets the same keys, hence the same signing address, across restarts and upgrades
 *   of the CVM, and
 * - every replica of the app (every CVM with the same app id) gets the same keys too.
 * That is what the 0G deployment needs: the provider broker registers our address on chain
 * (`targetTeeAddress`) and users' SDKs check every signature against it, so an address that changed
 * on restart would make every later signature fail until the operator re-registered, and replicas
 * behind one registration must share it. The flip side: anyone who controls the app id (its owner,
 * through an allowed compose update) can run code that gets the same key, which is why verifiers
 * check the compose hash in the quote, not just the address.
 *
 * Two separate paths give two independent keys, never one key reused across curves.
 */
export class DstackKeySource implements KeySource {
  readonly kind = 'dstack' as const;
  private readonly client: DstackClient;
  private readonly path: string;

  constructor(options: DstackKeySourceOptions) {
    if (options.path === '') throw new RangeError('"path" must not be empty');
    this.path = options.path;
    this.client =
      options.client ??
      new DstackClient({
        socketPath: options.socketPath,
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      });
  }

  async load(signal?: AbortSignal): Promise<KeyMaterial> {
    const secp = await this.client.getKey(this.path, DSTACK_KEY_PURPOSE, signal);
    // 32 bytes is checked by the client; the scalar must also lie in [1, n).
    if (!secp256k1.utils.isValidSecretKey(secp.key)) {
      secp.key.fill(0);
      throw unavailable('dstack GetKey failed: key is not a valid secp256k1 scalar', 'dstack_bad_key');
    }
    let ed: Uint8Array;
    try {
      ed = (await this.client.getKey(`${this.path}/ed25519`, DSTACK_KEY_PURPOSE, signal)).key;
    } catch (error) {
      secp.key.fill(0);
      throw error;
    }
    return { secp256k1: secp.key, ed25519: ed };
  }
}
