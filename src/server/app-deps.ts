import type { AttestationService } from '../attestation/index.js';
import { Budget } from '../concurrency/index.js';
import type { Config } from '../config/index.js';
import type { CacheSalter, Signers } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import type { ModelPolicy, Upstream } from '../proxy/index.js';
import { type PendingSignatures, SignatureLookup, type SignatureStore } from '../signatures/index.js';
import type { TlsRuntime } from '../tls/index.js';
import type { AppDeps } from './app.js';
import { ClientLimit, clientKey } from './client-limits.js';
import type { InFlight } from './in-flight.js';
import type { HealthDeps } from './routes/health.js';

/** MODEL_NAME and SIGNED_TEXT_FORMAT as the proxy uses them; undefined without MODEL_NAME. */
const modelPolicyOf = (config: Config): ModelPolicy | undefined =>
  config.MODEL_NAME === undefined
    ? undefined
    : { served: config.MODEL_NAME, signModel: config.SIGNED_TEXT_FORMAT === 'model' };

/** The running parts `startSidecar` made, which the routes are built from. */
export interface SidecarParts {
  logger: Logger;
  metrics: Metrics;
  signers: Signers;
  inFlight: InFlight;
  attestation: AttestationService;
  store: SignatureStore;
  pending: PendingSignatures;
  upstream: Upstream;
  tls: TlsRuntime | undefined;
  /** Other replicas write to the store too (Redis). */
  sharedStore: boolean;
  /** CACHE_SALT=per-user: the caller's identity to its `cache_salt`; undefined when off. */
  cacheSalter?: CacheSalter | undefined;
  status: HealthDeps['status'];
}

/**
 * Every route's dependencies, from the configuration and the running parts: the limits, budgets and
 * timeouts the configuration names, in one place (docs/architecture.md, server).
 */
export const appDeps = (config: Config, parts: SidecarParts): AppDeps => {
  const { logger, metrics, signers, inFlight, attestation, store, pending, upstream, tls } = parts;
  const clientOf = (incoming: Parameters<typeof clientKey>[0]): string =>
    clientKey(incoming, config.TRUST_PROXY_HEADERS);
  return {
    inFlight,
    logger,
    health: {
      signers,
      metrics,
      status: parts.status,
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
        rereadDelaysMs: parts.sharedStore ? [50, 200, 750] : [],
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
        clientStallMs: config.CLIENT_STALL_TIMEOUT_MS,
        adminToken: config.ADMIN_TOKEN,
        models: modelPolicyOf(config),
        cacheSalter: parts.cacheSalter,
        // Signed on first lookup only where this process alone serves lookups (signatures/lazy-record.ts).
        lazySigning: !parts.sharedStore,
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
  };
};
