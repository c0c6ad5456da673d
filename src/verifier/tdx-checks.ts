import { createPublicKey, verify } from 'node:crypto';
import { equalBytes, toHex } from '../bytes/index.js';
import { checkRuntimeData, TAPP_REPORT_DATA_SCHEME } from '../tapp/index.js';
import {
  buildReportData,
  type Collateral,
  type ParsedQuote,
  QuoteVerificationError,
  verifyQuote,
} from '../tdx/index.js';
import type { CheckList } from './check-list.js';
import type { AttestedSigner } from './report-checks.js';
import { type AttestationView, normalizeHex } from './report-shape.js';
import type { MeasurementAllowLists } from './types.js';

export const DEFAULT_ACCEPTED_TCB: readonly string[] = Object.freeze(['UpToDate']);

/** Every TCB status dcap-qvl reports (its TcbStatus type): what a policy may accept. */
export const TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'Revoked',
] as const;

/**
 * A simulated quote is signed by a throwaway P-256 key carried in the quote itself (src/tdx/
 * simulated.ts). Checking that signature proves only that the bytes were not altered after the
 * sidecar built them; nothing chains to Intel.
 */
const simulatedSelfSignatureValid = (quote: Uint8Array, parsed: ParsedQuote): boolean => {
  const key = parsed.signatureData.attestationKey;
  try {
    const publicKey = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: Buffer.from(key.subarray(0, 32)).toString('base64url'),
        y: Buffer.from(key.subarray(32, 64)).toString('base64url'),
      },
      format: 'jwk',
    });
    return verify(
      'sha256',
      quote.subarray(parsed.signedRange.start, parsed.signedRange.end),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      parsed.signatureData.ecdsaSignature,
    );
  } catch {
    return false;
  }
};

export interface QuoteCheckInput {
  quote: Uint8Array;
  parsed: ParsedQuote;
  simulatedMarkers: string[];
  allowSimulated: boolean;
  nowSeconds: number;
  acceptTcb: readonly string[];
  collateral: () => Promise<Collateral>;
}

/**
 * `tdx.quote`: Intel DCAP verification with dcap-qvl at the given time (docs/platforms.md: signatures,
 * PCK chain to Intel's root, TCB status against the collateral), then the caller's TCB policy.
 * dcap-qvl does not look at MRTD, RTMRs or report_data: the checks below do.
 */
export const checkQuote = async (list: CheckList, input: QuoteCheckInput): Promise<string | undefined> => {
  const id = 'tdx.quote';
  const title = 'TDX quote verified by Intel DCAP (dcap-qvl) and TCB status accepted';
  if (input.simulatedMarkers.length > 0) {
    if (!input.allowSimulated) {
      list.fail(id, title, 'simulated quote: not produced by TDX hardware, no Intel PCK chain');
    } else if (simulatedSelfSignatureValid(input.quote, input.parsed)) {
      list.pass(id, title, 'SIMULATED quote: self-signature valid, nothing chains to Intel', true);
    } else {
      list.fail(id, title, 'simulated quote whose self-signature does not verify (altered bytes)');
    }
    return undefined;
  }
  let collateral: Collateral;
  try {
    collateral = await input.collateral();
  } catch (error) {
    list.fail(
      id,
      title,
      `collateral unavailable: ${error instanceof Error ? error.message : 'unknown error'}`,
    );
    return undefined;
  }
  try {
    const result = verifyQuote(input.quote, collateral, input.nowSeconds);
    const advisories = result.advisoryIds.length > 0 ? `, advisories ${result.advisoryIds.join(' ')}` : '';
    const at = new Date(input.nowSeconds * 1000).toISOString();
    if (input.acceptTcb.includes(result.status)) {
      list.pass(id, title, `TCB status ${result.status}${advisories} at ${at}`);
    } else {
      list.fail(
        id,
        title,
        `TCB status ${result.status}${advisories} is not accepted (accepted: ${input.acceptTcb.join(', ')}; see --accept-tcb)`,
      );
    }
    return result.status;
  } catch (error) {
    const reason = error instanceof QuoteVerificationError ? error.reason : (error as Error).message;
    list.fail(id, title, `rejected: ${reason}`);
    return undefined;
  }
};

/** `tdx.debug`: TD_ATTRIBUTES bit 0 (DEBUG) lets the host read and write the TD: never trust it. */
export const checkDebug = (list: CheckList, parsed: ParsedQuote): void => {
  const title = 'TD is not in debug mode';
  const attributes = toHex(parsed.report.tdAttributes);
  if (parsed.report.debug) list.fail('tdx.debug', title, `TD_ATTRIBUTES ${attributes} has the DEBUG bit set`);
  else list.pass('tdx.debug', title, `TD_ATTRIBUTES ${attributes}`);
};

/**
 * `tdx.report-data`: the quote binds the attested key and our nonce (docs/protocol.md, report_data).
 * Schemes, in order:
 * - `raw`: report_data = key[0, 32) (ecdsa: address ‖ 12 zero bytes) ‖ nonce.
 * - `tapp-runtime-data-sha512` (0G Tapp): report_data = sha512(runtime_data) and runtime_data's
 *   `nonce` carries those same 64 bytes (docs/platforms.md, 0G Tapp).
 * - NEAR AI's TLS scheme, recognised for recorded reports: report_data[0, 32) =
 *   sha256(public key ‖ TLS certificate fingerprint), [32, 64) = nonce. It binds the key too, but
 *   only through a TLS certificate this verifier does not check; the detail says so.
 */
export const checkReportData = (
  list: CheckList,
  report: AttestationView,
  parsed: ParsedQuote,
  signer: AttestedSigner | undefined,
  nonce: Uint8Array,
): void => {
  const id = 'tdx.report-data';
  const title = 'quote report_data binds the signing key and our nonce';
  if (signer === undefined) {
    list.fail(id, title, 'no valid signing key in the report to compare with');
    return;
  }
  // A report that names a TLS fingerprint claims NEAR's binding (`include_tls_fingerprint=true`):
  // [0, 32) = sha256(address (ecdsa, 20 bytes) or public key (ed25519) ‖ fingerprint). Then only
  // that layout passes; a report claiming a binding its report_data does not hold fails.
  const fingerprintHex =
    report.tls_cert_fingerprint === undefined ? undefined : normalizeHex(report.tls_cert_fingerprint);
  if (fingerprintHex !== undefined && !/^[0-9a-f]{64}$/.test(fingerprintHex)) {
    list.fail(id, title, 'tls_cert_fingerprint is not 32 bytes of hex');
    return;
  }
  const tlsSpkiSha256 =
    fingerprintHex === undefined ? undefined : new Uint8Array(Buffer.from(fingerprintHex, 'hex'));
  const expected =
    signer.algo === 'ecdsa'
      ? buildReportData({ algo: 'ecdsa', address: signer.bytes, nonce, tlsSpkiSha256 })
      : buildReportData({ algo: 'ed25519', publicKey: signer.bytes, nonce, tlsSpkiSha256 });
  const signerPart =
    tlsSpkiSha256 === undefined
      ? signer.algo === 'ecdsa'
        ? 'address ‖ 12 zero bytes'
        : 'public key'
      : `sha256(${signer.algo === 'ecdsa' ? 'address' : 'public key'} ‖ tls_cert_fingerprint)`;
  const scheme = tlsSpkiSha256 === undefined ? 'raw scheme' : 'NEAR tls_cert_fingerprint scheme';
  const actual = parsed.report.reportData;
  if (report.report_data_scheme === TAPP_REPORT_DATA_SCHEME) {
    if (report.runtime_data === undefined) {
      list.fail(id, title, 'tapp scheme named but the report has no runtime_data');
      return;
    }
    try {
      const runtime = checkRuntimeData({
        runtimeData: new TextEncoder().encode(report.runtime_data),
        quoteReportData: actual,
        nonce: expected,
      });
      // Tapp's own commitment to the app's TLS key (GetAppTlsCert public_key_sha256), when present,
      // must be the key the report binds.
      const tappTls = runtime.tls_public_key === undefined ? undefined : normalizeHex(runtime.tls_public_key);
      if (tappTls !== undefined && fingerprintHex !== undefined && tappTls !== fingerprintHex) {
        list.fail(id, title, 'tapp scheme: runtime_data.tls_public_key is not tls_cert_fingerprint');
        return;
      }
      list.pass(
        id,
        title,
        `tapp scheme: sha512(runtime_data) = report_data, runtime_data.nonce = ${signerPart} ‖ nonce (${scheme})${
          tappTls !== undefined && fingerprintHex !== undefined
            ? '; runtime_data.tls_public_key = tls_cert_fingerprint'
            : ''
        }`,
      );
    } catch (error) {
      list.fail(id, title, `tapp scheme: ${(error as Error).message}`);
    }
    return;
  }
  if (equalBytes(actual, expected)) {
    list.pass(id, title, `${scheme}: ${signerPart} ‖ nonce`);
    return;
  }
  const nonceOk = equalBytes(actual.subarray(32), nonce);
  const keyOk = equalBytes(actual.subarray(0, 32), expected.subarray(0, 32));
  list.fail(
    id,
    title,
    [
      keyOk
        ? undefined
        : tlsSpkiSha256 === undefined
          ? 'report_data[0, 32) does not bind the attested signing key'
          : 'report_data[0, 32) is not sha256(signing key ‖ tls_cert_fingerprint)',
      nonceOk ? undefined : 'report_data[32, 64) is not our nonce',
    ]
      .filter((s) => s !== undefined)
      .join('; '),
  );
};

/** `tdx.measurements`: MRTD and RTMR0–2 are on the caller's allow-lists (skipped when none given). */
export const checkMeasurements = (
  list: CheckList,
  parsed: ParsedQuote,
  allow: MeasurementAllowLists,
): void => {
  const id = 'tdx.measurements';
  const title = 'MRTD and RTMR0-2 are on the allow-lists';
  const registers: [string, Uint8Array, readonly string[] | undefined][] = [
    ['MRTD', parsed.report.mrTd, allow.mrtd],
    ['RTMR0', parsed.report.rtmr0, allow.rtmr0],
    ['RTMR1', parsed.report.rtmr1, allow.rtmr1],
    ['RTMR2', parsed.report.rtmr2, allow.rtmr2],
  ];
  const given = registers.filter(([, , list]) => list !== undefined && list.length > 0);
  if (given.length === 0) {
    list.skip(id, title, 'no allow-list given (--mrtd, --rtmr0, --rtmr1, --rtmr2)');
    return;
  }
  const bad = given.filter(([, value, allowed]) => !(allowed ?? []).map(normalizeHex).includes(toHex(value)));
  if (bad.length === 0) list.pass(id, title, `${given.map(([name]) => name).join(', ')} allowed`);
  else list.fail(id, title, bad.map(([name, value]) => `${name} ${toHex(value)} not allowed`).join('; '));
};
