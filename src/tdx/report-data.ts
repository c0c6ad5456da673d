import { sha256 } from '@noble/hashes/sha2.js';
import { assertBytes, equalBytes } from '../bytes/index.js';
import { unavailable } from '../errors/index.js';
import type { SigningAlgo } from '../keys/index.js';
import { type ParsedQuote, parseQuote, QuoteParseError } from './quote.js';
import type { TeePlatform } from './quote-provider.js';

/**
 * The 64 bytes we put in a TDX quote's report_data (docs/protocol.md, "report_data"), the layout every
 * NEAR/Phala verifier checks:
 * - [0, 32): ecdsa: the 20-byte Ethereum address followed by 12 zero bytes; ed25519: the 32-byte
 *   public key.
 * - [32, 64): the raw 32-byte request nonce.
 * One layout per signing algorithm (keys' SigningAlgo).
 *
 * With a TLS certificate bound (NEAR AI's `include_tls_fingerprint=true`, inference-proxy
 * `attestation.rs` build_report_data): [0, 32) = sha256(signer bytes ‖ tlsSpkiSha256), where the
 * signer bytes are the 20-byte address (ecdsa, unpadded) or the 32-byte public key (ed25519) and
 * tlsSpkiSha256 is sha256 of the certificate's DER SubjectPublicKeyInfo. [32, 64) is the nonce.
 */

export const REPORT_DATA_LENGTH = 64;
export const NONCE_LENGTH = 32;
export const ECDSA_ADDRESS_LENGTH = 20;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const TLS_SPKI_SHA256_LENGTH = 32;

export type ReportDataInput = (
  | { algo: Extract<SigningAlgo, 'ecdsa'>; address: Uint8Array; nonce: Uint8Array }
  | { algo: Extract<SigningAlgo, 'ed25519'>; publicKey: Uint8Array; nonce: Uint8Array }
) & {
  /** sha256 of the TLS certificate's DER SubjectPublicKeyInfo: binds it as NEAR does (see above). */
  tlsSpkiSha256?: Uint8Array | undefined;
};

export const buildReportData = (input: ReportDataInput): Uint8Array => {
  const out = new Uint8Array(REPORT_DATA_LENGTH);
  let signer: Uint8Array;
  if (input.algo === 'ecdsa') {
    signer = assertBytes('address', input.address, ECDSA_ADDRESS_LENGTH);
  } else if (input.algo === 'ed25519') {
    signer = assertBytes('publicKey', input.publicKey, ED25519_PUBLIC_KEY_LENGTH);
  } else {
    throw new TypeError(`"algo" expected ecdsa or ed25519`);
  }
  if (input.tlsSpkiSha256 === undefined) {
    out.set(signer, 0);
  } else {
    const spki = assertBytes('tlsSpkiSha256', input.tlsSpkiSha256, TLS_SPKI_SHA256_LENGTH);
    const joined = new Uint8Array(signer.length + spki.length);
    joined.set(signer, 0);
    joined.set(spki, signer.length);
    out.set(sha256(joined), 0);
  }
  out.set(assertBytes('nonce', input.nonce, NONCE_LENGTH), 32);
  return out;
};

export interface SplitReportData {
  /** Bytes [0, 32): the address (ecdsa, zero-padded) or public key (ed25519). */
  signer: Uint8Array;
  nonce: Uint8Array;
}

/** Splits 64 bytes of report_data into its two halves (copies). */
export const splitReportData = (reportData: Uint8Array): SplitReportData => {
  assertBytes('reportData', reportData, REPORT_DATA_LENGTH);
  return { signer: reportData.slice(0, 32), nonce: reportData.slice(32, 64) };
};

/**
 * For ecdsa: the 20-byte address in the first half, or null when bytes [20, 32) are not all zero
 * (then the first half is not an ecdsa binding).
 */
export const ecdsaAddressFromReportData = (reportData: Uint8Array): Uint8Array | null => {
  const { signer } = splitReportData(reportData);
  return signer.subarray(ECDSA_ADDRESS_LENGTH).every((b) => b === 0)
    ? signer.slice(0, ECDSA_ADDRESS_LENGTH)
    : null;
};

/**
 * Checks a quote fresh from a platform before we serve it: it must parse as a TDX quote and carry
 * exactly the report_data we asked for (anything else is not our quote: a stale or concurrent
 * request, or a broken platform). Failures are 503 `tee_bad_quote`, naming no bytes.
 */
export const expectQuoteReportData = (
  platform: TeePlatform,
  quote: Uint8Array,
  expected: Uint8Array,
): ParsedQuote => {
  let parsed: ParsedQuote;
  try {
    parsed = parseQuote(quote);
  } catch (err) {
    if (!(err instanceof QuoteParseError)) throw err;
    throw unavailable(`TDX quote unavailable: ${platform} returned a malformed quote`, 'tee_bad_quote', {
      details: { platform, field: err.field, length: quote.length },
      cause: err,
    });
  }
  if (!equalBytes(parsed.report.reportData, expected)) {
    throw unavailable(
      `TDX quote unavailable: ${platform} returned a quote with a different report_data`,
      'tee_bad_quote',
      { details: { platform } },
    );
  }
  return parsed;
};
