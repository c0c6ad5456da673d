import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import { SidecarError } from '../errors/index.js';
import { callPool, dispatchCall, type UpstreamCall } from './dispatch.js';

/**
 * RFC 9110 §7.6.1: hop-by-hop fields are meaningful only for one connection and must not be
 * forwarded; nor are the fields named in a Connection header.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request fields the sidecar (and the gateway, which forwards through this same filter) sets itself
 * or must not pass on. `x-request-id` is the client's to correlate its own logs with ours; it is not
 * forwarded, because vLLM derives completion ids from it and a client must not choose the id under
 * which a response is signed (docs/protocol.md). `x-admin-token` and `x-request-hash` are the
 * sidecar's own credentials and override. A browser's `origin`, `referer` and cookies are the
 * user's business with this hop, never the model server's or a paid provider's (issue 21, item 12).
 */
const REQUEST_DROP = new Set([
  'host',
  'content-length',
  'authorization',
  'accept-encoding',
  'cookie',
  'origin',
  'referer',
  'x-request-hash',
  'x-admin-token',
  'x-request-id',
  'expect',
]);

/** Request field prefixes never forwarded: our own `x-teeml-*` and the browser's Fetch metadata (`sec-fetch-*`). */
const REQUEST_DROP_PREFIXES = ['x-teeml-', 'sec-fetch-'] as const;

/**
 * Response fields never relayed from the model server:
 * - the sidecar's own: length and encoding of the bytes it sends, `zg-res-key` (the id it signed
 *   under), `x-request-id`, the stream headers it sets, and any `x-teeml-*`;
 * - fields that make no sense from a model server behind this proxy and could act on the client in
 *   the sidecar's name: cookies, HSTS and alternative services (the sidecar's own TLS decides
 *   those), redirection targets, and authentication challenges (the upstream's credentials are the
 *   sidecar's business, not the client's).
 */
const RESPONSE_DROP = new Set([
  'content-length',
  'content-encoding',
  'date',
  'server',
  'zg-res-key',
  'x-request-id',
  'x-accel-buffering',
  'set-cookie',
  'set-cookie2',
  'strict-transport-security',
  'alt-svc',
  'location',
  'content-location',
  'refresh',
  'www-authenticate',
  'clear-site-data',
  'public-key-pins',
]);

const NONE_LISTED: ReadonlySet<string> = new Set();

const connectionListed = (headers: IncomingHttpHeaders): ReadonlySet<string> => {
  const value = headers.connection;
  if (typeof value !== 'string') return NONE_LISTED;
  const out = new Set<string>();
  for (const name of value.split(',')) out.add(name.trim().toLowerCase());
  return out;
};

const startsWithAny = (name: string, prefixes: readonly string[]): boolean => {
  for (const prefix of prefixes) if (name.startsWith(prefix)) return true;
  return false;
};

/** Copies a header map without hop-by-hop fields, those named in Connection, and `drop`. */
const filterHeaders = (
  headers: IncomingHttpHeaders,
  drop: ReadonlySet<string>,
  prefixes: readonly string[] = ['x-teeml-'],
): Record<string, string | string[]> => {
  const listed = connectionListed(headers);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (
      value === undefined ||
      HOP_BY_HOP.has(name) ||
      drop.has(name) ||
      listed.has(name) ||
      startsWithAny(name, prefixes)
    ) {
      continue;
    }
    out[name] = value;
  }
  return out;
};

/** What a proxy forwards of its client's request: the sidecar to its model server, the gateway to its provider. */
export const forwardRequestHeaders = (headers: IncomingHttpHeaders): Record<string, string | string[]> =>
  filterHeaders(headers, REQUEST_DROP, REQUEST_DROP_PREFIXES);

export const forwardResponseHeaders = (headers: IncomingHttpHeaders): Record<string, string | string[]> =>
  filterHeaders(headers, RESPONSE_DROP);

/** Path segments of letters, digits, `_` and `-`: what `URL` would leave exactly as it is. */
const PLAIN_PATH = /^(?:\/[\w-]+)+$/;

export interface UpstreamOptions {
  /** Base URL; OpenAI paths are appended after `/v1` (added when the base does not end in it). */
  baseUrl: string;
  apiKey?: string | undefined;
  /**
   * The most connections to the model server, open or opening (MAX_CONCURRENT_REQUESTS). A call
   * aborted while its connection is still being opened frees its slot at once, but undici keeps the
   * attempt until it connects or times out: without this bound, clients that send and leave while
   * the model server is slow to accept would pile up connection attempts.
   */
  connections?: number | undefined;
}

/**
 * The model server, through undici's connection pool (keep-alive, one request per connection at a
 * time): it gives the proxy the raw byte stream and backpressure without web-stream conversions on
 * the hot path, and costs ~20 µs less per call than `node:http`'s agent (BENCHMARKS.md, issue 23).
 */
export class Upstream {
  private readonly base: URL;
  private readonly pool: Pool;
  /** `user:password@` in UPSTREAM_URL, sent as Basic credentials when no UPSTREAM_API_KEY is set. */
  private readonly basicAuth: string | undefined;

  constructor(private readonly options: UpstreamOptions) {
    const base = new URL(options.baseUrl);
    const path = base.pathname.replace(/\/+$/, '');
    base.pathname = path.endsWith('/v1') ? path : `${path}/v1`;
    this.base = base;
    this.basicAuth =
      base.username === '' && base.password === ''
        ? undefined
        : `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
    this.pool = callPool(
      base.origin,
      options.connections === undefined ? {} : { connections: options.connections },
    );
  }

  /** `openAiPath` is the path after `/v1` (e.g. `/chat/completions`); `search` includes its `?`. */
  url(openAiPath: string, search: string): URL {
    const url = new URL(this.base);
    url.pathname = `${this.base.pathname}${openAiPath}`;
    url.search = search;
    return url;
  }

  /**
   * The request target for a call: the path (and query) the URL above would give. A path of plain
   * segments and no query needs none of the URL parser's escaping or dot-segment rules, so it is
   * joined as it is (every proxied OpenAI route, per request); anything else goes through it.
   */
  private target(openAiPath: string, search: string): string {
    if (search === '' && PLAIN_PATH.test(openAiPath)) return `${this.base.pathname}${openAiPath}`;
    const url = this.url(openAiPath, search);
    return `${url.pathname}${url.search}`;
  }

  call(
    method: string,
    openAiPath: string,
    search: string,
    headers: Record<string, string | string[]>,
    body: Uint8Array | undefined,
  ): UpstreamCall {
    const outHeaders: Record<string, string | string[]> = { ...headers, 'accept-encoding': 'identity' };
    if (this.options.apiKey !== undefined) outHeaders.authorization = `Bearer ${this.options.apiKey}`;
    else if (this.basicAuth !== undefined) outHeaders.authorization = this.basicAuth;
    if (body !== undefined) outHeaders['content-length'] = String(body.length);
    return dispatchCall(
      this.pool,
      {
        origin: this.base.origin,
        method: method as Dispatcher.HttpMethod,
        path: this.target(openAiPath, search),
        headers: outHeaders,
        body: body === undefined ? null : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      },
      upstreamError,
    );
  }

  close(): void {
    void this.pool.destroy().catch(() => undefined);
  }
}

const upstreamError = (err: Error & { code?: string }): SidecarError => {
  if (err instanceof SidecarError) return err;
  // 101 Switching Protocols to a plain request: nothing can be relayed.
  if (err.message === 'bad upgrade')
    return new SidecarError('upstream switched protocols; the proxy does not relay that', {
      status: 502,
      code: 'upstream_bad_response',
      cause: err,
    });
  // The connection closed, or the model server sent what is not HTTP, once the request was out.
  if (err.code === 'UND_ERR_SOCKET')
    return new SidecarError('upstream closed the connection without an answer', {
      status: 502,
      code: 'upstream_bad_response',
      cause: err,
    });
  const code = err.code ?? 'unknown';
  return new SidecarError('upstream model server unreachable', {
    status: 502,
    code: 'upstream_unavailable',
    details: { errno: code },
    cause: err,
  });
};
