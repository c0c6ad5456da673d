/**
 * Answers cut or stalled on the node-message path (upstream.ts, readNodeStream): a chunked JSON answer
 * whose connection closes before its terminating chunk, a Content-Length answer cut short, a stall
 * right after the headers: an OpenAI-shaped 502 `upstream_incomplete` / 504 `upstream_timeout` with
 * a content-length, the provider's failure (`failed: upstream.*`), never verified, never the
 * gateway's 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, postJson } from '../e2e/harness.js';
import { caseOf, chatAnswer, type HostileStack, startHostileStack } from './hostile-provider.js';

let stack: HostileStack;

beforeAll(async () => {
  stack = await startHostileStack({ deadlines: { idleMs: 1000 } });
  stack.hostile.raw = (req, body, socket) => {
    const kase = caseOf(body);
    if (!req.url?.startsWith('/v1/chat/completions') || (!kase.startsWith('cut-') && kase !== 'stall'))
      return false;
    const answer = chatAnswer('chatcmpl-cut');
    const json = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n';
    const sse = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n';
    if (kase === 'cut-chunked')
      socket.write(`${json}transfer-encoding: chunked\r\n\r\n${answer.length.toString(16)}\r\n${answer}\r\n`);
    if (kase === 'cut-length') socket.write(`${json}content-length: ${answer.length + 10}\r\n\r\n${answer}`);
    if (kase === 'cut-stream')
      socket.write(
        `${sse}transfer-encoding: chunked\r\n\r\n${(answer.length + 8).toString(16)}\r\ndata: ${answer}\n\n\r\n`,
      );
    if (kase === 'stall') {
      socket.write(`${json}content-length: ${answer.length}\r\n\r\n`);
      return true;
    }
    setTimeout(() => socket.destroy(), 100);
    return true;
  };
}, 30_000);
afterAll(() => stack.close());

const chat = (user: string, stream = false) =>
  postJson(`${stack.gateway.url}/v1/chat/completions`, {
    model: 'm',
    user,
    stream,
    messages: [{ role: 'user', content: 'hi' }],
  });

describe('an answer cut or stalled on the node path', () => {
  for (const [kase, status, code] of [
    ['cut-chunked', 502, 'upstream_incomplete'],
    ['cut-length', 502, 'upstream_incomplete'],
    ['stall', 504, 'upstream_timeout'],
  ] as const)
    it(`${kase}: ${status} in the OpenAI shape with a content-length, not verified`, async () => {
      const res = await chat(kase);
      const body = json<{ error?: { code?: string } }>(res);
      expect(res.headers['x-teeml-verification']).toBe(`failed: upstream.${code.slice(9)}`);
      expect(res.headers['content-length']).toBe(String(res.body.length));
      expect(body.error?.code).toBeDefined();
      if (code !== undefined) expect(body.error?.code).toBe(code);
      expect(res.status).toBe(status);
    });

  it('cut-stream: the trailer verdict is not verified', async () => {
    const res = await chat('cut-stream', true);
    expect(res.headers['x-teeml-verification']).not.toBe('verified');
  });
});
