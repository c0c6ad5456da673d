import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createE2eeClient } from '../../src/e2ee/index.js';
import type { SigningAlgo } from '../../src/keys/index.js';
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
import {
  decryptEcdsa,
  decryptEd25519,
  ecdsaKeys,
  ed25519Keys,
  encryptEcdsa,
  encryptEd25519,
} from '../e2ee/near-client.js';
import { SECRET_MARKERS } from '../secrets.js';

/**
 * The sidecar's E2EE edges against a scripted model server (issue 21 items 9 and 10, issue 24 item
 * 3): keys no agreement works with are refused before the model runs, a sealed JSON array stays
 * text, error bodies never leave in clear, and `X-Encrypt-All-Fields` seals exactly NEAR's field
 * list both ways (checked with the independent NEAR-style client of test/e2ee/near-client.ts).
 */
const PROMPT = SECRET_MARKERS.e2eePrompt;
const ANSWER = SECRET_MARKERS.e2eeCompletion;

type Script = (body: Buffer, res: Parameters<Parameters<typeof startUpstream>[0]>[2]) => void;
let script: Script;
let upstream: TestUpstream;
let sidecar: TestSidecar;
beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => script(body, res));
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
});
afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});
beforeEach(() => {
  script = (_body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ id: 'chatcmpl-g1', choices: [{ index: 0, message: { content: ANSWER } }] }));
  };
});

const modelKeyOf = async (algo: SigningAlgo): Promise<string> => {
  const report = json<{ model_attestations: Array<{ signing_public_key: string }> }>(
    await rawRequest(`${sidecar.url}/v1/attestation/report?signing_algo=${algo}`),
  );
  return report.model_attestations[0]?.signing_public_key as string;
};

/** A NEAR-style client (ethers; tweetnacl + ed2curve), sharing no code with src/e2ee. */
const nearClient = async (algo: SigningAlgo, allFields = false) => {
  const modelKey = await modelKeyOf(algo);
  const base = { 'X-Signing-Algo': algo, 'X-Model-Pub-Key': modelKey };
  const extra: Record<string, string> = allFields ? { 'X-Encrypt-All-Fields': 'true' } : {};
  if (algo === 'ecdsa') {
    const keys = ecdsaKeys();
    return {
      headers: { ...base, 'X-Client-Pub-Key': keys.publicKey, ...extra },
      encrypt: (t: string) => encryptEcdsa(t, modelKey),
      decrypt: (h: string) => decryptEcdsa(h, keys.privateKey),
    };
  }
  const keys = ed25519Keys();
  return {
    headers: { ...base, 'X-Client-Pub-Key': keys.publicKey, ...extra },
    encrypt: (t: string) => encryptEd25519(t, modelKey),
    decrypt: (h: string) => decryptEd25519(h, keys.secretKey),
  };
};

const lastForwarded = (): Record<string, unknown> =>
  JSON.parse(upstream.requests.at(-1)?.body.toString() ?? 'null') as Record<string, unknown>;

/**
 * Every encoding of a small-order Ed25519 point libsodium refuses (`ge25519_has_small_order`: the
 * identity, the points of order 2, 4 and 8, and the non-canonical y = p, p + 1), each with the sign
 * bit clear and set.
 */
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].flatMap((hex) => [hex, `${hex.slice(0, 62)}${(Number.parseInt(hex.slice(62), 16) | 0x80).toString(16)}`]);

describe('small-order client keys (issue 21 item 9)', () => {
  it('each is 400 invalid_e2ee_header before any upstream call, JSON and stream', async () => {
    const modelKey = await modelKeyOf('ed25519');
    const before = upstream.requests.length;
    for (const key of SMALL_ORDER) {
      for (const stream of [false, true]) {
        const res = await postJson(
          `${sidecar.url}/v1/chat/completions`,
          { model: 'x', messages: [{ role: 'user', content: encryptEd25519(PROMPT, modelKey) }], stream },
          { 'X-Signing-Algo': 'ed25519', 'X-Client-Pub-Key': key },
        );
        expect({ key, status: res.status }).toEqual({ key, status: 400 });
        expect(json<{ error: { code: string; param: string } }>(res).error).toMatchObject({
          code: 'invalid_e2ee_header',
          param: 'X-Client-Pub-Key',
        });
      }
    }
    expect(upstream.requests.length).toBe(before);
  });

  it('the client half refuses to seal to a small-order model key', () => {
    for (const key of SMALL_ORDER) {
      expect(() => createE2eeClient({ algo: 'ed25519', modelPublicKey: key })).toThrow(RangeError);
    }
  });
});

describe('a sealed content that decrypts to a JSON array (issue 21 item 10)', () => {
  it('stays the text it is unless it is a content-parts array', async () => {
    const client = await nearClient('ed25519');
    for (const text of ['[1, 2, 3]', '["a", "b"]', '[]', '[{"no_type": 1}]', '[{"type": 7}]']) {
      const res = await postJson(
        `${sidecar.url}/v1/chat/completions`,
        { model: 'x', messages: [{ role: 'user', content: client.encrypt(text) }] },
        client.headers,
      );
      expect(res.status).toBe(200);
      expect(lastForwarded().messages).toEqual([{ role: 'user', content: text }]);
    }
    // Multimodal content, sealed as its parts' JSON by NEAR's clients, is still restored.
    const parts = [{ type: 'text', text: PROMPT }];
    await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { model: 'x', messages: [{ role: 'user', content: client.encrypt(JSON.stringify(parts)) }] },
      client.headers,
    );
    expect(lastForwarded().messages).toEqual([{ role: 'user', content: parts }]);
  });

  it('our client half sends a text that reads as content parts as that text', async () => {
    const ours = createE2eeClient({ algo: 'ecdsa', modelPublicKey: await modelKeyOf('ecdsa') });
    const text = JSON.stringify([{ type: 'image_url', image_url: { url: 'https://example.com/x.png' } }]);
    const body = ours.encryptRequest({ model: 'x', messages: [{ role: 'user', content: text }] });
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, body, { ...ours.headers });
    expect(res.status).toBe(200);
    expect(lastForwarded().messages).toEqual([{ role: 'user', content: [{ type: 'text', text }] }]);
  });
});

describe('upstream error bodies with E2EE on (issue 21 item 10)', () => {
  const echo422: Script = (body, res) => {
    // FastAPI's validation error: the offending input, quoted back.
    const input = JSON.parse(body.toString()) as { messages: unknown };
    res.writeHead(422, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ detail: [{ type: 'missing', loc: ['body'], msg: 'bad', input: input.messages }] }),
    );
  };

  it('are withheld: the status stays, the body is a generic OpenAI error, JSON and stream', async () => {
    for (const [status, upstreamScript] of [
      [422, echo422],
      [
        500,
        ((body, res) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`crashed on ${body.toString()}`);
        }) as Script,
      ],
    ] as const) {
      script = upstreamScript;
      for (const algo of ['ecdsa', 'ed25519'] as const) {
        for (const stream of [false, true]) {
          const client = await nearClient(algo);
          const res = await postJson(
            `${sidecar.url}/v1/chat/completions`,
            { model: 'x', messages: [{ role: 'user', content: client.encrypt(PROMPT) }], stream },
            client.headers,
          );
          expect(res.status).toBe(status);
          expect(res.body.toString()).not.toContain(PROMPT);
          expect(json<{ error: { code: string; type: string } }>(res).error.code).toBe('e2ee_upstream_error');
          expect(res.headers['zg-res-key']).toBeUndefined();
        }
      }
    }
  });

  it('an in-band stream error is replaced, and the stream is left unsigned', async () => {
    script = (body, res) => {
      const heard = (JSON.parse(body.toString()) as { messages: Array<{ content: string }> }).messages[0];
      writeSse(res, [
        `data: ${JSON.stringify({ id: 'chatcmpl-inband', choices: [{ index: 0, delta: { content: 'a' } }] })}\n\n`,
        `data: ${JSON.stringify({ error: { message: `bad input ${heard?.content}`, type: 'BadRequestError', code: 400 } })}\n\n`,
        'data: [DONE]\n\n',
      ]);
    };
    const client = await nearClient('ecdsa');
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      { model: 'x', messages: [{ role: 'user', content: client.encrypt(PROMPT) }], stream: true },
      client.headers,
    );
    expect(res.body.toString()).not.toContain(PROMPT);
    const events = res.body
      .toString()
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)) as { error?: { code: string } });
    expect(events[1]?.error?.code).toBe('e2ee_upstream_error');
    const id = res.headers['zg-res-key'] as string;
    const sig = await rawRequest(`${sidecar.url}/v1/signature/${id}?signing_algo=ecdsa`);
    expect(sig.status).toBe(404);
  });

  it('without E2EE they pass through as before', async () => {
    script = echo422;
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, {
      model: 'x',
      messages: [{ role: 'user', content: 'plain words' }],
    });
    expect(res.status).toBe(422);
    expect(res.body.toString()).toContain('plain words');
  });
});

const TOOL = {
  name: 'lookup_patient_c41d',
  description: 'Finds the patient file 5e2b',
  parameters: { type: 'object', properties: { ssn_field_77a0: { type: 'string' } } },
};
const ARGS = '{"ssn_field_77a0":"078-05-1120"}';
const LOGPROBS = {
  content: [
    {
      token: 'tok_3f9a',
      bytes: [116, 111],
      logprob: -0.5,
      top_logprobs: [{ token: 'alt_1b2c', bytes: null, logprob: -2 }],
    },
  ],
};
const CLEAR = [
  TOOL.name,
  TOOL.description,
  'ssn_field_77a0',
  '078-05-1120',
  'tok_3f9a',
  'alt_1b2c',
  'declined 6d1e',
];

describe.each(['ecdsa', 'ed25519'] as const)('X-Encrypt-All-Fields with a NEAR-style client (%s)', (algo) => {
  it('tool definitions and calls are opened for the model; tool calls, refusals and logprobs are sealed back', async () => {
    const client = await nearClient(algo, true);
    const answer = {
      id: `chatcmpl-all-${algo}`,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            refusal: 'declined 6d1e',
            tool_calls: [{ id: 'c1', type: 'function', function: { name: TOOL.name, arguments: ARGS } }],
          },
          logprobs: LOGPROBS,
          finish_reason: 'tool_calls',
        },
      ],
    };
    const chunk = {
      id: `chatcmpl-all-s-${algo}`,
      choices: [{ index: 0, delta: answer.choices[0]?.message, logprobs: LOGPROBS, finish_reason: null }],
    };
    script = (body, res) => {
      if ((JSON.parse(body.toString()) as { stream?: boolean }).stream === true) {
        writeSse(res, [`data: ${JSON.stringify(chunk)}\n\n`, 'data: [DONE]\n\n']);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    };
    for (const stream of [false, true]) {
      const request = {
        model: 'x',
        stream,
        messages: [
          { role: 'user', content: client.encrypt(PROMPT) },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: 'c0',
                type: 'function',
                function: { name: client.encrypt(TOOL.name), arguments: client.encrypt(ARGS) },
              },
            ],
          },
          {
            role: 'tool',
            tool_call_id: 'c0',
            name: client.encrypt(TOOL.name),
            content: client.encrypt('no record'),
          },
        ],
        tools: [
          {
            type: 'function',
            function: {
              name: client.encrypt(TOOL.name),
              description: client.encrypt(TOOL.description),
              parameters: client.encrypt(JSON.stringify(TOOL.parameters)),
            },
          },
        ],
        tool_choice: { type: 'function', function: { name: client.encrypt(TOOL.name) } },
      };
      const res = await postJson(`${sidecar.url}/v1/chat/completions`, request, client.headers);
      expect(res.status).toBe(200);
      expect(lastForwarded()).toMatchObject({
        messages: [
          { content: PROMPT },
          { tool_calls: [{ function: { name: TOOL.name, arguments: ARGS } }] },
          { name: TOOL.name, content: 'no record' },
        ],
        tools: [{ function: TOOL }],
        tool_choice: { function: { name: TOOL.name } },
      });
      const text = res.body.toString();
      for (const clear of CLEAR) expect(text).not.toContain(clear);
      const got = stream
        ? (JSON.parse(text.split('\n')[0]?.slice(6) ?? '') as typeof chunk).choices[0]
        : json<typeof answer>(res).choices[0];
      const msg = (
        stream ? (got as (typeof chunk.choices)[0]).delta : (got as (typeof answer.choices)[0]).message
      ) as (typeof answer.choices)[0]['message'];
      const call = msg.tool_calls[0]?.function;
      expect([
        client.decrypt(call?.name ?? ''),
        client.decrypt(call?.arguments ?? ''),
        client.decrypt(msg.refusal),
      ]).toEqual([TOOL.name, ARGS, 'declined 6d1e']);
      const entry = got?.logprobs.content[0];
      expect(client.decrypt(entry?.token ?? '')).toBe('tok_3f9a');
      expect(JSON.parse(client.decrypt(entry?.bytes as unknown as string))).toEqual([116, 111]);
      expect(entry?.logprob).toBe(-0.5);
      // As inference-proxy's `encrypt_bytes_field`: only an array is sealed; null stays null.
      expect(entry?.top_logprobs[0]?.bytes).toBeNull();
      expect(client.decrypt(entry?.top_logprobs[0]?.token ?? '')).toBe('alt_1b2c');
    }
  });
});

describe('without X-Encrypt-All-Fields', () => {
  const toolAnswer: Script = (_body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: 'chatcmpl-noheader',
        choices: [
          {
            index: 0,
            message: {
              content: null,
              tool_calls: [{ id: 'c', type: 'function', function: { name: TOOL.name, arguments: ARGS } }],
            },
          },
        ],
      }),
    );
  };
  const ask = async (sealTools: boolean) => {
    script = toolAnswer;
    const client = await nearClient('ed25519');
    const name = sealTools ? client.encrypt(TOOL.name) : TOOL.name;
    const res = await postJson(
      `${sidecar.url}/v1/chat/completions`,
      {
        model: 'x',
        messages: [{ role: 'user', content: client.encrypt(PROMPT) }],
        tools: [{ type: 'function', function: { name } }],
      },
      client.headers,
    );
    return { client, res, forwarded: lastForwarded() };
  };

  it('a request whose tool definitions came sealed gets its tool calls sealed (a stripped header gains nothing)', async () => {
    const { client, res, forwarded } = await ask(true);
    expect(forwarded).toMatchObject({ tools: [{ function: { name: TOOL.name } }] });
    expect(res.body.toString()).not.toContain(TOOL.name);
    expect(res.body.toString()).not.toContain('078-05-1120');
    const call = json<{
      choices: Array<{ message: { tool_calls: Array<{ function: { name: string; arguments: string } }> } }>;
    }>(res).choices[0]?.message.tool_calls[0]?.function;
    expect([client.decrypt(call?.name ?? ''), client.decrypt(call?.arguments ?? '')]).toEqual([
      TOOL.name,
      ARGS,
    ]);
  });

  it('plaintext tool definitions: tool calls come back in plaintext, as NEAR clients without the header expect', async () => {
    const { res } = await ask(false);
    expect(
      json<{ choices: Array<{ message: { tool_calls: Array<{ function: { name: string } }> } }> }>(res)
        .choices[0]?.message.tool_calls[0]?.function.name,
    ).toBe(TOOL.name);
  });
});
