import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedFetch } from '../../src/client/index.js';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway } from './harness.js';

/**
 * The content type is not signed. A man in the middle between the gateway (or the in-process client)
 * and the sidecar relabels a signed answer (`application/json-seq`, `text/plain` on a stream) and
 * swaps its body: the openai SDK ignores x-teeml-verification, parses any `*json*` type as JSON and a
 * `stream: true` answer as a stream whatever its label. Only media routes may pass unsigned
 * (proxy.ts `unsignedMedia`), so each of these is verified, and fails. Before, every route but
 * chat, completions and embeddings passed them on as `unsigned` answers.
 */ let upstream: TestUpstream;
let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;

const FORGED = 'FORGED BY THE MAN IN THE MIDDLE';

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => {
    const stream = body.toString().includes('"stream":true');
    const id = `resp_${Math.random().toString(36).slice(2)}`;
    const obj = {
      id,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      model: 'teeml-demo',
      status: 'completed',
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'genuine' }] }],
    };
    if (stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ type: 'response.output_text.delta', delta: 'genuine', id })}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
  mitm = await startMitm(sidecar.url);
  gateway = await startTestGateway(mitm.url);
});

afterAll(async () => {
  await gateway.close();
  await mitm.close();
  await sidecar.close();
  await upstream.close();
});

const forgeJson = (): void => {
  mitm.mutate = (x) => {
    if (x.method !== 'POST' || x.status !== 200) return undefined;
    const forged = {
      id: 'resp_forged',
      object: 'response',
      model: 'teeml-demo',
      output: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: FORGED }] }],
      results: [{ flagged: false }],
    };
    return {
      ...x,
      headers: { ...x.headers, 'content-type': 'application/json-seq' },
      body: Buffer.from(JSON.stringify(forged)),
    };
  };
};

const forgeStream = (anyStatus = false): void => {
  mitm.mutate = (x) => {
    if (x.method !== 'POST' || (x.status !== 200 && !anyStatus)) return undefined;
    const event = { type: 'response.output_text.delta', delta: FORGED };
    const chat = {
      id: 'c',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: FORGED } }],
    };
    const body = `data: ${JSON.stringify(x.path.includes('chat') ? chat : event)}\n\ndata: [DONE]\n\n`;
    const headers = { ...x.headers, 'content-type': 'text/plain' };
    return { ...x, status: 200, headers, body: Buffer.from(body) };
  };
};

describe('a relabelled signed answer must not reach the SDK as an answer', () => {
  it('gateway, /v1/responses JSON relabelled application/json-seq', async () => {
    forgeJson();
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const got = await client.responses
      .create({ model: 'teeml-demo', input: 'hi' })
      .then((r) => JSON.stringify(r))
      .catch((e: Error) => `refused: ${e.message}`);
    expect(got).not.toContain(FORGED);
  });

  it('gateway, /v1/moderations JSON relabelled application/json-seq', async () => {
    forgeJson();
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const got = await client.moderations
      .create({ model: 'teeml-demo', input: 'hi' })
      .then((r) => JSON.stringify(r))
      .catch((e: Error) => `refused: ${e.message}`);
    expect(got).not.toContain('"flagged":false');
  });

  it('gateway, /v1/responses stream relabelled text/plain', async () => {
    forgeStream();
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'x', maxRetries: 0 });
    let seen = '';
    try {
      const stream = await client.responses.create({ model: 'teeml-demo', input: 'hi', stream: true });
      for await (const ev of stream) seen += JSON.stringify(ev);
    } catch (e) {
      seen += `refused: ${(e as Error).message}`;
    }
    expect(seen).not.toContain(FORGED);
  });

  it('gateway, chat stream on /v1//chat/completions (a base URL ending in /v1/) relabelled text/plain', async () => {
    // The sidecar answers 404 to `//`; the man in the middle answers 200 text/plain instead.
    forgeStream(true);
    // Some tools join a base URL ending in '/' with '/chat/completions'.
    const res = await fetch(`${gateway.url}/v1//chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'teeml-demo',
        stream: true,
        messages: [{ role: 'user', content: 'hi' }],
      }),
    });
    const text = await res.text();
    expect({
      status: res.status,
      v: res.headers.get('x-teeml-verification'),
      forged: text.includes(FORGED),
    }).toEqual(expect.objectContaining({ forged: false }));
  });

  it('in-process createVerifiedFetch, /v1/responses stream relabelled text/plain', async () => {
    forgeStream();
    const vf = await createVerifiedFetch({
      provider: mitm.url,
      allowSimulated: true,
      // With E2EE on (the default, required) /v1/responses is refused before it is sent: that held.
      e2ee: false,
      policy: { offline: true, requireE2ee: false },
    });
    try {
      const client = new OpenAI({
        baseURL: 'http://teeml.invalid/v1',
        apiKey: 'x',
        fetch: vf,
        maxRetries: 0,
      });
      let seen = '';
      try {
        const stream = await client.responses.create({ model: 'teeml-demo', input: 'hi', stream: true });
        for await (const ev of stream) seen += JSON.stringify(ev);
      } catch (e) {
        seen += `refused: ${(e as Error).message}`;
      }
      expect(seen).not.toContain(FORGED);
    } finally {
      await vf.close();
    }
  });
});
