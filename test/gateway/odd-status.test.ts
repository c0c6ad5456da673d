/**
 * A provider (or a man in the middle) answering with a status HTTP does not define (600, 999): plain
 * http answers are node messages, so no web Response refuses it on the way in. Through the listener
 * and the in-process client alike: 502 `upstream_invalid_status` in the OpenAI shape, never the
 * status itself, never a throw. And a 204 to a chat under onFailure 'warn' resolves too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedFetch, type VerifiedFetch } from '../../src/client/index.js';
import {
  postJson,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
} from '../e2e/harness.js';
import { startTestGateway, type TestGateway } from './harness.js';
import { caseOf, chatAnswer, type Hostile, startHostile } from './hostile-provider.js';

let upstream: TestUpstream;
let sidecar: TestSidecar;
let hostile: Hostile;
let gateway: TestGateway;
let verified: VerifiedFetch;
/** The in-process client releasing failed answers marked failed (--on-failure warn). */
let warned: VerifiedFetch;
/** The case for the next chat request when its body cannot say (the in-process client seals fields). */
let forced: string | undefined;

beforeAll(async () => {
  upstream = await startUpstream((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(chatAnswer(`chatcmpl-${Math.random().toString(36).slice(2)}`));
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
  hostile = await startHostile(sidecar.url);
  hostile.raw = (req, body, socket) => {
    const status = /^status-(\d+)$/.exec(forced ?? caseOf(body))?.[1];
    if (!req.url?.startsWith('/v1/chat/completions') || status === undefined) return false;
    const answer = '{"error":{"message":"x","type":"x","param":null,"code":"x"}}';
    if (status === '204') {
      socket.write(`HTTP/1.1 204 No Content\r\ncontent-type: application/json\r\n\r\n`);
      return true;
    }
    socket.write(
      `HTTP/1.1 ${status} Odd\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`,
    );
    return true;
  };
  gateway = await startTestGateway(hostile.url);
  verified = await createVerifiedFetch({
    provider: hostile.url,
    policy: { offline: true },
    allowSimulated: true,
  });
  warned = await createVerifiedFetch({
    provider: hostile.url,
    policy: { offline: true },
    allowSimulated: true,
    onFailure: 'warn',
  });
}, 30_000);
afterAll(async () => {
  await verified.close();
  await warned.close();
  await gateway.close();
  await hostile.close();
  await sidecar.close();
  await upstream.close();
});

const body = (user: string) => ({ model: 'm', user, messages: [{ role: 'user', content: 'hi' }] });

describe('a status a web Response cannot carry', () => {
  for (const status of [600, 999])
    it(`${status}: the gateway answers in the OpenAI shape, not verified`, async () => {
      const res = await postJson(`${gateway.url}/v1/chat/completions`, body(`status-${status}`));
      expect(res.headers['x-teeml-verification']).toBe('failed: upstream.invalid-status');
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: 'upstream_invalid_status' } });
    });

  for (const status of [600, 999])
    it(`${status}: createVerifiedFetch resolves with an error answer instead of throwing`, async () => {
      forced = `status-${status}`;
      const outcome = await verified(`${hostile.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
      }).then(
        async (r) => ({
          status: r.status,
          verification: r.headers.get('x-teeml-verification'),
          body: (await r.text()).slice(0, 200),
        }),
        (e: Error) => ({ threw: `${e.name}: ${e.message}` }),
      );
      forced = undefined;
      expect(outcome).toMatchObject({ status: 502, verification: 'failed: upstream.invalid-status' });
    });

  it('204 to a chat POST, --on-failure warn: createVerifiedFetch resolves (marked failed) instead of throwing', async () => {
    forced = 'status-204';
    const outcome = await warned(`${hostile.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    }).then(
      async (r) => ({
        status: r.status,
        verification: r.headers.get('x-teeml-verification'),
        body: (await r.text()).slice(0, 200),
      }),
      (e: Error) => ({ threw: `${e.name}: ${e.message}` }),
    );
    forced = undefined;
    expect(outcome).not.toHaveProperty('threw');
    expect((outcome as { verification?: string }).verification).not.toBe('verified');
  });
});
