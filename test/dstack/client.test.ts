import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DstackClient } from '../../src/dstack/index.js';
import { sharedFixtures } from '../paths.js';
import { rejection } from '../rejection.js';
import { type FakeAgent, sendJson, startFakeAgent, tempSocketPath } from './agent-server.js';
import { readQuoteFixture } from './fixtures.js';

let agent: FakeAgent | undefined;
afterEach(async () => {
  await agent?.close();
  agent = undefined;
});

describe('DstackClient against a real HTTP server on a unix socket', () => {
  it('GetQuote: sends hex report_data with a byte-correct Content-Length and returns the fixture', async () => {
    const fixture = readQuoteFixture('dstack/verifier-fixtures/quote-report.json');
    const raw = readFileSync(sharedFixtures('dstack/verifier-fixtures/quote-report.json'));
    agent = await startFakeAgent((_req, res) => sendJson(res, raw));
    const client = new DstackClient({ socketPath: agent.socketPath, timeoutMs: 5000 });
    const reportData = new Uint8Array(64).fill(0xab);
    const answer = await client.getQuote(reportData);
    expect(answer.quote).toBe(fixture.quote);
    expect(answer.event_log).toBe(fixture.event_log);
    expect(answer.vm_config).toBe(fixture.vm_config);
    const req = agent.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/GetQuote');
    expect(req.body.toString('utf8')).toBe(JSON.stringify({ report_data: 'ab'.repeat(64) }));
    expect(req.headers['content-length']).toBe(String(req.body.length));
    expect(req.headers['content-type']).toBe('application/json');
  });

  it('Info: decodes a UTF-8 body with non-ASCII text exactly', async () => {
    const raw = readFileSync(sharedFixtures('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json'));
    agent = await startFakeAgent((_req, res) => sendJson(res, raw));
    const info = await new DstackClient({ socketPath: agent.socketPath }).info();
    const expected = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    expect(info).toEqual(expected);
    expect(agent.requests[0]!.path).toBe('/Info');
    expect(agent.requests[0]!.body.toString()).toBe('{}');
  });

  it('GetKey: sends path and purpose (multi-byte path counted in bytes) and decodes a 32-byte key', async () => {
    agent = await startFakeAgent((_req, res) =>
      sendJson(res, { key: '11'.repeat(32), signature_chain: ['22'.repeat(65)] }),
    );
    const key = await new DstackClient({ socketPath: agent.socketPath }).getKey('app/ключ', 'signing');
    expect(Buffer.from(key.key).toString('hex')).toBe('11'.repeat(32));
    expect(key.signatureChain).toHaveLength(1);
    const req = agent.requests[0]!;
    expect(JSON.parse(req.body.toString('utf8'))).toEqual({ path: 'app/ключ', purpose: 'signing' });
    expect(req.headers['content-length']).toBe(String(req.body.length));
    expect(req.body.length).toBeGreaterThan(req.body.toString('utf8').length);
  });

  it('GetKey: a key of the wrong length is rejected without echoing it', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, { key: 'cd'.repeat(31), signature_chain: [] }));
    const error = await rejection(new DstackClient({ socketPath: agent.socketPath }).getKey('p', 'signing'));
    expect(error.status).toBe(503);
    expect(error.code).toBe('dstack_bad_key');
    expect(error.message).toMatch(/GetKey.*32 bytes.*length=31/);
    expect(error.message).not.toContain('cdcd');
  });

  it('a missing socket is 503 dstack_unavailable naming the operation', async () => {
    const { path, cleanup } = tempSocketPath('absent.sock');
    try {
      const error = await rejection(new DstackClient({ socketPath: path }).getQuote(new Uint8Array(64)));
      expect(error.status).toBe(503);
      expect(error.code).toBe('dstack_unavailable');
      expect(error.message).toBe('dstack GetQuote failed: guest agent socket not found');
    } finally {
      cleanup();
    }
  });

  it('a server that never answers hits the deadline, and the request is closed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let arrived: () => void = () => undefined;
      const reached = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      let closed: Promise<void> = Promise.resolve();
      agent = await startFakeAgent((_req, res) => {
        // Never answers; the client giving up must close the connection.
        closed = new Promise((resolve) => res.once('close', () => resolve()));
        arrived();
      });
      const pending = rejection(
        new DstackClient({ socketPath: agent.socketPath, timeoutMs: 20 }).getQuote(new Uint8Array(64)),
      );
      await reached;
      await vi.advanceTimersByTimeAsync(20);
      const error = await pending;
      expect(error.status).toBe(503);
      expect(error.code).toBe('dstack_timeout');
      expect(error.message).toMatch(/GetQuote.*20 ms/);
      await closed;
      expect(agent.requests).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an AbortSignal cancels the call', async () => {
    agent = await startFakeAgent(() => {
      /* never answers */
    });
    const controller = new AbortController();
    const pending = new DstackClient({ socketPath: agent.socketPath, timeoutMs: 5000 }).info(
      controller.signal,
    );
    controller.abort(new Error('shutting down'));
    const error = await rejection(pending);
    expect(error.code).toBe('dstack_aborted');
    expect(error.message).toBe('dstack Info failed: aborted');
  });

  it('an already aborted signal rejects before connecting', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, {}));
    const error = await rejection(
      new DstackClient({ socketPath: agent.socketPath }).info(AbortSignal.abort()),
    );
    expect(error.code).toBe('dstack_aborted');
    expect(agent.requests).toHaveLength(0);
  });

  it('garbage instead of JSON is a clear error', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, Buffer.from('<html>oops</html>')));
    const error = await rejection(
      new DstackClient({ socketPath: agent.socketPath }).getQuote(new Uint8Array(64)),
    );
    expect(error.code).toBe('dstack_bad_response');
    expect(error.message).toBe('dstack GetQuote failed: response is not valid JSON (17 bytes)');
  });

  it('JSON of the wrong shape names the field', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, { quote: 'xyz', event_log: '[]' }));
    const error = await rejection(
      new DstackClient({ socketPath: agent.socketPath }).getQuote(new Uint8Array(64)),
    );
    expect(error.code).toBe('dstack_bad_response');
    expect(error.message).toMatch(/unexpected response shape \(quote: /);
  });

  it('a non-200 answer is 503 without the body', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, 'internal detail', 500));
    const error = await rejection(new DstackClient({ socketPath: agent.socketPath }).info());
    expect(error.code).toBe('dstack_unavailable');
    expect(error.message).toBe('dstack Info failed: guest agent answered HTTP 500');
  });

  it('caps the response size, with and without a Content-Length', async () => {
    agent = await startFakeAgent((req, res) => {
      const big = Buffer.alloc(4096, 0x20);
      if (req.path === '/Info') {
        sendJson(res, big);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }); // chunked
        res.write(big);
        res.end(big);
      }
    });
    const client = new DstackClient({ socketPath: agent.socketPath, maxResponseBytes: 1024 });
    const declared = await rejection(client.info());
    expect(declared.code).toBe('dstack_response_too_large');
    const chunked = await rejection(client.getQuote(new Uint8Array(64)));
    expect(chunked.code).toBe('dstack_response_too_large');
    expect(chunked.message).toBe('dstack GetQuote failed: response exceeds 1024 bytes');
  });

  it('refuses more than 64 bytes of report_data before calling', async () => {
    agent = await startFakeAgent((_req, res) => sendJson(res, {}));
    await expect(
      new DstackClient({ socketPath: agent.socketPath }).getQuote(new Uint8Array(65)),
    ).rejects.toThrow(RangeError);
    expect(agent.requests).toHaveLength(0);
  });
});
