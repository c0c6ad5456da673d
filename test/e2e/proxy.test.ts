import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { hashMessage, recoverAddress } from 'ethers';
import { recoverMessageAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_MARKERS } from '../secrets.js';
import {
  json,
  leaveAfterFirstChunk,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
  writeSse,
} from './harness.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const ADMIN = SECRET_MARKERS.adminToken;

interface SignatureBody {
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: string;
}

const chatBody = {
  model: 'Qwen/Qwen2.5-7B-Instruct',
  messages: [{ role: 'user', content: SECRET_MARKERS.prompt }],
};

const sseEvents = (id: string) => [
  `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n`,
  `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"secret completion 9c1d"}}]}\n\n`,
  `data: {"id":"${id}","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}\n\n`,
  'data: [DONE]\n\n',
];

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((req, body, res) => {
    const url = req.url ?? '';
    if (url.startsWith('/v1/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"object":"list","data":[{"id":"m"}]}');
      return;
    }
    const parsed =
      body.length > 0 ? (JSON.parse(body.toString()) as { stream?: boolean; scenario?: string }) : {};
    switch (parsed.scenario) {
      case 'error400':
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"bad model","type":"BadRequestError","code":400}}');
        return;
      case 'error500':
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('boom');
        return;
      case 'noid':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"object":"chat.completion","choices":[{"index":0,"message":{"content":"x"}}]}');
        return;
      case 'gzip': {
        const out = gzipSync('{"id":"chatcmpl-gzip","object":"chat.completion","choices":[]}');
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(out);
        return;
      }
      case 'reset':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(sseEvents('chatcmpl-reset')[0]);
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      case 'nodone':
        writeSse(res, sseEvents('chatcmpl-nodone').slice(0, 2));
        return;
      case 'slowstream': {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(sseEvents('chatcmpl-slow')[0]);
        const timer = setInterval(() => {
          if (res.destroyed) clearInterval(timer);
          else res.write(': keep-alive\n\n');
        }, 10);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case 'stall':
        return; // never answers
    }
    if (parsed.stream) {
      writeSse(res, sseEvents('chatcmpl-stream1'));
      return;
    }
    // Indented, as no re-serialisation would write it: byte-for-byte pass-through shows.
    const answer = JSON.stringify(
      {
        id: 'chatcmpl-NonStream1',
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: 'secret completion 9c1d' } }],
        echo: { auth: req.headers.authorization ?? null, te: req.headers['x-hop'] ?? null },
      },
      null,
      1,
    );
    res.writeHead(200, {
      'content-type': 'application/json',
      connection: 'close, x-hop',
      'x-hop': 'drop-me',
    });
    res.end(answer);
  });
  sidecar = await startTestSidecar({
    UPSTREAM_URL: upstream.url,
    UPSTREAM_API_KEY: SECRET_MARKERS.upstreamKey,
    ADMIN_TOKEN: ADMIN,
    UPSTREAM_TIMEOUT_MS: '300',
    MAX_BODY_BYTES: '4096',
  });
});

afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

const fetchSignature = async (id: string, algo?: string) =>
  rawRequest(
    `${sidecar.url}/v1/signature/${id}?model=Qwen/Qwen2.5-7B-Instruct${algo ? `&signing_algo=${algo}` : ''}`,
  );

describe('signed proxy, non-streaming', () => {
  it('passes the body through byte for byte and signs sha256(request):sha256(response)', async () => {
    const sent = JSON.stringify(chatBody);
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, sent, {
      authorization: 'Bearer client-key',
    });
    expect(res.status).toBe(200);
    expect(res.headers['zg-res-key']).toBe('chatcmpl-NonStream1');
    expect(res.headers['content-encoding']).toBeUndefined();
    // What reached the upstream: the exact bytes, with our upstream key instead of the client's.
    const seen = upstream.requests.at(-1);
    expect(seen?.body.toString()).toBe(sent);
    expect(seen?.headers.authorization).toBe('Bearer upstream-key-123');
    expect(seen?.headers['accept-encoding']).toBe('identity');
    // What the client received: exactly the bytes the upstream wrote.
    expect(res.body.toString('latin1')).toBe(Buffer.concat(seen?.sent ?? []).toString('latin1'));
    expect(res.body.length).toBeGreaterThan(0);
    expect(res.headers['x-hop']).toBeUndefined();

    const sig = json<SignatureBody>(await fetchSignature('chatcmpl-NonStream1'));
    expect(sig.text).toBe(`${sha(sent)}:${sha(res.body)}`);
    expect(sig.signing_algo).toBe('ecdsa');
    expect(sig.signing_address).toBe(sidecar.signingAddress);
    expect(recoverAddress(hashMessage(sig.text), sig.signature)).toBe(sidecar.signingAddress);
    expect(
      await recoverMessageAddress({ message: sig.text, signature: sig.signature as `0x${string}` }),
    ).toBe(sidecar.signingAddress);
  });

  it('ends each proxied request with one access line: its id, route, status, duration, the id it was signed under', async () => {
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { ...chatBody, scenario: 'noid' },
      { 'x-request-id': 'access-line-1', authorization: 'Bearer client-key' },
    );
    expect(res.status).toBe(200);
    const lines = sidecar.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['reqId'] === 'access-line-1');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(Object.keys(line ?? {}).sort()).toEqual(
      ['level', 'time', 'service', 'reqId', 'route', 'status', 'ms', 'responseId', 'signed', 'msg'].sort(),
    );
    expect(line).toMatchObject({
      level: 30,
      msg: 'proxied',
      route: '/chat/completions',
      status: 200,
      responseId: res.headers['zg-res-key'],
      signed: true,
    });
  });

  it('finds the record with any id case, at /signature and /v1/signature, and serves ed25519', async () => {
    const lower = json<SignatureBody>(await rawRequest(`${sidecar.url}/signature/chatcmpl-nonstream1`));
    const upper = json<SignatureBody>(await fetchSignature('CHATCMPL-NONSTREAM1'));
    expect(lower).toEqual(upper);
    const ed = await fetchSignature('chatcmpl-NonStream1', 'ed25519');
    expect(ed.status).toBe(200);
    expect(json<SignatureBody>(ed)).toMatchObject({ text: lower.text, signing_algo: 'ed25519' });
    expect(json<SignatureBody>(ed).signature).toMatch(/^[0-9a-f]{128}$/);
  });

  it('injects an id when the upstream gives none, and signs the bytes it sent', async () => {
    const res = await postJson(`${sidecar.url}/chat/completions`, { ...chatBody, scenario: 'noid' });
    const body = json<{ id: string }>(res);
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(res.headers['zg-res-key']).toBe(body.id);
    expect(Object.keys(body)[0]).toBe('id');
    const sig = json<SignatureBody>(await fetchSignature(body.id));
    expect(sig.text.split(':')[1]).toBe(sha(res.body));
  });

  it('decodes an upstream that compresses anyway and signs the identity bytes it sends', async () => {
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, { ...chatBody, scenario: 'gzip' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString()).toBe('{"id":"chatcmpl-gzip","object":"chat.completion","choices":[]}');
    const sig = json<SignatureBody>(await fetchSignature('chatcmpl-gzip'));
    expect(sig.text.split(':')[1]).toBe(sha(res.body));
  });

  it('honours X-Request-Hash only with the admin token', async () => {
    const override = 'ab'.repeat(32);
    const sent = JSON.stringify(chatBody);
    // The test upstream answers every request with one fixed id: each repeat gets a fresh id.
    const first = await postJson(`${sidecar.url}/v1/chat/completions`, sent, { 'x-request-hash': override });
    const ignored = json<SignatureBody>(await fetchSignature(String(first.headers['zg-res-key'])));
    expect(ignored.text.split(':')[0]).toBe(sha(sent));
    const second = await postJson(`${sidecar.url}/v1/chat/completions`, sent, {
      'x-request-hash': override,
      'x-admin-token': ADMIN,
    });
    const honoured = json<SignatureBody>(await fetchSignature(String(second.headers['zg-res-key'])));
    expect(honoured.text.split(':')[0]).toBe(override);
    expect(upstream.requests.at(-1)?.headers['x-admin-token']).toBeUndefined();
    const bad = await postJson(`${sidecar.url}/v1/chat/completions`, sent, {
      'x-request-hash': 'zz',
      'x-admin-token': ADMIN,
    });
    expect(bad.status).toBe(400);
  });

  it('passes upstream errors through with their status, unsigned', async () => {
    const r400 = await postJson(`${sidecar.url}/v1/chat/completions`, { ...chatBody, scenario: 'error400' });
    expect(r400.status).toBe(400);
    expect(r400.body.toString()).toBe(
      '{"error":{"message":"bad model","type":"BadRequestError","code":400}}',
    );
    expect(r400.headers['zg-res-key']).toBeUndefined();
    const r500 = await postJson(`${sidecar.url}/v1/chat/completions`, { ...chatBody, scenario: 'error500' });
    expect(r500.status).toBe(500);
    expect(r500.body.toString()).toBe('boom');
  });

  it('answers 504 when the upstream stalls', async () => {
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, { ...chatBody, scenario: 'stall' });
    expect(res.status).toBe(504);
    expect(json(res)).toEqual({
      error: {
        message: 'upstream model server timed out',
        type: 'timeout_error',
        param: null,
        code: 'upstream_timeout',
      },
    });
  });

  it('refuses an oversized body with 413 and invalid JSON with 400, without calling the upstream', async () => {
    const before = upstream.requests.length;
    const big = await postJson(`${sidecar.url}/v1/chat/completions`, { ...chatBody, pad: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    expect(json(big)).toMatchObject({ error: { code: 'request_too_large', type: 'invalid_request_error' } });
    const bad = await postJson(`${sidecar.url}/v1/chat/completions`, '{"model": ');
    expect(bad.status).toBe(400);
    expect(json(bad)).toMatchObject({ error: { code: 'invalid_json', param: null } });
    expect(upstream.requests.length).toBe(before);
  });

  it('passes /models through unsigned at both prefixes', async () => {
    for (const path of ['/models', '/v1/models']) {
      const res = await rawRequest(`${sidecar.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('{"object":"list","data":[{"id":"m"}]}');
      expect(res.headers['zg-res-key']).toBeUndefined();
    }
  });
});

describe('signed proxy, streaming', () => {
  it('streams every byte and signs the stream once [DONE] went out', async () => {
    const sent = JSON.stringify({ ...chatBody, stream: true });
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, sent);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    expect(res.headers['zg-res-key']).toBe('chatcmpl-stream1');
    expect(res.body.toString()).toBe(sseEvents('chatcmpl-stream1').join(''));
    const sig = json<SignatureBody>(await fetchSignature('chatcmpl-stream1'));
    expect(sig.text).toBe(`${sha(sent)}:${sha(res.body)}`);
    expect(recoverAddress(hashMessage(sig.text), sig.signature)).toBe(sidecar.signingAddress);
  });

  it('leaves no signature for a stream without [DONE] or one the upstream cut', async () => {
    const nodone = await postJson(`${sidecar.url}/v1/chat/completions`, {
      ...chatBody,
      stream: true,
      scenario: 'nodone',
    });
    expect(nodone.status).toBe(200);
    expect((await fetchSignature('chatcmpl-nodone')).status).toBe(404);
    const reset = await postJson(`${sidecar.url}/v1/chat/completions`, {
      ...chatBody,
      stream: true,
      scenario: 'reset',
    }).catch((err: Error) => err);
    // The upstream cut the stream after the headers went out: the client must see a broken body
    // (the connection is destroyed), never a complete-looking 200.
    expect(reset).toBeInstanceOf(Error);
    const missing = await fetchSignature('chatcmpl-reset');
    expect(missing.status).toBe(404);
    expect(json(missing)).toEqual({
      error: {
        message: 'Chat id not found or expired',
        type: 'not_found',
        param: null,
        code: 'chat_id_not_found',
      },
    });
  });

  it('aborts the upstream and signs nothing when the client disconnects mid-stream', async () => {
    const upstreamClosed = new Promise<void>((resolve) => {
      upstream.server.once('request', (_req, res) => res.on('close', () => resolve()));
    });
    await leaveAfterFirstChunk(`${sidecar.url}/v1/chat/completions`, {
      ...chatBody,
      stream: true,
      scenario: 'slowstream',
    });
    await upstreamClosed;
    expect((await fetchSignature('chatcmpl-slow')).status).toBe(404);
    // Logged as the client leaving (499), not as an upstream failure.
    const line = sidecar.logs.find((l) => l.includes('"responseId"') === false && l.includes('"status":499'));
    expect(line).toBeDefined();
    const metrics = (await rawRequest(`${sidecar.url}/metrics`)).body.toString();
    expect(metrics).toMatch(/teeml_unsigned_responses_total\{reason="client_disconnected"\} [1-9]/);
  });
});

describe('signature lookups', () => {
  it('reject malformed ids and algorithms', async () => {
    const badId = await rawRequest(`${sidecar.url}/v1/signature/${'a'.repeat(300)}`);
    expect(badId.status).toBe(400);
    expect(json(badId)).toMatchObject({ error: { code: 'invalid_chat_id' } });
    const badAlgo = await fetchSignature('chatcmpl-NonStream1', 'rsa');
    expect(badAlgo.status).toBe(400);
    expect(json(badAlgo)).toMatchObject({ error: { code: 'invalid_signing_algo', param: 'signing_algo' } });
  });
});

describe('upstream down', () => {
  it('answers 502 when the upstream refuses connections', async () => {
    const dead = await startUpstream(() => undefined);
    const url = dead.url;
    await dead.close();
    const lonely = await startTestSidecar({ UPSTREAM_URL: url });
    try {
      const res = await postJson(`${lonely.url}/v1/chat/completions`, chatBody);
      expect(res.status).toBe(502);
      expect(json(res)).toMatchObject({ error: { code: 'upstream_unavailable', type: 'upstream_error' } });
    } finally {
      await lonely.close();
    }
  });
});
