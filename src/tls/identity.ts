import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { toHex } from '../bytes/index.js';

/**
 * One TLS identity: the certificate chain a server presents and (when the sidecar terminates TLS
 * itself) the private key, checked once when loaded so that a bad pair is a clear start-up error, or
 * on reload a logged reason to keep the old one.
 *
 * What is bound into attestation reports is `spkiSha256`: sha256 of the leaf certificate's DER
 * SubjectPublicKeyInfo, the value NEAR AI's inference-proxy calls `tls_cert_fingerprint` and 0G
 * Tapp's GetAppTlsCert calls `public_key_sha256`. Hashing the key rather than the certificate means a
 * renewal that keeps the key (ACME `--reuse-key`) keeps the binding.
 */
export interface TlsIdentity {
  /** Where it came from: `file`, `bind` (certificate only), `generate`, `dstack`, `tapp`. */
  readonly source: string;
  /** The PEM chain as served, leaf first (the envelope's `tls_certificate`). */
  readonly certificate: string;
  /** PEM private key, only when the sidecar terminates TLS. Memory only; never logged. */
  readonly key?: string;
  readonly leaf: X509Certificate;
  readonly spkiSha256: Uint8Array;
  /** `spkiSha256` as lowercase hex: the report's `tls_cert_fingerprint`. */
  readonly fingerprint: string;
}

/** A certificate or key that cannot be served. Messages name the variable and the reason, never key bytes. */
export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

/** sha256 of a certificate's DER SubjectPublicKeyInfo. */
export const spkiSha256 = (cert: X509Certificate): Uint8Array =>
  new Uint8Array(
    createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest(),
  );

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM text, in order. */
export const pemCertificates = (pem: string): string[] => [...pem.matchAll(PEM_CERTIFICATE)].map((m) => m[0]);

export interface TlsIdentityInput {
  source: string;
  certificate: string;
  key?: string | undefined;
  /** Names used in error messages, e.g. `TLS_CERT_PATH` or `dstack GetTlsKey`. */
  certificateOrigin: string;
  keyOrigin?: string;
  /** Validity is checked against this time. */
  now: Date;
}

/**
 * Parses and checks a certificate chain and optional key: PEM certificates that parse, a leaf whose
 * validity window contains `now`, a key that is the leaf's, and a pair Node's TLS accepts.
 */
export const tlsIdentity = (input: TlsIdentityInput): TlsIdentity => {
  const where = input.certificateOrigin;
  const blocks = pemCertificates(input.certificate);
  const first = blocks[0];
  if (first === undefined) throw new TlsConfigError(`${where}: no PEM certificate found`);
  const chain: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      chain.push(new X509Certificate(block));
    } catch {
      throw new TlsConfigError(`${where}: certificate ${i + 1} of ${blocks.length} does not parse`);
    }
  }
  const leaf = chain[0] as X509Certificate;
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (input.now.getTime() > notAfter.getTime()) {
    throw new TlsConfigError(`${where}: certificate expired at ${notAfter.toISOString()}`);
  }
  if (input.now.getTime() < notBefore.getTime()) {
    throw new TlsConfigError(`${where}: certificate not valid before ${notBefore.toISOString()}`);
  }
  const certificate = `${blocks.join('\n')}\n`;
  let key: string | undefined;
  if (input.key !== undefined) {
    const keyWhere = input.keyOrigin ?? where;
    let keyObject: KeyObject;
    try {
      keyObject = createPrivateKey(input.key);
    } catch {
      throw new TlsConfigError(`${keyWhere}: not a PEM private key (or an encrypted one)`);
    }
    if (!leaf.checkPrivateKey(keyObject)) {
      throw new TlsConfigError(`${keyWhere}: the private key does not match the certificate's public key`);
    }
    try {
      createSecureContext({ cert: certificate, key: input.key, minVersion: 'TLSv1.2' });
    } catch (error) {
      // OpenSSL's reason names the problem (e.g. "ee key too small"), never key bytes.
      throw new TlsConfigError(
        `${where}: TLS refuses this certificate and key (${(error as Error).message})`,
      );
    }
    key = input.key;
  }
  const spki = spkiSha256(leaf);
  return {
    source: input.source,
    certificate,
    ...(key === undefined ? {} : { key }),
    leaf,
    spkiSha256: spki,
    fingerprint: toHex(spki),
  };
};
