import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { type Context, Hono } from 'hono';
import { SidecarError } from '../../errors/index.js';
import { type ProxyContext, type ProxyRoute, proxyRequest, tokenMatches } from '../../proxy/index.js';
import type { ClientLimit } from '../client-limits.js';
import { notFoundRoute, type ServerEnv } from './env.js';

export interface ProxyRouteDeps {
  proxy: ProxyContext;
  /** When set, proxy routes require `Authorization: Bearer <token>`. */
  authToken?: string | undefined;
  /** Proxied requests per client per minute. */
  limit: ClientLimit;
}

/**
 * OpenAI endpoints proxied and signed at the root as well as under /v1 (docs/protocol.md, Routes:
 * the broker's targetUrl may or may not end in /v1). Under /v1 any other POST path is proxied too.
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

/** The sidecar's own read-only routes: a POST to them is a mistake, never something to proxy. */
const OWN_GET_ROUTES = /^\/(attestation|signature|health|models|metrics)(\/|$)/;

/** Encoded separators in a raw path: never part of an OpenAI route, refused before proxying. */
const ENCODED_SEPARATOR = /%2f|%5c/i;

/** `POST <path>` and `POST /v1<path>` for each root path: the OpenAI path each serves. */
const EXACT_PROXY_PATHS = new Map(
  ROOT_PROXY_PATHS.flatMap((p) => [[p, p] as const, [`/v1${p}`, p] as const]),
);

/**
 * The request targets and Host values Hono's Node adapter takes as they are (its `buildUrl`: no
 * normalization, no refusal), so a route served from the raw target sees what the app would.
 */
const PLAIN_TARGET = /^\/[!#$&-;=?-[\]_a-z~]*$/;
const DOT_SEGMENT = /\/\.\.?(?:[/?#]|$)/;
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;

/**
 * The proxied route a plain `POST` to one of the exact proxy paths is for, read from the raw request
 * target (app.ts, proxyFastPath); undefined for anything the router must see.
 */
export const rawProxyPath = (
  incoming: IncomingMessage,
): Pick<ProxyRoute, 'openAiPath' | 'search'> | undefined => {
  if (incoming.method !== 'POST') return undefined;
  const target = incoming.url ?? '';
  const q = target.indexOf('?');
  const openAiPath = EXACT_PROXY_PATHS.get(q === -1 ? target : target.slice(0, q));
  if (openAiPath === undefined) return undefined;
  const host = incoming.headers.host;
  if (host === undefined || !PLAIN_HOST.test(host) || !PLAIN_TARGET.test(target) || DOT_SEGMENT.test(target))
    return undefined;
  return { openAiPath, search: q === -1 ? '' : target.slice(q) };
};

/** Authentication, the client's rate limit, then the proxy: one proxied request, router or not. */
export const proxyCall = async (
  deps: ProxyRouteDeps,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  route: ProxyRoute,
): Promise<void> => {
  if (deps.authToken !== undefined) {
    const header = incoming.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    if (!tokenMatches(token, deps.authToken)) {
      throw new SidecarError('missing or invalid bearer token', { status: 401, code: 'invalid_api_key' });
    }
  }
  deps.limit.take(incoming);
  await proxyRequest(deps.proxy, incoming, outgoing, route);
};

/** The proxied OpenAI routes. They write to Node's raw response, so they need the Node bindings. */
export const proxyRoutes = (deps: ProxyRouteDeps): Hono<ServerEnv> => {
  const routes = new Hono<ServerEnv>();
  const proxyTo = async (
    method: 'GET' | 'POST',
    openAiPath: string,
    sign: boolean,
    c: Context<ServerEnv>,
  ) => {
    const url = c.req.url;
    const q = url.indexOf('?');
    await proxyCall(deps, c.env.incoming, c.env.outgoing, {
      method,
      openAiPath,
      search: q === -1 ? '' : url.slice(q),
      sign,
      requestId: c.get('requestId'),
    });
    return RESPONSE_ALREADY_SENT;
  };
  for (const prefix of ['', '/v1'])
    routes.get(`${prefix}/models`, (c) => proxyTo('GET', '/models', false, c));
  for (const path of ROOT_PROXY_PATHS) routes.post(path, (c) => proxyTo('POST', path, true, c));
  routes.post('/v1/*', (c) => {
    const path = c.req.path.slice(3);
    const raw = c.env.incoming.url ?? '';
    const rawPath = raw.split('?')[0] ?? '';
    if (path.includes('..') || path.includes('//') || ENCODED_SEPARATOR.test(rawPath)) throw notFoundRoute();
    if (OWN_GET_ROUTES.test(path)) {
      throw new SidecarError('method not allowed on this route', { status: 405, code: 'method_not_allowed' });
    }
    return proxyTo('POST', path, true, c);
  });
  return routes;
};
