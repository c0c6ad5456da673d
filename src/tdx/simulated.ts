import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { assertBytes } from '../bytes/index.js';
import {
  ATTESTATION_KEY_TYPE_ECDSA_P256,
  CERT_TYPE_PCK_CHAIN,
  CERT_TYPE_QE_REPORT,
  QUOTE_LAYOUT,
  TDX_TEE_TYPE,
  V4_REPORT_DATA_OFFSET,
} from './quote.js';
import type { QuoteProvider, QuoteResult } from './quote-provider.js';

/**
 * A quote provider for machines without TDX (docs/architecture.md: simulation is first-class and loudly
 * labelled). It builds a structurally valid v4 quote (docs/platforms.md layout) so that every code path
 * that parses quotes runs, but nothing in it chains to Intel: the attestation key is a throwaway
 * P-256 key made at construction, and the "PCK chain" is a PEM text saying it is simulated. A DCAP
 * verifier must reject it; the report layer labels every report it backs as simulated.
 */

const ascii = (text: string, length: number): Uint8Array => {
  const out = new Uint8Array(length);
  out.set(new TextEncoder().encode(text).subarray(0, length));
  return out;
};

/** QE vendor id of simulated quotes: ASCII "SIMULATED-TDX-QE" (Intel's QE is 939a7233…). */
export const SIMULATED_QE_VENDOR_ID = ascii('SIMULATED-TDX-QE', 16);
/** Header user data of simulated quotes. */
export const SIMULATED_USER_DATA = ascii('teeml SIMULATED TDX', 20);
/** MRTD of simulated quotes: recognisable ASCII, never a real measurement. */
export const SIMULATED_MRTD = ascii('SIMULATED-MRTD:not-a-real-TD-measurement........', 48);

/** The text standing where a real quote carries its PEM PCK certificate chain. */
export const SIMULATED_PCK_PEM =
  '-----BEGIN SIMULATED TDX QUOTE-----\n' +
  'This quote was produced by the teeml-sidecar SIMULATED quote provider.\n' +
  'It was not produced by Intel TDX hardware and carries no PCK certificate chain.\n' +
  'A verifier must reject it.\n' +
  '-----END SIMULATED TDX QUOTE-----\n';

const u16 = (value: number): Uint8Array => {
  const out = new Uint8Array(2);
  new DataView(out.buffer).setUint16(0, value, true);
  return out;
};
const u32 = (value: number): Uint8Array => {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
};
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
};

/** r‖s (IEEE P1363), 64 bytes, over sha256(data): the form TDX quotes carry. */
const signP256 = (key: KeyObject, data: Uint8Array): Uint8Array =>
  new Uint8Array(sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }));

export interface SimulatedQuoteProviderOptions {
  /** For tests: a fixed P-256 private key instead of a fresh one. */
  privateKey?: KeyObject;
}

export class SimulatedQuoteProvider implements QuoteProvider {
  readonly platform = 'simulated' as const;
  readonly simulated = true;
  private readonly privateKey: KeyObject;
  /** Raw attestation public key x‖y (64 bytes), as a quote carries it. */
  readonly attestationKey: Uint8Array;

  constructor(options: SimulatedQuoteProviderOptions = {}) {
    this.privateKey =
      options.privateKey ?? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const jwk = this.privateKey.export({ format: 'jwk' });
    if (jwk.x === undefined || jwk.y === undefined) throw new TypeError('simulated: expected a P-256 key');
    this.attestationKey = concat(Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url'));
    assertBytes('attestationKey', this.attestationKey, QUOTE_LAYOUT.attestationKeyLength);
  }

  async getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<QuoteResult> {
    signal?.throwIfAborted();
    return {
      quote: this.buildQuote(assertBytes('reportData', reportData, QUOTE_LAYOUT.reportDataLength)),
      eventLog: [],
      info: { simulated: true, platform: 'simulated' },
      reportDataScheme: 'raw',
    };
  }

  /** A v4 quote with TD report 1.0 body, signed by the throwaway attestation key. */
  buildQuote(reportData: Uint8Array): Uint8Array {
    const L = QUOTE_LAYOUT;
    const header = concat(
      u16(4),
      u16(ATTESTATION_KEY_TYPE_ECDSA_P256),
      u32(TDX_TEE_TYPE),
      u16(0), // QE SVN
      u16(0), // PCE SVN
      SIMULATED_QE_VENDOR_ID,
      SIMULATED_USER_DATA,
    );
    const headerAndBody = new Uint8Array(L.headerLength + L.td10Length);
    headerAndBody.set(header, 0);
    // TD report 1.0 fields (offsets from the body start, docs/platforms.md): everything zero except
    // MRTD @136 and report_data @520. td_attributes stay zero: DEBUG off.
    headerAndBody.set(SIMULATED_MRTD, L.headerLength + 136);
    headerAndBody.set(reportData, V4_REPORT_DATA_OFFSET);

    const signature = signP256(this.privateKey, headerAndBody);

    // Certification data type 6 (QE report certification data): a QE-report-shaped block whose
    // report_data[0..32) is sha256(attestation key ‖ QE auth data), as Intel's QE binds it, signed
    // by the same throwaway key; then nested type 5 with the simulated "chain".
    const qeAuthData = ascii('SIMULATED', 32);
    const qeReport = new Uint8Array(L.qeReportLength);
    qeReport.set(createHash('sha256').update(this.attestationKey).update(qeAuthData).digest(), 320);
    const qeReportSignature = signP256(this.privateKey, qeReport);
    const pem = new TextEncoder().encode(SIMULATED_PCK_PEM);
    const qeCertification = concat(
      qeReport,
      qeReportSignature,
      u16(qeAuthData.length),
      qeAuthData,
      u16(CERT_TYPE_PCK_CHAIN),
      u32(pem.length),
      pem,
    );
    const signatureData = concat(
      signature,
      this.attestationKey,
      u16(CERT_TYPE_QE_REPORT),
      u32(qeCertification.length),
      qeCertification,
    );
    return concat(headerAndBody, u32(signatureData.length), signatureData);
  }
}
