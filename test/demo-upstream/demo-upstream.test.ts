import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoUpstream, startDemoUpstream } from '../../src/demo-upstream/index.js';
import { json, postJson, rawRequest } from '../e2e/harness.js';

let demo: DemoUpstream;
beforeAll(async () => {
  demo = await startDemoUpstream();
});
afterAll(async () => {
  await demo.close();
});

describe('demo upstream', () => {
  it('answers errors in the OpenAI shape, with a string code (never the HTTP status)', async () => {
    const cases = [
      await postJson(`${demo.url}/v1/chat/completions`, '{not json'),
      await postJson(`${demo.url}/v1/chat/completions`, { model: 'm', messages: 'nope' }),
      await rawRequest(`${demo.url}/v1/nowhere`),
    ];
    for (const res of cases) {
      const body = json<{ error: { code: unknown; type: string; param: unknown } }>(res);
      expect(typeof body.error.code).toBe('string');
      expect(body.error.param).toBeNull();
    }
    expect(cases.map((r) => r.status)).toEqual([400, 400, 404]);
  });

  it('gives two identical requests different ids, as vLLM does', async () => {
    const body = { model: 'm', messages: [{ role: 'user', content: 'same' }] };
    const [a, b] = await Promise.all([
      postJson(`${demo.url}/v1/chat/completions`, body),
      postJson(`${demo.url}/v1/chat/completions`, body),
    ]);
    expect(json<{ id: string }>(a as never).id).not.toBe(json<{ id: string }>(b as never).id);
  });
});
