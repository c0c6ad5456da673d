import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import type { GpuEvidenceProvider } from '../../src/gpu/index.js';
import type { KeySource } from '../../src/keys/index.js';
import { type QuoteProvider, SimulatedQuoteProvider } from '../../src/tdx/index.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  json,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
} from './harness.js';

/** A key source with the published test key, so the suite-wide log grep would catch it leaking. */
const fixedKeys: KeySource = {
  kind: 'ephemeral',
  load: async () => ({
    secp256k1: new Uint8Array(Buffer.from(SECRET_MARKERS.secp256k1Key, 'hex')),
    ed25519: new Uint8Array(Buffer.from(SECRET_MARKERS.ed25519Seed, 'hex')),
  }),
};

let mode: 'ok' | 'hang' | 'fail' = 'ok';
const simulated = new SimulatedQuoteProvider();
const flakyQuotes: QuoteProvider = {
  platform: 'simulated',
  simulated: true,
  getQuote: (rd, signal) => {
    if (mode === 'hang') {
      return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason)));
    }
    if (mode === 'fail')
      return Promise.reject(
        new SidecarError('TEE quote device failed', { status: 503, code: 'tee_unavailable' }),
      );
    return simulated.getQuote(rd, signal);
  },
};
const noGpu: GpuEvidenceProvider = {
  kind: 'none',
  collect: async () => ({ gpus: [], ccState: null, simulated: false }),
};

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((req, body, res) => {
    const scenario = (JSON.parse(body.toString() || '{}') as { scenario?: string }).scenario;
    if (scenario === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`not json ${SECRET_MARKERS.completion}`);
    } else if (scenario === 'huge') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"id":"chatcmpl-huge","pad":"${'x'.repeat(8192)}"}`);
    } else if (scenario === 'slow-headers') {
      // never answers; the client disconnects first
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        `{"id":"chatcmpl-${randomBytes(6).toString('hex')}","choices":[{"message":{"content":"${SECRET_MARKERS.completion}"}}]}`,
      );
    }
    void req;
  });
  sidecar = await startTestSidecar(
    {
      UPSTREAM_URL: upstream.url,
      MAX_UPSTREAM_BODY_BYTES: '4096',
      ATTESTATION_TIMEOUT_MS: '200',
      ADMIN_TOKEN: SECRET_MARKERS.adminToken,
      LOG_LEVEL: 'trace',
    },
    { providers: { keys: fixedKeys, quotes: flakyQuotes, gpus: noGpu } },
  );
});
afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: SECRET_MARKERS.prompt }],
  ...extra,
});

const stillServing = async () => {
  const res = await postJson(`${sidecar.url}/v1/chat/completions`, chat());
  expect(res.status).toBe(200);
  expect(res.headers['zg-res-key']).toMatch(/^chatcmpl-/);
};

describe('faults', () => {
  it('a TEE that hangs gives 503 attestation_timeout; one that fails gives its 503; then it recovers', async () => {
    mode = 'hang';
    const hung = await rawRequest(`${sidecar.url}/attestation/report?nonce=${'11'.repeat(32)}`);
    expect(hung.status).toBe(503);
    expect(json(hung)).toMatchObject({ error: { code: 'attestation_timeout', type: 'service_unavailable' } });
    mode = 'fail';
    const failed = await rawRequest(`${sidecar.url}/attestation/report?nonce=${'22'.repeat(32)}`);
    expect(failed.status).toBe(503);
    expect(json(failed)).toMatchObject({ error: { code: 'tee_unavailable' } });
    mode = 'ok';
    const ok = await rawRequest(`${sidecar.url}/attestation/report?nonce=${'33'.repeat(32)}`);
    expect(ok.status).toBe(200);
    expect(json<{ nvidia_payload: string; gpu: { provider: string } }>(ok)).toMatchObject({
      nvidia_payload: '',
      gpu: { provider: 'none' },
    });
    await stillServing();
  });

  it('passes a garbage upstream body through unsigned and refuses a huge one with 502', async () => {
    const garbage = await postJson(`${sidecar.url}/v1/chat/completions`, chat({ scenario: 'garbage' }));
    expect(garbage.status).toBe(200);
    expect(garbage.headers['zg-res-key']).toBeUndefined();
    const huge = await postJson(`${sidecar.url}/v1/chat/completions`, chat({ scenario: 'huge' }));
    expect(huge.status).toBe(502);
    expect(json(huge)).toMatchObject({ error: { code: 'upstream_too_large', type: 'upstream_error' } });
    expect((await rawRequest(`${sidecar.url}/v1/signature/chatcmpl-huge`)).status).toBe(404);
    await stillServing();
  });

  it('survives clients that vanish while uploading and while waiting for headers, and releases the upstream', async () => {
    // Mid-upload: announce more bytes than are sent, then drop the connection.
    await new Promise<void>((resolve) => {
      const req = request(`${sidecar.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': '1000' },
      });
      req.on('error', () => resolve());
      req.write('{"model":');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 20);
    });
    // Waiting for the upstream's headers: the sidecar must abort the upstream request.
    const client = request(`${sidecar.url}/v1/chat/completions`, { method: 'POST' });
    const upstreamGone = new Promise<void>((resolve) => {
      // The request reached the upstream: the client leaves now, and the upstream socket must close.
      upstream.server.once('request', (req) => {
        req.socket.once('close', () => resolve());
        client.destroy();
      });
    });
    client.on('error', () => undefined);
    client.end(JSON.stringify(chat({ scenario: 'slow-headers' })));
    await upstreamGone;
    await stillServing();
    // A client that left before the upstream answered is not reported as an unreachable upstream.
    expect(sidecar.logs.some((l) => l.includes('upstream model server unreachable'))).toBe(false);
    expect(sidecar.logs.some((l) => l.includes('"status":499'))).toBe(true);
  });

  it('never writes keys, tokens, prompts or completions to its logs, even at trace level', async () => {
    await postJson(`${sidecar.url}/v1/chat/completions`, '{"bad json', {
      'x-admin-token': SECRET_MARKERS.adminToken,
    });
    await postJson(`${sidecar.url}/v1/chat/completions`, chat(), {
      authorization: `Bearer ${SECRET_MARKERS.authToken}`,
      'x-admin-token': SECRET_MARKERS.adminToken,
      'x-request-hash': 'zz',
    });
    const all = sidecar.logs.join('');
    expect(sidecar.logs.length).toBeGreaterThan(5);
    for (const secret of Object.values(SECRET_MARKERS)) expect(all).not.toContain(secret);
    // The signer is the fixed key (so the check above looks for the right thing).
    expect(json<{ signing_address: string }>(await rawRequest(`${sidecar.url}/health`)).signing_address).toBe(
      '0x2c7536E3605D9C16a7a3D7b1898e529396a65c23',
    );
  });
});
