/**
 * One load run with autocannon (a real load generator: keep-alive connections, HTTP parser, its own
 * pacing), plus what autocannon does not give finely enough: per-response latency in µs (its
 * histogram is in whole ms) and the CPU the server under test used meanwhile (from /proc).
 */
import autocannon, { type RequestSpec } from 'autocannon';
import { cpuSeconds } from './proc.js';

export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds; or `amount` requests. */
  duration?: number;
  amount?: number;
  /** Requests per second over all connections (fixed-rate latency runs). */
  overallRate?: number;
  method?: 'GET' | 'POST';
  body?: string;
  /** Extra request headers (E2EE rows send the protocol's headers). */
  headers?: Record<string, string>;
  /** Per-request path (distinct ids or nonces). */
  path?: () => string;
  /** Process tree whose CPU time is charged to the run. */
  pid?: number;
  timeoutS?: number;
}

export interface LoadResult {
  requests: number;
  ok: number;
  errors: number;
  non2xx: number;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  /** CPU µs the server process tree used per completed request; NaN without a pid. */
  cpuUsPerReq: number;
  cpuSeconds: number;
}

const percentile = (sorted: Float64Array, p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0);

export const load = (o: LoadOptions): Promise<LoadResult> =>
  new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const cpu0 = o.pid === undefined ? 0 : cpuSeconds(o.pid);
    const started = performance.now();
    const request: RequestSpec = {
      method: o.method ?? 'POST',
      headers: { 'content-type': 'application/json', ...(o.headers ?? {}) },
      ...(o.body === undefined ? {} : { body: o.body }),
    };
    const next = o.path;
    if (next !== undefined) request.setupRequest = (req) => ({ ...req, path: next() });
    const instance = autocannon(
      {
        url: o.url,
        connections: o.connections,
        timeout: o.timeoutS ?? 30,
        ...(o.amount === undefined ? { duration: o.duration ?? 5 } : { amount: o.amount }),
        ...(o.overallRate === undefined ? {} : { overallRate: o.overallRate }),
        requests: [request],
      },
      (err, result) => {
        if (err !== null) {
          reject(err);
          return;
        }
        const seconds = (performance.now() - started) / 1000;
        const used = o.pid === undefined ? Number.NaN : cpuSeconds(o.pid) - cpu0;
        const sorted = Float64Array.from(latencies).sort();
        const ok = result['2xx'];
        resolve({
          requests: latencies.length,
          ok,
          errors: result.errors + result.timeouts,
          non2xx: result.non2xx,
          seconds,
          rps: ok / seconds,
          p50Us: percentile(sorted, 50) * 1000,
          p99Us: percentile(sorted, 99) * 1000,
          cpuUsPerReq: (used * 1e6) / Math.max(1, ok),
          cpuSeconds: used,
        });
      },
    );
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status < 300) latencies.push(ms);
    });
  });
