import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, type TestGateway, testPolicy } from './harness.js';

/**
 * E2EE on (the gateway's default): a request field that NEAR AI's protocol does not seal and that may
 * carry user content is refused with 400 `e2ee_field_unprotected` before anything is sent; the error
 * names the field's path, never its value (docs/protocol.md, E2EE). A man in the middle sees every
 * byte the gateway sends.
 */
let sidecar: TestSidecar;
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
const CHAT_BASE = { model: 'teeml-demo', messages: [{ role: 'user', content: 'hello' }] };
const COMPLETIONS_BASE = { model: 'teeml-demo', prompt: 'hello' };

const post = async (
  path: string,
  body: unknown,
): Promise<{ status: number; json: unknown; text: string }> => {
  const res = await fetch(`${gateway.url}/v1/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text), text };
};

const SECRET_KEY_ARRAY = { [SECRET]: 1 };

const REFUSED: Array<[string, 'chat' | 'completions', Record<string, unknown>, string]> = [
  ['prediction.content', 'chat', { prediction: { type: 'content', content: SECRET } }, 'prediction'],
  [
    'response_format json_schema',
    'chat',
    {
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'x', description: SECRET, schema: { type: 'object' } },
      },
    },
    'response_format.type',
  ],
  [
    'a custom tool',
    'chat',
    { tools: [{ type: 'custom', custom: { name: 'lookup', description: SECRET } }] },
    'tools[0].type',
  ],
  [
    'an earlier custom tool call',
    'chat',
    {
      messages: [
        { role: 'user', content: 'hi' },
        {
          role: 'assistant',
          tool_calls: [{ id: 'c1', type: 'custom', custom: { name: 'x', input: SECRET } }],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'ok' },
      ],
    },
    'messages[1].tool_calls[0].type',
  ],
  ['vLLM documents', 'chat', { documents: [{ title: 'doc', text: SECRET }] }, 'documents'],
  ['vLLM guided_choice', 'chat', { guided_choice: [SECRET, 'no'] }, 'guided_choice'],
  ['vLLM guided_regex', 'chat', { guided_regex: SECRET }, 'guided_regex'],
  ['stop', 'chat', { stop: [SECRET] }, 'stop'],
  ['metadata', 'chat', { metadata: { note: SECRET } }, 'metadata'],
  ['user', 'chat', { user: SECRET }, 'user'],
  ['logit_bias', 'chat', { logit_bias: { '1234': -100 } }, 'logit_bias'],
  [
    'legacy functions',
    'chat',
    { functions: [{ name: 'lookup', description: SECRET, parameters: { type: 'object' } }] },
    'functions',
  ],
  ['vLLM prompt_logprobs', 'chat', { prompt_logprobs: 1 }, 'prompt_logprobs'],
  ['vLLM return_token_ids', 'chat', { return_token_ids: true }, 'return_token_ids'],
  ['messages as an object', 'chat', { messages: { 0: { role: 'user', content: SECRET } } }, 'messages'],
  [
    'content of an unknown shape',
    'chat',
    { messages: [{ role: 'user', content: { text: SECRET } }] },
    'messages[0].content',
  ],
  [
    'an unknown message field',
    'chat',
    { messages: [{ role: 'user', content: 'x', note: SECRET }] },
    'messages[0].note',
  ],
  ['a number field holding text', 'chat', { temperature: SECRET }, 'temperature'],
  ['a field named by user content', 'chat', SECRET_KEY_ARRAY, '<field>'],
  ['completions suffix', 'completions', { suffix: SECRET }, 'suffix'],
  ['completions token-array prompt', 'completions', { prompt: [[SECRET]] }, 'prompt[0]'],
  ['completions token-id prompt', 'completions', { prompt: [1, 2, 3] }, 'prompt[0]'],
  ['completions logprobs', 'completions', { logprobs: 1 }, 'logprobs'],
  ['completions logprobs: false', 'completions', { logprobs: false }, 'logprobs'],
  ['an empty-looking stop that is not empty', 'chat', { stop: [''] }, 'stop'],
];

describe('E2EE on: fields outside the sealed set', () => {
  it.each(REFUSED)('%s is refused before anything is sent', async (_name, endpoint, extra, param) => {
    const from = mitm.seen.length;
    const base = endpoint === 'chat' ? CHAT_BASE : COMPLETIONS_BASE;
    const res = await post(endpoint === 'chat' ? 'chat/completions' : 'completions', { ...base, ...extra });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      error: expect.objectContaining({
        type: 'invalid_request_error',
        code: 'e2ee_field_unprotected',
        param,
      }),
    });
    expect(res.text).not.toContain(SECRET);
    expect(mitm.seen.slice(from).map((s) => s.path)).not.toContain(
      `/v1/${endpoint === 'chat' ? 'chat/completions' : 'completions'}`,
    );
    expect(mitm.seen.slice(from).some((s) => s.body.toString().includes(SECRET))).toBe(false);
  });

  it('a request with sealed fields and allow-listed settings goes through, verified, nothing in clear', async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const from = mitm.seen.length;
    const { data, response } = await client.chat.completions
      .create({
        model: 'teeml-demo',
        messages: [
          { role: 'system', content: SECRET },
          { role: 'user', content: [{ type: 'text', text: SECRET }] },
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: SECRET } }],
          },
          { role: 'tool', tool_call_id: 'c1', content: SECRET },
        ],
        tools: [
          {
            type: 'function',
            function: { name: 'lookup', description: SECRET, parameters: { type: 'object' } },
          },
        ],
        tool_choice: 'auto',
        temperature: 0.2,
        max_completion_tokens: 16,
        seed: 1,
        logprobs: true,
        top_logprobs: 2,
        response_format: { type: 'text' },
        // Sent empty by some clients (LangChain's logit_bias: {}): nothing to leak.
        stop: [],
        logit_bias: {},
        user: '',
        stream_options: null,
      })
      .withResponse();
    expect(response.headers.get('x-teeml-verification')).toBe('verified');
    expect(data.choices.length).toBe(1);
    const sent = mitm.seen.slice(from).filter((s) => s.path === '/v1/chat/completions');
    expect(sent.length).toBe(1);
    expect(sent.some((s) => s.body.toString().includes(SECRET))).toBe(false);
  });

  it('completions with a batch of string prompts and echo goes through', async () => {
    const res = await post('completions', {
      ...COMPLETIONS_BASE,
      prompt: ['a', 'b'],
      max_tokens: 4,
      echo: true,
    });
    expect(res.status).toBe(200);
  });
});
