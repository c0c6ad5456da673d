import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.js';

export interface BrowserGuardOptions {
  /** The port the gateway listens on (known after listen: port 0 picks one). */
  port: () => number;
  /** The address it listens on, e.g. `127.0.0.1` or `::1`. */
  listenAddress: () => string;
  /** More Host names it answers to (`--allowed-host`): `name` (with the gateway's port) or `name:port`. */
  allowedHosts?: readonly string[];
  /** Web origins allowed to call it from a browser (`--allow-origin`), e.g. `http://localhost:3000`. */
  allowOrigins?: readonly string[];
}

/** OpenAI routes whose bodies are multipart uploads rather than JSON. */
const MULTIPART_ROUTE = /^\/v1\/(audio\/(transcriptions|translations)|files|uploads(\/.*)?)$/;

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

const refuse = (message: string, status: number, code: string): SidecarError =>
  new SidecarError(message, { status, code });

/** `[v6]` for an IPv6 literal, as it appears in a Host header. */
const hostForm = (address: string): string =>
  address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;

/**
 * What a web page in the user's browser must not do with the gateway (issue 21, item 6). The gateway
 * spends the user's key or wallet and answers with their completions, so:
 * - DNS rebinding: a page on `evil.example` whose name now resolves to 127.0.0.1 sends `Host:
 *   evil.example:8090`. Only the names the gateway listens as are served (loopback names and the
 *   listen address with its port, and `--allowed-host`); RFC 9110 §7.2 makes Host the target's name.
 * - Cross-origin calls: a browser sends `Origin` on every CORS and every non-GET request (Fetch
 *   standard §3.1); any Origin other than the gateway's own or an `--allow-origin` is refused, and
 *   `Sec-Fetch-Site` (W3C Fetch Metadata) refuses cross-site requests whose Origin was withheld.
 * - Simple requests skip the preflight: a `text/plain` or form POST from any page reaches the server.
 *   JSON routes take `application/json` only.
 * - Preflights are answered here (`preflight`), never forwarded; CORS headers are the gateway's alone.
 */
export class BrowserGuard {
  private readonly origins: ReadonlySet<string>;
  /** The served Host values, made once per listening port and address (the check runs per request). */
  private served: { key: string; hosts: Set<string> } | undefined;

  constructor(private readonly options: BrowserGuardOptions) {
    this.origins = new Set((options.allowOrigins ?? []).map((o) => o.toLowerCase().replace(/\/+$/, '')));
  }

  /** Host header values served: `name:port` for every name, bare names too on port 80. */
  hosts(): ReadonlySet<string> {
    const port = this.options.port();
    const address = this.options.listenAddress();
    const key = `${address} ${port}`;
    if (this.served?.key === key) return this.served.hosts;
    const hosts = this.hostsFor(port, address);
    this.served = { key, hosts };
    return hosts;
  }

  private hostsFor(port: number, address: string): Set<string> {
    const names = [...LOOPBACK_NAMES, hostForm(address)];
    const out = new Set<string>();
    for (const name of names) {
      out.add(`${name}:${port}`.toLowerCase());
      if (port === 80) out.add(name.toLowerCase());
    }
    for (const name of this.options.allowedHosts ?? []) {
      const lower = name.toLowerCase();
      out.add(/:\d+$/.test(lower) ? lower : `${lower}:${port}`);
      if (port === 80 && !/:\d+$/.test(lower)) out.add(lower);
    }
    return out;
  }

  /** The request's Origin when it is on the allow-list (then CORS headers are due), else undefined. */
  allowedOrigin(req: IncomingMessage): string | undefined {
    const origin = req.headers.origin?.toLowerCase();
    return origin !== undefined && this.origins.has(origin) ? origin : undefined;
  }

  /** Why this request is refused, or undefined to serve it. `path` is the URL path. */
  check(req: IncomingMessage, path: string): SidecarError | undefined {
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || !this.hosts().has(host))
      return refuse(
        'Host not served by this gateway (add it with --allowed-host if you reach the gateway by that name)',
        403,
        'host_not_allowed',
      );
    const origin = req.headers.origin?.toLowerCase();
    const allowed = this.allowedOrigin(req) !== undefined;
    if (origin !== undefined && !allowed && !this.hosts().has(ownHostOf(origin)))
      return refuse(
        'cross-origin request refused (allow an origin with --allow-origin)',
        403,
        'origin_not_allowed',
      );
    const site = req.headers['sec-fetch-site'];
    const navigation = req.headers['sec-fetch-mode'] === 'navigate' && isRead(req.method);
    if ((site === 'cross-site' || site === 'same-site') && !allowed && !navigation)
      return refuse(
        'cross-site request refused (allow an origin with --allow-origin)',
        403,
        'origin_not_allowed',
      );
    return this.checkContentType(req, path);
  }

  /**
   * A JSON route's body must say it is JSON: a page can send `text/plain`, form and multipart bodies
   * without a preflight (the CORS-safelisted types of the Fetch standard), never `application/json`.
   */
  private checkContentType(req: IncomingMessage, path: string): SidecarError | undefined {
    if (isRead(req.method) || req.method === 'OPTIONS' || !path.startsWith('/v1')) return undefined;
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (type === 'application/json') return undefined;
    if (type === 'multipart/form-data' && MULTIPART_ROUTE.test(path)) return undefined;
    return refuse('expected Content-Type: application/json', 415, 'unsupported_media_type');
  }

  /**
   * The local answer to an OPTIONS request (a CORS preflight or a plain OPTIONS): the provider never
   * sees one. An allowed origin gets the CORS grant (Fetch standard §3.2.3); others get none.
   */
  preflight(req: IncomingMessage): { status: number; headers: Record<string, string> } {
    const origin = this.allowedOrigin(req);
    const headers: Record<string, string> = { allow: 'GET, HEAD, POST, OPTIONS', vary: 'Origin' };
    if (origin === undefined) return { status: 204, headers };
    const requested = req.headers['access-control-request-headers'];
    return {
      status: 204,
      headers: {
        ...headers,
        ...this.corsHeaders(origin),
        'access-control-allow-methods': 'GET, HEAD, POST, OPTIONS',
        'access-control-allow-headers':
          typeof requested === 'string' && /^[\w\-, ]*$/.test(requested)
            ? requested
            : 'authorization, content-type',
        'access-control-max-age': '600',
      },
    };
  }

  /** The headers every answer to an allowed origin carries (the provider's own are never relayed). */
  corsHeaders(origin: string): Record<string, string> {
    return {
      'access-control-allow-origin': origin,
      'access-control-expose-headers': 'x-teeml-verification',
      vary: 'Origin',
    };
  }
}

const isRead = (method: string | undefined): boolean => method === 'GET' || method === 'HEAD';

/** `http://host:port` → `host:port` (the gateway's own origin has one of its Host values). */
const ownHostOf = (origin: string): string => {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' ? url.host : '';
  } catch {
    return '';
  }
};
