/**
 * A provider that declares a Content-Length over maxAnswerBytes and then keeps the connection open:
 * the gateway answers 502 upstream_too_large at once and closes that connection. Left unread, each
 * such answer held a pooled socket (keep-alive agent, maxSockets 64): 64 of them filled the pool and
 * every later request, honest or not, waited for a socket with no answer at all (the header deadline
 * did not reach a request still queued for a connection).
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, postJson, rawRequest } from '../e2e/harness.js';
import type { TestGateway } from './harness.js';
import { caseOf, type HostileStack, startHostileStack } from './hostile-provider.js';

let stack: HostileStack;
let gateway: TestGateway;
/** The connections on which the provider declared 100 MB. */
const lied: import('node:net').Socket[] = [];

/** A request's status, or 'hung' when none came within `ms`. */
const within = async (p: Promise<{ status: number }>, ms: number): Promise<number | 'hung'> =>
  Promise.race([p.then((r) => r.status), new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms))]);

beforeAll(async () => {
  stack = await startHostileStack({ maxAnswerBytes: 1024 * 1024, deadlines: { headersMs: 3000 } });
  gateway = stack.gateway;
  stack.hostile.raw = (req, body, socket) => {
    if (req.url?.startsWith('/v1/chat/completions') && caseOf(body) === 'drip') {
      // A stream that never ends: one event every 100 ms keeps it alive past every idle deadline.
      socket.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n',
      );
      const event =
        'data: {"id":"chatcmpl-drip","object":"chat.completion.chunk","model":"m","choices":[]}\n\n';
      const timer = setInterval(() => socket.write(`${event.length.toString(16)}\r\n${event}\r\n`), 100);
      socket.on('close', () => clearInterval(timer));
      return true;
    }
    if (req.url === '/v1/models?huge') {
      lied.push(socket);
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{');
      return true;
    }
    if (!req.url?.startsWith('/v1/chat/completions') || caseOf(body) !== 'huge') return false;
    // Declares 100 MB, sends one byte, and never more (nor closes).
    lied.push(socket);
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{');
    return true;
  };
}, 30_000);
afterAll(() => stack.close());

const chat = (user: string) =>
  postJson(`${gateway.url}/v1/chat/completions`, {
    model: 'm',
    user,
    messages: [{ role: 'user', content: 'hi' }],
  });

describe('a declared Content-Length over maxAnswerBytes', () => {
  it('an honest answer is verified first (the setup works)', async () => {
    const res = await chat('ok');
    expect(res.status).toBe(200);
    expect(res.headers['x-teeml-verification']).toBe('verified');
  });

  it('is refused 502, and the provider connection is closed (not left held in the pool)', async () => {
    const res = await chat('huge');
    expect(res.status).toBe(502);
    expect(json<{ error: { code: string } }>(res).error.code).toBe('upstream_too_large');
    await new Promise((r) => setTimeout(r, 500));
    expect(lied.map((s) => s.destroyed)).toEqual([true]);
  });

  it('the same for an unsigned answer (GET /v1/models): 502, and its connection closed', async () => {
    const res = await rawRequest(`${gateway.url}/v1/models?huge`);
    expect(res.status).toBe(502);
    await new Promise((r) => setTimeout(r, 500));
    expect(lied.at(-1)?.destroyed).toBe(true);
  });

  it('64 such answers do not starve the next honest request', async () => {
    const refused = await Promise.all(Array.from({ length: 64 }, () => within(chat('huge'), 8000)));
    const honest = await within(chat('ok'), 8000);
    // 64 x 502 at once, then 200 (header deadline 3 s: at worst 504 after 3 s, never no answer).
    expect({ refused: refused.filter((s) => s !== 502), honest }).toEqual({ refused: [], honest: 200 });
  }, 30_000);

  it('with every pooled connection busy (64 streams under way), a queued request still gets its header deadline', async () => {
    const streams = Array.from({ length: 64 }, () => {
      const req = request(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      });
      req.on('error', () => undefined);
      req.end(
        JSON.stringify({
          model: 'm',
          user: 'drip',
          stream: true,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      );
      return req;
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      // The header deadline (3 s) aborts it while it waits for a connection: 504, not silence.
      expect(await within(chat('ok'), 8000)).toBe(504);
      expect(Date.now() - started).toBeLessThan(6000);
    } finally {
      for (const req of streams) req.destroy();
    }
  }, 30_000);
});
