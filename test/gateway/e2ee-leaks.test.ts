import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway, testPolicy } from './harness.js';

/**
 * Under E2EE (required, the default) no request shape carries user content to a man in the middle
 * in clear: alias paths of encrypted routes are refused, `chat_template_kwargs` takes known switches
 * only (a key is as free as a value), and tool call ids, which the protocol does not seal, are
 * replaced by neutral ones consistently within the request.
 */ let sidecar: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  gateway = await startTestGateway(mitm.url, {
    policy: testPolicy({ signingAlgo: 'ecdsa' }),
    e2ee: { mode: 'auto', client: nearE2eeClient },
  });
});
afterAll(async () => {
  await gateway.close();
  await mitm.close();
  await sidecar.close();
});

const SECRET = 'SECRET-7f3a-patient-ssn-078-05-1120';

const sendAndSee = async (path: string, body: unknown): Promise<{ status: number; leaked: boolean }> => {
  mitm.seen.length = 0;
  const res = await fetch(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  const leaked = mitm.seen.some((s) => s.body.toString('utf8').includes(SECRET) || s.path.includes(SECRET));
  return { status: res.status, leaked };
};

const chat = { model: 'teeml-demo', messages: [{ role: 'user', content: SECRET }] };

describe('no prompt leaves in clear under E2EE', () => {
  it.each([
    ['/v1/chat/completions/'],
    ['/v1/Chat/Completions'],
    ['/v1//chat/completions'],
    ['/v1/chat/completions%2F'],
    ['/v1/completions/'],
  ])('an alias path %s of an encrypted route', async (path) => {
    const body = path.includes('chat') ? chat : { model: 'teeml-demo', prompt: SECRET };
    expect((await sendAndSee(path, body)).leaked).toBe(false);
  });

  it('content in a chat_template_kwargs key', async () => {
    const body = {
      model: 'teeml-demo',
      messages: [{ role: 'user', content: 'hi' }],
      chat_template_kwargs: { [SECRET]: true },
    };
    expect((await sendAndSee('/v1/chat/completions', body)).leaked).toBe(false);
  });

  it('content in a tool_call_id', async () => {
    const body = {
      model: 'teeml-demo',
      messages: [
        { role: 'user', content: 'hi' },
        {
          role: 'assistant',
          tool_calls: [{ id: SECRET, type: 'function', function: { name: 'f', arguments: '{}' } }],
        },
        { role: 'tool', tool_call_id: SECRET, content: 'ok' },
      ],
    };
    // Sent with neutral ids, still paired: the answer comes back verified.
    expect(await sendAndSee('/v1/chat/completions', body)).toEqual({ status: 200, leaked: false });
    const sent = mitm.seen.find((x) => x.path.endsWith('/chat/completions'))?.body.toString('utf8') ?? '';
    expect(sent).toContain('"tool_call_id":"call_0"');
  });
});
