import { type Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { nullBody } from '../bytes/index.js';
import { TlsPeerChannel } from '../tls/index.js';
import { MAX_WIRE_BYTES } from './wire.js';

/**
 * Node's `fetch` (undici) drops HTTP trailers: a `Response` has no `trailers` (the Fetch standard
 * removed the attribute; whatwg/fetch#981 is still open), and on Node 20 a trailer a server sends
 * is read and discarded. `node:http` keeps them on the message (`IncomingMessage.trailers`, filled at
 * 'end'), and so does undici's own `request()` API. This is a `fetch` over `node:http(s)` that keeps
 * them: the answer is read whole (the verifier keeps exact bytes anyway), and `trailersOf(response)`
 * gives what arrived after its last body byte.
 */
/** Where each response's trailers are: the message they are read from once it is complete. */
const trailers = new WeakMap<Response, { complete: boolean; trailers: IncomingHttpHeaders }>();

/**
 * The trailers that came with a response of `fetchKeepingTrailers`, `streamingFetchKeepingTrailers`
 * or a `TlsPeerChannel`'s `fetch`; undefined for any other, and for a streamed answer not read to
 * its end (trailers come after the last body byte).
 */
export const trailersOf = (response: Response): IncomingHttpHeaders | undefined => {
  const kept = trailers.get(response) ?? TlsPeerChannel.messageOf(response);
  return kept?.complete === true ? kept.trailers : undefined;
};

const headersOf = (init: RequestInit | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  new Headers(init?.headers).forEach((value, key) => {
    out[key] = value;
  });
  return out;
};

const bodyOf = async (init: RequestInit | undefined): Promise<Buffer | undefined> => {
  const body = init?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return Buffer.from(await new Response(body).arrayBuffer());
};

/** One request's parts for `node:http(s)`: the sender for its scheme, its headers and whole body. */
const prepare = async (input: string | URL | Request, init: RequestInit | undefined) => {
  const target = new URL(input instanceof Request ? input.url : String(input));
  const send =
    target.protocol === 'https:' ? httpsRequest : target.protocol === 'http:' ? httpRequest : undefined;
  if (send === undefined) throw new TypeError('"url" must be http or https');
  const headers = headersOf(init);
  const body = await bodyOf(init);
  if (body !== undefined) headers['content-length'] = String(body.length);
  const signal = init?.signal ?? undefined;
  signal?.throwIfAborted();
  return { target, send, headers, body, signal, method: init?.method ?? 'GET' };
};

/** A message's headers as a web `Headers` (repeated ones appended in order). */
const webHeadersOf = (message: IncomingHttpHeaders): Headers => {
  const out = new Headers();
  for (const [key, value] of Object.entries(message)) {
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) out.append(key, v);
  }
  return out;
};

export const fetchKeepingTrailers = async (
  input: string | URL | Request,
  init?: RequestInit,
): Promise<Response> => {
  const { target, send, headers, body, signal, method } = await prepare(input, init);
  return new Promise<Response>((resolve, reject) => {
    const req = send(target, { method, headers, ...(signal === undefined ? {} : { signal }) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_WIRE_BYTES) {
          res.destroy(new Error(`answer from ${target.pathname} exceeds ${MAX_WIRE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const response = new Response(nullBody(status, method) ? null : Buffer.concat(chunks, size), {
          status,
          headers: webHeadersOf(res.headers),
        });
        trailers.set(response, res);
        resolve(response);
      });
    });
    req.on('error', reject);
    req.end(body);
  });
};

/**
 * The same over a pinned TLS channel: its `request` (one whole answer, on a connection whose
 * certificate passed the pin) keeps the trailers its `fetch` cannot.
 */
export const fetchOverChannelKeepingTrailers =
  (channel: TlsPeerChannel): typeof globalThis.fetch =>
  async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const body = await bodyOf(init);
    const answer = await channel.request(url, {
      method: init?.method ?? 'GET',
      headers: headersOf(init),
      ...(body === undefined ? {} : { body: new Uint8Array(body) }),
    });
    const response = new Response(nullBody(answer.status, init?.method) ? null : answer.body, {
      status: answer.status,
      headers: answer.headers,
    });
    trailers.set(response, { complete: true, trailers: answer.trailers });
    return response;
  };

/**
 * A streaming `fetch` over `node:http(s)` through `agent` (keep-alive: connections are pooled and
 * reused), whose answers keep their trailers (`trailersOf`, once the body was read to its end). The
 * body flows as it arrives, so a proxied stream is not held; `init.signal` aborts the request. A
 * failure to connect rejects like Node's fetch: a TypeError whose `cause` carries the socket error.
 */
export const streamingFetchKeepingTrailers =
  (agent: Agent): typeof globalThis.fetch =>
  async (input, init) => {
    const { target, send, headers, body, signal, method } = await prepare(input, init);
    return new Promise<Response>((resolve, reject) => {
      const req = send(
        target,
        { method, headers, agent, ...(signal === undefined ? {} : { signal }) },
        (res) => {
          const status = res.statusCode ?? 0;
          const empty = nullBody(status, method);
          const response = new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
            status,
            headers: webHeadersOf(res.headers),
          });
          if (empty) res.resume();
          trailers.set(response, res);
          resolve(response);
        },
      );
      req.on('error', (error) =>
        reject(signal?.aborted === true ? error : new TypeError('fetch failed', { cause: error })),
      );
      req.end(body);
    });
  };
