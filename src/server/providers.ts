import { existsSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { unavailable } from '../errors/index.js';
import type { GpuEvidence, GpuEvidenceProvider } from '../gpu/gpu-evidence-provider.js';
import {
  assertGpuEvidence,
  FixtureGpuEvidenceProvider,
  HttpGpuEvidenceProvider,
  loadSyntheticGpuFixtures,
  NoGpuEvidenceProvider,
  NVIDIA_DEVICE_IDENTITY_CA_SHA256,
  NvmlGpuEvidenceProvider,
  nrasSelfCheck,
  SimulatedGpuEvidenceProvider,
} from '../gpu/index.js';
import { DstackKeySource, EphemeralKeySource, type KeySource, TappKeySource } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import {
  MemorySignatureStore,
  RedisSignatureStore,
  type SignatureStore,
  TieredSignatureStore,
} from '../signatures/index.js';
import {
  type ConfigfsFs,
  ConfigfsTsmQuoteProvider,
  DstackQuoteProvider,
  LibTdxQuoteProvider,
  type QuoteProvider,
  SimulatedQuoteProvider,
  TappQuoteProvider,
} from '../tdx/index.js';

export interface Providers {
  quotes: QuoteProvider;
  gpus: GpuEvidenceProvider;
  keys: KeySource;
  /** The local GPU evidence check with the roots this deployment accepts. */
  checkGpuEvidence: (gpus: readonly GpuEvidence[], nonce: Uint8Array) => void;
}

/** I/O edges of the quote providers that tests (and the doctor's tests) replace. */
export interface QuoteProviderIo {
  /** configfs-tsm file operations (default node:fs). */
  configfsFs?: ConfigfsFs;
}

/**
 * `TEE_PROVIDER=auto`: the first platform present, in the order dstack socket → configfs-tsm →
 * libtdx_attest. Simulated only when TEE_AUTO_ALLOW_SIMULATED=true; otherwise start-up fails.
 */
const detectQuoteProvider = async (
  config: Config,
  logger: Logger,
  io: QuoteProviderIo,
): Promise<QuoteProvider> => {
  if (existsSync(config.DSTACK_SOCKET)) return new DstackQuoteProvider({ socketPath: config.DSTACK_SOCKET });
  if (existsSync(config.TSM_REPORT_ROOT))
    return new ConfigfsTsmQuoteProvider({
      root: config.TSM_REPORT_ROOT,
      ...(io.configfsFs === undefined ? {} : { fs: io.configfsFs }),
    });
  const libtdx = new LibTdxQuoteProvider({ libraryPath: config.LIBTDX_ATTEST_PATH });
  try {
    await libtdx.getQuote(new Uint8Array(64));
    return libtdx;
  } catch {
    // not present or not working: fall through
  }
  if (config.TEE_AUTO_ALLOW_SIMULATED) {
    logger.warn(
      'TEE_PROVIDER=auto found no TEE; TEE_AUTO_ALLOW_SIMULATED=true, so using the SIMULATED provider',
    );
    return new SimulatedQuoteProvider();
  }
  throw unavailable(
    `TEE_PROVIDER=auto found no TEE (no ${config.DSTACK_SOCKET}, no ${config.TSM_REPORT_ROOT}, no working ${config.LIBTDX_ATTEST_PATH})`,
    'tee_not_found',
  );
};

/** The quote provider `TEE_PROVIDER` names (`auto`: detected as above). Exported for `doctor`. */
export const selectQuoteProvider = (
  config: Config,
  logger: Logger,
  io: QuoteProviderIo = {},
): Promise<QuoteProvider> | QuoteProvider => {
  switch (config.TEE_PROVIDER) {
    case 'simulated':
      return new SimulatedQuoteProvider();
    case 'dstack':
      return new DstackQuoteProvider({
        socketPath: config.DSTACK_SOCKET,
        timeoutMs: config.ATTESTATION_TIMEOUT_MS,
      });
    case 'configfs-tsm':
      return new ConfigfsTsmQuoteProvider({
        root: config.TSM_REPORT_ROOT,
        ...(io.configfsFs === undefined ? {} : { fs: io.configfsFs }),
      });
    case 'libtdx':
      return new LibTdxQuoteProvider({ libraryPath: config.LIBTDX_ATTEST_PATH });
    case 'tapp':
      return new TappQuoteProvider({
        endpoint: config.TAPP_ENDPOINT,
        appId: config.TAPP_APP_ID as string,
        timeoutMs: config.ATTESTATION_TIMEOUT_MS,
      });
    case 'auto':
      return detectQuoteProvider(config, logger, io);
  }
};

/** The GPU evidence provider `GPU_EVIDENCE` names. Exported for `doctor`. */
export const selectGpuProvider = (config: Config): GpuEvidenceProvider => {
  switch (config.GPU_EVIDENCE) {
    case 'simulated':
      return new SimulatedGpuEvidenceProvider();
    case 'nvml':
      return new NvmlGpuEvidenceProvider({
        libraryPath: config.NVML_LIBRARY_PATH,
        timeoutMs: config.GPU_EVIDENCE_TIMEOUT_MS,
      });
    case 'http':
      return new HttpGpuEvidenceProvider({
        url: config.GPU_EVIDENCE_URL as string,
        timeoutMs: config.GPU_EVIDENCE_TIMEOUT_MS,
      });
    case 'none':
      return new NoGpuEvidenceProvider();
    case 'fixture':
      return new FixtureGpuEvidenceProvider({ path: config.GPU_FIXTURE_PATH as string });
  }
};

/** The key source `KEY_SOURCE` names. Exported for `doctor`. */
export const selectKeySource = (config: Config): KeySource => {
  switch (config.KEY_SOURCE) {
    case 'ephemeral':
      return new EphemeralKeySource();
    case 'dstack':
      return new DstackKeySource({ socketPath: config.DSTACK_SOCKET, path: config.DSTACK_KEY_PATH });
    case 'tapp':
      return new TappKeySource({ endpoint: config.TAPP_ENDPOINT, appId: config.TAPP_APP_ID as string });
  }
};

/**
 * The local GPU evidence check with the roots this provider's evidence may chain to. Real GPU
 * evidence is only ever accepted under the real NVIDIA root; the synthetic root is added for the
 * simulated and fixture providers alone. Exported for `doctor`.
 */
export const gpuEvidenceChecker = async (
  gpus: GpuEvidenceProvider,
): Promise<(list: readonly GpuEvidence[], nonce: Uint8Array) => void> => {
  const synthetic = gpus.kind === 'simulated' || gpus.kind === 'fixture';
  const pinnedRoots = synthetic
    ? [NVIDIA_DEVICE_IDENTITY_CA_SHA256, (await loadSyntheticGpuFixtures()).rootFingerprint]
    : undefined;
  return (list, nonce) =>
    assertGpuEvidence(list, {
      nonce,
      now: new Date(),
      ...(pinnedRoots === undefined ? {} : { pinnedRoots }),
    });
};

/**
 * Builds the providers configuration names. Real GPU evidence is only ever accepted under the real
 * NVIDIA root; the synthetic root is added for the simulated and fixture providers alone.
 */
export const selectProviders = async (
  config: Config,
  logger: Logger,
  fetchImpl?: typeof fetch,
): Promise<Providers> => {
  const quotes = await selectQuoteProvider(config, logger);
  const gpus = selectGpuProvider(config);
  const checkGpuEvidence = await gpuEvidenceChecker(gpus);
  if (config.NRAS_SELF_CHECK) {
    const result = await nrasSelfCheck(gpus, {
      baseUrl: config.NRAS_URL,
      ...(fetchImpl ? { fetch: fetchImpl } : {}),
    });
    if (!result.verification.ok) {
      throw unavailable(
        `NRAS rejected this machine's GPU evidence at start-up (NRAS_SELF_CHECK=true): ${result.verification.failures.join(', ')}`,
        'nras_self_check_failed',
      );
    }
    logger.info("NRAS accepted this machine's GPU evidence");
  }
  return { quotes, gpus, keys: selectKeySource(config), checkGpuEvidence };
};

export interface SelectedStore {
  store: SignatureStore;
  /** Other replicas write to it too: a miss is re-read before it is final (signatures/lookup.ts). */
  shared: boolean;
}

/**
 * The signature store configuration names. REDIS_URL set: write-through to this replica's memory and
 * a shared Redis (signatures/tiered.ts says what happens while Redis is down); unset: memory only.
 */
export const selectStore = async (
  config: Config,
  logger: Logger,
  metrics: Metrics,
): Promise<SelectedStore> => {
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
  if (config.REDIS_URL === undefined) return { store: memory, shared: false };
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
  // Serving before Redis answers would 404 records other replicas made: wait a little, then serve
  // from memory (and buffer writes) if Redis is not there.
  if (!(await tiered.whenAvailable(2_000))) {
    logger.warn('redis signature store not reachable at start: serving from memory, buffering writes');
  }
  metrics.observeSharedStore(tiered);
  return { store: tiered, shared: true };
};
