import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { nullBody } from '../bytes/index.js';
import { dispatchCall, type UpstreamResponse } from '../proxy/index.js';
import type { TlsPeerChannel } from '../tls/index.js';
import { trailersOf } from '../verifier/index.js';
import type { CallHandle } from './in-flight-calls.js';

/** The provider's answer headers: what the relay reads of them (a web `Headers` is one). */
export interface UpstreamHeaders {
  get(name: string): string | null;
  forEach(each: (value: string, name: string) => void): void;
}

/**
 * The provider's answer to one proxied request, as the relay reads it: status, headers, the body
 * bytes as they arrive, and the trailers once the body was read to its end. Over `node:http` it is the
 * message itself (no web `Response`, no web stream per answer: issue 23 item 3); any other transport
 * (a pinned TLS channel, a 0G link, a caller's fetch) gives a `Response`, read through the same shape.
 */
export interface Upstream {
  readonly status: number;
  readonly headers: UpstreamHeaders;
  /** Null for a status that has no body (204, 304, HEAD). */
  readonly body: AsyncIterable<Uint8Array> | null;
  /** The trailers that came after the last body byte; undefined before the end, or where none are kept. */
  trailers(): IncomingHttpHeaders | undefined;
}

/** One request to the provider: its URL, method, headers, exact body bytes and the call that aborts it. */
export interface ProviderCallInit {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
  call: CallHandle;
}

/** How the gateway sends one proxied request; rejects like fetch (a TypeError with the socket error as `cause`). */
export type ProviderCall = (url: URL, init: ProviderCallInit) => Promise<Upstream>;

/** Any fetch's `Response` as an Upstream; its trailers are those `trailersOf` knows. */
export const upstreamOfResponse = (response: Response): Upstream => ({
  status: response.status,
  headers: response.headers,
  body: response.body as AsyncIterable<Uint8Array> | null,
  trailers: () => trailersOf(response),
});

/** A ProviderCall over a fetch (the pinned TLS channel's, a 0G link's, the caller's own). */
export const callOverFetch =
  (fetchFn: typeof globalThis.fetch): ProviderCall =>
  async (url, init) =>
    upstreamOfResponse(
      await fetchFn(url, {
        method: init.method,
        headers: init.headers,
        ...(init.body === undefined ? {} : { body: init.body }),
        signal: init.call.signal,
      }),
    );

/** A node message's headers read like a web `Headers` (node already lower-cases and joins repeats). */
class MessageHeaders implements UpstreamHeaders {
  constructor(private readonly message: IncomingHttpHeaders) {}

  get(name: string): string | null {
    const value = this.message[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  forEach(each: (value: string, name: string) => void): void {
    for (const [name, value] of Object.entries(this.message)) {
      if (value !== undefined) each(Array.isArray(value) ? value.join(', ') : value, name);
    }
  }
}

/** The node message as an Upstream: its body is the message, its trailers Node's (filled at 'end'). */
const upstreamOfMessage = (res: IncomingMessage | UpstreamResponse, method: string): Upstream => {
  const status = res.statusCode ?? 0;
  const empty = nullBody(status, method);
  if (empty) res.resume();
  return {
    status,
    headers: new MessageHeaders(res.headers),
    body: empty ? null : res,
    trailers: () => (res.complete ? res.trailers : undefined),
  };
};

/**
 * A ProviderCall through an undici `pool` (keep-alive: connections pooled and reused), whose
 * answers keep their trailers (Node's fetch drops them: verifier/trailer-fetch.ts). The body flows
 * as it arrives; `init.call` aborts the request, also while it waits for a pooled connection. A
 * failure to connect rejects like Node's fetch: a TypeError whose `cause` carries the socket error.
 */
export const callOverPool =
  (pool: Dispatcher): ProviderCall =>
  (url, init) => {
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      return Promise.reject(new TypeError('"url" must be http or https'));
    const { method, call, body } = init;
    if (call.aborted) return Promise.reject(call.reason);
    const headers: Record<string, string> = { ...init.headers };
    if (body !== undefined) headers['content-length'] = String(body.byteLength);
    const pending = dispatchCall(
      pool,
      {
        origin: url.origin,
        method: method as Dispatcher.HttpMethod,
        path: `${url.pathname}${url.search}`,
        headers,
        body: body === undefined ? null : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      },
      (error) => new TypeError('fetch failed', { cause: error }),
    );
    return new Promise<Upstream>((resolve, reject) => {
      const stop = call.onAbort((reason) => {
        pending.abort(reason instanceof Error ? reason : new Error('aborted'));
        reject(reason);
      });
      pending.response.then(
        (res) => {
          res.once('close', stop);
          resolve(upstreamOfMessage(res, method));
        },
        (error: unknown) => {
          stop();
          reject(error);
        },
      );
    });
  };

/**
 * A ProviderCall over a pinned TLS channel (attested TLS, docs/tls.md): each answer comes over a
 * connection that showed the attested key, as node messages with their trailers. Its errors are the
 * channel's own (a `PeerCertificateError` when the key is not the pinned one).
 */
export const callOverChannel =
  (channel: TlsPeerChannel): ProviderCall =>
  (url, init) => {
    const { call } = init;
    if (call.aborted) return Promise.reject(call.reason);
    const { req, response } = channel.send(url, init);
    return answerOf(req, response, init);
  };

/**
 * The answer of a request under way, aborted with its call: an abort destroys the request and the
 * answer being read, and rejects at once, also while the request still waits for a pooled
 * connection (where `req.destroy()` alone says nothing until a socket is handed out).
 */
const answerOf = (
  req: ClientRequest,
  response: Promise<IncomingMessage>,
  init: ProviderCallInit,
): Promise<Upstream> =>
  new Promise<Upstream>((resolve, reject) => {
    const stop = init.call.onAbort((reason) => {
      req.destroy(reason instanceof Error ? reason : undefined);
      reject(reason);
    });
    req.once('close', stop);
    response.then((res) => resolve(upstreamOfMessage(res, init.method)), reject);
  });
