import { Writable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttestationService } from '../../src/attestation/index.js';
import { Budget } from '../../src/concurrency/index.js';
import { loadConfig } from '../../src/config/index.js';
import { createSigners, EphemeralKeySource, type Signers } from '../../src/keys/index.js';
import { createLogger } from '../../src/log/index.js';
import { Metrics } from '../../src/metrics/index.js';
import { ClientLimit } from '../../src/server/client-limits.js';
import { InFlight } from '../../src/server/in-flight.js';
import { createApp, selectProviders } from '../../src/server/index.js';
import {
  MemorySignatureStore,
  PendingSignatures,
  SignatureLookup,
  signPair,
} from '../../src/signatures/index.js';

/**
 * The sidecar's own routes through Hono's `app.request()`, without a socket: each feature's routes
 * take only their own dependencies (docs/architecture.md), so they run with real parts and no server.
 */
const quiet = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
const sha = (n: number) => n.toString(16).padStart(64, '0');

let signers: Signers;
let store: MemorySignatureStore;
let pending: PendingSignatures;
let inFlight: InFlight;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  signers = createSigners(await new EphemeralKeySource().load());
  const config = loadConfig({});
  const providers = await selectProviders(config, quiet);
  store = new MemorySignatureStore({ ttlMs: 60_000, capacity: 100 });
  pending = new PendingSignatures();
  inFlight = new InFlight();
  const metrics = new Metrics();
  const attestation = new AttestationService({
    quotes: providers.quotes,
    gpus: providers.gpus,
    signers,
    checkGpuEvidence: providers.checkGpuEvidence,
    cacheTtlMs: 60_000,
    timeoutMs: 5_000,
    maxConcurrent: 1,
    maxQueue: 1,
    logger: quiet,
  });
  const limit = (name: 'proxy' | 'attestation') => new ClientLimit({ name, perMinute: 0, trustProxy: false });
  app = createApp({
    logger: quiet,
    inFlight,
    health: {
      signers,
      metrics,
      status: { simulated: true, demoUpstream: false, platform: 'simulated', gpu: 'simulated', version: 't' },
    },
    attestation: { attestation, signers, limit: limit('attestation') },
    signatures: {
      signatures: new SignatureLookup({ store, pending, pendingWaitMs: 50, rereadDelaysMs: [] }),
      lookups: new Budget({ global: 1, perKey: 1 }),
      clientOf: () => 'test',
    },
    proxy: {
      limit: limit('proxy'),
      // Never reached here: proxied routes need Node's socket (test/e2e covers them).
      proxy: {} as never,
    },
  });
});

describe('routes through app.request()', () => {
  it('health answers at the root and under /v1, with the signing identity', async () => {
    for (const path of ['/health', '/v1/health']) {
      const res = await app.request(path);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        status: 'ok',
        signing_address: signers.ecdsa.address,
        ed25519_public_key: signers.ed25519.address,
        simulated: true,
      });
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('signatures: 400 for a malformed id or algorithm, 404 unknown, the record in either algorithm', async () => {
    expect((await app.request('/signature/bad%20id')).status).toBe(400);
    const unknown = await app.request('/v1/signature/chatcmpl-unknown');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({
      error: {
        message: 'Chat id not found or expired',
        type: 'not_found',
        param: null,
        code: 'chat_id_not_found',
      },
    });
    const claim = await store.claim('chatcmpl-route');
    const record = signPair(signers, sha(1), sha(2));
    await store.put(claim as NonNullable<typeof claim>, record);
    const ecdsa = await app.request('/signature/CHATCMPL-ROUTE');
    expect(await ecdsa.json()).toEqual({
      text: record.text,
      signature: record.ecdsa.signature,
      signing_address: signers.ecdsa.address,
      signing_algo: 'ecdsa',
    });
    const ed = await app.request('/v1/signature/chatcmpl-route?signing_algo=ED25519');
    expect(await ed.json()).toMatchObject({ signature: record.ed25519.signature, signing_algo: 'ed25519' });
    const bad = await app.request('/signature/chatcmpl-route?signing_algo=rsa');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      error: { code: 'invalid_signing_algo', param: 'signing_algo' },
    });
  });

  it('a lookup for an id in flight waits for it, within its budget', async () => {
    pending.begin('chatcmpl-late');
    const waiting = app.request('/signature/chatcmpl-late');
    // The budget (1) is held by the waiting lookup: a second one is refused at once.
    const second = await app.request('/signature/chatcmpl-late');
    expect(second.status).toBe(429);
    expect(await second.json()).toMatchObject({ error: { code: 'lookup_limit' } });
    const claim = await store.claim('chatcmpl-late');
    await store.put(claim as NonNullable<typeof claim>, signPair(signers, sha(3), sha(4)));
    pending.settle('chatcmpl-late');
    expect((await waiting).status).toBe(200);
  });

  it('the cached report is served without a socket; a malformed nonce is a 400 naming it', async () => {
    const res = await app.request('/attestation/report');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ signing_address: signers.ecdsa.address, simulated: true });
    const bad = await app.request('/v1/attestation/report?nonce=xyz');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'invalid_nonce', param: 'nonce' } });
  });

  it('while draining: new work is 503 with connection: close, signature lookups still answer', async () => {
    inFlight.draining = true;
    try {
      const health = await app.request('/health');
      expect(health.status).toBe(503);
      expect(health.headers.get('connection')).toBe('close');
      expect((await app.request('/v1/signature/chatcmpl-route')).status).toBe(200);
    } finally {
      inFlight.draining = false;
    }
  });

  it('unknown routes are 404 in the OpenAI shape', async () => {
    const res = await app.request('/nowhere');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'route_not_found', type: 'not_found' } });
  });
});
