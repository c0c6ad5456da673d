import { hashMessage, recoverAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  json,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
  writeSse,
} from '../e2e/harness.js';
import { RedisProcess, redisSkipReason, type TestRedis, testRedis, uniquePrefix } from './redis-server.js';

/**
 * Two real sidecars behind one (imaginary) load balancer, sharing one Redis and one upstream: a
 * completion signed by A is found through B, and by a restarted A.
 */
const skip = redisSkipReason(false);

interface SignatureBody {
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: string;
}

const chat = { model: 'm', messages: [{ role: 'user', content: 'hello' }] };

describe.skipIf(skip !== undefined)(`replicas sharing Redis${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let redis: TestRedis;
  let upstream: TestUpstream;
  let counter = 0;
  const sidecars: TestSidecar[] = [];
  const prefix = uniquePrefix();

  const sidecar = async (env: Record<string, string> = {}) => {
    const s = await startTestSidecar({
      UPSTREAM_URL: upstream.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      ...env,
    });
    sidecars.push(s);
    return s;
  };

  beforeAll(async () => {
    redis = await testRedis();
    upstream = await startUpstream((req, body, res) => {
      const id = `chatcmpl-replica${(counter++).toString(16).padStart(8, '0')}`;
      if ((JSON.parse(body.toString('utf8')) as { stream?: boolean }).stream === true) {
        writeSse(res, [
          `data: {"id":"${id}","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n`,
          'data: [DONE]\n\n',
        ]);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, object: 'chat.completion', choices: [{ message: { content: 'hi' } }] }));
      void req;
    });
  });

  afterAll(async () => {
    for (const s of sidecars) await s.close(0);
    await upstream.close();
    await redis.close();
  });

  const signature = async (base: string, id: string) => {
    const res = await rawRequest(`${base}/v1/signature/${id}?model=m`);
    return { status: res.status, body: json<SignatureBody>(res) };
  };

  it('serves a signature made by replica A from replica B, with A’s signing address', async () => {
    const a = await sidecar();
    const b = await sidecar();
    expect(a.signingAddress).not.toBe(b.signingAddress);
    const res = await postJson(`${a.url}/v1/chat/completions`, chat);
    expect(res.status).toBe(200);
    const id = res.headers['zg-res-key'] as string;
    expect(id).toMatch(/^chatcmpl-replica/);

    const fromB = await signature(b.url, id);
    expect(fromB.status).toBe(200);
    expect(fromB.body.signing_address).toBe(a.signingAddress);
    expect(recoverAddress(hashMessage(fromB.body.text), fromB.body.signature)).toBe(a.signingAddress);
    // The upper-cased id finds it too (an older broker lower-cases; lookups ignore case).
    expect((await signature(b.url, id.toUpperCase())).status).toBe(200);
  });

  it('serves a streamed completion’s signature from B once A has it', async () => {
    const a = await sidecar();
    const b = await sidecar();
    const res = await postJson(`${a.url}/v1/chat/completions`, { ...chat, stream: true });
    expect(res.status).toBe(200);
    const id = res.headers['zg-res-key'] as string;
    // A answers once its write (memory and Redis) is done; B then reads it from Redis.
    const fromA = await signature(a.url, id);
    expect(fromA.status).toBe(200);
    const fromB = await signature(b.url, id);
    expect(fromB.status).toBe(200);
    expect(fromB.body).toEqual(fromA.body);
  });

  it('still finds a signature after the replica that made it restarts', async () => {
    const a = await sidecar();
    const res = await postJson(`${a.url}/v1/chat/completions`, chat);
    const id = res.headers['zg-res-key'] as string;
    await a.close(0);
    const restarted = await sidecar();
    const found = await signature(restarted.url, id);
    expect(found.status).toBe(200);
    expect(found.body.signing_address).toBe(a.signingAddress);
  });

  it('keeps serving completions and its own signatures while Redis is unreachable', async () => {
    const down = await RedisProcess.create(false);
    const lonely = await sidecar({ REDIS_URL: down.url });
    const res = await postJson(`${lonely.url}/v1/chat/completions`, chat);
    expect(res.status).toBe(200);
    const id = res.headers['zg-res-key'] as string;
    const found = await signature(lonely.url, id);
    expect(found.status).toBe(200);
    expect(found.body.signing_address).toBe(lonely.signingAddress);
    const missing = await rawRequest(`${lonely.url}/v1/signature/chatcmpl-elsewhere`);
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
});
