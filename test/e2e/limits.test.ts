import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { json, postJson, rawRequest, startTestSidecar, startUpstream, type TestUpstream } from './harness.js';

const chat = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const okUpstream = () =>
  startUpstream((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id":"chatcmpl-lim","object":"chat.completion","choices":[]}');
  });

describe('abuse limits', () => {
  it('limits fresh attestation reports per client with 429 and Retry-After, cached ones not at all', async () => {
    const s = await startTestSidecar({ ATTESTATION_RATE_LIMIT_PER_MINUTE: '2' });
    cleanups.push(() => s.close());
    const nonce = () => createHash('sha256').update(String(Math.random())).digest('hex');
    expect((await rawRequest(`${s.url}/attestation/report?nonce=${nonce()}`)).status).toBe(200);
    expect((await rawRequest(`${s.url}/attestation/report?nonce=${nonce()}`)).status).toBe(200);
    const third = await rawRequest(`${s.url}/attestation/report?nonce=${nonce()}`);
    expect(third.status).toBe(429);
    expect(Number(third.headers['retry-after'])).toBeGreaterThan(0);
    expect(json(third)).toMatchObject({
      error: { code: 'attestation_rate_limited', type: 'rate_limit_error', param: null },
    });
    expect((await rawRequest(`${s.url}/attestation/report`)).status).toBe(200);
  });

  it('limits proxied requests per client when configured', async () => {
    const up = await okUpstream();
    cleanups.push(() => up.close());
    const s = await startTestSidecar({ UPSTREAM_URL: up.url, RATE_LIMIT_PER_MINUTE: '1' });
    cleanups.push(() => s.close());
    expect((await postJson(`${s.url}/v1/chat/completions`, chat)).status).toBe(200);
    const second = await postJson(`${s.url}/v1/chat/completions`, chat);
    expect(second.status).toBe(429);
    expect(json(second)).toMatchObject({ error: { code: 'proxy_rate_limited' } });
  });

  it('caps requests in flight across clients', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let arrived: () => void = () => undefined;
    const reachedUpstream = new Promise<void>((r) => {
      arrived = r;
    });
    const up = await startUpstream((_req, _body, res) => {
      arrived();
      gate.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"chatcmpl-gate","choices":[]}');
      });
    });
    cleanups.push(() => up.close());
    const s = await startTestSidecar({ UPSTREAM_URL: up.url, MAX_CONCURRENT_REQUESTS: '1' });
    cleanups.push(() => s.close());
    const first = postJson(`${s.url}/v1/chat/completions`, chat);
    await reachedUpstream;
    const second = await postJson(`${s.url}/v1/chat/completions`, chat);
    expect(second.status).toBe(429);
    expect(json(second)).toMatchObject({ error: { code: 'concurrency_limit' } });
    release();
    expect((await first).status).toBe(200);
  });

  it('requires the bearer token on proxy routes when AUTH_TOKEN is set, and does not forward it', async () => {
    const up = await okUpstream();
    cleanups.push(() => up.close());
    const s = await startTestSidecar({ UPSTREAM_URL: up.url, AUTH_TOKEN: 'client-token-0123456789' });
    cleanups.push(() => s.close());
    const denied = await postJson(`${s.url}/v1/chat/completions`, chat, {
      authorization: 'Bearer wrong-token-000000000',
    });
    expect(denied.status).toBe(401);
    expect(json(denied)).toMatchObject({ error: { type: 'authentication_error', code: 'invalid_api_key' } });
    expect(denied.body.toString()).not.toContain('wrong-token');
    const ok = await postJson(`${s.url}/v1/chat/completions`, chat, {
      authorization: 'Bearer client-token-0123456789',
    });
    expect(ok.status).toBe(200);
    expect(up.requests.at(-1)?.headers.authorization).toBeUndefined();
  });

  it('answers 431 for oversized headers and keeps serving', async () => {
    const s = await startTestSidecar({ MAX_HEADER_BYTES: '2048' });
    cleanups.push(() => s.close());
    const big = await rawRequest(`${s.url}/health`, { headers: { 'x-pad': 'a'.repeat(4096) } });
    expect(big.status).toBe(431);
    expect((await rawRequest(`${s.url}/health`)).status).toBe(200);
  });
});

describe('graceful shutdown', () => {
  let up: TestUpstream | undefined;
  afterEach(async () => {
    await up?.close();
    up = undefined;
  });

  it('lets an in-flight stream finish and signs it, while refusing new work', async () => {
    let finish: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      finish = r;
    });
    up = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"chatcmpl-drain","choices":[]}\n\n');
      gate.then(() => res.end('data: [DONE]\n\n'));
    });
    const s = await startTestSidecar({ UPSTREAM_URL: up.url, SHUTDOWN_GRACE_MS: '5000' });
    const received: Buffer[] = [];
    let firstChunk: () => void = () => undefined;
    const streaming = new Promise<void>((r) => {
      firstChunk = r;
    });
    const done = new Promise<number>((resolve, reject) => {
      const req = request(`${s.url}/v1/chat/completions`, { method: 'POST' }, (res) => {
        res.on('data', (c: Buffer) => {
          received.push(c);
          firstChunk();
        });
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ ...chat, stream: true }));
    });
    await streaming;
    const closing = s.close();
    // Draining: the listener stays open (signature lookups are still served, SECURITY.md), and new
    // work on a fresh connection is refused with 503 and `connection: close`.
    const refused = await new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const req = request(`${s.url}/health`, { agent: false }, (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
        });
        req.on('error', reject);
        req.end();
      },
    );
    expect(refused).toEqual({ status: 503, connection: 'close' });
    finish();
    expect(await done).toBe(200);
    await closing;
    expect(Buffer.concat(received).toString()).toContain('data: [DONE]');
    const signedLine = s.logs.find((l) => l.includes('"responseId":"chatcmpl-drain"'));
    expect(signedLine).toContain('"signed":true');
  });
});

describe('requests the HTTP parser refuses', () => {
  it('answer in the OpenAI error shape: malformed header, oversized headers, bad paths and encoded slashes', async () => {
    const s = await startTestSidecar({ MAX_HEADER_BYTES: '2048' });
    cleanups.push(() => s.close());
    const { port } = new URL(s.url);
    const rawExchange = (text: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(text));
        const chunks: Buffer[] = [];
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
      });
    const badHeader = await rawExchange('GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\rb\r\n\r\n');
    expect(badHeader).toMatch(/^HTTP\/1\.1 400 /);
    expect(badHeader).toContain(
      '{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,"code":"malformed_request"}}',
    );
    const big = await rawRequest(`${s.url}/health`, { headers: { 'x-pad': 'a'.repeat(4096) } });
    expect(big.status).toBe(431);
    expect(json(big)).toMatchObject({ error: { code: 'headers_too_large' } });
    const encoded = await postJson(`${s.url}/v1/chat/%2f%2fadmin`, chat);
    expect(encoded.status).toBe(404);
    expect(json(encoded)).toMatchObject({ error: { code: 'route_not_found', type: 'not_found' } });
    const posted = await postJson(`${s.url}/v1/attestation/report`, {});
    expect(posted.status).toBe(405);
    expect(json(posted)).toMatchObject({ error: { code: 'method_not_allowed' } });
    const twoNonces = await rawRequest(
      `${s.url}/attestation/report?nonce=${'aa'.repeat(32)}&nonce=${'bb'.repeat(32)}`,
    );
    expect(twoNonces.status).toBe(400);
    expect((await rawRequest(`${s.url}/health`)).status).toBe(200);
  });
});
