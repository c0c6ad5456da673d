import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardRequestHeaders } from '../../src/proxy/index.js';
import { rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * Issue 21, item 12: the gateway forwards the user's headers through the sidecar's own filter
 * (proxy/upstream.ts). What the user's tool, its browser or a hop on the way adds for this hop
 * (credentials, cookies, Fetch metadata, the sidecar's admin override) never reaches the provider.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  gateway = await startTestGateway(mitm.url, {
    allowOrigins: ['http://localhost:5173'],
    authToken: 'gateway-token-0123456789',
  });
});
afterAll(async () => {
  await gateway.close();
  await mitm.close();
  await sidecar.close();
});

const NEVER = [
  'x-hop-secret',
  'x-admin-token',
  'x-request-hash',
  'proxy-authorization',
  'origin',
  'referer',
  'cookie',
  'sec-fetch-site',
  'sec-fetch-dest',
  'x-teeml-verification',
];

describe('headers the gateway forwards', () => {
  it('drops Connection-named, credential, cookie, browser and admin headers; keeps the rest', async () => {
    const body = JSON.stringify({
      model: 'teeml-demo',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 4,
    });
    const res = await rawRequest(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer gateway-token-0123456789',
        connection: 'keep-alive, X-Hop-Secret',
        'x-hop-secret': 'hop',
        'x-admin-token': 'admin',
        'x-request-hash': 'a'.repeat(64),
        'proxy-authorization': 'Basic cHJveHk6cHJveHk=',
        origin: 'http://localhost:5173',
        referer: 'http://localhost:5173/chat?draft=1',
        cookie: 'session=1',
        'sec-fetch-site': 'same-site',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'empty',
        'x-teeml-verification': 'verified',
        'x-user-tag': 'kept',
      },
    });
    expect(res.status).toBe(200);
    const sent = mitm.seen.filter((s) => s.path.includes('chat/completions')).at(-1);
    expect(sent).toBeDefined();
    for (const name of NEVER) expect(sent?.headers[name], name).toBeUndefined();
    // undici, the gateway's fetch, sets its own `sec-fetch-mode: cors` (Fetch standard); the user's never passes.
    expect(sent?.headers['sec-fetch-mode']).not.toBe('navigate');
    // The user's token for the gateway is not the provider's key.
    expect(sent?.headers.authorization).toBeUndefined();
    expect(sent?.headers['x-user-tag']).toBe('kept');
    expect(sent?.headers['content-type']).toBe('application/json');
  });

  it("the sidecar's filter (the same function) keeps what its clients rely on", () => {
    const out = forwardRequestHeaders({
      'content-type': 'application/json',
      'x-signing-algo': 'ecdsa',
      'x-client-pub-key': 'ab',
      'user-agent': 'OpenAI/JS',
      'sec-fetch-site': 'cross-site',
      origin: 'http://evil.example',
      connection: 'close, x-drop-me',
      'x-drop-me': '1',
    });
    expect(out).toEqual({
      'content-type': 'application/json',
      'x-signing-algo': 'ecdsa',
      'x-client-pub-key': 'ab',
      'user-agent': 'OpenAI/JS',
    });
  });
});
