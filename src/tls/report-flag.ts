import type { IncomingMessage } from 'node:http';
import type { TlsBinding } from '../attestation/index.js';
import { SidecarError } from '../errors/index.js';

/** What the report route needs from the TLS runtime (TlsBinder implements it). */
export interface TlsBindingSource {
  forRequest(incoming: IncomingMessage): TlsBinding;
}

/**
 * `include_tls_fingerprint` on `GET /attestation/report`, read as NEAR's inference-proxy reads it (a
 * serde bool: `true` or `false`, anything else refused). Returns the certificate to bind, or
 * undefined when the flag is absent or false. Set with no certificate configured: 400, so a verifier
 * never mistakes an unbound report for a bound one.
 */
export const tlsBindingForReport = (
  flag: string | undefined,
  tls: TlsBindingSource | undefined,
  incoming: IncomingMessage,
): TlsBinding | undefined => {
  if (flag === undefined || flag === '' || flag === 'false') return undefined;
  if (flag !== 'true') {
    throw new SidecarError('"include_tls_fingerprint" must be true or false', {
      status: 400,
      code: 'invalid_include_tls_fingerprint',
      param: 'include_tls_fingerprint',
    });
  }
  if (tls === undefined) {
    throw new SidecarError(
      'include_tls_fingerprint=true but this instance has no TLS certificate configured (TLS_CERT_PATH or TLS_KEY_SOURCE)',
      { status: 400, code: 'tls_not_configured', param: 'include_tls_fingerprint' },
    );
  }
  return tls.forRequest(incoming);
};
