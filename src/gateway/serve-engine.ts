import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { SidecarError } from '../errors/index.js';
import type { Engine } from './engine.js';
import { sendError, VERIFICATION_HEADER } from './send-error.js';
import { streamVerdicts } from './stream-verdicts.js';

/** The node request as a web Request; its signal aborts when the user hangs up before the answer ended. */
const requestOf = (req: IncomingMessage, res: ServerResponse): Request => {
  const leaving = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) leaving.abort();
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  return new Request(new URL(req.url ?? '/', 'http://gateway.invalid'), {
    method,
    headers,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
    signal: leaving.signal,
  } as RequestInit);
};

/**
 * Serves one /v1 request through the engine: the node request becomes a web Request, the engine's
 * Response is copied to the user with node's backpressure (a slow user slows the engine's read from
 * the provider), and a stream's verdict goes out as the `X-TeeML-Verification` trailer (RFC 9110
 * §6.5; docs/protocol.md). A user who leaves cancels the body, which aborts the provider call.
 */
export const serveEngine = async (
  engine: Engine,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> => {
  let request: Request;
  try {
    request = requestOf(req, res);
  } catch {
    sendError(
      res,
      new SidecarError('the request is not a valid HTTP request', { status: 400, code: 'invalid_request' }),
      'unsigned',
    );
    return;
  }
  const response = await engine.fetch(request);
  const verdict = streamVerdicts.get(response);
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (verdict !== undefined) headers['trailer'] = 'X-TeeML-Verification';
  res.writeHead(response.status, headers);
  // A stream's headers now even when its events are held: the user's tool sees the call accepted.
  if (verdict !== undefined) res.flushHeaders();
  await copyBody(response, res);
  if (res.destroyed) return;
  if (verdict !== undefined) res.addTrailers({ [VERIFICATION_HEADER]: await verdict });
  res.end();
};

/** Copies the body, waiting for `drain` when node's buffer is full; cancels it if the user left. */
const copyBody = async (response: Response, res: ServerResponse): Promise<void> => {
  if (response.body === null) return;
  const reader = response.body.getReader();
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
