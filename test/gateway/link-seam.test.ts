import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectLink, type ProviderLink } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm, startTestGateway } from './harness.js';

/**
 * The gateway sees its provider only through ProviderLink (the 0G mode is another implementation):
 * its answers to `afterAnswer`, `requestHashComparable` and `expectedSigner` steer verification.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
});

const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

/** A link that delegates to the direct mode and overrides what the test needs. */
const wrap = (
  over: Partial<ProviderLink> & { requestHashComparable?: boolean },
  url = sidecar.url,
): ProviderLink => {
  const direct = new DirectLink({ provider: url });
  return {
    describe: () => direct.describe(),
    endpoint: (p) => direct.endpoint(p),
    requestHeaders: () => direct.requestHeaders(),
    signatureUrl: (id, algo) => direct.signatureUrl(id, algo),
    fetchAttestation: (n, a) => direct.fetchAttestation(n, a),
    expectedSigner: () => direct.expectedSigner(),
    afterAnswer: () => direct.afterAnswer(),
    health: () => direct.health(),
    close: () => direct.close(),
    requestHashComparable: true,
    ...over,
  };
};

describe('ProviderLink seam', () => {
  it('an answer the link refuses fails link.after-answer', async () => {
    const seen: Array<{ id: string; streamed: boolean; usage: unknown }> = [];
    const g = await startTestGateway(sidecar.url, {
      link: wrap({
        afterAnswer: async ({ id, streamed, usage }) => {
          seen.push({ id, streamed, usage });
          return false;
        },
      }),
    });
    try {
      const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      await expect(
        client.chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
      ).rejects.toMatchObject({
        status: 502,
        code: 'verification_failed',
      });
      expect(g.circuit().check).toBe('link.after-answer');
      expect(seen).toHaveLength(1);
      expect(seen[0]?.streamed).toBe(false);
      expect(seen[0]?.usage).toMatchObject({ completion_tokens: 4 });
    } finally {
      await g.close();
    }
  });

  it('a link whose requests are re-serialized on the way compares only the response hash, and says so', async () => {
    // The MITM re-serializes request bodies (as the 0G broker does); the sidecar signs what it received.
    mitm.rewriteRequest = (path, body) =>
      path.includes('/chat/completions')
        ? Buffer.from(JSON.stringify({ broker: 1, ...(JSON.parse(body.toString()) as object) }))
        : body;
    const lenient = await startTestGateway(mitm.url, {
      link: wrap({ requestHashComparable: false }, mitm.url),
    });
    const strict = await startTestGateway(mitm.url);
    try {
      const ask = (g: { url: string }) =>
        new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions
          .create({ model: 'teeml-demo', messages, max_tokens: 3 })
          .withResponse();
      expect((await ask(lenient)).response.headers.get('x-teeml-verification')).toBe('verified');
      expect(lenient.receipts.recent[0]?.request_hash_compared).toBe(false);
      await expect(ask(strict)).rejects.toMatchObject({ status: 502 });
      expect(strict.circuit().check).toBe('signature.json.text');
    } finally {
      mitm.rewriteRequest = (_path, body) => body;
      await Promise.all([lenient.close(), strict.close()]);
    }
  });

  it("the link's expected signer is enforced at attestation (signing.expected-address)", async () => {
    const g = await startTestGateway(sidecar.url, {
      link: wrap({ expectedSigner: async () => `0x${'11'.repeat(20)}` }),
    });
    try {
      expect(g.attestor.current).toMatchObject({ ok: false, failedCheck: 'signing.expected-address' });
    } finally {
      await g.close();
    }
  });

  it('re-attests on its timer with a fresh nonce each time', async () => {
    const pending: Array<{ fn: () => void; ms: number }> = [];
    const g = await startTestGateway(sidecar.url, {
      reattestIntervalMs: 90_000,
      timers: {
        setTimeout: (fn, ms) => {
          pending.push({ fn, ms });
          return pending.length;
        },
        clearTimeout: () => undefined,
      },
    });
    try {
      const first = g.attestor.current?.nonce;
      expect(pending.map((p) => p.ms)).toEqual([90_000]);
      pending.shift()?.fn();
      // The timer's run is in flight; attest() joins it rather than starting another.
      const second = await g.attestor.attest();
      expect(second.ok).toBe(true);
      expect(g.attestor.current?.nonce).not.toBe(first);
      expect(g.attestor.current?.nonce).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      await g.close();
    }
  });
});
