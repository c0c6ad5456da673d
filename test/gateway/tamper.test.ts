import { randomBytes } from 'node:crypto';
import { Wallet } from 'ethers';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json, postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  type Exchange,
  type Mitm,
  startMitm,
  startTestGateway,
  type TestGateway,
  testPolicy,
} from './harness.js';

/**
 * A man in the middle between the gateway and the sidecar changes what the gateway receives; each
 * change must be caught, the answer refused, the check id logged, and the circuit opened until the
 * next attestation passes.
 */
let sidecar: TestSidecar;
let other: TestSidecar;
let mitm: Mitm;
let gateway: TestGateway | undefined;

beforeAll(async () => {
  [sidecar, other] = await Promise.all([startTestSidecar(), startTestSidecar()]);
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await Promise.all([sidecar.close(), other.close()]);
});
afterEach(async () => {
  mitm.mutate = () => undefined;
  mitm.route = (path) => ({ target: sidecar.url, path });
  await gateway?.close();
  gateway = undefined;
});

const start = async (extra: Parameters<typeof startTestGateway>[1] = {}) => {
  gateway = await startTestGateway(mitm.url, extra);
  return gateway;
};
const client = (g: TestGateway) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

const isAnswer = (e: Exchange) =>
  e.method === 'POST' && e.path.includes('/chat/completions') && e.status === 200;

/** Changes one byte of a body: the first "demo" becomes "dema". */
const oneByte = (body: Buffer): Buffer => {
  const at = body.indexOf('demo');
  const out = Buffer.from(body);
  out[at + 3] = 'a'.charCodeAt(0);
  return out;
};

const drain = async (stream: AsyncIterable<unknown>): Promise<number> => {
  let n = 0;
  for await (const _ of stream) n += 1;
  return n;
};

/** The failure is refused now, logged with its id, and later requests get 503 until re-attestation. */
const expectCircuitOpen = async (g: TestGateway, check: string) => {
  expect(g.counters.failed).toBe(1);
  expect(g.circuit()).toMatchObject({ open: true, check });
  expect(g.logs.some((l) => l.includes('"event":"verification"') && l.includes(`"check":"${check}"`))).toBe(
    true,
  );
  const next = await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
  expect(next.status).toBe(503);
  expect(next.headers['x-teeml-verification']).toBe(`failed: ${check}`);
  expect(json<{ error: { code: string } }>(next).error.code).toBe('circuit_open');
  // The MITM is gone; the next attestation passes and closes the circuit.
  mitm.mutate = () => undefined;
  expect((await g.attestNow()).ok).toBe(true);
  expect(g.circuit().open).toBe(false);
  const again = await client(g)
    .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 })
    .withResponse();
  expect(again.response.headers.get('x-teeml-verification')).toBe('verified');
};

describe('tampering between the gateway and the provider', () => {
  it('one changed byte in a JSON answer: 502 verification_failed, signature.json.text', async () => {
    const g = await start();
    mitm.mutate = (e) => (isAnswer(e) ? { ...e, body: oneByte(e.body) } : undefined);
    const error = await client(g)
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
    await expectCircuitOpen(g, 'signature.json.text');
  });

  it('one changed byte in a stream over plain http: nothing reaches the tool, the SDK raises', async () => {
    const g = await start();
    mitm.mutate = (e) => (isAnswer(e) ? { ...e, body: oneByte(e.body) } : undefined);
    const stream = await client(g).chat.completions.create({
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
    // Plain http authenticates nothing: the stream was held until verified, so none of it came out.
    expect(chunks).toBe(0);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error).toMatchObject({ code: 'verification_failed' });
    expect(String((error as Error).message)).toContain('signature.stream.text');
    await expectCircuitOpen(g, 'signature.stream.text');
  });

  it('a signature swapped for one by another key over the same text: signature.json.signer', async () => {
    const g = await start();
    const intruder = Wallet.createRandom();
    mitm.mutate = (e) => {
      if (!e.path.includes('/signature/')) return undefined;
      const record = JSON.parse(e.body.toString()) as { text: string; signature: string };
      return {
        ...e,
        body: Buffer.from(JSON.stringify({ ...record, signature: intruder.signMessageSync(record.text) })),
      };
    };
    await expect(
      client(g).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 502, code: 'verification_failed' });
    await expectCircuitOpen(g, 'signature.json.signer');
  });

  it('a stream cut before [DONE]: that answer fails (upstream_incomplete), the circuit stays closed', async () => {
    const g = await start();
    mitm.mutate = (e) =>
      isAnswer(e)
        ? { ...e, body: Buffer.from(e.body.toString('latin1').replace('data: [DONE]\n\n', ''), 'latin1') }
        : undefined;
    const stream = await client(g).chat.completions.create({
      model: 'teeml-demo',
      messages,
      max_tokens: 4,
      stream: true,
    });
    await expect(drain(stream)).rejects.toMatchObject({ code: 'upstream_incomplete' });
    // A cut stream is unsigned, as the sidecar leaves an upstream error mid-stream: no forgery, so
    // the next request goes through (issue 21 item 11).
    expect(g.circuit().open).toBe(false);
    expect(g.counters.failed).toBe(0);
    expect(g.logs.some((l) => l.includes('"event":"provider_error"') && l.includes('stream.complete'))).toBe(
      true,
    );
    mitm.mutate = () => undefined;
    const again = await client(g)
      .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .withResponse();
    expect(again.response.headers.get('x-teeml-verification')).toBe('verified');
  });

  it('with --on-failure warn the answer is released but marked failed, and no circuit opens', async () => {
    const g = await start({ onFailure: 'warn' });
    mitm.mutate = (e) => (isAnswer(e) ? { ...e, body: oneByte(e.body) } : undefined);
    const { response } = await client(g)
      .chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 })
      .withResponse();
    expect(response.headers.get('x-teeml-verification')).toBe('failed: signature.json.text');
    expect(g.counters.failed).toBe(1);
    expect(g.circuit().open).toBe(false);
    expect(g.receipts.recent).toHaveLength(0);
  });

  it('a report for another nonce: report.nonce fails, nothing is forwarded', async () => {
    mitm.route = (path) => ({
      target: sidecar.url,
      path: path.replace(/nonce=[0-9a-f]{64}/, `nonce=${randomBytes(32).toString('hex')}`),
    });
    const g = await start();
    expect(g.attestor.current).toMatchObject({ ok: false, failedCheck: 'report.nonce' });
    const before = mitm.seen.length;
    const res = await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    expect(res.status).toBe(503);
    expect(res.headers['x-teeml-verification']).toBe('failed: report.nonce');
    expect(mitm.seen.length).toBe(before);
    expect(g.logs.some((l) => l.includes('"check":"report.nonce"'))).toBe(true);
  });

  it('a re-attestation that shows a different key: gateway.signer-pinned, requests refused', async () => {
    const g = await start();
    expect(g.attestor.current?.ok).toBe(true);
    // The next report comes from another (valid) sidecar with another key.
    mitm.route = (path) => ({ target: path.includes('/attestation/') ? other.url : sidecar.url, path });
    const a = await g.attestNow();
    expect(a).toMatchObject({ ok: false, failedCheck: 'gateway.signer-pinned' });
    expect(a.signer?.address.toLowerCase()).toBe(other.signingAddress.toLowerCase());
    const res = await postJson(`${g.url}/v1/chat/completions`, { model: 'teeml-demo', messages });
    expect(res.status).toBe(503);
    expect(res.headers['x-teeml-verification']).toBe('failed: gateway.signer-pinned');
    expect(g.logs.some((l) => l.includes('"check":"gateway.signer-pinned"'))).toBe(true);
    // With allowSignerChange the new key is pinned, and answers still signed by the old one fail.
    await g.close();
    gateway = undefined;
    mitm.route = (path) => ({ target: sidecar.url, path });
    const h = await start({ policy: testPolicy({ allowSignerChange: true }) });
    mitm.route = (path) => ({ target: path.includes('/attestation/') ? other.url : sidecar.url, path });
    expect((await h.attestNow()).ok).toBe(true);
    await expect(
      client(h).chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 502, code: 'verification_failed' });
    expect(h.circuit().check).toBe('signature.json.signer');
  });
});
