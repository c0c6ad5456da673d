import { Hono } from 'hono';
import type { AttestationService } from '../../attestation/index.js';
import { parseHex } from '../../bytes/index.js';
import { SidecarError } from '../../errors/index.js';
import type { Signers } from '../../keys/index.js';
import { type TlsBindingSource, tlsBindingForReport } from '../../tls/index.js';
import type { ClientLimit } from '../client-limits.js';
import { parseAlgo, type ServerEnv } from './env.js';

export interface AttestationRouteDeps {
  attestation: AttestationService;
  signers: Signers;
  /** Fresh reports (with a nonce) only; cached ones cost nothing. */
  limit: ClientLimit;
  /** The certificate `include_tls_fingerprint=true` binds; unset: no TLS configured (the flag gets 400). */
  tls?: TlsBindingSource | undefined;
}

/** `GET /attestation/report` (docs/protocol.md, Attestation report). */
export const attestationRoutes = (deps: AttestationRouteDeps): Hono<ServerEnv> => {
  const routes = new Hono<ServerEnv>();
  const serializedReports = new WeakMap<object, string>();
  routes.get('/attestation/report', async (c) => {
    const algo = parseAlgo(c.req.query('signing_algo'));
    const nonces = c.req.queries('nonce') ?? [];
    if (nonces.length > 1) {
      throw new SidecarError('"nonce" given more than once', {
        status: 400,
        code: 'invalid_nonce',
        param: 'nonce',
      });
    }
    const nonceParam = nonces[0];
    const nonce =
      nonceParam === undefined
        ? undefined
        : parseHex('nonce', nonceParam, { bytes: 32, code: 'invalid_nonce' });
    const tls = tlsBindingForReport(c.req.query('include_tls_fingerprint'), deps.tls, c.env?.incoming);
    if (nonce !== undefined) deps.limit.take(c.env.incoming);
    const wanted = c.req.query('signing_address');
    if (wanted !== undefined && wanted.toLowerCase() !== deps.signers.get(algo).address.toLowerCase()) {
      // Load balancers probe replicas with signing_address to find the one holding that key.
      throw new SidecarError('signing address not served by this instance', {
        status: 404,
        code: 'signing_address_not_found',
      });
    }
    const result = await deps.attestation.report(algo, nonce, tls);
    // A cached report is served many times: serialize it once (it is ~20 KB of hex).
    let body = serializedReports.get(result);
    if (body === undefined) {
      body = JSON.stringify(result);
      serializedReports.set(result, body);
    }
    return c.body(body, 200, { 'content-type': 'application/json' });
  });
  return routes;
};
