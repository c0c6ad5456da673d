import { createHash, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { equalBytes, toHex } from '../bytes/index.js';
import { lazyRequire } from '../lazy/index.js';
import {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  CERT_TYPE_PCK_CHAIN,
  type ParsedQuote,
  parseQuote,
} from './quote.js';

/**
 * A TDX quote's own signatures, checked offline with no collateral (docs/platforms.md, "TDX quote
 * layout"; Intel TDX DCAP Quoting Library API, "Quote Format", "QE Report Certification Data"):
 *
 * 1. the PCK certificate chain in the quote (leaf, intermediate) chains to Intel's SGX Root CA,
 *    pinned below by its SHA-256;
 * 2. the QE report is signed by the PCK leaf's key;
 * 3. the QE report's report_data[0, 32) = sha256(attestation key ‖ QE auth data): the quoting
 *    enclave vouches for the attestation key;
 * 4. the attestation key's ECDSA P-256 signature covers the header and the TD report body.
 *
 * Together: the TD report was produced by a TDX machine Intel certified. What this does NOT say is
 * whether that machine's TCB is current (that needs Intel's TCB info and CRLs: verifyQuote) or what
 * runs in the TD (MRTD, RTMRs, report_data are the caller's to compare).
 */

/** Where the DCAP helpers come from: dcap-qvl's X.509 chain check and its copy of Intel's root. */
const dcap = lazyRequire<typeof import('@phala/dcap-qvl')>('@phala/dcap-qvl');

/**
 * SHA-256 of the DER of Intel's SGX Root CA (CN=Intel SGX Root CA, valid 2018-05-21 to 2049-12-31;
 * https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer).
 * Pinned here so a changed dependency cannot swap the trust anchor.
 */
export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3';

/** Offset and length of report_data inside an SGX enclave report (the QE report): Intel SGX SDM, REPORTBODY. */
const QE_REPORT_DATA_OFFSET = 320;

export interface QuoteSignatures {
  parsed: ParsedQuote;
  /** FMSPC of the PCK leaf (6 bytes hex, uppercase as Intel PCS names it): which collateral applies. */
  fmspc: string;
}

/** One of the four signatures does not hold; `step` names which (never quote bytes). */
export class QuoteSignatureError extends Error {
  override readonly name = 'QuoteSignatureError';
  readonly step: 'format' | 'pck-chain' | 'qe-report' | 'qe-binding' | 'quote';
  constructor(step: QuoteSignatureError['step'], message: string) {
    super(message);
    this.step = step;
  }
}

const p256 = (raw: Uint8Array) =>
  createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(raw.subarray(0, 32)).toString('base64url'),
      y: Buffer.from(raw.subarray(32, 64)).toString('base64url'),
    },
    format: 'jwk',
  });

/** Intel's root as dcap-qvl ships it, refused unless it is the one pinned above. */
const intelRoot = (): Buffer => {
  const root = dcap().constants.TRUSTED_ROOT_CA_DER;
  if (toHex(createHash('sha256').update(root).digest()) !== INTEL_SGX_ROOT_CA_SHA256)
    throw new QuoteSignatureError('pck-chain', 'the bundled Intel SGX Root CA is not the pinned one');
  return root;
};

/** Step 1: the PCK chain (PEM, leaf first) to Intel's root at `atSeconds`; returns the leaf and its FMSPC. */
const checkPckChain = (pem: Uint8Array, atSeconds: number): { leaf: Buffer; fmspc: string } => {
  const { utils } = dcap();
  const certs = utils.extractCerts(Buffer.from(pem));
  const [leaf, ...rest] = certs;
  if (leaf === undefined || rest.length === 0)
    throw new QuoteSignatureError(
      'pck-chain',
      'the quote carries no PCK certificate chain (leaf and issuer)',
    );
  try {
    utils.verifyCertificateChain(leaf, rest, atSeconds, [], intelRoot());
  } catch (error) {
    if (error instanceof QuoteSignatureError) throw error;
    throw new QuoteSignatureError(
      'pck-chain',
      `PCK certificate chain does not lead to Intel's SGX Root CA: ${(error as Error).message}`,
    );
  }
  let fmspc: string;
  try {
    // Only PCK certificates carry Intel's SGX extension: a TCB-signing certificate, also issued by
    // the root, is not a PCK key and must not vouch for a QE report.
    fmspc = toHex(utils.getFmspc(utils.getIntelExtension(leaf))).toUpperCase();
  } catch {
    throw new QuoteSignatureError(
      'pck-chain',
      'the leaf certificate is not a PCK certificate (no SGX extension)',
    );
  }
  return { leaf, fmspc };
};

/**
 * Verifies the quote's signatures up to Intel's root, offline, at `atSeconds` (certificate
 * validity). Throws `QuoteParseError` for bytes that are not a TDX quote and `QuoteSignatureError`
 * naming the first signature that does not hold.
 */
export const verifyQuoteSignatures = (quote: Uint8Array, atSeconds: number): QuoteSignatures => {
  const parsed = parseQuote(quote);
  const sig = parsed.signatureData;
  const qe = sig.qeReportCertification;
  if (parsed.header.attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256)
    throw new QuoteSignatureError('format', 'attestation key type is not ECDSA P-256');
  if (qe === undefined || qe.certification.type !== CERT_TYPE_PCK_CHAIN)
    throw new QuoteSignatureError('format', 'no QE report certification data with a PCK certificate chain');
  const { leaf, fmspc } = checkPckChain(qe.certification.data, atSeconds);
  const pck = new X509Certificate(leaf).publicKey;
  if (!verify('sha256', qe.qeReport, { key: pck, dsaEncoding: 'ieee-p1363' }, qe.qeReportSignature))
    throw new QuoteSignatureError('qe-report', 'the QE report is not signed by the PCK certificate key');
  const binding = createHash('sha256').update(sig.attestationKey).update(qe.qeAuthData).digest();
  if (!equalBytes(binding, qe.qeReport.subarray(QE_REPORT_DATA_OFFSET, QE_REPORT_DATA_OFFSET + 32)))
    throw new QuoteSignatureError(
      'qe-binding',
      'the QE report does not bind the attestation key (report_data is not sha256(key ‖ auth data))',
    );
  let quoteOk = false;
  try {
    const signed = quote.subarray(parsed.signedRange.start, parsed.signedRange.end);
    quoteOk = verify(
      'sha256',
      signed,
      { key: p256(sig.attestationKey), dsaEncoding: 'ieee-p1363' },
      sig.ecdsaSignature,
    );
  } catch {
    quoteOk = false;
  }
  if (!quoteOk)
    throw new QuoteSignatureError('quote', 'the attestation key did not sign the quote header and TD report');
  return { parsed, fmspc };
};
