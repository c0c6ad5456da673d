/**
 * A provider (or a man in the middle) answering with a status HTTP does not define (600, 999): plain
 * http answers are node messages, so no web Response refuses it on the way in. Through the listener
 * and the in-process client alike: 502 `upstream_invalid_status` in the OpenAI shape, never the
 * status itself, never a throw. And a 204 to a chat under onFailure 'warn' resolves too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifiedFetch, type VerifiedFetch } from '../../src/client/index.js';
import { postJson } from '../e2e/harness.js';
import { caseOf, type HostileStack, startHostileStack } from './hostile-provider.js';

let stack: HostileStack;
let verified: VerifiedFetch;
/** The in-process client releasing failed answers marked failed (--on-failure warn). */
let warned: VerifiedFetch;
/** The case for the next chat request when its body cannot say (the in-process client seals fields). */
let forced: string | undefined;

beforeAll(async () => {
  stack = await startHostileStack();
  const { hostile } = stack;
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
  await stack.close();
});

const body = (user: string) => ({ model: 'm', user, messages: [{ role: 'user', content: 'hi' }] });

describe('a status a web Response cannot carry', () => {
  for (const status of [600, 999])
    it(`${status}: the gateway answers in the OpenAI shape, not verified`, async () => {
      const res = await postJson(`${stack.gateway.url}/v1/chat/completions`, body(`status-${status}`));
      expect(res.headers['x-teeml-verification']).toBe('failed: upstream.invalid-status');
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: 'upstream_invalid_status' } });
    });

  /** One chat through an in-process client, its status line forced: what the caller got, or what it threw. */
  const outcomeOf = async (client: VerifiedFetch, kase: string) => {
    forced = kase;
    try {
      return await client(`${stack.hostile.url}/v1/chat/completions`, {
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
    } finally {
      forced = undefined;
    }
  };

  for (const status of [600, 999])
    it(`${status}: createVerifiedFetch resolves with an error answer instead of throwing`, async () => {
      expect(await outcomeOf(verified, `status-${status}`)).toMatchObject({
        status: 502,
        verification: 'failed: upstream.invalid-status',
      });
    });

  it('204 to a chat POST, --on-failure warn: createVerifiedFetch resolves (marked failed) instead of throwing', async () => {
    const outcome = await outcomeOf(warned, 'status-204');
    expect(outcome).not.toHaveProperty('threw');
    expect((outcome as { verification?: string }).verification).not.toBe('verified');
  });
});
