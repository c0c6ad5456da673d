import type { IncomingHttpHeaders } from 'node:http';
import { nullBody } from '../bytes/index.js';
import { streamVerdicts } from './stream-verdicts.js';

/**
 * One user request as the engine reads it. The gateway's listener builds it from the node request
 * as it is (no web Request, no web stream per request: issue 23 item 3); `teeml-sidecar/client`
 * builds it from the caller's web `Request` (`inboundOf`).
 */
export interface Inbound {
  method: string;
  url: URL;
  /** Lower-case names (node's `IncomingHttpHeaders`; repeats joined by node). */
  headers: IncomingHttpHeaders;
  /** The body as it arrives (read at most `maxRequestBytes`); null for GET and HEAD. */
  body: AsyncIterable<Uint8Array> | null;
  /** Called at most once when the user hangs up before the answer ended: the provider call is aborted. */
  onLeave(abort: () => void): void;
}

/**
 * The engine's answer before it is a web `Response`: the listener writes it to the node response as
 * it is (a JSON answer with one `end`), `teeml-sidecar/client` hands the caller `responseOf(answer)`.
 * A stream's body is a web ReadableStream whose verdict settles at its end (the trailer).
 */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array | string | ReadableStream<Uint8Array> | null;
  /** A stream's `X-TeeML-Verification` verdict, known when the stream ended. */
  verdict?: Promise<string>;
}

/** The caller's web Request as the engine reads it (its signal aborting the provider call). */
export const inboundOf = (request: Request): Inbound => {
  const headers: IncomingHttpHeaders = {};
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const method = request.method;
  return {
    method,
    url: new URL(request.url),
    headers,
    body: method === 'GET' || method === 'HEAD' ? null : (request.body as AsyncIterable<Uint8Array> | null),
    onLeave: (abort) => {
      const signal = request.signal;
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
    },
  };
};

/**
 * The answer as a web Response; a stream's verdict stays reachable through `streamVerdicts`. A status
 * that carries no body (204, 205, 304) gets none, as the Fetch standard requires.
 */
export const responseOf = (answer: Answer): Response => {
  const body = nullBody(answer.status) ? null : answer.body;
  const response = new Response(body, { status: answer.status, headers: answer.headers });
  if (answer.verdict !== undefined) streamVerdicts.set(response, answer.verdict);
  return response;
};
