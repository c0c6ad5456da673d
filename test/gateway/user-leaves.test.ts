/**
 * A user who hangs up aborts the provider call (issue 21 item 11, and the engine's call handles of
 * issue 23): through the gateway and a real sidecar to an upstream that never finishes, the upstream
 * sees its request closed soon after the user's goes, whether the answer's headers had come (a
 * stream) or not (a JSON answer the model is still writing).
 */
import { type ClientRequest, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from '../e2e/harness.js';
import { startTestGateway, type TestGateway } from './harness.js';

let upstream: TestUpstream;
let sidecar: TestSidecar;
let gateway: TestGateway;
/** When each upstream answer's connection closed, by the request's `case`. */
const closed = new Map<string, number>();
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => {
    const kase = (JSON.parse(body.toString()) as { user?: string }).user ?? '';
    res.on('close', () => closed.set(kase, Date.now()));
    if (kase === 'json') return; // the model never finishes
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const timer = setInterval(() => {
      res.write(
        `data: {"id":"chatcmpl-leave${kase}","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"t${i++}"}}]}\n\n`,
      );
    }, 20);
    timers.add(timer);
    res.on('close', () => clearInterval(timer));
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
  gateway = await startTestGateway(sidecar.url);
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  await gateway.close();
  await sidecar.close();
  await upstream.close();
});

/** Sends a chat as `kase`; resolves with the request once `when` happened (headers, or at once). */
const send = (kase: string, stream: boolean): ClientRequest => {
  const body = JSON.stringify({
    model: 'm',
    user: kase,
    stream,
    messages: [{ role: 'user', content: 'hi' }],
  });
  const req = request(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
  });
  req.on('error', () => undefined);
  req.end(body);
  return req;
};

const closedWithin = async (kase: string, ms: number): Promise<boolean> => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (closed.has(kase)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return closed.has(kase);
};

describe('a user who hangs up', () => {
  it('mid-stream: the provider call is aborted, and the upstream request closes', async () => {
    const req = send('stream', true);
    await new Promise<void>((resolve) => req.once('response', () => resolve()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed.has('stream')).toBe(false);
    const left = Date.now();
    req.destroy();
    expect(await closedWithin('stream', 3000)).toBe(true);
    expect((closed.get('stream') ?? 0) - left).toBeLessThan(3000);
  });

  it('before the answer: the provider call is aborted, and the upstream request closes', async () => {
    const req = send('json', false);
    const until = Date.now() + 3000;
    while (upstream.requests.length < 2 && Date.now() < until)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(upstream.requests.some((r) => r.body.includes('"json"'))).toBe(true);
    expect(closed.has('json')).toBe(false);
    req.destroy();
    expect(await closedWithin('json', 3000)).toBe(true);
  });
});
