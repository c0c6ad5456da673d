import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type VerificationResult, verifyProvider } from '../../src/verifier/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';

type Mode = 'keep' | 'strip' | 'tamper';

/**
 * A proxy on the path between the verifier and the sidecar: relays every request and answer, and
 * either keeps the sidecar's trailers, drops them (as many proxies do), or rewrites the signature
 * trailer. It counts the signature lookups it relays.
 */
const startPathProxy = (
  target: string,
  mode: Mode,
): Promise<{ url: string; server: Server; lookups: string[] }> =>
  new Promise((resolve) => {
    const lookups: string[] = [];
    const server = createServer((req, res) => {
      if (req.url?.includes('/signature/')) lookups.push(req.url);
      const upstream = request(
        `${target}${req.url}`,
        { method: req.method, headers: req.headers },
        (answer) => {
          const headers = { ...answer.headers };
          if (mode === 'strip') delete headers.trailer;
          res.writeHead(answer.statusCode ?? 502, headers);
          answer.on('data', (c: Buffer) => res.write(c));
          answer.on('end', () => {
            const value = answer.trailers['x-teeml-signature'];
            if (mode === 'keep' && value !== undefined) res.addTrailers({ 'x-teeml-signature': value });
            if (mode === 'tamper' && value !== undefined) {
              const record = JSON.parse(Buffer.from(value, 'base64url').toString()) as { text: string };
              record.text = `${'0'.repeat(64)}${record.text.slice(64)}`;
              res.addTrailers({
                'x-teeml-signature': Buffer.from(JSON.stringify(record)).toString('base64url'),
              });
            }
            res.end();
          });
        },
      );
      req.pipe(upstream);
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, server, lookups });
    });
  });

const signatureChecks = (result: VerificationResult) =>
  result.checks.filter((c) => c.id.startsWith('signature.')).map((c) => [c.id, c.status, c.detail]);

let sidecar: TestSidecar;
beforeAll(async () => {
  sidecar = await startTestSidecar();
});
afterAll(async () => {
  await sidecar.close();
});

describe('verify reads the signature trailer and checks it against GET /signature/{id}', () => {
  it('a trailer that arrives intact: every signature check passes', async () => {
    const proxy = await startPathProxy(sidecar.url, 'keep');
    try {
      const result = await verifyProvider({ baseUrl: proxy.url, allowSimulated: true });
      expect(signatureChecks(result).every(([, status]) => status === 'pass')).toBe(true);
      expect(proxy.lookups).toHaveLength(2);
      for (const [id, , detail] of signatureChecks(result).filter(([id]) => String(id).endsWith('.signer'))) {
        expect(detail, String(id)).toContain('X-Teeml-Signature trailer, equal to the lookup');
      }
    } finally {
      proxy.server.close();
    }
  });

  it('a proxy that drops trailers: verify falls back to GET /signature/{id} and passes', async () => {
    const proxy = await startPathProxy(sidecar.url, 'strip');
    try {
      const result = await verifyProvider({ baseUrl: proxy.url, allowSimulated: true });
      expect(result.verdict).toBe('pass');
      expect(signatureChecks(result).every(([, status]) => status === 'pass')).toBe(true);
      for (const [, , detail] of signatureChecks(result)) expect(detail).not.toContain('trailer');
      expect(proxy.lookups.map((u) => u.split('?')[0]?.split('/').at(-1))).toHaveLength(2);
    } finally {
      proxy.server.close();
    }
  });

  it('a trailer that differs from what the lookup serves fails both signature checks', async () => {
    const proxy = await startPathProxy(sidecar.url, 'tamper');
    try {
      const result = await verifyProvider({ baseUrl: proxy.url, allowSimulated: true });
      expect(result.verdict).toBe('fail');
      for (const [id, status, detail] of signatureChecks(result)) {
        expect(status, String(id)).toBe('fail');
        expect(detail).toMatch(/trailer differs from what GET \/signature\/\{id\} serves/);
      }
    } finally {
      proxy.server.close();
    }
  });
});
