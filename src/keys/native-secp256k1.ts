import { createRequire } from 'node:module';

/** The part of libsecp256k1's N-API binding (the `secp256k1` package's prebuild) the signer uses. */
interface Binding {
  /**
   * RFC 6979 nonce (libsecp256k1's default when no nonce function is given), low-s. Fills
   * `out.signature` (64 bytes r‖s) and `out.recid`; returns 0 on success.
   */
  ecdsaSign(
    out: { signature: Uint8Array; recid: number | null },
    msg32: Uint8Array,
    seckey: Uint8Array,
    data: undefined,
    noncefn: undefined,
  ): number;
  /**
   * Recovers the public key from a compact signature (64 bytes r‖s), its recovery id (0–3) and the
   * 32-byte digest; writes it to `output` (65 bytes: uncompressed). Returns 0 on success, 1 when r or
   * s is not in [1, n), 2 when no key recovers (libsecp256k1 `secp256k1_ecdsa_recover`).
   */
  ecdsaRecover(output: Uint8Array, signature: Uint8Array, recid: number, msg32: Uint8Array): number;
}

export interface RecoverableSignature {
  signature: Uint8Array;
  recoveryId: number;
}

/** Where the package keeps the prebuild for this platform (its file names, per `prebuilds/`). */
const prebuildPath = (): string => {
  const dir = `${process.platform}-${process.arch}`;
  if (process.platform !== 'linux') return `secp256k1/prebuilds/${dir}/secp256k1.node`;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
    ?.header;
  return `secp256k1/prebuilds/${dir}/secp256k1.${header?.glibcVersionRuntime === undefined ? 'musl' : 'glibc'}.node`;
};

let binding: Binding | undefined;

/**
 * libsecp256k1 as a native addon, loaded directly from its prebuild: ~3x faster than the same library
 * compiled to WebAssembly (BENCHMARKS.md). Not through the package's entry point, which silently falls
 * back to pure-JS `elliptic` when the binding does not load: here a missing or broken binding is an
 * error, and the sidecar refuses to start (one signing implementation, never a silent second one).
 * The binding reads the key from the caller's buffer for the call and keeps no copy.
 */
export const nativeSecp256k1 = (): Binding => {
  if (binding !== undefined) return binding;
  const path = prebuildPath();
  let addon: { Secp256k1: new () => Binding };
  try {
    addon = createRequire(import.meta.url)(path) as { Secp256k1: new () => Binding };
  } catch (err) {
    throw new Error(
      `the native libsecp256k1 binding (${path}) could not be loaded: ${(err as Error).message}; ` +
        'ECDSA signing needs it (the secp256k1 package ships prebuilds for linux-x64 glibc/musl, darwin-arm64, win32-x64)',
    );
  }
  binding = new addon.Secp256k1();
  return binding;
};

let loads: boolean | undefined;

/**
 * Whether the binding loads on this platform (cached). Verification may run where no prebuild exists
 * (a user's linux-arm64 or darwin-x64 machine) and falls back to a pure-JS implementation there;
 * signing never does (see above).
 */
export const hasNativeSecp256k1 = (): boolean => {
  if (loads === undefined) {
    try {
      nativeSecp256k1();
      loads = true;
    } catch {
      loads = false;
    }
  }
  return loads;
};

/** Signs a 32-byte digest: RFC 6979, low-s, with the recovery id (what EIP-191 `v` is made from). */
export const signRecoverableNative = (digest: Uint8Array, key: Uint8Array): RecoverableSignature => {
  const out = { signature: new Uint8Array(64), recid: null as number | null };
  if (nativeSecp256k1().ecdsaSign(out, digest, key, undefined, undefined) !== 0 || out.recid === null) {
    throw new Error('secp256k1 signing failed');
  }
  return { signature: out.signature, recoveryId: out.recid };
};

/**
 * The uncompressed public key (65 bytes, 0x04 ‖ x ‖ y) that made `signature` (64 bytes r‖s) over the
 * 32-byte `digest` with recovery id `recoveryId`. libsecp256k1's recovery, like noble's and ethers',
 * accepts a high s (only verification demands low s), so it recovers the same key for every input.
 * Throws for r or s outside [1, n) or a point that does not exist.
 */
export const recoverPublicKeyNative = (
  signature: Uint8Array,
  recoveryId: number,
  digest: Uint8Array,
): Uint8Array => {
  const out = Buffer.alloc(65);
  const code = nativeSecp256k1().ecdsaRecover(out, signature, recoveryId, digest);
  if (code === 1) throw new TypeError('"signature" r or s is out of range');
  if (code !== 0) throw new TypeError('"signature" recovers no public key');
  return out;
};
