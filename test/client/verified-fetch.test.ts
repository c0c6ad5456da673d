import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AttestationRefusedError, createVerifiedFetch, type VerifiedFetch } from '../../src/client/index.js';
import { startTestSidecar, startUpstream, type TestSidecar } from '../e2e/harness.js';
import { type Exchange, type Mitm, startMitm } from '../gateway/harness.js';
import { SECRET_MARKERS } from '../secrets.js';

/**
 * teeml-sidecar/client in the user's own process: the official openai SDK with
 * `fetch: await createVerifiedFetch(...)` against a real simulated sidecar, through a man in the
 * middle this test controls. No gateway process: the same engine the gateway serves.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let verified: VerifiedFetch | undefined;

beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
});
afterEach(async () => {
  mitm.mutate = () => undefined;
  await verified?.close();
  verified = undefined;
});

const policy = { offline: true };
const messages = [{ role: 'user' as const, content: SECRET_MARKERS.e2eePrompt }];
const sdk = (fetch: VerifiedFetch) =>
  new OpenAI({ baseURL: 'http://teeml.invalid/v1', apiKey: 'unused', fetch, maxRetries: 0 });
const isAnswer = (e: Exchange) =>
  e.method === 'POST' && e.path.includes('/chat/completions') && e.status === 200;
const oneByte = (body: Buffer): Buffer => {
  const at = body.indexOf('demo');
  const out = Buffer.from(body);
  out[at + 3] = 'a'.charCodeAt(0);
  return out;
};

describe('createVerifiedFetch with the openai SDK', () => {
  it('completes a JSON and a streamed chat, verified, with prompts encrypted on the wire', async () => {
    verified = await createVerifiedFetch({ provider: mitm.url, policy, allowSimulated: true });
    const openai = sdk(verified);
    const { data, response } = await openai.chat.completions
      .create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .withResponse();
    expect(response.headers.get('x-teeml-verification')).toBe('verified');
    expect(data.choices[0]?.message.content).toMatch(/demo upstream/);
    const { data: stream, response: streamed } = await openai.chat.completions
      .create({ model: 'teeml-demo', messages, max_tokens: 4, stream: true })
      .withResponse();
    expect(streamed.headers.get('x-teeml-verification')).toBe('pending');
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toMatch(/demo upstream/);
    expect(verified.status()).toMatchObject({ attested: true, counters: { verified: 2, failed: 0 } });
    // E2EE is on by default: the provider's wire never carried the prompt.
    const sent = mitm.seen.filter((s) => s.path.includes('/chat/completions'));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const s of sent) expect(s.body.toString()).not.toContain(SECRET_MARKERS.e2eePrompt);
  });

  it('refuses a simulated provider without allowSimulated: report.simulated, with the hint', async () => {
    const error = await createVerifiedFetch({ provider: sidecar.url, policy }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(AttestationRefusedError);
    expect(error).toMatchObject({ check: 'report.simulated' });
    expect((error as AttestationRefusedError).hint).toContain('allowSimulated');
    expect((error as Error).message).toContain('report.simulated');
  });

  it('one byte changed in a JSON answer: the SDK raises APIError 502, and the circuit opens', async () => {
    verified = await createVerifiedFetch({ provider: mitm.url, policy, allowSimulated: true, e2ee: false });
    mitm.mutate = (e) => (isAnswer(e) ? { ...e, body: oneByte(e.body) } : undefined);
    const error = await sdk(verified)
      .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ status: 502, code: 'verification_failed' });
    expect((error as InstanceType<typeof OpenAI.APIError>).headers?.get('x-teeml-verification')).toBe(
      'failed: signature.json.text',
    );
    expect(verified.status().circuit).toMatchObject({ open: true, check: 'signature.json.text' });
  });

  it('one byte changed in a stream: nothing reaches the caller, the SDK raises', async () => {
    verified = await createVerifiedFetch({ provider: mitm.url, policy, allowSimulated: true, e2ee: false });
    mitm.mutate = (e) => (isAnswer(e) ? { ...e, body: oneByte(e.body) } : undefined);
    const stream = await sdk(verified).chat.completions.create({
      model: 'teeml-demo',
      messages,
      max_tokens: 4,
      stream: true,
    });
    let chunks = 0;
    const error = await (async () => {
      for await (const _ of stream) chunks += 1;
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(chunks).toBe(0);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(String((error as Error).message)).toContain('signature.stream.text');
  });

  it('close() stops it: later calls answer 503 and the SDK raises', async () => {
    verified = await createVerifiedFetch({ provider: mitm.url, policy, allowSimulated: true });
    expect(verified.status().nextAttestationAt).toBeTypeOf('number');
    await verified.close();
    expect(verified.status().nextAttestationAt).toBeUndefined();
    await expect(
      sdk(verified).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 503, code: 'client_closed' });
  });
});

describe('a stream the caller stops reading', () => {
  it('aborting the SDK call aborts the provider call', async () => {
    let providerGone: () => void = () => undefined;
    const gone = new Promise<void>((resolve) => {
      providerGone = resolve;
    });
    let started: () => void = () => undefined;
    const begun = new Promise<void>((resolve) => {
      started = resolve;
    });
    const upstream = await startUpstream((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {"id":"chatcmpl-endless","object":"chat.completion.chunk","choices":[]}\n\n');
      started();
      // Never ends: only an abort from the caller stops it.
      res.on('close', () => providerGone());
    });
    const slow = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    try {
      verified = await createVerifiedFetch({ provider: slow.url, policy, allowSimulated: true, e2ee: false });
      const stream = await sdk(verified).chat.completions.create({ model: 'm', messages, stream: true });
      await begun;
      stream.controller.abort();
      await gone;
      expect(verified.status().counters).toMatchObject({ failed: 0 });
    } finally {
      await verified?.close();
      verified = undefined;
      await slow.close();
      await upstream.close();
    }
  });
});
