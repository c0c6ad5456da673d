import { createHash, X509Certificate } from 'node:crypto';

/**
 * Verification of the GPU's PEM certificate chain (docs/platforms.md, "Certificate chain"): 5 PEM
 * certificates, leaf first (GSP FMC leaf → GSP BROM → Provisioner ICA → GH100/GB100 Identity →
 * NVIDIA Device Identity CA). Each link is checked with node:crypto: the issuer's subject matches
 * (`checkIssued`), the signature verifies with the issuer's key, every issuer is a CA, and every
 * certificate is valid at the injected clock. The root must be self-signed and its DER's SHA-256
 * must be one of the pinned fingerprints.
 *
 * Revocation (NVIDIA's OCSP) is not checked here: that is NRAS's job (docs/platforms.md, "Minimal local
 * check").
 */

/** SHA-256 of the DER of the real `NVIDIA Device Identity CA` (docs/platforms.md). */
export const NVIDIA_DEVICE_IDENTITY_CA_SHA256 =
  '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48';

/** Every real GPU chain has exactly this many certificates. */
export const GPU_CERT_CHAIN_LENGTH = 5;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----/g;

/**
 * Splits a PEM chain into certificates. Anything but whitespace and NUL padding between the blocks
 * is an error (NVML hands the chain in a fixed 5120-byte buffer, and some producers keep the NULs:
 * the NEAR AI payload in the shared e2e fixtures does).
 */
export const splitPemChain = (pem: string): X509Certificate[] => {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (!/^[\s\0]*$/.test(pem.replace(PEM_BLOCK, ''))) {
    throw new Error('certificate chain: text outside PEM CERTIFICATE blocks');
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      throw new Error(`certificate chain: certificate ${i} is not valid X.509`, { cause });
    }
  });
};

export const sha256Fingerprint = (cert: X509Certificate): string =>
  createHash('sha256').update(cert.raw).digest('hex');

export interface ChainOptions {
  /** SHA-256 (lowercase hex) of the DER of each acceptable root. */
  pinnedRoots: readonly string[];
  now: Date;
}

export type ChainResult =
  | { ok: true; leaf: X509Certificate; rootFingerprint: string }
  | { ok: false; reason: string };

const validAt = (cert: X509Certificate, now: Date): boolean => {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  const t = now.getTime();
  return Number.isFinite(from) && Number.isFinite(to) && from <= t && t <= to;
};

export const verifyCertificateChain = (pem: string, options: ChainOptions): ChainResult => {
  let certs: X509Certificate[];
  try {
    certs = splitPemChain(pem);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (certs.length !== GPU_CERT_CHAIN_LENGTH) {
    return {
      ok: false,
      reason: `certificate chain: expected ${GPU_CERT_CHAIN_LENGTH} certificates, got ${certs.length}`,
    };
  }
  for (const [i, cert] of certs.entries()) {
    if (!validAt(cert, options.now)) {
      return { ok: false, reason: `certificate chain: certificate ${i} is not valid at the current time` };
    }
  }
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i] as X509Certificate;
    const issuer = certs[Math.min(i + 1, certs.length - 1)] as X509Certificate;
    if (i + 1 < certs.length && !issuer.ca) {
      return { ok: false, reason: `certificate chain: issuer of certificate ${i} is not a CA` };
    }
    if (!cert.checkIssued(issuer)) {
      return { ok: false, reason: `certificate chain: certificate ${i} was not issued by the next one` };
    }
    let signed = false;
    try {
      signed = cert.verify(issuer.publicKey);
    } catch {
      signed = false;
    }
    if (!signed) {
      return {
        ok: false,
        reason: `certificate chain: signature of certificate ${i} does not verify with its issuer's key`,
      };
    }
  }
  const root = certs[certs.length - 1] as X509Certificate;
  const rootFingerprint = sha256Fingerprint(root);
  if (!options.pinnedRoots.map((f) => f.toLowerCase()).includes(rootFingerprint)) {
    return { ok: false, reason: 'certificate chain: root is not a pinned root' };
  }
  return { ok: true, leaf: certs[0] as X509Certificate, rootFingerprint };
};
