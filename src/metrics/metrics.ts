import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics, in a registry of their own (no process-global default registry), served at
 * `GET /metrics`. Labels carry routes, statuses and reasons only, never ids or content.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly proxyRequests = new Counter({
    name: 'teeml_proxy_requests_total',
    help: 'Proxied requests by route and final status',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly signatures = new Counter({
    name: 'teeml_signatures_total',
    help: 'Request/response pairs signed and stored',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly unsigned = new Counter({
    name: 'teeml_unsigned_responses_total',
    help: 'Responses sent without a signature, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly idReassigned = new Counter({
    name: 'teeml_response_ids_reassigned_total',
    help: 'Responses given a fresh id because the upstream gave none or its id was already taken',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly refused = new Counter({
    name: 'teeml_requests_refused_total',
    help: 'Requests refused by a concurrency budget (429), by budget',
    labelNames: ['budget'] as const,
    registers: [this.registry],
  });
  readonly storeEarlyEvictions = new Counter({
    name: 'teeml_signature_store_early_evictions_total',
    help: 'Signature records dropped for capacity before their TTL',
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'teeml_signature_store_errors_total',
    help: 'Failed signature store writes',
    registers: [this.registry],
  });
  readonly attestations = new Counter({
    name: 'teeml_attestation_reports_total',
    help: 'Attestation reports served by kind (cached, fresh) and outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly attestationSeconds = new Histogram({
    name: 'teeml_attestation_seconds',
    help: 'Time to collect a fresh quote and GPU evidence',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'teeml_proxy_in_flight',
    help: 'Proxied requests in flight',
    registers: [this.registry],
  });

  /**
   * Exposes a shared (Redis-backed) store's health: gauges read at scrape time, so the store keeps
   * no reference to the metrics.
   */
  observeSharedStore(stats: {
    readonly remoteAvailable: boolean;
    readonly buffered: number;
    readonly droppedWrites: number;
    readonly replayedWrites: number;
  }): void {
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    };
    gauge('teeml_signature_store_remote_available', '1 while Redis answers', () =>
      stats.remoteAvailable ? 1 : 0,
    );
    gauge('teeml_signature_store_retry_buffered', 'Signature writes waiting for Redis', () => stats.buffered);
    gauge(
      'teeml_signature_store_dropped_writes',
      'Writes dropped from a full retry buffer since start',
      () => stats.droppedWrites,
    );
    gauge(
      'teeml_signature_store_replayed_writes',
      'Buffered writes replayed to Redis since start',
      () => stats.replayedWrites,
    );
  }
}
