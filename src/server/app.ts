import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Hono } from 'hono';
import { SidecarError, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { InFlight } from './in-flight.js';
import { type AttestationRouteDeps, attestationRoutes } from './routes/attestation.js';
import { notFoundRoute, type ServerEnv } from './routes/env.js';
import { type HealthDeps, healthRoutes } from './routes/health.js';
import { type ProxyRouteDeps, proxyCall, proxyRoutes, rawProxyPath } from './routes/proxy.js';
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

/** The client's `X-Request-Id` when it is a plain token, else a fresh one. */
const requestIdOf = (given: string | undefined): string =>
  given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();

const shuttingDown = () => unavailable('shutting down; retry on another instance', 'shutting_down');

/** An error answer: its status, the headers it adds, its OpenAI-shaped body. */
interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  body: object;
}

/**
 * What any failure is answered with, logged once: a SidecarError as itself (a 413 closes the
 * connection, a retry delay becomes Retry-After), anything else as a generic 500 whose log line has
 * the error's class and message, never request content.
 */
const errorReply = (err: unknown, requestId: string | undefined, logger: Logger): ErrorReply => {
  if (err instanceof SidecarError) {
    const log = err.status >= 500 ? logger.warn.bind(logger) : logger.info.bind(logger);
    log({ reqId: requestId, status: err.status, code: err.code, ...err.details }, err.message);
    const headers: Record<string, string> = {};
    if (err.status === 413) headers.connection = 'close';
    const retryAfter = err.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
    return { status: err.status, headers, body: err.toBody() };
  }
  logger.error(
    { reqId: requestId, err: { name: (err as Error).name, message: (err as Error).message } },
    'unhandled error',
  );
  return {
    status: 500,
    headers: {},
    body: { error: { message: 'internal error', type: 'server_error', param: null, code: 'internal_error' } },
  };
};

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
    const id = requestIdOf(c.req.header('x-request-id'));
    c.set('requestId', id);
    c.header('x-request-id', id);
    c.env?.outgoing?.setHeader('x-request-id', id);
    if (deps.inFlight.draining && !OPEN_WHILE_DRAINING.test(c.req.path)) {
      c.header('connection', 'close');
      throw shuttingDown();
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
    const reply = errorReply(err, c.get('requestId'), deps.logger);
    for (const [name, value] of Object.entries(reply.headers)) c.header(name, value);
    return c.json(reply.body, reply.status as 400);
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

/** How long a request refused before its body was read may go on sending it. */
const UNREAD_BODY_GRACE_MS = 500;

/**
 * A request answered before its body arrived whole (refused for its token or rate limit): the rest
 * is read and dropped for at most UNREAD_BODY_GRACE_MS, then the connection closes. Node alone would
 * take all of it, however much is declared, until the request deadline; the router's adapter bounds
 * it the same way.
 */
const closeIfUnread = (incoming: IncomingMessage): void => {
  if (incoming.complete) return;
  const timer = setTimeout(() => {
    if (!incoming.complete) incoming.socket?.destroy();
  }, UNREAD_BODY_GRACE_MS);
  timer.unref();
  incoming.once('close', () => clearTimeout(timer));
};

/**
 * The proxied OpenAI routes without the router: a `POST` to one of their exact paths (the root and
 * `/v1` forms of routes/proxy.ts's list) is served straight from Node's request, with the same
 * request id, drain refusal, in-flight count, authentication, rate limit and error answers as the
 * app above gives it; anything else (another path or method, a target or Host the adapter would
 * rewrite or refuse) returns false and goes through the app. The router and its per-request context
 * cost more than a small completion's signing (BENCHMARKS.md, issue 23).
 */
export const proxyFastPath =
  (deps: AppDeps) =>
  (incoming: IncomingMessage, outgoing: ServerResponse): boolean => {
    const route = rawProxyPath(incoming);
    if (route === undefined) return false;
    const id = requestIdOf(incoming.headers['x-request-id'] as string | undefined);
    outgoing.setHeader('x-request-id', id);
    void (async () => {
      deps.inFlight.enter();
      try {
        if (deps.inFlight.draining) {
          outgoing.setHeader('connection', 'close');
          throw shuttingDown();
        }
        await proxyCall(deps.proxy, incoming, outgoing, {
          ...route,
          method: 'POST',
          sign: true,
          requestId: id,
        });
      } catch (err) {
        const reply = errorReply(err, id, deps.logger);
        if (outgoing.headersSent) return;
        const body = JSON.stringify(reply.body);
        outgoing.writeHead(reply.status, {
          ...reply.headers,
          'content-type': 'application/json',
          // Named as the router's adapter writes it, so both send the same bytes.
          'Content-Length': Buffer.byteLength(body),
        });
        outgoing.end(body);
        closeIfUnread(incoming);
      } finally {
        deps.inFlight.leave();
      }
    })();
    return true;
  };
