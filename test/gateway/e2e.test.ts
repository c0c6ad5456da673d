import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileReceiptSink, verifyReceipts } from '../../src/gateway/index.js';
import {
  json,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
} from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { startTestGateway, type TestGateway, testPolicy } from './harness.js';

/**
 * The user's path end to end: the official `openai` npm client → gateway → a real (simulated)
 * sidecar → its demo upstream, for both signing algorithms, JSON and streaming.
 */
let sidecar: TestSidecar;
let dir: string;

beforeAll(async () => {
  sidecar = await startTestSidecar();
  dir = mkdtempSync(join(tmpdir(), 'teeml-gateway-'));
});
afterAll(async () => {
  await sidecar.close();
  rmSync(dir, { recursive: true, force: true });
});

const client = (gateway: TestGateway, apiKey = 'unused') =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0 });

const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

describe.each(['ecdsa', 'ed25519'] as const)('openai client through the gateway (%s)', (algo) => {
  let gateway: TestGateway;
  let receiptsPath: string;
  beforeAll(async () => {
    receiptsPath = join(dir, `receipts-${algo}.jsonl`);
    gateway = await startTestGateway(sidecar.url, {
      policy: testPolicy({ signingAlgo: algo }),
      receipts: { sink: await fileReceiptSink(receiptsPath), label: receiptsPath },
    });
  });
  afterAll(() => gateway.close());

  it('attests at start and pins the sidecar key', () => {
    const a = gateway.attestor.current;
    expect(a?.ok).toBe(true);
    expect(a?.signer?.algo).toBe(algo);
    const expected = algo === 'ecdsa' ? sidecar.signingAddress : undefined;
    if (expected !== undefined) expect(a?.signer?.address.toLowerCase()).toBe(expected.toLowerCase());
    else expect(a?.signer?.address).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a non-streaming chat completion is released verified', async () => {
    const { data, response } = await client(gateway)
      .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 8 })
      .withResponse();
    expect(response.headers.get('x-teeml-verification')).toBe('verified');
    expect(data.choices[0]?.message.content).toMatch(/demo upstream/);
    expect(gateway.receipts.recent[0]?.id).toBe(data.id);
    expect(gateway.receipts.recent[0]?.signing_algo).toBe(algo);
    expect(gateway.receipts.recent[0]?.checks.map((c) => `${c.id} ${c.status}`)).toEqual([
      'signature.record pass',
      'signature.json.text pass',
      'signature.json.signer pass',
      'answer.id pass',
      'answer.model pass',
      'answer.replayed pass',
      'link.after-answer pass',
    ]);
  });

  it('a streamed chat completion flows and ends with [DONE] after verification', async () => {
    const before = gateway.counters.verified;
    const stream = await client(gateway).chat.completions.create({
      model: 'teeml-demo',
      messages,
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let id = '';
    for await (const chunk of stream) {
      id = chunk.id;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toMatch(/demo/);
    expect(gateway.counters.verified).toBe(before + 1);
    expect(gateway.receipts.recent[0]).toMatchObject({ id, stream: true });
  });

  it('completions and embeddings are verified too; /v1/models passes through unsigned', async () => {
    const c = client(gateway);
    const completion = await c.completions
      .create({ model: 'teeml-demo', prompt: 'x', max_tokens: 4 })
      .withResponse();
    expect(completion.response.headers.get('x-teeml-verification')).toBe('verified');
    const embedding = await c.embeddings.create({ model: 'teeml-demo', input: 'x' }).withResponse();
    expect(embedding.response.headers.get('x-teeml-verification')).toBe('verified');
    expect(embedding.data.data[0]?.embedding.length).toBeGreaterThan(0);
    const models = await c.models.list().withResponse();
    expect(models.response.headers.get('x-teeml-verification')).toBe('unsigned');
    expect(models.data.data[0]?.id).toBe('teeml-demo');
  });

  it('the receipts file re-verifies offline, and holds no prompt or completion', async () => {
    await gateway.receipts.flush();
    const text = readFileSync(receiptsPath, 'utf8');
    expect(text).not.toContain(SECRET_MARKERS.prompt);
    expect(text).not.toContain('demo upstream');
    const result = await verifyReceipts(text, { allowSimulated: true });
    expect(result.verdicts.filter((v) => !v.ok)).toEqual([]);
    expect(result.receipts).toBeGreaterThanOrEqual(4);
    expect(result.attestations).toBe(1);
    // One changed character of a signature fails that receipt.
    const lines = text.trimEnd().split('\n');
    const receipt = JSON.parse(lines[1] ?? '{}') as { signature: string };
    const flipped =
      receipt.signature.slice(0, -3) +
      (receipt.signature.at(-3) === 'a' ? 'b' : 'a') +
      receipt.signature.slice(-2);
    const tampered = [lines[0], JSON.stringify({ ...receipt, signature: flipped }), ...lines.slice(2)].join(
      '\n',
    );
    const bad = await verifyReceipts(tampered, { allowSimulated: true });
    expect(bad.ok).toBe(false);
    expect(bad.verdicts[1]?.ok).toBe(false);
    expect(bad.verdicts[1]?.problems.join()).toMatch(/signature/);
  });
});

describe('streaming through the gateway', () => {
  it('chunks reach the client while the upstream is still generating', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const id = 'chatcmpl-flowing0000000000000000';
    const event = (content: string) =>
      `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(event('first'));
      // The rest only once the client has seen the first chunk: a gateway that buffered would hang here.
      void released.then(() => {
        res.write(event(' second'));
        res.end('data: [DONE]\n\n');
      });
    });
    const slow = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    // Plain http authenticates nothing: chunks flow early only with the explicit opt-in.
    const gateway = await startTestGateway(slow.url, {
      policy: testPolicy({ releaseUnverifiedStreams: true }),
    });
    try {
      const { data: stream, response } = await client(gateway)
        .chat.completions.create({ model: 'm', messages, stream: true })
        .withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('pending-unauthenticated');
      const seen: string[] = [];
      for await (const chunk of stream) {
        seen.push(chunk.choices[0]?.delta.content ?? '');
        if (seen.length === 1) release();
      }
      expect(seen).toEqual(['first', ' second']);
      expect(gateway.counters.verified).toBe(1);
    } finally {
      await gateway.close();
      await slow.close();
      await upstream.close();
    }
  });
});

describe('held streams', () => {
  it('over plain http a stream is held until verified: no chunk before the provider ended it', async () => {
    let ended = false;
    const id = 'chatcmpl-held00000000000000000000';
    const event = (content: string) =>
      `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(event('first'));
      setTimeout(() => {
        ended = true;
        res.write(event(' second'));
        res.end('data: [DONE]\n\n');
      }, 300);
    });
    const slow = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    const gateway = await startTestGateway(slow.url);
    try {
      const { data: stream, response } = await client(gateway)
        .chat.completions.create({ model: 'm', messages, stream: true })
        .withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('pending');
      const seen: string[] = [];
      for await (const chunk of stream) {
        // Held: the first chunk comes only after the provider sent the whole stream.
        if (seen.length === 0) expect(ended).toBe(true);
        seen.push(chunk.choices[0]?.delta.content ?? '');
      }
      expect(seen).toEqual(['first', ' second']);
      expect(gateway.counters.verified).toBe(1);
      expect(gateway.streamRelease()).toMatch(/^held until verified/);
    } finally {
      await gateway.close();
      await slow.close();
      await upstream.close();
    }
  });
});

describe('gateway refusals', () => {
  it('refuses with 503 and the failing check id while the provider is not attested (simulation not allowed)', async () => {
    const gateway = await startTestGateway(sidecar.url, { policy: testPolicy({ allowSimulated: false }) });
    try {
      expect(gateway.attestor.current?.ok).toBe(false);
      const res = await postJson(`${gateway.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
      expect(res.status).toBe(503);
      const failed = gateway.attestor.current?.failedCheck;
      expect(failed).toMatch(/simulated|tdx.quote/);
      expect(res.headers['x-teeml-verification']).toBe(`failed: ${failed}`);
      expect(json<{ error: { code: string; message: string } }>(res).error).toMatchObject({
        code: 'attestation_failed',
        message: expect.stringContaining(String(failed)),
      });
      await expect(
        client(gateway).chat.completions.create({ model: 'teeml-demo', messages }),
      ).rejects.toMatchObject({ status: 503 });
      expect(gateway.counters.refused).toBe(2);
      expect(gateway.logs.some((l) => l.includes(String(failed)))).toBe(true);
    } finally {
      await gateway.close();
    }
  });

  it('--auth-token: /v1 needs the bearer token; the status page does not', async () => {
    const gateway = await startTestGateway(sidecar.url, { authToken: SECRET_MARKERS.authToken });
    try {
      await expect(client(gateway, 'wrong').models.list()).rejects.toMatchObject({ status: 401 });
      const models = await client(gateway, SECRET_MARKERS.authToken).models.list();
      expect(models.data.length).toBe(1);
      expect((await rawRequest(`${gateway.url}/`)).status).toBe(200);
    } finally {
      await gateway.close();
    }
  });

  it("--api-key reaches a provider that requires a token, and never the user's own key", async () => {
    const locked = await startTestSidecar({ AUTH_TOKEN: SECRET_MARKERS.upstreamKey.padEnd(16, '0') });
    const withKey = await startTestGateway(locked.url, {
      apiKey: SECRET_MARKERS.upstreamKey.padEnd(16, '0'),
    });
    const without = await startTestGateway(locked.url);
    try {
      const ok = await client(withKey, 'users-own-key')
        .chat.completions.create({ model: 'teeml-demo', messages })
        .withResponse();
      expect(ok.response.headers.get('x-teeml-verification')).toBe('verified');
      await expect(
        client(without, SECRET_MARKERS.upstreamKey.padEnd(16, '0')).chat.completions.create({
          model: 'teeml-demo',
          messages,
        }),
      ).rejects.toMatchObject({
        status: 401,
      });
    } finally {
      await Promise.all([withKey.close(), without.close()]);
      await locked.close();
    }
  });

  it('refuses to listen off loopback without an auth token', async () => {
    await expect(startTestGateway(sidecar.url, { host: '0.0.0.0' })).rejects.toMatchObject({
      code: 'auth_token_required',
    });
  });
});
