import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createE2eeClient } from '../../src/e2ee/index.js';
import { DirectLink, nearE2eeClient } from '../../src/gateway/index.js';
import { json, postJson, startTestSidecar, startUpstream, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  type Exchange,
  type Mitm,
  startMitm,
  startTestGateway,
  type TestGateway,
  testPolicy,
} from './harness.js';

/**
 * The gateway's answer path under attack (issue 21 items 1, 2, 4, 5, 11, 13): a man in the middle
 * between the gateway and real sidecars, the official openai SDK as the user's tool.
 */
let sidecar: TestSidecar;
let other: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway | undefined;

beforeAll(async () => {
  [sidecar, other] = await Promise.all([startTestSidecar(), startTestSidecar()]);
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await Promise.all([sidecar.close(), other.close()]);
});
afterEach(async () => {
  mitm.mutate = () => undefined;
  mitm.route = (path) => ({ target: sidecar.url, path });
  mitm.rewriteHeaders = (_path, headers) => headers;
  await gateway?.close();
  gateway = undefined;
});

const start = async (provider: string, extra: Parameters<typeof startTestGateway>[1] = {}) => {
  gateway = await startTestGateway(provider, extra);
  return gateway;
};
const client = (g: TestGateway, maxRetries = 0) =>
  new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries });
const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];
const isAnswer = (e: Exchange) =>
  e.method === 'POST' && e.path.includes('/chat/completions') && e.status === 200;
const chatPosts = () =>
  mitm.seen.filter((s) => s.method === 'POST' && s.path.includes('/chat/completions')).length;

/** Reads a stream to its end: the content seen, and the error it ended with (undefined: ended normally). */
const drain = async (stream: AsyncIterable<OpenAI.ChatCompletionChunk>) => {
  let text = '';
  try {
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    return { text, error: undefined };
  } catch (error) {
    return { text, error: error as InstanceType<typeof OpenAI.APIError> };
  }
};

const until = async (what: () => boolean, ms = 5000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
};

const INJECTED = 'INJECTED-by-the-man-in-the-middle';
const injectedEvent = `data: {"id":"chatcmpl-x","object":"chat.completion.chunk","model":"teeml-demo","choices":[{"index":0,"delta":{"content":"${INJECTED}"}}]}\n\n`;

describe('stream framing (item 1)', () => {
  for (const [name, change] of [
    ['data: [DONE]x after injected text', (body: string) => `${injectedEvent}data: [DONE]x\n\n${body}`],
    ['an event after [DONE]', (body: string) => `${body}${injectedEvent}`],
    ['an event: field line', (body: string) => `event: message\n${body}`],
  ] as const) {
    it(`${name}: the openai SDK raises, never ends normally with it`, async () => {
      // Released as they arrive (the opt-in): the framing check is what stops the SDK ending normally.
      const g = await start(mitm.url, { policy: testPolicy({ releaseUnverifiedStreams: true }) });
      mitm.mutate = (e) =>
        isAnswer(e) ? { ...e, body: Buffer.from(change(e.body.toString('latin1')), 'latin1') } : undefined;
      const stream = await client(g).chat.completions.create({ model: 'teeml-demo', messages, stream: true });
      const { error } = await drain(stream);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect(error?.message).toContain('stream.framing');
      expect(g.circuit()).toMatchObject({ open: true, check: 'stream.framing' });
    });
  }

  it('held (the default over http): the injected text never reaches the tool', async () => {
    const g = await start(mitm.url);
    mitm.mutate = (e) =>
      isAnswer(e)
        ? {
            ...e,
            body: Buffer.from(`${injectedEvent}data: [DONE]x\n\n${e.body.toString('latin1')}`, 'latin1'),
          }
        : undefined;
    const stream = await client(g).chat.completions.create({ model: 'teeml-demo', messages, stream: true });
    const { text, error } = await drain(stream);
    expect(text).toBe('');
    expect(error?.message).toContain('stream.framing');
  });
});

describe('an answer sealed to another key (item 4)', () => {
  const swapClientKey = () => {
    mitm.rewriteHeaders = (_path, headers) => {
      const modelKey = headers['x-model-pub-key'];
      if (typeof modelKey !== 'string') return headers;
      const attacker = createE2eeClient({ algo: 'ecdsa', modelPublicKey: modelKey });
      return { ...headers, 'x-client-pub-key': attacker.headers['X-Client-Pub-Key'] };
    };
  };

  it('JSON: a failed verification, not retried, no receipt, circuit open', async () => {
    const g = await start(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
    swapClientKey();
    const before = chatPosts();
    // The SDK's default retries: x-should-retry false must stop them.
    const error = await client(g, 2)
      .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    expect(error).toMatchObject({ status: 502, code: 'verification_failed' });
    expect(error?.headers?.get('x-teeml-verification')).toBe('failed: e2ee.answer');
    expect(error?.headers?.get('x-should-retry')).toBe('false');
    expect(chatPosts() - before).toBe(1);
    expect(g.counters).toMatchObject({ verified: 0, failed: 1 });
    expect(g.receipts.recent).toHaveLength(0);
    expect(g.circuit()).toMatchObject({ open: true, check: 'e2ee.answer' });
  });

  it('stream: the SDK raises e2ee.answer, nothing decrypted reaches it', async () => {
    const g = await start(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
    swapClientKey();
    const stream = await client(g).chat.completions.create({ model: 'teeml-demo', messages, stream: true });
    const { text, error } = await drain(stream);
    expect(text).toBe('');
    expect(error?.message).toContain('e2ee.answer');
    expect(g.counters).toMatchObject({ verified: 0, failed: 1 });
    expect(g.circuit()).toMatchObject({ open: true, check: 'e2ee.answer' });
  });
});

describe('replays and answers for another model (item 5)', () => {
  it('the same signed answer served twice: answer.replayed', async () => {
    const g = await start(mitm.url);
    let kept: Exchange | undefined;
    mitm.mutate = (e) => {
      if (!isAnswer(e)) return undefined;
      kept ??= e;
      return kept;
    };
    const ask = () =>
      client(g).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }).withResponse();
    expect((await ask()).response.headers.get('x-teeml-verification')).toBe('verified');
    const error = await ask().then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(error?.headers?.get('x-teeml-verification')).toBe('failed: answer.replayed');
    expect(g.receipts.recent).toHaveLength(1);
  });

  it('0G mode (request hash not comparable): a kept answer served for another request is refused', async () => {
    // A link like the 0G one: the broker re-serializes requests, so the request hash proves nothing.
    const link = new DirectLink({ provider: mitm.url });
    Object.defineProperty(link, 'requestHashComparable', { value: false });
    let offset = 0;
    const g = await start(mitm.url, { link, now: () => Date.now() + offset });
    let kept: Exchange | undefined;
    mitm.mutate = (e) => {
      if (!isAnswer(e)) return undefined;
      kept ??= e;
      return kept;
    };
    const ask = (content: string) =>
      client(g)
        .chat.completions.create({
          model: 'teeml-demo',
          messages: [{ role: 'user', content }],
          max_tokens: 4,
        })
        .withResponse()
        .then(
          (r) => r.response.headers.get('x-teeml-verification'),
          (e: unknown) => (e as InstanceType<typeof OpenAI.APIError>).headers?.get('x-teeml-verification'),
        );
    expect(await ask('first question')).toBe('verified');
    expect(await ask('another question')).toBe('failed: answer.replayed');
    // Later than the window, the same kept answer is refused for its age before its id is looked up.
    await g.attestNow();
    offset = 10 * 60 * 1000;
    expect(await ask('a third question')).toBe('failed: answer.created');
  });

  it("a signed answer that names another model than the request's: answer.model", async () => {
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'chatcmpl-othermodel000000000000',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: 'a-cheaper-model',
          choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
        }),
      );
    });
    const cheap = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const g = await start(cheap.url);
      const res = await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
      expect(res.status).toBe(502);
      expect(res.headers['x-teeml-verification']).toBe('failed: answer.model');
    } finally {
      await gateway?.close();
      gateway = undefined;
      await cheap.close();
      await upstream.close();
    }
  });
});

describe('availability (item 11)', () => {
  it('a provider that trickles its report does not stall attestation: report.fetch at the deadline', async () => {
    const trickle = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{');
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(trickle.address() as AddressInfo).port}`;
    try {
      const t0 = Date.now();
      const g = await start(url, { deadlines: { reportMs: 500 } });
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(g.attestor.current).toMatchObject({ ok: false, failedCheck: 'report.fetch' });
      expect(g.unreachableSince()).toBeGreaterThan(0);
    } finally {
      await gateway?.close();
      gateway = undefined;
      trickle.closeAllConnections();
      trickle.close();
    }
  }, 15_000);

  it('a provider that never answers: 504 upstream_timeout at the headers deadline, circuit closed', async () => {
    const upstream = await startUpstream(() => undefined);
    const silent = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const g = await start(silent.url, { deadlines: { headersMs: 300 } });
      const t0 = Date.now();
      const res = await postJson(`${g.url}/v1/chat/completions`, { model: 'm', messages });
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(res.status).toBe(504);
      expect(json<{ error: { code: string } }>(res).error.code).toBe('upstream_timeout');
      expect(g.circuit().open).toBe(false);
    } finally {
      await gateway?.close();
      gateway = undefined;
      await upstream.close();
      await silent.close();
    }
  });

  it('a stream that stalls mid-answer ends at the idle deadline (504 upstream_timeout), circuit closed', async () => {
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        'data: {"id":"chatcmpl-stall000000000000000000","object":"chat.completion.chunk","choices":[]}\n\n',
      );
    });
    const stalled = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const g = await start(stalled.url, { deadlines: { idleMs: 300 } });
      const t0 = Date.now();
      const stream = await client(g).chat.completions.create({ model: 'm', messages, stream: true });
      const { error } = await drain(stream);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(error).toMatchObject({ code: 'upstream_timeout' });
      expect(g.circuit().open).toBe(false);
    } finally {
      await gateway?.close();
      gateway = undefined;
      // The upstream first: the sidecar's graceful close waits for its stalled call.
      await upstream.close();
      await stalled.close();
    }
  });

  it('answer bytes held across requests are bounded: 429 gateway_busy beyond --max-held-bytes', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const big = 'x'.repeat(30_000);
    let n = 0;
    const upstream = await startUpstream((_req, _body, res) => {
      n += 1;
      const id = `chatcmpl-held${n}${'0'.repeat(20)}`;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${big}"}}]}\n\n`,
      );
      void released.then(() => res.end('data: [DONE]\n\n'));
    });
    const slow = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const g = await start(slow.url, { maxHeldBytes: 50_000 });
      const first = await client(g).chat.completions.create({ model: 'm', messages, stream: true });
      expect(await until(() => n === 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
      const second = await client(g).chat.completions.create({ model: 'm', messages, stream: true });
      const busy = drain(second);
      expect(await until(() => n === 2)).toBe(true);
      const { error } = await busy;
      expect(error).toMatchObject({ code: 'gateway_busy' });
      release();
      const ok = await drain(first);
      expect(ok.error).toBeUndefined();
      expect(ok.text).toBe(big);
      expect(g.circuit().open).toBe(false);
    } finally {
      release();
      await gateway?.close();
      gateway = undefined;
      await slow.close();
      await upstream.close();
    }
  });
});

describe('a provider that restarted with a new key (item 13)', () => {
  const expectSignerMessage = async (g: TestGateway) => {
    // Re-attested at once, not at the 10-minute interval.
    expect(await until(() => g.attestor.current?.failedCheck === 'gateway.signer-pinned')).toBe(true);
    const res = await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    expect(res.status).toBe(503);
    const message = json<{ error: { message: string } }>(res).error.message.toLowerCase();
    expect(message).toContain(sidecar.signingAddress.toLowerCase());
    expect(message).toContain(other.signingAddress.toLowerCase());
    expect(message).toContain('allowsignerchange');
    expect(message).toContain('restart the gateway');
  };

  it('an answer signed by an unknown key triggers re-attestation; the message names both keys', async () => {
    const g = await start(mitm.url);
    mitm.route = (path) => ({ target: other.url, path });
    await expect(
      client(g).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 502 });
    await expectSignerMessage(g);
  });

  it("E2EE: the provider's e2ee_model_key_mismatch triggers re-attestation", async () => {
    const g = await start(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
    mitm.route = (path) => ({ target: other.url, path });
    await expect(
      client(g).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 400, code: 'e2ee_model_key_mismatch' });
    await expectSignerMessage(g);
  });

  it('a provider that is down shows as unreachable since a time, not verified', async () => {
    const g = await start(mitm.url);
    expect(g.unreachableSince()).toBeUndefined();
    mitm.route = (path) => ({ target: 'http://127.0.0.1:1', path });
    expect((await g.attestNow()).failedCheck).toBe('report.fetch');
    const since = g.unreachableSince();
    expect(since).toBeGreaterThan(0);
    await g.attestNow();
    expect(g.unreachableSince()).toBe(since);
    mitm.route = (path) => ({ target: sidecar.url, path });
    expect((await g.attestNow()).ok).toBe(true);
    expect(g.unreachableSince()).toBeUndefined();
  });
});
