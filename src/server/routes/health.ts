import { Hono } from 'hono';
import type { Signers } from '../../keys/index.js';
import type { Metrics } from '../../metrics/index.js';
import type { ServerEnv } from './env.js';

export interface HealthDeps {
  signers: Signers;
  metrics: Metrics;
  /** What /health reports about this deployment. */
  status: { simulated: boolean; demoUpstream: boolean; platform: string; gpu: string; version: string };
}

/** `GET /health` (liveness, and what this instance is) and `GET /metrics` (Prometheus). */
export const healthRoutes = (deps: HealthDeps): { health: Hono<ServerEnv>; metrics: Hono<ServerEnv> } => {
  const health = new Hono<ServerEnv>();
  health.get('/health', (c) =>
    c.json({
      status: 'ok',
      version: deps.status.version,
      signing_address: deps.signers.ecdsa.address,
      ed25519_public_key: deps.signers.ed25519.address,
      platform: deps.status.platform,
      gpu_evidence: deps.status.gpu,
      simulated: deps.status.simulated,
      demo_upstream: deps.status.demoUpstream,
    }),
  );
  const metrics = new Hono<ServerEnv>();
  metrics.get('/metrics', async (c) =>
    c.body(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType }),
  );
  return { health, metrics };
};
