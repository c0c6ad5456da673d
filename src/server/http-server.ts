import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { getRequestListener, RequestError } from '@hono/node-server';
import type { Hono } from 'hono';
import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { TlsRuntime } from '../tls/index.js';
import type { InFlight } from './in-flight.js';
import type { ServerEnv } from './routes/env.js';

/** After a drain that waited for requests, how long signature lookups are still served. */
const DRAIN_LOOKUP_LINGER_MS = 1_000;

/**
 * Requests Node's HTTP parser refuses before any route sees them (malformed request lines or
 * headers, oversized headers, slow clients) still get the OpenAI error shape, then the connection
 * closes. Nothing from the request is echoed.
 */
const answerClientError = (err: NodeJS.ErrnoException, socket: Duplex): void => {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large', 'request headers exceed the size limit']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'request not received in time']
        : [400, 'malformed_request', 'malformed HTTP request'];
  const type = status === 408 ? 'timeout_error' : 'invalid_request_error';
  const body = JSON.stringify({ error: { message, type, param: null, code } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
};

/**
 * The Node server for the app: HTTPS when the sidecar terminates TLS itself, else HTTP; header and
 * request deadlines (slowloris); parser-level refusals in the OpenAI shape. `fast` may serve a
 * request itself (it returns true) before the app sees it (app.ts, proxyFastPath).
 */
export const createHttpServer = (
  app: Hono<ServerEnv>,
  config: Config,
  tls: TlsRuntime | undefined,
  fast?: (incoming: IncomingMessage, outgoing: ServerResponse) => boolean,
): Server => {
  // Requests Hono's adapter cannot turn into a URL (`POST *`, a backslash in the path, a bad Host)
  // get the OpenAI error shape too, not an empty 400.
  const appListener = getRequestListener(app.fetch, {
    errorHandler: (err) => {
      const [status, type, code, message] =
        err instanceof RequestError
          ? [400, 'invalid_request_error', 'malformed_request', 'malformed request target']
          : [500, 'server_error', 'internal_error', 'internal error'];
      return new Response(JSON.stringify({ error: { message, type, param: null, code } }), {
        status,
        headers: { 'content-type': 'application/json', connection: 'close' },
      });
    },
  });
  const listener =
    fast === undefined
      ? appListener
      : (incoming: IncomingMessage, outgoing: ServerResponse): void => {
          if (!fast(incoming, outgoing)) void appListener(incoming, outgoing);
        };
  const server = (
    tls?.terminates === true
      ? createHttpsServer({ ...tls.serverOptions(), maxHeaderSize: config.MAX_HEADER_BYTES }, listener)
      : createServer({ maxHeaderSize: config.MAX_HEADER_BYTES }, listener)
  ) as Server;
  tls?.follow(tls.terminates ? (server as unknown as HttpsServer) : undefined);
  // Slowloris: a client must send its headers, and its whole request, in bounded time (Node answers
  // 408 itself). Response time is not bounded here: streams may run long, the upstream idle timeout
  // bounds them.
  server.headersTimeout = config.HEADERS_TIMEOUT_MS;
  server.requestTimeout = config.REQUEST_TIMEOUT_MS;
  server.on('clientError', answerClientError);
  return server;
};

/** Listens; rejects (EADDRINUSE, EACCES) instead of leaving an error event unhandled. */
export const listen = (server: Server, port: number, host: string): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

/** The URL clients reach the server at (a wildcard address is shown as loopback). */
export const serverUrl = (server: Server, https: boolean): string => {
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${https ? 'https' : 'http'}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
};

/**
 * The SIGTERM drain: new work gets 503 (and `connection: close`), requests in flight (streams
 * included) finish and are signed, and signature lookups keep being answered, on new connections
 * too, so a client whose stream ended in the grace period can still fetch its signature. Once nothing
 * is in flight the listener lingers a moment for those lookups (never past the grace period), then
 * every connection closes.
 */
export const drain = async (
  server: Server,
  inFlight: InFlight,
  graceMs: number,
  logger: Logger,
): Promise<void> => {
  const deadline = performance.now() + graceMs;
  const busy = inFlight.size > 0;
  inFlight.draining = true;
  server.closeIdleConnections();
  const drained = await inFlight.idle(graceMs);
  if (!drained) {
    logger.warn({ inFlight: inFlight.size }, 'shutdown grace period over; closing open connections');
  } else if (busy) {
    const linger = Math.min(DRAIN_LOOKUP_LINGER_MS, deadline - performance.now());
    if (linger > 0) await new Promise((resolve) => setTimeout(resolve, linger));
    await inFlight.idle(Math.max(0, deadline - performance.now()));
  }
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
};
