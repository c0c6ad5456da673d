/**
 * Runs the real sidecar (startSidecar, the same composition root as `serve`) from the compiled
 * dist/ build, as production runs it (no TypeScript loader in the process), so the load generator
 * and the stub do not share its event loop and its memory reading is what an operator would see.
 * A side channel over IPC reports event-loop delay and memory, and can run a full GC first.
 * bench/run.ts builds dist/ before starting it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../dist/config/index.js';
import { createLogger, logDestination } from '../dist/log/index.js';
import { startSidecar } from '../dist/server/index.js';

const config = loadConfig({
  HOST: '127.0.0.1',
  PORT: '0',
  UPSTREAM_URL: `http://127.0.0.1:${process.env.BENCH_UPSTREAM_PORT}`,
  TEE_PROVIDER: 'simulated',
  GPU_EVIDENCE: 'simulated',
  KEY_SOURCE: 'ephemeral',
  // The bench is one client hammering the sidecar: per-client limits off, room for every stream.
  RATE_LIMIT_PER_MINUTE: '0',
  ATTESTATION_RATE_LIMIT_PER_MINUTE: '0',
  ATTESTATION_MAX_QUEUE: '10000',
  MAX_CONCURRENT_REQUESTS: '100000',
  // BENCH_SIGNATURE_CAPACITY: a store small enough to fill during the run, as a long-running sidecar's
  // is (full, or trimmed by the TTL: records leave from its front either way).
  SIGNATURE_CAPACITY: process.env.BENCH_SIGNATURE_CAPACITY ?? '200000',
  // The info line per request is part of what a provider runs.
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  // BENCH_MODEL_NAME: the served model's name checked on every request and answer (MODEL_NAME).
  ...(process.env.BENCH_MODEL_NAME === undefined ? {} : { MODEL_NAME: process.env.BENCH_MODEL_NAME }),
  // BENCH_TLS=1: the same sidecar serving HTTPS itself (attested TLS, an in-memory key).
  ...(process.env.BENCH_TLS === '1' ? { TLS_KEY_SOURCE: 'generate', TLS_HOSTNAMES: '127.0.0.1' } : {}),
});
// Lines go where production writes them (an fd, asynchronously: log/logger.ts), here /dev/null.
const sink = logDestination('/dev/null');
const sidecar = await startSidecar(config, createLogger(config.LOG_LEVEL, sink));

const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();

process.on('message', (msg) => {
  if (msg.cmd === 'reset') {
    delay.reset();
    process.send?.({ ok: true });
  } else if (msg.cmd === 'stats') {
    // With --expose-gc: collect first, so the reading is what is live, not what is garbage.
    if (msg.gc === true) globalThis.gc?.();
    const mem = process.memoryUsage();
    process.send?.({
      // Histogram values are ns.
      eldP50Ms: delay.percentile(50) / 1e6,
      eldP99Ms: delay.percentile(99) / 1e6,
      eldMaxMs: delay.max / 1e6,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
    });
  }
});
process.on('disconnect', () => {
  void sidecar.close().then(() => process.exit(0));
});
process.send?.({ port: Number(new URL(sidecar.url).port) });
