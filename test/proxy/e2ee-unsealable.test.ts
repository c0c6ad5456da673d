import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createE2eeClient, type E2eeClient } from '../../src/e2ee/index.js';
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
import { SECRET_MARKERS } from '../secrets.js';

/**
 * An E2EE request may not ask for answer fields the protocol leaves in clear (vLLM `prompt_logprobs`,
 * `return_token_ids`, completions `logprobs`, chat logprobs without the extended fields sealed): 400
 * `e2ee_unsealable_parameter` before the model server is called. Should the model server send such
 * fields anyway, they are withheld, never relayed in clear (docs/protocol.md, E2EE).
 */
const PROMPT = SECRET_MARKERS.e2eePrompt;
const ANSWER = SECRET_MARKERS.e2eeCompletion;

let upstream: TestUpstream;
let sidecar: TestSidecar;
let stream = false;

/** An answer stuffed with every token-bearing field vLLM can add. */
const answerOf = (chat: boolean): Record<string, unknown> => ({
  id: 'cmpl-u1',
  object: chat ? 'chat.completion' : 'text_completion',
  model: 'teeml-demo',
  choices: [
    {
      index: 0,
      ...(chat ? { message: { role: 'assistant', content: ANSWER } } : { text: ANSWER }),
      finish_reason: 'stop',
      token_ids: [11, 12],
      prompt_token_ids: [1, 2],
      logprobs: chat
        ? { content: [{ token: ANSWER, bytes: null, logprob: -0.1, top_logprobs: [] }] }
        : {
            tokens: [PROMPT, ANSWER],
            token_logprobs: [null, -0.1],
            top_logprobs: [null, { [ANSWER]: -0.1 }],
          },
    },
  ],
  prompt_logprobs: [null, { '1': { logprob: -1, rank: 1, decoded_token: PROMPT } }],
  prompt_token_ids: [1, 2],
  usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 },
});

beforeAll(async () => {
  upstream = await startUpstream((req, _body, res) => {
    const answer = answerOf(req.url?.includes('/chat/') === true);
    if (stream) {
      writeSse(res, [
        `data: ${JSON.stringify(answer).replace('"message"', '"delta"')}\n\n`,
        'data: [DONE]\n\n',
      ]);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
});
afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

const clientFor = async (allFields: boolean): Promise<E2eeClient> => {
  const report = json<{ model_attestations: Array<{ signing_public_key: string }> }>(
    await rawRequest(`${sidecar.url}/v1/attestation/report?signing_algo=ecdsa`),
  );
  const modelPublicKey = report.model_attestations[0]?.signing_public_key as string;
  return createE2eeClient({ algo: 'ecdsa', modelPublicKey, encryptAllFields: allFields });
};

const send = async (
  path: 'chat/completions' | 'completions',
  extra: Record<string, unknown>,
  allFields = true,
) => {
  const client = await clientFor(allFields);
  const chat = path === 'chat/completions';
  const plain = chat
    ? { model: 'teeml-demo', messages: [{ role: 'user', content: PROMPT }], ...extra }
    : { model: 'teeml-demo', prompt: PROMPT, ...extra };
  const body = client.encryptRequest(plain, chat ? 'chat' : 'completions');
  const res = await postJson(`${sidecar.url}/v1/${path}`, body, { ...client.headers });
  return { res, client };
};

describe('E2EE: parameters whose answers cannot be sealed', () => {
  it.each([
    ['completions logprobs', 'completions', { logprobs: 1 }, true, 'logprobs'],
    ['completions logprobs: 0 (still returns tokens)', 'completions', { logprobs: 0 }, true, 'logprobs'],
    [
      'completions logprobs: false (vLLM reads it as 0)',
      'completions',
      { logprobs: false },
      true,
      'logprobs',
    ],
    ['chat prompt_logprobs', 'chat/completions', { prompt_logprobs: 1 }, true, 'prompt_logprobs'],
    ['completions prompt_logprobs', 'completions', { prompt_logprobs: 0 }, true, 'prompt_logprobs'],
    ['chat return_token_ids', 'chat/completions', { return_token_ids: true }, true, 'return_token_ids'],
    [
      'chat logprobs without the extended fields sealed',
      'chat/completions',
      { logprobs: true },
      false,
      'logprobs',
    ],
  ] as const)('%s: 400 before the model server is called', async (_name, path, extra, allFields, param) => {
    const before = upstream.requests.length;
    const { res } = await send(path, extra, allFields);
    expect(res.status).toBe(400);
    expect(json(res)).toEqual({
      error: expect.objectContaining({ code: 'e2ee_unsealable_parameter', param }),
    });
    expect(upstream.requests.length).toBe(before);
  });

  it('chat logprobs with X-Encrypt-All-Fields are sealed, so they are allowed', async () => {
    stream = false;
    const { res, client } = await send('chat/completions', { logprobs: true, top_logprobs: 1 });
    expect(res.status).toBe(200);
    const body = json<{ choices: Array<{ logprobs: { content: Array<{ token: string }> } }> }>(res);
    expect(client.decrypt(body.choices[0]?.logprobs.content[0]?.token ?? '')).toBe(ANSWER);
  });

  it.each([
    ['chat JSON', 'chat/completions', false],
    ['chat stream', 'chat/completions', true],
    ['completions JSON', 'completions', false],
    ['completions stream', 'completions', true],
  ] as const)(
    '%s: token fields sent unasked are withheld, never relayed in clear',
    async (_name, path, sse) => {
      stream = sse;
      const { res, client } = await send(path, {}, path === 'completions');
      expect(res.status).toBe(200);
      const wire = res.body.toString();
      expect(wire).not.toContain(PROMPT);
      expect(wire).not.toContain(ANSWER);
      for (const field of ['prompt_logprobs', 'prompt_token_ids', 'token_ids'])
        expect(wire).not.toContain(field);
      const line = sse ? (wire.split('\n').find((l) => l.startsWith('data: {')) ?? '').slice(6) : wire;
      const answer = client.decryptResponse(JSON.parse(line) as Record<string, unknown>, {
        endpoint: path === 'completions' ? 'completions' : 'chat',
        streaming: sse,
      }) as {
        choices: Array<{
          text?: string;
          message?: { content: string };
          delta?: { content: string };
          logprobs: unknown;
        }>;
      };
      const choice = answer.choices[0];
      expect(choice?.text ?? choice?.message?.content ?? choice?.delta?.content).toBe(ANSWER);
      // Chat logprobs without the extended fields sealed, and completions logprobs, become null.
      expect(choice?.logprobs).toBeNull();
    },
  );
});
