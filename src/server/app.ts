import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { SidecarError, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { InFlight } from './in-flight.js';
import { type AttestationRouteDeps, attestationRoutes } from './routes/attestation.js';
import { notFoundRoute, type ServerEnv } from './routes/env.js';
import { type HealthDeps, healthRoutes } from './routes/health.js';
import { type ProxyRouteDeps, proxyRoutes } from './routes/proxy.js';
import { type SignatureRouteDeps, signatureRoutes } from './routes/signatures.js';

/** Each feature's routes with only its own dependencies (docs/architecture.md, server). */
export interface AppDeps {
  attestation: AttestationRouteDeps;
  signatures: SignatureRouteDeps;
  proxy: ProxyRouteDeps;
  health: HealthDeps;
  logger: Logger;
  /** Requests in flight, for the SIGTERM drain. */
  inFlight: InFlight;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Routes still served during a SIGTERM drain: a stream that finishes in the grace period is signed,
 * and its client must still be able to fetch the signature.
 */
const OPEN_WHILE_DRAINING = /^(\/v1)?\/signature\//;

/**
 * The HTTP application: one middleware (request id, drain, in-flight count), one error handler (the
 * OpenAI error shape for every failure), and the feature routes, each served at the root and under
 * `/v1` (docs/protocol.md, Routes).
 */
export const createApp = (deps: AppDeps): Hono<ServerEnv> => {
  const app = new Hono<ServerEnv>();

  app.use(async (c, next) => {
    const given = c.req.header('x-request-id');
    const id = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', id);
    c.header('x-request-id', id);
    c.env?.outgoing?.setHeader('x-request-id', id);
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

  const { health, metrics } = healthRoutes(deps.health);
  const own = [health, attestationRoutes(deps.attestation), signatureRoutes(deps.signatures)];
  for (const prefix of ['/', '/v1']) for (const routes of own) app.route(prefix, routes);
  app.route('/', metrics);
  app.route('/', proxyRoutes(deps.proxy));
  return app;
};
