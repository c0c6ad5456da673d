import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { rawProxyPath } from '../../src/server/routes/proxy.js';
import { json, postJson, type RawResponse, rawRequest, startTestSidecar, startUpstream } from './harness.js';

/**
 * A plain POST to an exact proxy path is served without the router (app.ts, proxyFastPath); the
 * same request with a Host the router's adapter rewrites goes through the router. Both must answer
 * alike: same status, same error body, same headers of our own, a signature that can be looked up.
 */
const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const request = (incoming: Partial<IncomingMessage>): IncomingMessage =>
  ({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { host: '127.0.0.1:8000' },
    ...incoming,
  }) as IncomingMessage;

describe('which requests skip the router', () => {
  it('takes a plain POST to an exact proxy path, at the root or under /v1, with its query', () => {
    expect(rawProxyPath(request({}))).toEqual({ openAiPath: '/chat/completions', search: '' });
    expect(rawProxyPath(request({ url: '/completions?x=1' }))).toEqual({
      openAiPath: '/completions',
      search: '?x=1',
    });
    expect(rawProxyPath(request({ url: '/v1/embeddings', headers: { host: 'sidecar.internal' } }))).toEqual({
      openAiPath: '/embeddings',
      search: '',
    });
  });

  it('leaves to the router every other method, path, and any target or Host its adapter would rewrite or refuse', () => {
    for (const incoming of [
      { method: 'GET' },
      { url: '/v1/chat/completions/' },
      { url: '/v1/audio/transcriptions' },
      { url: '/v1/Chat/completions' },
      { url: '/v1/chat/completions?a=%zz"' },
      { url: '/v1/chat/completions?a=b\\c' },
      { url: '/v1/./chat/completions' },
      { headers: {} },
      { headers: { host: 'LOCALHOST:8000' } },
      { headers: { host: 'evil.example/x' } },
      { headers: { host: '127.0.0.1:80' } },
    ]) {
      expect(rawProxyPath(request(incoming)), JSON.stringify(incoming)).toBeUndefined();
    }
  });
});

describe('with or without the router, the same answers', () => {
  /** The same request twice: straight (plain Host) and through the router (a Host it rewrites). */
  const both = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
    const port = new URL(url).port;
    const straight = await postJson(url, body, headers);
    const routed = await postJson(url, body, { ...headers, host: `LOCALHOST:${port}` });
    return { straight, routed };
  };
  /** Our own response headers (the rest is Node's or the upstream's), with the per-request values blanked. */
  const ours = (r: RawResponse) =>
    Object.fromEntries(
      Object.entries(r.headers)
        .filter(([name]) => !['date', 'keep-alive'].includes(name))
        .map(([name, value]) => [name, ['x-request-id', 'zg-res-key'].includes(name) ? 'set' : value]),
    );

  it('signs and serves the answer, and looks the signature up', async () => {
    let n = 0;
    const up = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"id":"chatcmpl-bypass-${++n}","object":"chat.completion","choices":[]}`);
    });
    cleanups.push(() => up.close());
    const s = await startTestSidecar({ UPSTREAM_URL: up.url });
    cleanups.push(() => s.close());
    const { straight, routed } = await both(`${s.url}/v1/chat/completions`, chat);
    expect(straight.status).toBe(200);
    expect(routed.status).toBe(200);
    expect(ours(straight)).toEqual(ours(routed));
    for (const r of [straight, routed]) {
      const id = r.headers['zg-res-key'] as string;
      expect(json(r).id).toBe(id);
      const record = await rawRequest(`${s.url}/v1/signature/${id}`);
      expect(record.status).toBe(200);
    }
    expect(up.requests.map((r) => r.url)).toEqual(['/v1/chat/completions', '/v1/chat/completions']);
  });

  it('refuses alike: bad JSON, a bad trailer request, a wrong token, a body over the limit, the rate limit', async () => {
    const up = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"chatcmpl-x","object":"chat.completion","choices":[]}');
    });
    cleanups.push(() => up.close());
    const s = await startTestSidecar({
      UPSTREAM_URL: up.url,
      AUTH_TOKEN: 'client-token-0123456789',
      MAX_BODY_BYTES: '1024',
      RATE_LIMIT_PER_MINUTE: '8',
    });
    cleanups.push(() => s.close());
    const auth = { authorization: 'Bearer client-token-0123456789' };
    const cases: Array<[unknown, Record<string, string>, number, string]> = [
      ['{bad', auth, 400, 'invalid_json'],
      [chat, { ...auth, 'x-teeml-signature-trailer': 'rsa' }, 400, 'invalid_signature_trailer'],
      [chat, { authorization: 'Bearer wrong-token-000000000' }, 401, 'invalid_api_key'],
      [{ pad: 'x'.repeat(2048) }, auth, 413, 'request_too_large'],
    ];
    for (const [body, headers, status, code] of cases) {
      const { straight, routed } = await both(`${s.url}/v1/chat/completions`, body, headers);
      expect([straight.status, routed.status], code).toEqual([status, status]);
      expect(straight.body.toString()).toBe(routed.body.toString());
      expect(json(straight)).toMatchObject({ error: { code } });
      expect(ours(straight)).toEqual(ours(routed));
      expect(straight.body.toString()).not.toContain('wrong-token');
    }
    expect(up.requests).toHaveLength(0);
    // Eight per minute, counted after the token check: six taken above, two left, then 429 both ways.
    const answers: RawResponse[] = [];
    for (let i = 0; i < 3; i++) {
      const { straight, routed } = await both(`${s.url}/v1/chat/completions`, chat, auth);
      answers.push(straight, routed);
    }
    expect(answers.map((r) => r.status)).toEqual([200, 200, 429, 429, 429, 429]);
    for (const r of answers.slice(2)) {
      expect(json(r)).toMatchObject({ error: { type: 'rate_limit_error' } });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    }
  });
});
