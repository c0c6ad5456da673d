import { type Server, STATUS_CODES } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createAdaptorServer } from '@hono/node-server';
import { AttestationService } from '../attestation/index.js';
import type { Config } from '../config/index.js';
import { type DemoUpstream, startDemoUpstream } from '../demo-upstream/index.js';
import { createSigners } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import { Metrics } from '../metrics/index.js';
import { Upstream } from '../proxy/index.js';
import {
  MemorySignatureStore,
  PendingSignatures,
  RedisSignatureStore,
  type SignatureStore,
  TieredSignatureStore,
} from '../signatures/index.js';
import { startTls, type TlsSource } from '../tls/index.js';
import { createApp } from './app.js';
import { ClientLimit } from './client-limits.js';
import { InFlight } from './in-flight.js';
import { type Providers, selectProviders } from './providers.js';
import { VERSION } from './version.js';

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
  // REDIS_URL set: write-through to this replica's memory and a shared Redis (signatures/tiered.ts
  // says what happens while Redis is down); unset: memory only.
  const store: SignatureStore =
    overrides.store ??
    (await (async () => {
      const ttlMs = config.SIGNATURE_TTL_SECONDS * 1000;
      const memory = new MemorySignatureStore({
        ttlMs,
        capacity: config.SIGNATURE_CAPACITY,
        onEarlyEviction: ({ ageMs, evictedTotal }) => {
          metrics.storeEarlyEvictions.inc();
          // One line per 1000 evictions: enough to notice, not enough to flood.
          if (evictedTotal === 1 || evictedTotal % 1000 === 0) {
            logger.warn({ ageMs, evictedTotal }, 'signature store full: evicting records before their TTL');
          }
        },
      });
      if (config.REDIS_URL === undefined) return memory;
      const tiered = new TieredSignatureStore({
        local: memory,
        remote: new RedisSignatureStore({
          url: config.REDIS_URL,
          keyPrefix: config.REDIS_KEY_PREFIX,
          ttlMs,
          commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
          // node-redis messages name host:port, never the URL's password.
          onError: (err) => logger.warn({ err: err.message }, 'redis signature store: connection error'),
        }),
        ttlMs,
        retryBufferSize: config.REDIS_RETRY_BUFFER,
        logger,
      });
      // Serving before Redis answers would 404 records other replicas made: wait a little, then
      // serve from memory (and buffer writes) if Redis is not there.
      if (!(await tiered.whenAvailable(2_000))) {
        logger.warn('redis signature store not reachable at start: serving from memory, buffering writes');
      }
      metrics.observeSharedStore(tiered);
      return tiered;
    })());
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
  const app = createApp({
    sharedStore: config.REDIS_URL !== undefined && overrides.store === undefined,
    inFlight,
    limits: {
      proxy: new ClientLimit({
        name: 'proxy',
        perMinute: config.RATE_LIMIT_PER_MINUTE,
        trustProxy: config.TRUST_PROXY_HEADERS,
      }),
      attestation: new ClientLimit({
        name: 'attestation',
        perMinute: config.ATTESTATION_RATE_LIMIT_PER_MINUTE,
        trustProxy: config.TRUST_PROXY_HEADERS,
      }),
      maxConcurrent: config.MAX_CONCURRENT_REQUESTS,
    },
    signers,
    store,
    pending,
    attestation,
    logger,
    metrics,
    authToken: config.AUTH_TOKEN,
    tls: tls?.binder,
    proxy: {
      upstream,
      signers,
      store,
      pending,
      logger,
      metrics,
      maxBodyBytes: config.MAX_BODY_BYTES,
      maxUpstreamBodyBytes: config.MAX_UPSTREAM_BODY_BYTES,
      upstreamTimeoutMs: config.UPSTREAM_TIMEOUT_MS,
      adminToken: config.ADMIN_TOKEN,
    },
    status: {
      simulated,
      demoUpstream: demo !== undefined,
      platform: providers.quotes.platform,
      gpu: providers.gpus.kind,
      version: VERSION,
    },
  });
  const server = (
    tls?.terminates === true
      ? createAdaptorServer({
          fetch: app.fetch,
          createServer: createHttpsServer,
          serverOptions: { ...tls.serverOptions(), maxHeaderSize: config.MAX_HEADER_BYTES },
        })
      : createAdaptorServer({ fetch: app.fetch, serverOptions: { maxHeaderSize: config.MAX_HEADER_BYTES } })
  ) as Server;
  tls?.follow(tls.terminates ? (server as unknown as HttpsServer) : undefined);
  // Slowloris: a client must send its headers, and its whole request, in bounded time (Node answers
  // 408 itself). Response time is not bounded here: streams may run long, the upstream idle timeout
  // bounds them.
  server.headersTimeout = config.HEADERS_TIMEOUT_MS;
  server.requestTimeout = config.REQUEST_TIMEOUT_MS;
  server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.PORT, config.HOST, () => resolve());
  });
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
      // Stop accepting; let in-flight requests (streams included) finish and be signed; then close.
      inFlight.draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drained = await inFlight.idle(graceMs);
      if (!drained)
        logger.warn({ inFlight: inFlight.size }, 'shutdown grace period over; closing open connections');
      server.closeAllConnections();
      await closed;
      tls?.close();
      upstream.close();
      await demo?.close();
      await store.close?.();
      await providers.quotes.close?.();
      await providers.gpus.close?.();
    },
  };
};
