import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';

/**
 * Fields whose repeats Node's own HTTP client discards (its `message.headers`): the first one counts.
 * The model server's answer reads the same here as through `node:http`, whatever it repeats.
 */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/**
 * undici's parsed response fields (lower-case names, a repeated field as an array in arrival order)
 * folded as Node's `message.headers` folds them: the first of a FIRST_ONLY field, `set-cookie` always
 * an array, repeated `cookie` joined with "; ", any other repeat joined with ", ".
 */
const nodeHeaders = (headers: Record<string, string | string[] | undefined>): IncomingHttpHeaders => {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'set-cookie') out[name] = Array.isArray(value) ? value : [value];
    else if (!Array.isArray(value)) out[name] = value;
    else if (FIRST_ONLY.has(name)) out[name] = value[0];
    else out[name] = value.join(name === 'cookie' ? '; ' : ', ');
  }
  return out;
};

/**
 * An HTTP answer read through undici (the model server's to the sidecar, the provider's to the
 * gateway): its status and fields, and its body as a Node stream (with
 * backpressure: a full buffer pauses the connection). `complete` turns true once the body ended as
 * the answer declared it; destroying the stream before then ends the call and closes its connection.
 */
export class UpstreamResponse extends Readable {
  complete = false;
  /** The trailers after the last body byte, once it came (Node's `message.trailers`). */
  trailers: IncomingHttpHeaders | undefined;

  constructor(
    readonly statusCode: number,
    readonly headers: IncomingHttpHeaders,
    private readonly controller: Dispatcher.DispatchController,
  ) {
    super();
    // A body that fails while nobody reads it (a 204 or 304 whose Content-Length undici holds
    // against it, an answer left unread) must not become an uncaught exception that ends the
    // process: node:http's message drops such an error. Here it is kept (`errored`, and every
    // reader's own 'error' listener gets it) and this listener makes it never unhandled.
    this.on('error', ignore);
  }

  override _read(): void {
    this.controller.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.complete) this.controller.abort(error ?? new Error('upstream response discarded'));
    callback(error);
  }
}

const ignore = (): void => undefined;

/**
 * A keep-alive pool to `origin` for dispatchCall: one request per connection at a time, and no
 * timeouts of undici's own (the caller's decide: UPSTREAM_TIMEOUT_MS, the gateway's deadlines).
 */
export const callPool = (origin: string, options: Pool.Options = {}): Pool =>
  new Pool(origin, { pipelining: 1, headersTimeout: 0, bodyTimeout: 0, ...options });

export interface UpstreamCall {
  response: Promise<UpstreamResponse>;
  /** Aborts the request (client gone, timeout); the response stream is destroyed too. */
  abort(reason: Error): void;
}

/**
 * One request through an undici pool, its answer as an UpstreamResponse. `failure` says what a
 * failure before the answer's head rejects with (an abort rejects with its own reason); one during
 * the body errs the body's stream with undici's error. An abort settles at once, also while the
 * request still waits for a pooled connection.
 */
export const dispatchCall = (
  pool: Dispatcher,
  request: Dispatcher.DispatchOptions,
  failure: (err: Error & { code?: string }) => Error,
): UpstreamCall => {
  let abortedWith: Error | undefined;
  let controller: Dispatcher.DispatchController | undefined;
  let answer: UpstreamResponse | undefined;
  let settle!: { resolve: (res: UpstreamResponse) => void; reject: (err: Error) => void };
  const response = new Promise<UpstreamResponse>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // The rejection is observed by whoever awaits `response`; keep an unawaited abort from crashing.
  response.catch(() => undefined);
  const fail = (err: Error): void => {
    if (answer === undefined) settle.reject(abortedWith ?? failure(err));
    else answer.destroy(abortedWith ?? err);
  };
  try {
    pool.dispatch(request, {
      onRequestStart: (c) => {
        controller = c;
        if (abortedWith !== undefined) c.abort(abortedWith);
      },
      onResponseStart: (c, statusCode, fields) => {
        // 1xx informational answers come before the real one; Node's client skips them too (an
        // unexpected 100 Continue undici itself refuses: the call fails, docs/protocol.md Limits).
        if (statusCode < 200) return;
        answer = new UpstreamResponse(statusCode, nodeHeaders(fields), c);
        settle.resolve(answer);
      },
      onResponseData: (c, chunk) => {
        if (answer !== undefined && !answer.push(chunk)) c.pause();
      },
      onResponseEnd: (_c, trailers) => {
        if (answer === undefined) return;
        answer.trailers = nodeHeaders(trailers);
        answer.complete = true;
        answer.push(null);
      },
      onResponseError: (_c, err) => fail(err),
    });
  } catch (err) {
    fail(err as Error);
  }
  return {
    response,
    abort: (reason) => {
      abortedWith ??= reason;
      controller?.abort(reason);
      // Settles at once, whether or not undici reports the abort (a no-op once settled).
      if (answer === undefined) settle.reject(abortedWith);
      else if (!answer.complete) answer.destroy(abortedWith);
    },
  };
};
