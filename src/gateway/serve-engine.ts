import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SidecarError } from '../errors/index.js';
import type { Engine } from './engine.js';
import type { Inbound } from './engine-io.js';
import { sendError, VERIFICATION_HEADER } from './send-error.js';

/**
 * The node request as the engine reads it (engine-io.ts): its URL, its headers and its body stream as
 * they are, no web Request per request; the provider call is aborted when the user hangs up before
 * the answer ended.
 */
const inboundOfNode = (req: IncomingMessage, res: ServerResponse): Inbound => {
  const method = req.method ?? 'GET';
  return {
    method,
    url: new URL(req.url ?? '/', 'http://gateway.invalid'),
    headers: req.headers,
    body: method === 'GET' || method === 'HEAD' ? null : req,
    onLeave: (abort) => {
      res.once('close', () => {
        if (!res.writableFinished) abort();
      });
    },
  };
};

/**
 * Serves one /v1 request through the engine: a JSON answer goes out with one `end` (its length
 * known), a stream is copied to the user with node's backpressure (a slow user slows the engine's
 * read from the provider), and its verdict goes out as the `X-TeeML-Verification` trailer (RFC 9110
 * §6.5; docs/protocol.md). A user who leaves cancels the body, which aborts the provider call.
 */
export const serveEngine = async (
  engine: Engine,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> => {
  let request: Inbound;
  try {
    request = inboundOfNode(req, res);
  } catch {
    sendError(
      res,
      new SidecarError('the request is not a valid HTTP request', { status: 400, code: 'invalid_request' }),
      'unsigned',
    );
    return;
  }
  const answer = await engine.serve(request);
  const { body, verdict } = answer;
  if (body === null || typeof body === 'string' || body instanceof Uint8Array) {
    if (body !== null)
      answer.headers['content-length'] = String(
        typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength,
      );
    res.writeHead(answer.status, answer.headers);
    res.end(body ?? undefined);
    return;
  }
  if (verdict !== undefined) answer.headers['trailer'] = 'X-TeeML-Verification';
  res.writeHead(answer.status, answer.headers);
  // A stream's headers now even when its events are held: the user's tool sees the call accepted.
  if (verdict !== undefined) res.flushHeaders();
  await copyBody(body, res);
  if (res.destroyed) return;
  if (verdict !== undefined) res.addTrailers({ [VERIFICATION_HEADER]: await verdict });
  res.end();
};

/** Copies the body, waiting for `drain` when node's buffer is full; cancels it if the user left. */
const copyBody = async (body: ReadableStream<Uint8Array>, res: ServerResponse): Promise<void> => {
  const reader = body.getReader();
  const leave = (): void => {
    if (!res.writableFinished) reader.cancel().catch(() => undefined);
  };
  res.once('close', leave);
  try {
    for (;;) {
      if (res.destroyed) return;
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      if (!res.write(value) && !res.destroyed) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
  } finally {
    res.off('close', leave);
    reader.releaseLock();
  }
};
