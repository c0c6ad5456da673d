import { ed25519 } from '@noble/curves/ed25519.js';
import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { createE2eeClient, type E2eeSession, openE2eeSession } from '../../src/e2ee/index.js';
import { SidecarError } from '../../src/errors/index.js';
import { createSigners, type SigningAlgo } from '../../src/keys/index.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  decryptEcdsa,
  decryptEd25519,
  ecdsaKeys,
  ed25519Keys,
  encryptEcdsa,
  encryptEd25519,
  ethersShared,
  naclShared,
} from './near-client.js';

const signers = createSigners({
  secp256k1: new Uint8Array(Buffer.from(SECRET_MARKERS.secp256k1Key, 'hex')),
  ed25519: new Uint8Array(Buffer.from(SECRET_MARKERS.ed25519Seed, 'hex')),
});
const PROMPT = SECRET_MARKERS.e2eePrompt;
const ANSWER = SECRET_MARKERS.e2eeCompletion;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NEAR-style client (independent implementation) for one algorithm. */
const nearClient = (algo: SigningAlgo) => {
  if (algo === 'ecdsa') {
    const keys = ecdsaKeys();
    return {
      publicKey: keys.publicKey,
      encrypt: (text: string) => encryptEcdsa(text, signers.ecdsa.publicKey),
      decrypt: (hex: string) => decryptEcdsa(hex, keys.privateKey),
    };
  }
  const keys = ed25519Keys();
  return {
    publicKey: keys.publicKey,
    encrypt: (text: string) => encryptEd25519(text, signers.ed25519.publicKey),
    decrypt: (hex: string) => decryptEd25519(hex, keys.secretKey),
  };
};

const headersOf =
  (h: Record<string, string>) =>
  (name: string): string | undefined =>
    h[name];

const sessionFor = (
  algo: SigningAlgo,
  clientKey: string,
  extra: Record<string, string> = {},
  path = '/chat/completions',
) =>
  openE2eeSession(
    headersOf({ 'x-signing-algo': algo, 'x-client-pub-key': clientKey, ...extra }),
    path,
    signers,
  );

const rejection = (fn: () => unknown): SidecarError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SidecarError);
    return err as SidecarError;
  }
  throw new Error('expected a SidecarError');
};

describe('Signer.ecdh', () => {
  it('ecdsa: equals the x-coordinate ethers computes for the same pair', () => {
    const peer = Wallet.createRandom();
    const ours = signers.ecdsa.ecdh(new Uint8Array(Buffer.from(peer.signingKey.publicKey.slice(2), 'hex')));
    expect(Buffer.from(ours).toString('hex')).toBe(
      ethersShared(peer.privateKey, `04${signers.ecdsa.publicKey}`).toString('hex'),
    );
  });

  it('ed25519: equals tweetnacl scalarMult over ed2curve-converted keys', () => {
    const peer = ed25519Keys();
    const peerX = ed25519.utils.toMontgomery(new Uint8Array(Buffer.from(peer.publicKey, 'hex')));
    const ourX = ed25519.utils.toMontgomery(new Uint8Array(Buffer.from(signers.ed25519.publicKey, 'hex')));
    expect(Buffer.from(signers.ed25519.ecdh(peerX))).toEqual(Buffer.from(naclShared(peer.secretKey, ourX)));
  });

  it('refuses wrong lengths, points off the curve and low-order X25519 keys', () => {
    expect(() => signers.ecdsa.ecdh(new Uint8Array(64))).toThrow(RangeError);
    expect(() => signers.ecdsa.ecdh(Uint8Array.of(4, ...new Uint8Array(64).fill(1)))).toThrow(RangeError);
    expect(() => signers.ed25519.ecdh(new Uint8Array(31))).toThrow(RangeError);
    expect(() => signers.ed25519.ecdh(new Uint8Array(32))).toThrow(RangeError);
  });
});

describe.each(['ecdsa', 'ed25519'] as const)('E2EE %s against an independent NEAR-style client', (algo) => {
  it('decrypts the request contents and forwards plaintext (everything else untouched)', () => {
    const client = nearClient(algo);
    const body = {
      model: 'm',
      messages: [
        { role: 'system', content: client.encrypt('be brief') },
        { role: 'user', content: client.encrypt(PROMPT) },
        { role: 'user', content: '' },
      ],
      stream: false,
      max_tokens: 7,
    };
    const session = sessionFor(algo, client.publicKey, {
      'x-model-pub-key': signers.get(algo).publicKey.toUpperCase(),
    }) as E2eeSession;
    const out = JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(body)))));
    expect(out).toEqual({
      model: 'm',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: PROMPT },
        { role: 'user', content: '' },
      ],
      stream: false,
      max_tokens: 7,
    });
  });

  it('restores multimodal content parts sent as an encrypted JSON array', () => {
    const client = nearClient(algo);
    const parts = [{ type: 'text', text: PROMPT }];
    const body = { messages: [{ role: 'user', content: client.encrypt(JSON.stringify(parts)) }] };
    const session = sessionFor(algo, client.publicKey) as E2eeSession;
    const out = JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(body)))));
    expect(out.messages[0].content).toEqual(parts);
  });

  it('encrypts message content and reasoning of a JSON answer to the client key', () => {
    const client = nearClient(algo);
    const session = sessionFor(algo, client.publicKey) as E2eeSession;
    const answer = {
      id: 'chatcmpl-1',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: ANSWER, reasoning_content: 'why' },
          finish_reason: 'stop',
        },
      ],
      usage: { total_tokens: 3 },
    };
    const sent = JSON.parse(decoder.decode(session.encryptJson(encoder.encode(JSON.stringify(answer)))));
    expect(JSON.stringify(sent)).not.toContain(ANSWER);
    expect(sent.id).toBe('chatcmpl-1');
    expect(sent.usage).toEqual({ total_tokens: 3 });
    expect(sent.choices[0].message.role).toBe('assistant');
    expect(client.decrypt(sent.choices[0].message.content)).toBe(ANSWER);
    expect(client.decrypt(sent.choices[0].message.reasoning_content)).toBe('why');
  });

  it('encrypts every delta of an SSE answer, event by event, however the bytes are split', () => {
    const client = nearClient(algo);
    const session = sessionFor(algo, client.publicKey) as E2eeSession;
    const words = ANSWER.split(' ');
    const upstream = [
      'data: {"id":"chatcmpl-2","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n',
      ...words.map(
        (w) =>
          `data: {"id":"chatcmpl-2","choices":[{"index":0,"delta":{"content":${JSON.stringify(`${w} `)}}}]}\r\n\r\n`,
      ),
      ': keep-alive\n\n',
      'data: {"id":"chatcmpl-2","choices":[],"usage":{"total_tokens":5}}\n\n',
      'data: [DONE]\n\n',
    ].join('');
    const bytes = encoder.encode(upstream);
    for (const split of [bytes.length, 1, 7]) {
      const enc = session.sseEncryptor();
      const parts: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += split) parts.push(enc.push(bytes.subarray(i, i + split)));
      parts.push(enc.end());
      const text = decoder.decode(Buffer.concat(parts));
      expect(text).not.toContain(words[1]);
      expect(text).toContain(': keep-alive\n\n');
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      expect(text).toContain('\r\n\r\n');
      const events = text
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)));
      expect(events).toHaveLength(words.length + 2);
      expect(events[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
      const joined = events
        .slice(1, -1)
        .map((e) => client.decrypt(e.choices[0].delta.content))
        .join('');
      expect(joined).toBe(`${words.join(' ')} `);
      expect(events.at(-1)).toEqual({ id: 'chatcmpl-2', choices: [], usage: { total_tokens: 5 } });
    }
  });

  it('refuses a tampered ciphertext with a 400 that names the field and echoes nothing', () => {
    const client = nearClient(algo);
    const ct = client.encrypt(PROMPT);
    for (const at of [10, ct.length / 2, ct.length - 3]) {
      const flipped = ct.slice(0, at) + (ct[at] === '0' ? '1' : '0') + ct.slice(at + 1);
      const session = sessionFor(algo, client.publicKey) as E2eeSession;
      const err = rejection(() =>
        session.decryptRequest(
          encoder.encode(JSON.stringify({ messages: [{ role: 'user', content: flipped }] })),
        ),
      );
      expect(err.status).toBe(400);
      expect(err.code).toBe('e2ee_decryption_failed');
      expect(err.param).toBe('messages[0].content');
      expect(err.message).not.toContain(flipped.slice(0, 40));
      expect(err.message).not.toContain(PROMPT);
    }
    const session = sessionFor(algo, client.publicKey) as E2eeSession;
    for (const content of [PROMPT, ct.slice(0, 40), `${ct}0`]) {
      const err = rejection(() =>
        session.decryptRequest(encoder.encode(JSON.stringify({ messages: [{ role: 'user', content }] }))),
      );
      expect(err.code).toBe('e2ee_decryption_failed');
      expect(err.message).not.toContain(PROMPT);
    }
  });

  it('refuses a ciphertext made for the other algorithm', () => {
    const other = nearClient(algo === 'ecdsa' ? 'ed25519' : 'ecdsa');
    const client = nearClient(algo);
    const session = sessionFor(algo, client.publicKey) as E2eeSession;
    const err = rejection(() =>
      session.decryptRequest(
        encoder.encode(JSON.stringify({ messages: [{ role: 'user', content: other.encrypt(PROMPT) }] })),
      ),
    );
    expect(err.code).toBe('e2ee_decryption_failed');
  });

  it('refuses a mismatched X-Model-Pub-Key', () => {
    const client = nearClient(algo);
    const otherKey = algo === 'ecdsa' ? ecdsaKeys().publicKey : ed25519Keys().publicKey;
    const err = rejection(() => sessionFor(algo, client.publicKey, { 'x-model-pub-key': otherKey }));
    expect(err.status).toBe(400);
    expect(err.code).toBe('e2ee_model_key_mismatch');
    expect(err.param).toBe('X-Model-Pub-Key');
  });

  it('our client half interoperates with the independent one in both directions', () => {
    const ours = createE2eeClient({ algo, modelPublicKey: signers.get(algo).publicKey });
    const session = openE2eeSession(
      headersOf(lower(ours.headers)),
      '/chat/completions',
      signers,
    ) as E2eeSession;
    const body = ours.encryptRequest({ messages: [{ role: 'user', content: PROMPT }] });
    expect(JSON.stringify(body)).not.toContain(PROMPT);
    expect(JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(body)))))).toEqual({
      messages: [{ role: 'user', content: PROMPT }],
    });
    const sent = JSON.parse(
      decoder.decode(
        session.encryptJson(encoder.encode(JSON.stringify({ choices: [{ message: { content: ANSWER } }] }))),
      ),
    );
    expect(ours.decryptResponse(sent)).toEqual({ choices: [{ message: { content: ANSWER } }] });
    // The independent client decrypts what our client half encrypts to it... via the session's seal.
    const near = nearClient(algo);
    const toNear = sessionFor(algo, near.publicKey) as E2eeSession;
    expect(near.decrypt(toNear.seal(ANSWER))).toBe(ANSWER);
  });
});

const lower = (h: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

describe('E2EE headers', () => {
  it('no E2EE headers: no session', () => {
    expect(openE2eeSession(() => undefined, '/chat/completions', signers)).toBeUndefined();
  });

  it.each([
    [{ 'x-signing-algo': 'ecdsa' }, 'X-Client-Pub-Key', 'invalid_e2ee_header'],
    [{ 'x-client-pub-key': 'ab'.repeat(64) }, 'X-Signing-Algo', 'invalid_e2ee_header'],
    [
      { 'x-signing-algo': 'rsa', 'x-client-pub-key': 'ab'.repeat(32) },
      'X-Signing-Algo',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ecdsa', 'x-client-pub-key': 'zz'.repeat(64) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ecdsa', 'x-client-pub-key': 'ab'.repeat(63) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ecdsa', 'x-client-pub-key': 'ab'.repeat(33) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ecdsa', 'x-client-pub-key': '01'.repeat(64) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ed25519', 'x-client-pub-key': 'ab'.repeat(31) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
    [
      { 'x-signing-algo': 'ed25519', 'x-client-pub-key': 'ab'.repeat(64) },
      'X-Client-Pub-Key',
      'invalid_e2ee_header',
    ],
  ])('%j → 400 naming %s', (headers, param, code) => {
    const err = rejection(() => openE2eeSession(headersOf(headers), '/chat/completions', signers));
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
    expect(err.code).toBe(code);
    expect(err.toBody().error.message).not.toMatch(/abab|zzzz|0101/);
  });

  it('X-Encryption-Version must be 1 or 2', () => {
    const key = ed25519Keys().publicKey;
    for (const v of ['3', 'x', '1.0']) {
      const err = rejection(() => sessionFor('ed25519', key, { 'x-encryption-version': v }));
      expect(err.param).toBe('X-Encryption-Version');
    }
    expect(sessionFor('ed25519', key, { 'x-encryption-version': '2' })?.version).toBe(2);
    expect(sessionFor('ed25519', key)?.version).toBe(1);
  });

  it('an endpoint outside the protocol → 400', () => {
    const err = rejection(() => sessionFor('ecdsa', ecdsaKeys().publicKey, {}, '/embeddings'));
    expect(err.code).toBe('e2ee_unsupported_endpoint');
  });

  it('accepts a 65-byte 04-prefixed ecdsa client key, as inference-proxy does', () => {
    const keys = ecdsaKeys();
    const session = sessionFor('ecdsa', `04${keys.publicKey}`) as E2eeSession;
    expect(decryptEcdsa(session.seal(ANSWER), keys.privateKey)).toBe(ANSWER);
  });
});

describe('version 2 and all fields', () => {
  it('ed25519 v2 (HKDF + XChaCha20-Poly1305) round-trips through the client half', () => {
    const ours = createE2eeClient({ algo: 'ed25519', modelPublicKey: signers.ed25519.publicKey, version: 2 });
    expect(ours.headers['X-Encryption-Version']).toBe('2');
    const session = openE2eeSession(
      headersOf(lower(ours.headers)),
      '/chat/completions',
      signers,
    ) as E2eeSession;
    const body = ours.encryptRequest({ messages: [{ role: 'user', content: PROMPT }] });
    expect(
      JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(body))))).messages[0]
        .content,
    ).toBe(PROMPT);
    // A v1 (NaCl box) ciphertext does not open as v2.
    const v1 = encryptEd25519(PROMPT, signers.ed25519.publicKey);
    expect(() =>
      session.decryptRequest(encoder.encode(JSON.stringify({ messages: [{ content: v1 }] }))),
    ).toThrow(SidecarError);
  });

  it('X-Encrypt-All-Fields: tool calls and tools are decrypted when encrypted, passed through when plaintext', () => {
    const ours = createE2eeClient({
      algo: 'ecdsa',
      modelPublicKey: signers.ecdsa.publicKey,
      encryptAllFields: true,
    });
    const session = openE2eeSession(
      headersOf(lower(ours.headers)),
      '/chat/completions',
      signers,
    ) as E2eeSession;
    const plain = {
      messages: [
        { role: 'user', content: PROMPT },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
        },
      ],
      tools: [
        { type: 'function', function: { name: 'f', description: 'd', parameters: { type: 'object' } } },
      ],
      tool_choice: { type: 'function', function: { name: 'f' } },
    };
    const enc = ours.encryptRequest(plain);
    expect(typeof enc.tools[0]?.function.parameters).toBe('string');
    const back = (b: unknown) =>
      JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(b)))));
    expect(back(enc)).toEqual(plain);
    // A client that encrypts only the contents (NEAR's older clients) still works.
    const contentsOnly = {
      ...plain,
      messages: [{ role: 'user', content: ours.encrypt(PROMPT) }, plain.messages[1]],
    };
    expect(back(contentsOnly)).toEqual(plain);

    const answer = {
      choices: [
        {
          message: {
            content: ANSWER,
            tool_calls: [{ function: { name: 'f', arguments: '{}' } }],
            refusal: 'no',
          },
          logprobs: {
            content: [
              {
                token: 'x',
                bytes: [120],
                logprob: -1,
                top_logprobs: [{ token: 'y', bytes: [121], logprob: -2 }],
              },
            ],
          },
        },
      ],
    };
    const sent = JSON.parse(decoder.decode(session.encryptJson(encoder.encode(JSON.stringify(answer)))));
    expect(sent.choices[0].logprobs.content[0].logprob).toBe(-1);
    expect(typeof sent.choices[0].logprobs.content[0].bytes).toBe('string');
    expect(sent.choices[0].message.tool_calls[0].function.name).not.toBe('f');
    expect(ours.decryptResponse(sent)).toEqual(answer);
  });

  it('completions: prompt strings in, choices[].text out', () => {
    const ours = createE2eeClient({ algo: 'ed25519', modelPublicKey: signers.ed25519.publicKey });
    const session = openE2eeSession(headersOf(lower(ours.headers)), '/completions', signers) as E2eeSession;
    const body = ours.encryptRequest({ prompt: [PROMPT, 'b', [1, 2]] }, 'completions');
    expect(JSON.parse(decoder.decode(session.decryptRequest(encoder.encode(JSON.stringify(body)))))).toEqual({
      prompt: [PROMPT, 'b', [1, 2]],
    });
    const sent = JSON.parse(
      decoder.decode(session.encryptJson(encoder.encode(JSON.stringify({ choices: [{ text: ANSWER }] })))),
    );
    expect(sent.choices[0].text).not.toBe(ANSWER);
    expect(ours.decryptResponse(sent, { endpoint: 'completions' })).toEqual({ choices: [{ text: ANSWER }] });
  });

  it('an answer that is not JSON, or an SSE data line that is not, is refused rather than sent in plaintext', () => {
    const session = sessionFor('ecdsa', ecdsaKeys().publicKey) as E2eeSession;
    expect(rejection(() => session.encryptJson(encoder.encode(`not json ${ANSWER}`))).status).toBe(502);
    const enc = session.sseEncryptor();
    expect(rejection(() => enc.push(encoder.encode(`data: ${ANSWER}\n\n`))).code).toBe(
      'e2ee_upstream_unencryptable',
    );
  });
});
