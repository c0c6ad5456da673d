/**
 * Every error the gateway answers is in the OpenAI shape with a content-length (one `end`, nothing
 * chunked): the engine's errors (errorAnswer through serve-engine) and the listener's own (routes.ts
 * sendError: not found, bearer token, browser guard, a route that throws).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../e2e/harness.js';
import { type HostileStack, startHostileStack } from './hostile-provider.js';

let stack: HostileStack;

beforeAll(async () => {
  stack = await startHostileStack({ authToken: 'tok', maxRequestBytes: 2048 });
}, 30_000);
afterAll(() => stack.close());

const auth = { authorization: 'Bearer tok' };

describe('error answers carry a content-length', () => {
  for (const [name, path, options] of [
    [
      '413 request_too_large (engine)',
      '/v1/chat/completions',
      { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: 'x'.repeat(4096) },
    ],
    ['404 /v1x (listener)', '/v1x', { headers: auth }],
    ['404 outside /v1 (listener)', '/nope', { headers: auth }],
    ['401 missing bearer token (listener)', '/v1/models', {}],
    ['403 foreign Host (browser guard)', '/v1/models', { headers: { ...auth, host: 'evil.example' } }],
  ] as const)
    it(name, async () => {
      const res = await rawRequest(
        `${stack.gateway.url}${path}`,
        options as Parameters<typeof rawRequest>[1],
      );
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect((JSON.parse(res.body.toString()) as { error?: unknown }).error).toBeDefined();
      expect(res.headers['content-length']).toBe(String(res.body.length));
    });
});
