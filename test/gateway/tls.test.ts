import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectLink } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { makePair, startTerminator, tempDir } from '../tls/certs.js';
import { startTestGateway, type TestGateway } from './harness.js';

/**
 * The gateway in direct mode over https (attested TLS, docs/tls.md): the report is fetched with
 * include_tls_fingerprint=true on one connection whose certificate must be the attested key, and
 * answers and signatures go only over connections showing that key. Real TLS throughout: a sidecar
 * serving HTTPS with a generated self-signed key, and a TLS terminator whose certificate a test swaps.
 */

const tmp = tempDir();
const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];
const post = (gateway: TestGateway) =>
  fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'teeml-demo', messages, max_tokens: 4 }),
  });
const statusOf = (gateway: TestGateway, id: string) =>
  gateway.attestor.current?.checks.find((c) => c.id === id);

let terminating: TestSidecar;
beforeAll(async () => {
  terminating = await startTestSidecar({ TLS_KEY_SOURCE: 'generate', TLS_HOSTNAMES: 'localhost,127.0.0.1' });
});
afterAll(async () => {
  await terminating.close();
  tmp.cleanup();
});

describe('gateway → https provider with attested TLS', () => {
  it('checks tls.fingerprint on the report connection, pins it, and the openai client gets verified JSON and streams over a self-signed certificate', async () => {
    expect(terminating.url).toMatch(/^https:/);
    const receipts: string[] = [];
    const gateway = await startTestGateway(terminating.url, {
      receipts: {
        sink: { append: async (line) => void receipts.push(line), close: async () => undefined },
        label: 'memory',
      },
    });
    try {
      const a = gateway.attestor.current;
      expect(a?.ok).toBe(true);
      expect(statusOf(gateway, 'tls.fingerprint')).toMatchObject({ status: 'pass' });
      expect(statusOf(gateway, 'tdx.report-data')?.detail).toContain('NEAR tls_cert_fingerprint scheme');
      const bound = (a?.report as { tls_cert_fingerprint?: string } | undefined)?.tls_cert_fingerprint;
      expect(a?.tlsFingerprint).toBe(bound);
      expect(a?.tlsFingerprint).toMatch(/^[0-9a-f]{64}$/);

      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const json = await client.chat.completions
        .create({ model: 'teeml-demo', messages, max_tokens: 4 })
        .withResponse();
      expect(json.response.headers.get('x-teeml-verification')).toBe('verified');
      const stream = await client.chat.completions.create({
        model: 'teeml-demo',
        messages,
        max_tokens: 4,
        stream: true,
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      expect(text.length).toBeGreaterThan(0);
      expect(gateway.counters).toMatchObject({ verified: 2, failed: 0 });
      // Attested TLS authenticates every byte: the one channel whose stream events flow as they arrive.
      expect(gateway.streamRelease()).toBe('as-they-arrive (attested TLS)');
      expect(JSON.parse(receipts.join('').split('\n')[0] ?? '{}')).toMatchObject({
        type: 'attestation',
        tls_fingerprint: bound,
      });
      const page = await (await fetch(`${gateway.url}/`)).text();
      expect(page).toContain(`id="tls-fingerprint">${bound}`);
    } finally {
      await gateway.close();
    }
  });

  it('a certificate swapped behind its back: refused (gateway.tls-pinned) before a byte is sent, circuit open, until a re-attestation passes', async () => {
    const a = await makePair();
    const b = await makePair();
    // The sidecar binds A (TLS_CERT_PATH alone: TLS ends at the terminator in front of it).
    const sidecar = await startTestSidecar({ TLS_CERT_PATH: tmp.write('gateway-bound.crt', a.cert) });
    const front = await startTerminator(a.cert, a.key, sidecar.url);
    const gateway = await startTestGateway(front.url);
    try {
      expect(gateway.attestor.current?.tlsFingerprint).toBe(a.identity.fingerprint);
      const honest = await post(gateway);
      expect(honest.headers.get('x-teeml-verification')).toBe('verified');
      const sent = front.posts.length;
      expect(sent).toBe(1);

      // The terminator now presents B (a MITM, or a certificate replaced without the sidecar knowing).
      front.server.setSecureContext({ cert: b.cert, key: b.key });
      front.server.closeAllConnections();
      const swapped = await post(gateway);
      expect(swapped.status).toBe(502);
      expect(swapped.headers.get('x-teeml-verification')).toBe('failed: gateway.tls-pinned');
      expect(await swapped.text()).toContain('gateway.tls-pinned');
      expect(front.posts.length).toBe(sent);
      expect(gateway.circuit()).toMatchObject({ open: true, check: 'gateway.tls-pinned' });
      expect(gateway.logs.join('')).toContain('gateway.tls-pinned');
      const refused = await post(gateway);
      expect(refused.status).toBe(503);
      expect(await refused.text()).toContain('circuit_open');

      // Re-attesting over B: the report (still binding A) comes over a connection showing B.
      const again = await gateway.attestNow();
      expect(again.failedCheck).toBe('tls.fingerprint');
      expect(statusOf(gateway, 'tls.fingerprint')?.detail).toBe(
        `the live certificate's SPKI sha256 is ${b.identity.fingerprint}, the report binds ${a.identity.fingerprint}`,
      );
      const stillRefused = await post(gateway);
      expect(stillRefused.status).toBe(503);
      expect(await stillRefused.text()).toContain('tls.fingerprint');
      expect(front.posts.length).toBe(sent);

      // A back in place: the next attestation passes, the circuit closes, answers flow again.
      front.server.setSecureContext({ cert: a.cert, key: a.key });
      front.server.closeAllConnections();
      expect((await gateway.attestNow()).ok).toBe(true);
      expect(gateway.circuit().open).toBe(false);
      const restored = await post(gateway);
      expect(restored.headers.get('x-teeml-verification')).toBe('verified');
      expect(front.posts.length).toBe(sent + 1);
    } finally {
      await gateway.close();
      await front.close();
      await sidecar.close();
    }
  });

  it('an https provider that binds no TLS key fails tls.fingerprint: nothing is sent', async () => {
    const a = await makePair();
    const plain = await startTestSidecar();
    const front = await startTerminator(a.cert, a.key, plain.url);
    const gateway = await startTestGateway(front.url);
    try {
      expect(gateway.attestor.current?.failedCheck).toBe('tls.fingerprint');
      expect(statusOf(gateway, 'tls.fingerprint')?.detail).toContain('refused include_tls_fingerprint=true');
      const res = await post(gateway);
      expect(res.status).toBe(503);
      expect(front.posts.length).toBe(0);
    } finally {
      await gateway.close();
      await front.close();
      await plain.close();
    }
  });

  it('over plain http: no TLS check; the link transport is pooled http that keeps trailers', async () => {
    const plain = await startTestSidecar();
    const gateway = await startTestGateway(plain.url);
    try {
      const link = new DirectLink({ provider: plain.url });
      expect(link.signatureTrailer).toBe(true);
      await link.close();
      expect(gateway.attestor.current?.ok).toBe(true);
      expect(statusOf(gateway, 'tls.fingerprint')).toBeUndefined();
      expect(gateway.attestor.current?.tlsFingerprint).toBeUndefined();
      expect((await post(gateway)).headers.get('x-teeml-verification')).toBe('verified');
    } finally {
      await gateway.close();
      await plain.close();
    }
  });
});
