import { randomBytes } from 'node:crypto';
import { assertBytes, toHex } from '../bytes/index.js';
import { runWithDeadline } from '../concurrency/index.js';
import { unavailable } from '../errors/index.js';
import type { GpuEvidence, GpuEvidenceProvider } from '../gpu/gpu-evidence-provider.js';
import { buildNvidiaPayload } from '../gpu/index.js';
import type { Signers, SigningAlgo } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import { buildReportData } from '../tdx/index.js';
import type { QuoteProvider } from '../tdx/quote-provider.js';
import { Limiter } from './limiter.js';
import { type AttestationReport, buildAttestation, envelopeOf } from './report.js';

export interface AttestationServiceOptions {
  quotes: QuoteProvider;
  gpus: GpuEvidenceProvider;
  signers: Signers;
  /** MODEL_NAME: the served names the report carries as `model_name` (docs/protocol.md). */
  modelNames?: readonly string[] | undefined;
  /** Fails closed (throws) when evidence does not pass the local check for this nonce. */
  checkGpuEvidence: (gpus: readonly GpuEvidence[], nonce: Uint8Array) => void;
  cacheTtlMs: number;
  timeoutMs: number;
  maxConcurrent: number;
  maxQueue: number;
  logger: Logger;
  metrics?: Metrics;
  now?: () => number;
  random?: (n: number) => Uint8Array;
}

/**
 * A TLS certificate to bind into the report (`include_tls_fingerprint=true`, docs/protocol.md): its SPKI
 * hash goes into report_data (tdx/report-data.ts) and `tls_cert_fingerprint`; `certificate` (PEM,
 * the chain as served) goes into the envelope's `tls_certificate`, where NEAR's cloud-api puts it.
 */
export interface TlsBinding {
  spkiSha256: Uint8Array;
  certificate: string;
}

interface CacheEntry {
  report: AttestationReport;
  expiresAt: number;
}

const cacheKey = (algo: SigningAlgo, tls: TlsBinding | undefined): string =>
  tls === undefined ? algo : `${algo}:tls:${toHex(tls.spkiSha256)}`;

/**
 * Builds attestation reports.
 * - With a nonce: always a fresh quote and fresh GPU evidence for that nonce, collected in parallel;
 *   concurrent requests for the same nonce share one collection; at most `maxConcurrent` collections
 *   run and `maxQueue` wait (429 beyond); a TEE or GPU that does not answer gives 503.
 * - Without: a cached report per algorithm (and per bound TLS key, or none) for a random nonce,
 *   refreshed in the background when it is 80% through its TTL, so callers rarely wait for a TEE.
 *   A report binding a TLS key never answers a request without the flag, nor the other way round.
 */
export class AttestationService {
  private readonly limiter: Limiter;
  private readonly inFlight = new Map<string, Promise<AttestationReport>>();
  /** Keyed by `cacheKey`: the algorithm, and the bound TLS key's SPKI hash when there is one. */
  private readonly cache = new Map<string, CacheEntry>();
  private readonly refreshing = new Map<string, Promise<AttestationReport>>();
  private readonly now: () => number;
  private readonly random: (n: number) => Uint8Array;

  constructor(private readonly options: AttestationServiceOptions) {
    this.limiter = new Limiter(options.maxConcurrent, options.maxQueue);
    this.now = options.now ?? Date.now;
    this.random = options.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  async report(algo: SigningAlgo, nonce?: Uint8Array, tls?: TlsBinding): Promise<AttestationReport> {
    if (tls !== undefined) assertBytes('tls.spkiSha256', tls.spkiSha256, 32);
    if (nonce === undefined) return this.cached(algo, tls);
    assertBytes('nonce', nonce, 32);
    const key = `${cacheKey(algo, tls)}:${toHex(nonce)}`;
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const task = this.limiter
      .run(() => this.collect(algo, nonce, tls))
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, task);
    return task;
  }

  private async cached(algo: SigningAlgo, tls: TlsBinding | undefined): Promise<AttestationReport> {
    const key = cacheKey(algo, tls);
    const entry = this.cache.get(key);
    const now = this.now();
    if (entry !== undefined && now < entry.expiresAt) {
      const refreshAt = entry.expiresAt - this.options.cacheTtlMs * 0.2;
      if (now >= refreshAt) this.refresh(algo, tls).catch(() => undefined);
      this.options.metrics?.attestations.inc({ kind: 'cached', outcome: 'ok' });
      return entry.report;
    }
    return this.refresh(algo, tls);
  }

  private refresh(algo: SigningAlgo, tls: TlsBinding | undefined): Promise<AttestationReport> {
    const key = cacheKey(algo, tls);
    const running = this.refreshing.get(key);
    if (running !== undefined) return running;
    const task = this.limiter
      .run(() => this.collect(algo, this.random(32), tls))
      .then((report) => {
        // A reloaded certificate makes the entries for the old one dead: drop them.
        const prefix = `${algo}:tls:`;
        if (tls !== undefined)
          for (const k of this.cache.keys()) if (k.startsWith(prefix)) this.cache.delete(k);
        this.cache.set(key, { report, expiresAt: this.now() + this.options.cacheTtlMs });
        return report;
      })
      .catch((err: unknown) => {
        this.options.logger.warn(
          { err: (err as Error).message, algo, tls: tls !== undefined },
          'cached attestation refresh failed',
        );
        throw err;
      })
      .finally(() => this.refreshing.delete(key));
    this.refreshing.set(key, task);
    return task;
  }

  private async collect(
    algo: SigningAlgo,
    nonce: Uint8Array,
    tls: TlsBinding | undefined,
  ): Promise<AttestationReport> {
    const { quotes, gpus, signers } = this.options;
    const signer = signers.get(algo);
    const tlsSpkiSha256 = tls?.spkiSha256;
    const reportData =
      algo === 'ecdsa'
        ? buildReportData({ algo, address: signer.addressBytes, nonce, tlsSpkiSha256 })
        : buildReportData({ algo, publicKey: signer.addressBytes, nonce, tlsSpkiSha256 });
    const started = performance.now();
    try {
      const timeoutMs = this.options.timeoutMs;
      const [quote, gpu] = await runWithDeadline(
        (signal) => Promise.all([quotes.getQuote(reportData, signal), gpus.collect(nonce, signal)]),
        {
          timeoutMs,
          // The providers are told to stop through the signal.
          timeoutError: () =>
            unavailable(`the TEE or GPU did not answer within ${timeoutMs} ms`, 'attestation_timeout'),
        },
      );
      if (gpu.gpus.length > 0) this.options.checkGpuEvidence(gpu.gpus, nonce);
      const attestation = buildAttestation({
        signer,
        nonce,
        reportData,
        quote,
        platform: quotes.platform,
        quoteSimulated: quotes.simulated,
        gpu,
        gpuProvider: gpus.kind,
        nvidiaPayload: gpu.gpus.length > 0 ? buildNvidiaPayload(nonce, gpu.gpus) : '',
        modelName: this.options.modelNames?.[0],
      });
      if (tls !== undefined) attestation['tls_cert_fingerprint'] = toHex(tls.spkiSha256);
      this.options.metrics?.attestations.inc({ kind: 'fresh', outcome: 'ok' });
      return {
        ...envelopeOf(attestation, this.options.modelNames),
        ...(tls === undefined ? {} : { tls_certificate: tls.certificate }),
      };
    } catch (err) {
      this.options.metrics?.attestations.inc({ kind: 'fresh', outcome: 'error' });
      throw err;
    } finally {
      this.options.metrics?.attestationSeconds.observe((performance.now() - started) / 1000);
    }
  }
}
