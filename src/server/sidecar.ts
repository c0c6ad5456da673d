import { createServer, type Server, STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { getRequestListener, RequestError } from '@hono/node-server';
import { AttestationService } from '../attestation/index.js';
import { Budget } from '../concurrency/index.js';
import type { Config } from '../config/index.js';
import { type DemoUpstream, startDemoUpstream } from '../demo-upstream/index.js';
import { createSigners } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import { Metrics } from '../metrics/index.js';
import { Upstream } from '../proxy/index.js';
import { PendingSignatures, SignatureLookup, type SignatureStore } from '../signatures/index.js';
import { startTls, type TlsSource } from '../tls/index.js';
import { createApp } from './app.js';
import { ClientLimit, clientKey } from './client-limits.js';
import { InFlight } from './in-flight.js';
import { type Providers, selectProviders, selectStore } from './providers.js';
import { VERSION } from './version.js';

/** After a drain that waited for requests, how long signature lookups are still served. */
const DRAIN_LOOKUP_LINGER_MS = 1_000;

export interface Sidecar {
  url: string;
  server: Server;
  signingAddress: string;
  simulated: boolean;
  /** Graceful: stops accepting, waits up to `graceMs` (default SHUTDOWN_GRACE_MS) for requests in flight. */
  close(graceMs?: number): Promise<void>;
}

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

export interface SidecarOverrides {
  /** Replace what configuration would choose (tests inject doubles this way). */
  providers?: Partial<Providers>;
  store?: SignatureStore;
  /** `fetch` used by the NRAS self-check. */
  fetch?: typeof fetch;
  /** Replaces the TLS source configuration would choose. */
  tls?: TlsSource;
}

/**
 * The composition root: builds every part from the frozen config, starts the HTTP server and, with
 * no UPSTREAM_URL, the demo upstream. Refuses to start when a configured TEE, GPU or key source
 * fails; never falls back to simulation unless configuration says so.
 */
export const startSidecar = async (
  config: Config,
  logger: Logger,
  overrides: SidecarOverrides = {},
): Promise<Sidecar> => {
  const providers = { ...(await selectProviders(config, logger, overrides.fetch)), ...overrides.providers };
  const signers = createSigners(await providers.keys.load());
  // Before anything listens: a bad certificate or key is a start-up error naming the variable.
  const tls = await startTls(config, logger, overrides.tls);
  const metrics = new Metrics();
  let demo: DemoUpstream | undefined;
  if (config.demoUpstream) {
    demo = await startDemoUpstream();
    logger.warn(
      { upstream: demo.url },
      'DEMO UPSTREAM: no UPSTREAM_URL is set, completions come from the built-in demo model server, not a real model',
    );
  }
  const simulated = providers.quotes.simulated || providers.gpus.kind === 'simulated';
  if (simulated) {
    logger.warn(
      { tee: providers.quotes.platform, gpu: providers.gpus.kind },
      'SIMULATED ATTESTATION: reports are not backed by a TEE; verifiers reject them. Never use this in production',
    );
  }
  const selected =
    overrides.store === undefined
      ? await selectStore(config, logger, metrics)
      : { store: overrides.store, shared: false };
  const store = selected.store;
  const pending = new PendingSignatures();
  const upstream = new Upstream({
    baseUrl: demo?.url ?? (config.UPSTREAM_URL as string),
    apiKey: config.UPSTREAM_API_KEY,
  });
  const attestation = new AttestationService({
    quotes: providers.quotes,
    gpus: providers.gpus,
    signers,
    checkGpuEvidence: providers.checkGpuEvidence,
    cacheTtlMs: config.REPORT_CACHE_TTL_SECONDS * 1000,
    timeoutMs: config.ATTESTATION_TIMEOUT_MS,
    maxConcurrent: config.ATTESTATION_MAX_CONCURRENT,
    maxQueue: config.ATTESTATION_MAX_QUEUE,
    logger,
    metrics,
  });
  const inFlight = new InFlight();
  const clientOf = (incoming: Parameters<typeof clientKey>[0]): string =>
    clientKey(incoming, config.TRUST_PROXY_HEADERS);
  const app = createApp({
    inFlight,
    logger,
    health: {
      signers,
      metrics,
      status: {
        simulated,
        demoUpstream: demo !== undefined,
        platform: providers.quotes.platform,
        gpu: providers.gpus.kind,
        version: VERSION,
      },
    },
    attestation: {
      attestation,
      signers,
      tls: tls?.binder,
      limit: new ClientLimit({
        name: 'attestation',
        perMinute: config.ATTESTATION_RATE_LIMIT_PER_MINUTE,
        trustProxy: config.TRUST_PROXY_HEADERS,
      }),
    },
    signatures: {
      signatures: new SignatureLookup({
        store,
        pending,
        pendingWaitMs: 5_000,
        // About 1 s in all before a 404 on a shared store (signatures/lookup.ts).
        rereadDelaysMs: selected.shared ? [50, 200, 750] : [],
      }),
      lookups: new Budget({
        global: config.MAX_PENDING_LOOKUPS,
        perKey: config.MAX_PENDING_LOOKUPS_PER_CLIENT,
      }),
      clientOf,
    },
    proxy: {
      authToken: config.AUTH_TOKEN,
      limit: new ClientLimit({
        name: 'proxy',
        perMinute: config.RATE_LIMIT_PER_MINUTE,
        trustProxy: config.TRUST_PROXY_HEADERS,
      }),
      proxy: {
        upstream,
        signers,
        store,
        pending,
        logger,
        metrics,
        maxBodyBytes: config.MAX_BODY_BYTES,
        maxUpstreamBodyBytes: config.MAX_UPSTREAM_BODY_BYTES,
        maxSseLineBytes: config.MAX_SSE_LINE_BYTES,
        upstreamTimeoutMs: config.UPSTREAM_TIMEOUT_MS,
        adminToken: config.ADMIN_TOKEN,
        // Signed on first lookup only where this process alone serves lookups (signatures/lazy-record.ts).
        lazySigning: !selected.shared,
        clientOf,
        budgets: {
          uploads: new Budget({
            global: config.MAX_CONCURRENT_UPLOADS,
            perKey: config.MAX_UPLOADS_PER_CLIENT,
          }),
          upstream: new Budget({ global: config.MAX_CONCURRENT_REQUESTS }),
        },
      },
    },
  });
  // Requests Hono's adapter cannot turn into a URL (`POST *`, a backslash in the path, a bad Host)
  // get the OpenAI error shape too, not an empty 400.
  const listener = getRequestListener(app.fetch, {
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
  /** Everything started so far, stopped in reverse order (on close, and when start-up fails). */
  const release = async (): Promise<void> => {
    tls?.close();
    upstream.close();
    await demo?.close();
    await store.close?.();
    await providers.quotes.close?.();
    await providers.gpus.close?.();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.PORT, config.HOST, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // The port is taken (EADDRINUSE) or not ours to bind: stop what already runs, so the process
    // can exit and a supervisor restart it.
    await release();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const scheme = tls?.terminates === true ? 'https' : 'http';
  const url = `${scheme}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  logger.info(
    {
      url,
      signingAddress: signers.ecdsa.address,
      tee: providers.quotes.platform,
      gpu: providers.gpus.kind,
      version: VERSION,
    },
    'teeml-sidecar listening',
  );
  return {
    url,
    server,
    signingAddress: signers.ecdsa.address,
    simulated,
    close: async (graceMs = config.SHUTDOWN_GRACE_MS) => {
      // Drain: new work gets 503 (and `connection: close`), requests in flight (streams included)
      // finish and are signed, and signature lookups keep being answered, on new connections too,
      // so a client whose stream ended in the grace period can still fetch its signature. Once
      // nothing is in flight the listener lingers a moment for those lookups (never past the grace
      // period), then everything closes.
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
      await release();
    },
  };
};
