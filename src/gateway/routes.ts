import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SidecarError } from '../errors/index.js';
import type { BrowserGuard } from './browser-guard.js';
import type { Engine } from './engine.js';
import { answerableError, sendError, verificationOfError } from './send-error.js';
import { serveEngine } from './serve-engine.js';
import { serveStatus } from './status-routes.js';

export interface RoutesOptions {
  /** The verifying engine: every /v1 request goes to its `fetch` (engine.ts). */
  engine: Engine;
  /** Bearer token required on /v1/*; undefined: none. */
  authToken: string | undefined;
  /** Host, Origin, Fetch metadata and content type: what a web page in the user's browser may do. */
  guard: BrowserGuard;
}

/**
 * The gateway's routes as a Node request listener: the status page at `/`, `/health`, and `/v1/*`
 * behind the bearer token. Whatever a route throws is answered in the OpenAI error shape.
 */
export const gatewayRoutes =
  (options: RoutesOptions) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    route(options, req, res).catch((error: unknown) => {
      if (!(error instanceof SidecarError))
        options.engine.logger.error({ err: (error as Error).message }, 'gateway error');
      sendError(res, answerableError(error), verificationOfError(error));
    });
  };

const route = async (options: RoutesOptions, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const url = new URL(req.url ?? '/', 'http://gateway.invalid');
  if (!admitBrowser(options, req, res, url)) return;
  if ((req.method === 'GET' || req.method === 'HEAD') && url.pathname === '/') {
    await statusPage(options, req, res);
    return;
  }
  if (req.method === 'GET' && url.pathname === '/health') {
    await health(options, req, res);
    return;
  }
  if (url.pathname === '/v1' || url.pathname.startsWith('/v1/')) {
    if (!authorized(options.authToken, req)) {
      sendError(
        res,
        new SidecarError('missing or wrong bearer token for the gateway', {
          status: 401,
          code: 'invalid_api_key',
        }),
        'failed: gateway.auth',
      );
      return;
    }
    await serveEngine(options.engine, req, res);
    return;
  }
  sendError(
    res,
    new SidecarError('not found: the gateway serves /v1/* and the status page at /', {
      status: 404,
      code: 'not_found',
    }),
    'unsigned',
  );
};

/**
 * Applies the browser guard before any route (issue 21, item 6): a refused request gets 403 or 415
 * and reaches nothing; OPTIONS is answered here and never forwarded; an allowed origin's answers
 * carry the gateway's CORS headers (the provider's are dropped in proxy.ts). False: answered.
 */
const admitBrowser = (
  options: RoutesOptions,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): boolean => {
  const refusal = options.guard.check(req, url.pathname);
  if (refusal !== undefined) {
    // Never the Host or Origin value: a hostile page chooses them.
    options.engine.logger.warn(
      { event: 'browser', code: refusal.code, path: url.pathname },
      'request refused',
    );
    sendError(res, refusal, `refused: ${refusal.code}`);
    return false;
  }
  const origin = options.guard.allowedOrigin(req);
  if (origin !== undefined)
    for (const [k, v] of Object.entries(options.guard.corsHeaders(origin))) res.setHeader(k, v);
  if (req.method !== 'OPTIONS') return true;
  const answer = options.guard.preflight(req);
  res.writeHead(answer.status, answer.headers);
  res.end();
  return false;
};

/** Compared in constant time: the token guards a gateway listening off loopback. */
const authorized = (authToken: string | undefined, req: IncomingMessage): boolean => {
  if (authToken === undefined) return true;
  const header = req.headers.authorization ?? '';
  const expected = Buffer.from(`Bearer ${authToken}`);
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
};

const statusPage = (options: RoutesOptions, req: IncomingMessage, res: ServerResponse): Promise<void> =>
  serveStatus('page', options.engine, req, res);

const health = (options: RoutesOptions, req: IncomingMessage, res: ServerResponse): Promise<void> =>
  serveStatus('health', options.engine, req, res);
