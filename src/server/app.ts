import { randomUUID } from 'node:crypto';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { type Context, Hono } from 'hono';
import type { AttestationService } from '../attestation/index.js';
import { parseHex } from '../bytes/index.js';
import type { Budget } from '../concurrency/index.js';
import { SidecarError, unavailable } from '../errors/index.js';
import type { Signers, SigningAlgo } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import { type ProxyContext, proxyRequest, RESPONSE_ID_PATTERN, tokenMatches } from '../proxy/index.js';
import type { SignatureLookup } from '../signatures/index.js';
import { type TlsBindingSource, tlsBindingForReport } from '../tls/index.js';
import type { ClientLimit } from './client-limits.js';
import type { InFlight } from './in-flight.js';

export interface AppDeps {
  signers: Signers;
  signatures: SignatureLookup;
  attestation: AttestationService;
  proxy: ProxyContext;
  logger: Logger;
  metrics: Metrics;
  /** When set, proxy routes require `Authorization: Bearer <token>`. */
  authToken?: string | undefined;
  limits: {
    proxy: ClientLimit;
    /** Fresh reports (with a nonce) only; cached ones cost nothing. */
    attestation: ClientLimit;
    /**
     * Signature lookups that wait (for a response still being sent, or a shared store's re-reads),
     * per client and in all. Lookups that find their record at once are not counted.
     */
    lookups: Budget;
  };
  /** The client a per-client limit applies to. */
  clientOf: (incoming: HttpBindings['incoming']) => string;
  inFlight: InFlight;
  /** The certificate `include_tls_fingerprint=true` binds; unset: no TLS configured (the flag gets 400). */
  tls?: TlsBindingSource | undefined;
  /** Shown by /health. */
  status: { simulated: boolean; demoUpstream: boolean; platform: string; gpu: string; version: string };
}

type Env = { Bindings: HttpBindings; Variables: { requestId: string } };

/**
 * OpenAI endpoints proxied and signed at the root as well as under /v1 (CONTRACT.md, Routes: the
 * broker's targetUrl may or may not end in /v1). Under /v1 any other POST path is proxied too.
 */
const ROOT_PROXY_PATHS = [
  '/chat/completions',
  '/completions',
  '/embeddings',
  '/moderations',
  '/rerank',
  '/score',
  '/responses',
  '/tokenize',
  '/detokenize',
  '/classify',
  '/pooling',
];

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Routes still served during a SIGTERM drain: a stream that finishes in the grace period is signed,
 * and its client must still be able to fetch the signature.
 */
const OPEN_WHILE_DRAINING = /^(\/v1)?\/signature\//;

/** The sidecar's own read-only routes: a POST to them is a mistake, never something to proxy. */
const OWN_GET_ROUTES = /^\/(attestation|signature|health|models|metrics)(\/|$)/;

/** Encoded separators in a raw path: never part of an OpenAI route, refused before proxying. */
const ENCODED_SEPARATOR = /%2f|%5c/i;

const parseAlgo = (value: string | undefined): SigningAlgo => {
  if (value === undefined || value === '') return 'ecdsa';
  const algo = value.toLowerCase();
  if (algo === 'ecdsa' || algo === 'ed25519') return algo;
  throw new SidecarError('"signing_algo" must be ecdsa or ed25519', {
    status: 400,
    code: 'invalid_signing_algo',
    param: 'signing_algo',
  });
};

const notFoundRoute = (): SidecarError =>
  new SidecarError('no such route', { status: 404, code: 'route_not_found' });

export const createApp = (deps: AppDeps): Hono<Env> => {
  const app = new Hono<Env>();
  const serializedReports = new WeakMap<object, string>();

  app.use(async (c, next) => {
    const given = c.req.header('x-request-id');
    const id = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', id);
    c.env.outgoing.setHeader('x-request-id', id);
    if (deps.inFlight.draining && !OPEN_WHILE_DRAINING.test(c.req.path)) {
      c.header('connection', 'close');
      throw unavailable('shutting down; retry on another instance', 'shutting_down');
    }
    // No global cap here: each kind of work has its own budget (proxy: uploads and upstream slots;
    // lookups; fresh reports: the attestation queue), so /health and the cached report always answer.
    deps.inFlight.enter();
    try {
      await next();
    } finally {
      deps.inFlight.leave();
    }
  });

  app.onError((err, c) => {
    const requestId = c.get('requestId');
    if (err instanceof SidecarError) {
      const log = err.status >= 500 ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger);
      log({ reqId: requestId, status: err.status, code: err.code, ...err.details }, err.message);
      if (err.status === 413) c.header('connection', 'close');
      const retryAfter = err.details?.retryAfterSeconds;
      if (typeof retryAfter === 'number') c.header('retry-after', String(retryAfter));
      return c.json(err.toBody(), err.status as 400);
    }
    // Unknown errors: log the class and message (never request content), answer a generic 500.
    deps.logger.error(
      { reqId: requestId, err: { name: (err as Error).name, message: (err as Error).message } },
      'unhandled error',
    );
    return c.json(
      { error: { message: 'internal error', type: 'server_error', param: null, code: 'internal_error' } },
      500,
    );
  });

  app.notFound(() => {
    throw notFoundRoute();
  });

  const requireAuth = (c: Context<Env>): void => {
    if (deps.authToken === undefined) return;
    const header = c.req.header('authorization');
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    if (!tokenMatches(token, deps.authToken)) {
      throw new SidecarError('missing or invalid bearer token', { status: 401, code: 'invalid_api_key' });
    }
  };

  const health = (c: Context<Env>) =>
    c.json({
      status: 'ok',
      version: deps.status.version,
      signing_address: deps.signers.ecdsa.address,
      ed25519_public_key: deps.signers.ed25519.address,
      platform: deps.status.platform,
      gpu_evidence: deps.status.gpu,
      simulated: deps.status.simulated,
      demo_upstream: deps.status.demoUpstream,
    });

  const metrics = async (c: Context<Env>) =>
    c.body(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType });

  const report = async (c: Context<Env>) => {
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
    const tls = tlsBindingForReport(c.req.query('include_tls_fingerprint'), deps.tls, c.env.incoming);
    if (nonce !== undefined) deps.limits.attestation.take(c.env.incoming);
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
  };

  const signature = async (c: Context<Env>) => {
    const id = c.req.param('id') ?? '';
    const algo = parseAlgo(c.req.query('signing_algo'));
    if (!RESPONSE_ID_PATTERN.test(id)) {
      throw new SidecarError('malformed chat id', { status: 400, code: 'invalid_chat_id', param: 'id' });
    }
    let record = await deps.signatures.get(id);
    if (record === undefined && deps.signatures.mayAppear(id)) {
      const release = deps.limits.lookups.tryTake(deps.clientOf(c.env.incoming));
      if (release === undefined) {
        throw new SidecarError('too many signature lookups waiting; retry shortly', {
          status: 429,
          code: 'lookup_limit',
        });
      }
      try {
        record = await deps.signatures.settle(id);
      } finally {
        release();
      }
    }
    if (record === undefined) {
      throw new SidecarError('Chat id not found or expired', { status: 404, code: 'chat_id_not_found' });
    }
    const sig = record[algo];
    return c.json({
      text: record.text,
      signature: sig.signature,
      signing_address: sig.address,
      signing_algo: algo,
    });
  };

  const proxyTo = async (method: 'GET' | 'POST', openAiPath: string, sign: boolean, c: Context<Env>) => {
    requireAuth(c);
    deps.limits.proxy.take(c.env.incoming);
    const url = c.req.url;
    const q = url.indexOf('?');
    return proxyRequest(deps.proxy, c.env.incoming, c.env.outgoing, {
      method,
      openAiPath,
      search: q === -1 ? '' : url.slice(q),
      sign,
      requestId: c.get('requestId'),
    }).then(() => RESPONSE_ALREADY_SENT);
  };

  for (const prefix of ['', '/v1']) {
    app.get(`${prefix}/health`, health);
    app.get(`${prefix}/attestation/report`, report);
    app.get(`${prefix}/signature/:id`, signature);
    app.get(`${prefix}/models`, (c) => proxyTo('GET', '/models', false, c));
  }
  app.get('/metrics', metrics);
  for (const path of ROOT_PROXY_PATHS) app.post(path, (c) => proxyTo('POST', path, true, c));
  app.post('/v1/*', (c) => {
    const path = c.req.path.slice(3);
    const raw = c.env.incoming.url ?? '';
    const rawPath = raw.split('?')[0] ?? '';
    if (path.includes('..') || path.includes('//') || ENCODED_SEPARATOR.test(rawPath)) throw notFoundRoute();
    if (OWN_GET_ROUTES.test(path)) {
      throw new SidecarError('method not allowed on this route', { status: 405, code: 'method_not_allowed' });
    }
    return proxyTo('POST', path, true, c);
  });
  return app;
};
