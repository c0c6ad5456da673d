import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CallHandle } from '../../src/gateway/in-flight-calls.js';
import { streamBody } from '../../src/gateway/stream-body.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Exchange, type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * The gateway is the engine behind an HTTP listener: a stream's verdict, settled inside the engine,
 * must still reach the user as the `X-TeeML-Verification` trailer (docs/protocol.md), and the body
 * the engine hands out is pull-based with cancellation.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway | undefined;

beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
});
afterEach(async () => {
  mitm.mutate = () => undefined;
  await gateway?.close();
  gateway = undefined;
});

/** A streamed chat through node's own client: the header, the body and the trailers. */
const streamed = (url: string) =>
  new Promise<{ header: unknown; body: string; trailer: unknown; declared: unknown }>((resolve, reject) => {
    const body = JSON.stringify({
      model: 'teeml-demo',
      messages: [{ role: 'user', content: SECRET_MARKERS.prompt }],
      max_tokens: 4,
      stream: true,
    });
    const req = request(
      `${url}/v1/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () =>
          resolve({
            header: res.headers['x-teeml-verification'],
            declared: res.headers['trailer'],
            body: text,
            trailer: res.trailers['x-teeml-verification'],
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });

const isAnswer = (e: Exchange) =>
  e.method === 'POST' && e.path.includes('/chat/completions') && e.status === 200;

describe("a stream's verdict through the gateway's listener", () => {
  it('verified: header pending, the held [DONE], trailer verified', async () => {
    gateway = await startTestGateway(mitm.url);
    const answer = await streamed(gateway.url);
    expect(answer.header).toBe('pending');
    expect(answer.declared).toBe('X-TeeML-Verification');
    expect(answer.body.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(answer.trailer).toBe('verified');
  });

  it('one byte changed: an error event, trailer failed: signature.stream.text', async () => {
    gateway = await startTestGateway(mitm.url);
    mitm.mutate = (e) => {
      if (!isAnswer(e)) return undefined;
      const out = Buffer.from(e.body);
      out[e.body.indexOf('demo') + 3] = 'a'.charCodeAt(0);
      return { ...e, body: out };
    };
    const answer = await streamed(gateway.url);
    expect(answer.body).toContain('event: error');
    expect(answer.body).not.toContain('[DONE]');
    expect(answer.trailer).toBe('failed: signature.stream.text');
  });
});

describe('the engine stream body', () => {
  it('a write waits while the reader lags, and resumes when it reads', async () => {
    const call = new CallHandle();
    const { body, sink, verdict } = streamBody(call, 60_000);
    let written = false;
    const write = sink.write(new Uint8Array(64 * 1024)).then(() => {
      written = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(written).toBe(false);
    const reader = body.getReader();
    expect((await reader.read()).value?.byteLength).toBe(64 * 1024);
    await write;
    expect(written).toBe(true);
    sink.end('verified', 'data: [DONE]\n\n');
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: [DONE]\n\n');
    expect((await reader.read()).done).toBe(true);
    expect(await verdict).toBe('verified');
  });

  it('a reader that cancels aborts the provider call and frees a waiting write', async () => {
    const call = new CallHandle();
    const { body, sink, verdict } = streamBody(call, 60_000);
    const write = sink.write(new Uint8Array(128 * 1024));
    await body.cancel();
    await write;
    expect(call.aborted).toBe(true);
    expect(sink.gone).toBe(true);
    expect(await verdict).toBe('cancelled');
  });

  it('a reader that takes nothing for the idle deadline is gone: the provider call is aborted', async () => {
    const call = new CallHandle();
    const { body, sink, verdict } = streamBody(call, 100);
    await sink.write(new Uint8Array(128 * 1024));
    expect(call.aborted).toBe(true);
    expect(sink.gone).toBe(true);
    expect(await verdict).toBe('cancelled');
    await expect(body.getReader().read()).rejects.toThrow(/took nothing/);
  });
});
