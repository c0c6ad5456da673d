import type { Server } from 'node:http';
import { AttestationService } from '../attestation/index.js';
import type { Config } from '../config/index.js';
import { type DemoUpstream, startDemoUpstream } from '../demo-upstream/index.js';
import { createCacheSalter, createSigners } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import { Metrics } from '../metrics/index.js';
import { Upstream } from '../proxy/index.js';
import { PendingSignatures, type SignatureStore } from '../signatures/index.js';
import { startTls, type TlsSource } from '../tls/index.js';
import { createApp, proxyFastPath } from './app.js';
import { appDeps } from './app-deps.js';
import { createHttpServer, drain, listen, serverUrl } from './http-server.js';
import { InFlight } from './in-flight.js';
import { type Providers, selectProviders, selectStore } from './providers.js';
import { VERSION } from './version.js';

export interface Sidecar {
  url: string;
  server: Server;
  signingAddress: string;
  simulated: boolean;
  /** Graceful: stops accepting, waits up to `graceMs` (default SHUTDOWN_GRACE_MS) for requests in flight. */
  close(graceMs?: number): Promise<void>;
}

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
  const keyMaterial = await providers.keys.load();
  // Before createSigners zeroes the material: the cache-salt key is derived from the signing key.
  const cacheSalter = config.CACHE_SALT === 'per-user' ? createCacheSalter(keyMaterial.secp256k1) : undefined;
  const signers = createSigners(keyMaterial);
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
    connections: config.MAX_CONCURRENT_REQUESTS,
  });
  const attestation = new AttestationService({
    quotes: providers.quotes,
    gpus: providers.gpus,
    signers,
    modelNames: config.MODEL_NAME,
    checkGpuEvidence: providers.checkGpuEvidence,
    cacheTtlMs: config.REPORT_CACHE_TTL_SECONDS * 1000,
    timeoutMs: config.ATTESTATION_TIMEOUT_MS,
    maxConcurrent: config.ATTESTATION_MAX_CONCURRENT,
    maxQueue: config.ATTESTATION_MAX_QUEUE,
    logger,
    metrics,
  });
  const inFlight = new InFlight();
  const deps = appDeps(config, {
    logger,
    metrics,
    signers,
    inFlight,
    attestation,
    store,
    pending,
    upstream,
    tls,
    sharedStore: selected.shared,
    cacheSalter,
    status: {
      simulated,
      demoUpstream: demo !== undefined,
      platform: providers.quotes.platform,
      gpu: providers.gpus.kind,
      version: VERSION,
    },
  });
  const server = createHttpServer(createApp(deps), config, tls, proxyFastPath(deps));
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
    await listen(server, config.PORT, config.HOST);
  } catch (err) {
    // The port is taken (EADDRINUSE) or not ours to bind: stop what already runs, so the process
    // can exit and a supervisor restart it.
    await release();
    throw err;
  }
  const url = serverUrl(server, tls?.terminates === true);
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
      await drain(server, inFlight, graceMs, logger);
      await release();
    },
  };
};
