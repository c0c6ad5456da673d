import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { BrowserGuard } from './browser-guard.js';
import type { E2eeChoice } from './e2ee-choice.js';
import type { GatewayState } from './gateway-state.js';
import type { ProviderLink } from './provider-link.js';
import { sendError } from './send-error.js';
import { serveStatus } from './status-routes.js';

export interface RoutesOptions {
  state: GatewayState;
  link: ProviderLink;
  e2ee: E2eeChoice;
  logger: Logger;
  now: () => number;
  /** When the next attestation runs (the status page shows it). */
  nextAttestationAt: () => number | undefined;
  /** Bearer token required on /v1/*; undefined: none. */
  authToken: string | undefined;
  /** Where receipts are written, for the status page. */
  receiptsLabel: string | undefined;
  /** When stream events reach the user, in words (stream-release.ts). */
  streamRelease: () => string;
  /** Host, Origin, Fetch metadata and content type: what a web page in the user's browser may do. */
  guard: BrowserGuard;
  /** Answers one /v1 request (proxy.ts). */
  proxy: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;
}

/**
 * The gateway's routes as a Node request listener: the status page at `/`, `/health`, and `/v1/*`
 * behind the bearer token. Whatever a route throws is answered in the OpenAI error shape.
 */
export const gatewayRoutes =
  (options: RoutesOptions) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    route(options, req, res).catch((error: unknown) => {
      const known = error instanceof SidecarError;
      if (!known) options.logger.error({ err: (error as Error).message }, 'gateway error');
      sendError(
        res,
        known ? error : new SidecarError('internal gateway error', { status: 500, code: 'internal_error' }),
        known && error.status === 413 ? 'unsigned' : 'failed: gateway.internal',
      );
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
    await options.proxy(req, res, url);
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
    options.logger.warn({ event: 'browser', code: refusal.code, path: url.pathname }, 'request refused');
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
  serveStatus('page', options, req, res);

const health = (options: RoutesOptions, req: IncomingMessage, res: ServerResponse): Promise<void> =>
  serveStatus('health', options, req, res);
