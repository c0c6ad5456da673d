import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { hashMessage, recoverAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoHeard } from '../../src/demo-upstream/index.js';
import type { SigningAlgo } from '../../src/keys/index.js';
import {
  decryptEcdsa,
  decryptEd25519,
  ecdsaKeys,
  ed25519Keys,
  encryptEcdsa,
  encryptEd25519,
} from '../e2ee/near-client.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  json,
  postJson,
  type RawResponse,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
  writeSse,
} from './harness.js';

const PROMPT = SECRET_MARKERS.e2eePrompt;
const ANSWER = SECRET_MARKERS.e2eeCompletion;
const sha256hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** A NEAR-style client (independent implementation: ethers, tweetnacl + ed2curve). */
const nearClient = (algo: SigningAlgo, modelKey: string) => {
  if (algo === 'ecdsa') {
    const keys = ecdsaKeys();
    return {
      headers: { 'X-Signing-Algo': algo, 'X-Client-Pub-Key': keys.publicKey, 'X-Model-Pub-Key': modelKey },
      encrypt: (t: string) => encryptEcdsa(t, modelKey),
      decrypt: (h: string) => decryptEcdsa(h, keys.privateKey),
    };
  }
  const keys = ed25519Keys();
  return {
    headers: { 'X-Signing-Algo': algo, 'X-Client-Pub-Key': keys.publicKey, 'X-Model-Pub-Key': modelKey },
    encrypt: (t: string) => encryptEd25519(t, modelKey),
    decrypt: (h: string) => decryptEd25519(h, keys.secretKey),
  };
};

const modelKeyOf = async (base: string, algo: SigningAlgo): Promise<string> => {
  const report = json<{ model_attestations: Array<{ signing_public_key: string }> }>(
    await rawRequest(`${base}/v1/attestation/report?model=teeml-demo&signing_algo=${algo}`),
  );
  return report.model_attestations[0]?.signing_public_key as string;
};

/** Checks the stored signature covers exactly these request and response bytes, by the attested key. */
const expectSigned = async (
  base: string,
  algo: SigningAlgo,
  id: string,
  request: string,
  res: RawResponse,
) => {
  const sig = json<{ text: string; signature: string; signing_address: string }>(
    await rawRequest(`${base}/v1/signature/${id}?model=teeml-demo&signing_algo=${algo}`),
  );
  expect(sig.text).toBe(`${sha256hex(request)}:${sha256hex(res.body)}`);
  if (algo === 'ecdsa') {
    expect(recoverAddress(hashMessage(sig.text), sig.signature)).toBe(sig.signing_address);
  } else {
    const key = createPublicKey({
      key: Buffer.concat([
        Buffer.from('302a300506032b6570032100', 'hex'),
        Buffer.from(sig.signing_address, 'hex'),
      ]),
      format: 'der',
      type: 'spki',
    });
    expect(nodeVerify(null, Buffer.from(sig.text), key, Buffer.from(sig.signature, 'hex'))).toBe(true);
  }
};

describe('E2EE over loopback with the demo upstream', () => {
  let sidecar: TestSidecar;
  beforeAll(async () => {
    sidecar = await startTestSidecar();
  });
  afterAll(() => sidecar.close());

  describe.each(['ecdsa', 'ed25519'] as const)('%s', (algo) => {
    it('non-streaming: the model hears the plaintext, the client alone reads the answer, the ciphertext is signed', async () => {
      const client = nearClient(algo, await modelKeyOf(sidecar.url, algo));
      const request = JSON.stringify({
        model: 'teeml-demo',
        messages: [{ role: 'user', content: client.encrypt(PROMPT) }],
        stream: false,
        max_tokens: 8,
      });
      const res = await postJson(`${sidecar.url}/v1/chat/completions`, request, client.headers);
      expect(res.status).toBe(200);
      expect(res.body.toString()).not.toContain('[demo');
      const body = json<{ id: string; choices: Array<{ message: { content: string } }> }>(res);
      const answer = client.decrypt(body.choices[0]?.message.content as string);
      expect(answer.startsWith('[demo upstream]')).toBe(true);
      expect(answer).toContain(demoHeard(PROMPT));
      expect(res.headers['zg-res-key']).toBe(body.id);
      await expectSigned(sidecar.url, algo, body.id, request, res);
    });

    it('streaming: every delta is encrypted, the stream is signed over the bytes sent', async () => {
      const client = nearClient(algo, await modelKeyOf(sidecar.url, algo));
      const request = JSON.stringify({
        model: 'teeml-demo',
        messages: [{ role: 'user', content: client.encrypt(PROMPT) }],
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 8,
      });
      const res = await postJson(`${sidecar.url}/chat/completions`, request, client.headers);
      expect(res.status).toBe(200);
      const text = res.body.toString();
      expect(text).not.toContain('upstream]');
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      const events = text
        .split('\n')
        .filter((l) => l.startsWith('data: {'))
        .map(
          (l) => JSON.parse(l.slice(6)) as { id: string; choices: Array<{ delta: { content?: string } }> },
        );
      const pieces = events.flatMap((e) => e.choices.map((c) => c.delta.content ?? ''));
      const answer = pieces.map((p) => (p === '' ? '' : client.decrypt(p))).join('');
      expect(answer).toContain(demoHeard(PROMPT));
      expect(pieces.filter((p) => p !== '').length).toBeGreaterThan(3);
      await expectSigned(sidecar.url, algo, events[0]?.id as string, request, res);
    });
  });

  it('a tampered ciphertext → 400 naming the field; nothing echoed', async () => {
    const modelKey = await modelKeyOf(sidecar.url, 'ed25519');
    const client = nearClient('ed25519', modelKey);
    const ct = client.encrypt(PROMPT);
    const tampered = `${ct.slice(0, -2)}${ct.endsWith('00') ? '01' : '00'}`;
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { model: 'teeml-demo', messages: [{ role: 'user', content: tampered }] },
      client.headers,
    );
    expect(res.status).toBe(400);
    const err = json<{ error: { message: string; type: string; param: string; code: string } }>(res);
    expect(err.error.code).toBe('e2ee_decryption_failed');
    expect(err.error.param).toBe('messages[0].content');
    expect(err.error.type).toBe('invalid_request_error');
    expect(res.body.toString()).not.toContain(tampered.slice(0, 32));
  });

  it('a wrong-length client key, a foreign X-Model-Pub-Key, an unsupported endpoint → 400 naming the header', async () => {
    const modelKey = await modelKeyOf(sidecar.url, 'ecdsa');
    const client = nearClient('ecdsa', modelKey);
    const body = { model: 'teeml-demo', messages: [{ role: 'user', content: client.encrypt(PROMPT) }] };
    const cases: Array<[string, Record<string, string>, string, string]> = [
      [
        '/v1/chat/completions',
        { ...client.headers, 'X-Client-Pub-Key': 'ab'.repeat(63) },
        'X-Client-Pub-Key',
        'invalid_e2ee_header',
      ],
      [
        '/v1/chat/completions',
        { ...client.headers, 'X-Model-Pub-Key': ecdsaKeys().publicKey },
        'X-Model-Pub-Key',
        'e2ee_model_key_mismatch',
      ],
      ['/v1/embeddings', client.headers, 'X-Client-Pub-Key', 'e2ee_unsupported_endpoint'],
    ];
    for (const [path, headers, param, code] of cases) {
      const res = await postJson(`${sidecar.url}${path}`, body, headers);
      expect(res.status).toBe(400);
      expect(json<{ error: { param: string; code: string } }>(res).error).toMatchObject({ param, code });
    }
  });
});

describe('E2EE with a scripted upstream', () => {
  let upstream: TestUpstream;
  let sidecar: TestSidecar;
  let mode: 'json' | 'sse' | 'text' = 'json';
  beforeAll(async () => {
    upstream = await startUpstream((_req, _body, res) => {
      if (mode === 'text') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(ANSWER);
      } else if (mode === 'json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'chatcmpl-e2ee1',
            choices: [{ index: 0, message: { role: 'assistant', content: ANSWER } }],
          }),
        );
      } else {
        writeSse(res, [
          `data: ${JSON.stringify({ id: 'chatcmpl-e2ee2', choices: [{ delta: { content: ANSWER } }] })}\n\n`,
          'data: [DONE]\n\n',
        ]);
      }
    });
    sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
  });
  afterAll(async () => {
    await sidecar.close();
    await upstream.close();
  });

  it('forwards plaintext without the E2EE headers; answers only in ciphertext', async () => {
    for (const m of ['json', 'sse'] as const) {
      mode = m;
      const client = nearClient('ecdsa', await modelKeyOf(sidecar.url, 'ecdsa'));
      const res = await postJson(
        `${sidecar.url}/v1/chat/completions`,
        { model: 'x', messages: [{ role: 'user', content: client.encrypt(PROMPT) }], stream: m === 'sse' },
        client.headers,
      );
      expect(res.status).toBe(200);
      const seen = upstream.requests.at(-1);
      expect(JSON.parse(seen?.body.toString() ?? '')).toMatchObject({
        messages: [{ role: 'user', content: PROMPT }],
      });
      expect(
        Object.keys(seen?.headers ?? {}).filter((h) => h.startsWith('x-') && /algo|pub-key|encrypt/.test(h)),
      ).toEqual([]);
      expect(res.body.toString()).not.toContain(ANSWER);
      const content =
        m === 'json'
          ? json<{ choices: Array<{ message: { content: string } }> }>(res).choices[0]?.message.content
          : JSON.parse(res.body.toString().split('\n')[0]?.slice(6) ?? '').choices[0].delta.content;
      expect(client.decrypt(content as string)).toBe(ANSWER);
    }
  });

  it('an answer that cannot be encrypted is refused (502), never sent in plaintext', async () => {
    mode = 'text';
    const client = nearClient('ed25519', await modelKeyOf(sidecar.url, 'ed25519'));
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { model: 'x', messages: [{ role: 'user', content: client.encrypt(PROMPT) }] },
      client.headers,
    );
    expect(res.status).toBe(502);
    expect(json<{ error: { code: string } }>(res).error.code).toBe('e2ee_upstream_unencryptable');
    expect(res.body.toString()).not.toContain(ANSWER);
  });

  it('a request that does not decrypt never reaches the upstream', async () => {
    const before = upstream.requests.length;
    const client = nearClient('ecdsa', await modelKeyOf(sidecar.url, 'ecdsa'));
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { model: 'x', messages: [{ role: 'user', content: PROMPT }] },
      client.headers,
    );
    expect(res.status).toBe(400);
    expect(res.body.toString()).not.toContain(PROMPT);
    expect(upstream.requests.length).toBe(before);
  });
});
