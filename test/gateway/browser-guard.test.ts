import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * What a web page in the user's browser can make the gateway do (issue 21, item 6), with the headers
 * a browser really sends: DNS rebinding (a foreign Host), cross-origin fetches (Origin), simple
 * requests that skip the preflight (text/plain POST), preflights, and the provider's CORS grants.
 * Nothing refused may reach the provider (the man in the middle counts what it forwarded).
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;
let port: string;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  gateway = await startTestGateway(mitm.url, {
    allowOrigins: ['http://localhost:5173'],
    allowedHosts: ['gateway.lan'],
  });
  port = new URL(gateway.url).port;
});
afterAll(async () => {
  await gateway.close();
  await mitm.close();
  await sidecar.close();
});

const chat = JSON.stringify({
  model: 'teeml-demo',
  messages: [{ role: 'user', content: 'hi' }],
  max_tokens: 4,
});

const post = (headers: Record<string, string>, body = chat) =>
  rawRequest(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers, body });

/** Requests the provider saw for chat completions (the attestation fetches aside). */
const forwarded = () => mitm.seen.filter((s) => s.path.includes('chat/completions')).length;

describe('gateway against web pages in the browser', () => {
  it('DNS rebinding: a foreign Host reaches neither /, /health nor /v1', async () => {
    const before = forwarded();
    const host = `evil.example:${port}`;
    for (const path of ['/', '/health', '/v1/models']) {
      const res = await rawRequest(`${gateway.url}${path}`, { headers: { host } });
      expect(res.status, path).toBe(403);
      expect(json<{ error: { code: string } }>(res).error.code).toBe('host_not_allowed');
      expect(res.body.toString()).not.toContain('signing_address');
    }
    const res = await post({ host, 'content-type': 'application/json' });
    expect(res.status).toBe(403);
    expect(forwarded()).toBe(before);
    expect(gateway.logs.join('')).not.toContain('evil.example');
  });

  it('serves the loopback names, the listen address and --allowed-host, with the port', async () => {
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `gateway.lan:${port}`,
      `GATEWAY.LAN:${port}`,
    ])
      expect((await rawRequest(`${gateway.url}/health`, { headers: { host } })).status, host).toBe(200);
    for (const host of ['localhost', `localhost:${Number(port) + 1}`, 'gateway.lan', `127.0.0.2:${port}`])
      expect((await rawRequest(`${gateway.url}/health`, { headers: { host } })).status, host).toBe(403);
  });

  it('a cross-site text/plain POST (no preflight) is not served', async () => {
    const before = forwarded();
    // What <form enctype="text/plain"> or fetch(…, {mode: "no-cors"}) sends from another site.
    const res = await post({ 'content-type': 'text/plain;charset=UTF-8', origin: 'http://evil.example' });
    expect(res.status).toBe(403);
    expect(json<{ error: { code: string } }>(res).error.code).toBe('origin_not_allowed');
    // The same without Origin (a browser that withheld it) but with Fetch metadata.
    const meta = await post({
      'content-type': 'text/plain',
      'sec-fetch-site': 'cross-site',
      'sec-fetch-mode': 'no-cors',
    });
    expect(meta.status).toBe(403);
    // And without any browser header: the JSON route still wants JSON.
    const plain = await post({ 'content-type': 'text/plain' });
    expect(plain.status).toBe(415);
    expect(json<{ error: { code: string } }>(plain).error.code).toBe('unsupported_media_type');
    expect((await post({})).status).toBe(415);
    expect((await post({ 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    expect(forwarded()).toBe(before);
  });

  it('a foreign Origin is refused on every route; the own origin and allowed ones pass', async () => {
    for (const path of ['/', '/health', '/v1/models']) {
      const res = await rawRequest(`${gateway.url}${path}`, { headers: { origin: 'http://evil.example' } });
      expect(res.status, path).toBe(403);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
    expect((await rawRequest(`${gateway.url}/health`, { headers: { origin: 'null' } })).status).toBe(403);
    const own = await post({ 'content-type': 'application/json', origin: `http://127.0.0.1:${port}` });
    expect(own.status).toBe(200);
    expect(own.headers['access-control-allow-origin']).toBeUndefined();
    const allowed = await post({
      'content-type': 'application/json',
      origin: 'http://localhost:5173',
      'sec-fetch-site': 'same-site',
    });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(allowed.headers['x-teeml-verification']).toBe('verified');
  });

  it('OPTIONS is answered locally: a grant for allowed origins, none for others', async () => {
    const before = mitm.seen.length;
    const preflight = (origin: string) =>
      rawRequest(`${gateway.url}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const ok = await preflight('http://localhost:5173');
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(ok.headers['access-control-allow-headers']).toBe('authorization, content-type');
    const evil = await preflight('http://evil.example');
    expect(evil.status).toBe(403);
    expect(Object.keys(evil.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    const bare = await rawRequest(`${gateway.url}/v1/models`, { method: 'OPTIONS' });
    expect(bare.status).toBe(204);
    expect(mitm.seen.length).toBe(before);
  });

  it("never relays the provider's access-control-* headers", async () => {
    mitm.mutate = (e) =>
      e.path.includes('/models') || e.path.includes('chat/completions')
        ? {
            ...e,
            headers: {
              ...e.headers,
              'access-control-allow-origin': '*',
              'access-control-allow-credentials': 'true',
              'access-control-expose-headers': '*',
            },
          }
        : undefined;
    try {
      for (const res of [
        await rawRequest(`${gateway.url}/v1/models`),
        await post({ 'content-type': 'application/json' }),
      ]) {
        expect(res.status).toBe(200);
        expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
      }
    } finally {
      mitm.mutate = () => undefined;
    }
  });
});
