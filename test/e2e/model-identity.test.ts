import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { hashMessage, recoverAddress } from 'ethers';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createE2eeClient } from '../../src/e2ee/index.js';
import { SIGNATURE_TRAILER_REQUEST_HEADER } from '../../src/signatures/index.js';
import { fetchKeepingTrailers, signatureFromTrailer } from '../../src/verifier/index.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  json,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
  writeSse,
} from './harness.js';

/**
 * Issue 24, items 1, 2 and 4 through a real sidecar and a real upstream double that records what it
 * received: MODEL_NAME (report, 404 before the upstream, nothing signed for another model's answer),
 * SIGNED_TEXT_FORMAT=model (NEAR's `model:req:resp`, recovering to the attested address) and
 * CACHE_SALT=per-user (one stable salt per caller, replacing the client's).
 */

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const SERVED = 'served-a';
const OTHER_SERVED = 'served-b';
const CHEAP = 'cheap-model';
/** Two callers' bearer tokens (no AUTH_TOKEN on this sidecar: any caller may come). */
const TOKEN_A = 'caller-a-token-0123456789';
const TOKEN_B = 'caller-b-token-0123456789';

const chunk = (id: string, model: string, content: string) =>
  `data: {"id":"${id}","object":"chat.completion.chunk","model":"${model}","choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;

interface Scripted {
  model?: string;
  stream?: boolean;
  scenario?: string;
  id?: string;
}

/** The double answers with the request's model unless a scenario says otherwise. */
const answer = (body: Buffer, res: ServerResponse): void => {
  const req = JSON.parse(body.toString()) as Scripted;
  const id = req.id ?? 'chatcmpl-model';
  const model = req.model ?? SERVED;
  const wrong = req.scenario?.startsWith('swap') === true ? CHEAP : model;
  if (req.stream === true && req.scenario === 'swap-late') {
    // The switch comes in a later TCP write, after the client has the first chunks.
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk(id, model, 'secret '));
    res.write(chunk(id, model, 'completion '));
    setTimeout(() => res.end(`${chunk(id, wrong, '9c1d')}data: [DONE]\n\n`), 100);
    return;
  }
  if (req.stream === true) {
    writeSse(res, [
      chunk(id, wrong, 'secret '),
      chunk(id, model, 'completion '),
      chunk(id, model, '9c1d'),
      'data: [DONE]\n\n',
    ]);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      id,
      object: 'chat.completion',
      model: wrong,
      choices: [{ index: 0, message: { role: 'assistant', content: SECRET_MARKERS.completion } }],
    }),
  );
};

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => answer(body, res));
  sidecar = await startTestSidecar({
    UPSTREAM_URL: upstream.url,
    MODEL_NAME: `${SERVED}, ${OTHER_SERVED}`,
    SIGNED_TEXT_FORMAT: 'model',
    CACHE_SALT: 'per-user',
  });
});

afterAll(async () => {
  await sidecar?.close();
  await upstream?.close();
});

const chat = (extra: Record<string, unknown>) =>
  JSON.stringify({ model: SERVED, messages: [{ role: 'user', content: SECRET_MARKERS.prompt }], ...extra });

const signatureOf = (id: string) => rawRequest(`${sidecar.url}/v1/signature/${id}?model=${SERVED}`);

describe('MODEL_NAME and SIGNED_TEXT_FORMAT=model', () => {
  it('the report names the model, flat and in one model attestation per served name', async () => {
    const report = json<{
      model_name?: string;
      signing_address: string;
      all_attestations: Array<{ model_name?: string }>;
      model_attestations: Array<{ model_name?: string; signing_address: string }>;
    }>(await rawRequest(`${sidecar.url}/v1/attestation/report`));
    expect(report.model_name).toBe(SERVED);
    // NEAR's layout: model_name is the first field of the report.
    expect(Object.keys(report)[0]).toBe('model_name');
    expect(report.all_attestations[0]?.model_name).toBe(SERVED);
    expect(report.model_attestations.map((a) => a.model_name)).toEqual([SERVED, OTHER_SERVED]);
    expect(report.model_attestations.every((a) => a.signing_address === report.signing_address)).toBe(true);
  });

  it.each([
    [false, 'chatcmpl-model-json'],
    [true, 'chatcmpl-model-sse'],
  ])(
    'stream=%s: the signed text is model:sha256(request bytes):sha256(response bytes), by the attested key',
    async (stream, id) => {
      const body = chat({ stream, id, model: OTHER_SERVED });
      const res = await postJson(`${sidecar.url}/v1/chat/completions`, body, {
        authorization: `Bearer ${TOKEN_A}`,
      });
      expect(res.status).toBe(200);
      const record = json<{ text: string; signature: string; signing_address: string }>(
        await signatureOf(id),
      );
      expect(record.text).toBe(`${OTHER_SERVED}:${sha(body)}:${sha(res.body)}`);
      const report = json<{ signing_address: string }>(await rawRequest(`${sidecar.url}/attestation/report`));
      expect(recoverAddress(hashMessage(record.text), record.signature)).toBe(report.signing_address);
      expect(record.signing_address).toBe(report.signing_address);
    },
  );

  it.each([
    [false, 'chatcmpl-model-trailer-json'],
    [true, 'chatcmpl-model-trailer-sse'],
  ])('stream=%s: the record in the signature trailer is the model-format text too', async (stream, id) => {
    const body = chat({ stream, id, model: OTHER_SERVED });
    const res = await fetchKeepingTrailers(`${sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SIGNATURE_TRAILER_REQUEST_HEADER]: 'ecdsa' },
      body,
    });
    const received = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(200);
    const trailer = signatureFromTrailer(res, 'ecdsa');
    expect(trailer?.record.text).toBe(`${OTHER_SERVED}:${sha(body)}:${sha(received)}`);
    expect(json<{ text: string }>(await signatureOf(id)).text).toBe(trailer?.record.text);
  });

  it('a request naming no model is held to, and signed with, the first served name', async () => {
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], id: 'chatcmpl-default' });
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, body);
    expect(res.status).toBe(200);
    expect(json<{ text: string }>(await signatureOf('chatcmpl-default')).text).toBe(
      `${SERVED}:${sha(body)}:${sha(res.body)}`,
    );
  });

  it.each([
    ['another model', { model: CHEAP }],
    ['a model that is not a string', { model: 7 }],
    ['a served name in another case', { model: SERVED.toUpperCase() }],
  ])(
    '%s: 404 model_not_found in the OpenAI shape, and the upstream is never called',
    async (_what, extra) => {
      const before = upstream.requests.length;
      const res = await postJson(`${sidecar.url}/v1/chat/completions`, chat(extra));
      expect(res.status).toBe(404);
      expect(json(res)).toEqual({
        error: {
          message: 'the requested model is not served here',
          type: 'invalid_request_error',
          param: 'model',
          code: 'model_not_found',
        },
      });
      expect(upstream.requests.length).toBe(before);
    },
  );

  it.each([
    ['a JSON answer', false, 'swap', 'chatcmpl-swap-json'],
    ['a stream whose first chunk', true, 'swap', 'chatcmpl-swap-sse'],
  ])('%s naming another model: 502 model_mismatch, nothing signed', async (_what, stream, scenario, id) => {
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, chat({ stream, scenario, id }));
    expect(res.status).toBe(502);
    expect(json<{ error: { code: string; type: string } }>(res).error).toMatchObject({
      code: 'model_mismatch',
      type: 'upstream_error',
    });
    expect(res.body.toString()).not.toContain('secret');
    expect((await signatureOf(id)).status).toBe(404);
  });

  it('a stream that switches models half-way ends with an error event, without [DONE], unsigned', async () => {
    const id = 'chatcmpl-swap-late';
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      chat({ stream: true, scenario: 'swap-late', id }),
    );
    expect(res.status).toBe(200);
    const text = res.body.toString();
    expect(text).not.toContain('[DONE]');
    expect(text).not.toContain('9c1d');
    expect(
      text.endsWith(
        'event: error\ndata: {"error":{"message":"the model server answered with another model than the one requested","type":"upstream_error","param":null,"code":"model_mismatch"}}\n\n',
      ),
    ).toBe(true);
    expect((await signatureOf(id)).status).toBe(404);
  });

  it('the openai SDK sees the half-way switch as an error, never as a whole answer', async () => {
    const client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: TOKEN_A, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: SERVED,
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      // Read by the double only.
      ...({ scenario: 'swap-late', id: 'chatcmpl-swap-sdk' } as object),
    });
    const pieces: string[] = [];
    await expect(
      (async () => {
        for await (const part of stream) pieces.push(part.choices[0]?.delta.content ?? '');
      })(),
    ).rejects.toThrow(/another model/);
    expect(pieces.join('')).toBe('secret completion ');
  });
});

describe('CACHE_SALT=per-user', () => {
  const saltSeen = (index: number): unknown =>
    JSON.parse(upstream.requests[index]?.body.toString() ?? '{}').cache_salt;

  it('one stable salt per bearer token, different across tokens, replacing the client’s; the signed hash is of the client’s bytes', async () => {
    const send = async (token: string | undefined, id: string, extra: Record<string, unknown> = {}) => {
      const body = chat({ id, ...extra });
      const res = await postJson(
        `${sidecar.url}/v1/chat/completions`,
        body,
        token === undefined ? {} : { authorization: `Bearer ${token}` },
      );
      expect(res.status).toBe(200);
      const index = upstream.requests.length - 1;
      const record = json<{ text: string }>(await signatureOf(id));
      expect(record.text).toBe(`${SERVED}:${sha(body)}:${sha(res.body)}`);
      return { salt: saltSeen(index), received: upstream.requests[index]?.body.toString() ?? '', body };
    };
    const a1 = await send(TOKEN_A, 'chatcmpl-salt-a1');
    const a2 = await send(TOKEN_A, 'chatcmpl-salt-a2', { cache_salt: 'client-chosen' });
    const b = await send(TOKEN_B, 'chatcmpl-salt-b');
    const anonymous = await send(undefined, 'chatcmpl-salt-anon', { cache_salt: 'client-chosen' });
    expect(a1.salt).toMatch(/^[0-9a-f]{64}$/);
    expect(a2.salt).toBe(a1.salt);
    expect(b.salt).toMatch(/^[0-9a-f]{64}$/);
    expect(b.salt).not.toBe(a1.salt);
    expect(anonymous.salt).not.toBe('client-chosen');
    expect(new Set([a1.salt, b.salt, anonymous.salt]).size).toBe(3);
    // Without a client salt every other byte is forwarded as sent (the field is spliced in).
    expect(a1.received).toBe(`${a1.body.slice(0, -1)},"cache_salt":"${a1.salt}"}`);
    // Neither the token nor anything reversible reaches the model server.
    expect(a1.received).not.toContain(TOKEN_A);
  });

  it('a 0G request is salted by its user address, whatever bearer the broker adds', async () => {
    const user = '0x1111111111111111111111111111111111111111';
    const send = async (id: string, headers: Record<string, string>) => {
      const res = await postJson(`${sidecar.url}/v1/chat/completions`, chat({ id }), headers);
      expect(res.status).toBe(200);
      return saltSeen(upstream.requests.length - 1);
    };
    const viaBroker = await send('chatcmpl-zg-1', { address: user, authorization: `Bearer ${TOKEN_A}` });
    const sameUser = await send('chatcmpl-zg-2', { address: user.toUpperCase().replace('0X', '0x') });
    const other = await send('chatcmpl-zg-3', {
      address: `0x${'2'.repeat(40)}`,
      authorization: `Bearer ${TOKEN_A}`,
    });
    expect(sameUser).toBe(viaBroker);
    expect(other).not.toBe(viaBroker);
  });

  it('under E2EE the model gets the decrypted prompt with the caller’s salt; the hash is of the ciphertext sent', async () => {
    const report = json<{ signing_public_key: string }>(
      await rawRequest(`${sidecar.url}/v1/attestation/report`),
    );
    const client = createE2eeClient({ algo: 'ecdsa', modelPublicKey: report.signing_public_key });
    const id = 'chatcmpl-salt-e2ee';
    const body = JSON.stringify(
      client.encryptRequest({
        model: SERVED,
        id,
        messages: [{ role: 'user', content: SECRET_MARKERS.e2eePrompt }],
      }),
    );
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, body, {
      ...client.headers,
      authorization: `Bearer ${TOKEN_A}`,
    });
    expect(res.status).toBe(200);
    const received = JSON.parse(upstream.requests.at(-1)?.body.toString() ?? '{}') as {
      cache_salt?: string;
      messages?: Array<{ content?: string }>;
    };
    expect(received.messages?.[0]?.content).toBe(SECRET_MARKERS.e2eePrompt);
    expect(received.cache_salt).toBe(saltSeen(upstream.requests.length - 1));
    const plainA = await postJson(`${sidecar.url}/v1/chat/completions`, chat({ id: 'chatcmpl-salt-a3' }), {
      authorization: `Bearer ${TOKEN_A}`,
    });
    expect(plainA.status).toBe(200);
    expect(saltSeen(upstream.requests.length - 1)).toBe(received.cache_salt);
    const record = json<{ text: string }>(await signatureOf(id));
    expect(record.text).toBe(`${SERVED}:${sha(body)}:${sha(res.body)}`);
  });

  it('bodies of other endpoints are forwarded untouched', async () => {
    const body = JSON.stringify({ model: SERVED, input: 'x', id: 'emb-salt' });
    const res = await postJson(`${sidecar.url}/v1/embeddings`, body, { authorization: `Bearer ${TOKEN_A}` });
    expect(res.status).toBe(200);
    expect(upstream.requests.at(-1)?.body.toString()).toBe(body);
  });
});

describe('without MODEL_NAME and CACHE_SALT', () => {
  it('no model check, the 0G text format, and the body goes up as sent', async () => {
    const plain = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      const body = chat({ model: CHEAP, id: 'chatcmpl-plain', cache_salt: 'client-chosen' });
      const res = await postJson(`${plain.url}/v1/chat/completions`, body);
      expect(res.status).toBe(200);
      expect(upstream.requests.at(-1)?.body.toString()).toBe(body);
      const record = json<{ text: string }>(await rawRequest(`${plain.url}/v1/signature/chatcmpl-plain`));
      expect(record.text).toBe(`${sha(body)}:${sha(res.body)}`);
      const report = json<Record<string, unknown>>(await rawRequest(`${plain.url}/v1/attestation/report`));
      expect(report).not.toHaveProperty('model_name');
    } finally {
      await plain.close();
    }
  });
});
