import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, testPolicy } from './harness.js';

/**
 * Issue 21 item 8 / issue 24 item 3: through the gateway's E2EE, a request with tools and an answer
 * with a tool call cross a man in the middle with no function name, tool description, parameter
 * name or argument in clear (the gateway sends `X-Encrypt-All-Fields: true`); the user's tool still
 * gets the plaintext tool call, verified. A man in the middle that strips the header gains nothing:
 * the sidecar seals the answer's tool calls because the request's tool definitions came sealed. The
 * demo upstream calls the named function with `{"echo": <last message>}`.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
let stripper: Stripper;
const wire: Buffer[] = [];
beforeAll(async () => {
  sidecar = await startTestSidecar();
  stripper = await startStripper(sidecar.url);
  mitm = await startMitm(sidecar.url);
  mitm.mutate = (e) => {
    wire.push(e.body);
    return undefined;
  };
});
afterAll(async () => {
  await mitm.close();
  await stripper.close();
  await sidecar.close();
});

interface Stripper {
  url: string;
  stripped: number;
  close(): Promise<void>;
}

/** A second man in the middle that removes `X-Encrypt-All-Fields` from every request it forwards. */
const startStripper = (target: string): Promise<Stripper> =>
  new Promise((resolve) => {
    const state = { stripped: 0 };
    const server: Server = createServer((req, res) => {
      const headers = { ...req.headers };
      if (headers['x-encrypt-all-fields'] !== undefined) state.stripped += 1;
      delete headers['x-encrypt-all-fields'];
      delete headers.host;
      const out = httpRequest(
        `${target}${req.url ?? '/'}`,
        { method: req.method ?? 'GET', headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      req.pipe(out);
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(
        Object.assign(state, {
          url: `http://127.0.0.1:${port}`,
          close: () =>
            new Promise<void>((done) => {
              server.closeAllConnections();
              server.close(() => done());
            }),
        }),
      );
    });
  });

const FUNCTION = 'lookup_patient_c41d';
const DESCRIPTION = 'Finds the patient file 5e2b by social security number';
const PARAMETER = 'ssn_field_77a0';
const PROMPT = 'the ssn is 078-05-1120';
const EARLIER_ARGS = '{"ssn_field_77a0":"219-09-9999"}';
const SECRETS = [FUNCTION, DESCRIPTION, PARAMETER, PROMPT, '078-05-1120', '219-09-9999', 'echo'];

const request = {
  model: 'teeml-demo',
  messages: [
    { role: 'user' as const, content: 'earlier question' },
    {
      role: 'assistant' as const,
      content: null,
      tool_calls: [
        { id: 'call_1', type: 'function' as const, function: { name: FUNCTION, arguments: EARLIER_ARGS } },
      ],
    },
    { role: 'tool' as const, tool_call_id: 'call_1', content: 'no record' },
    { role: 'user' as const, content: PROMPT },
  ],
  tools: [
    {
      type: 'function' as const,
      function: {
        name: FUNCTION,
        description: DESCRIPTION,
        parameters: { type: 'object', properties: { [PARAMETER]: { type: 'string' } } },
      },
    },
  ],
  tool_choice: { type: 'function' as const, function: { name: FUNCTION } },
};

const expectNothingInClear = (from: number) => {
  const seen = [...mitm.seen.slice(from).map((s) => s.body), ...wire];
  expect(seen.some((b) => b.length > 0)).toBe(true);
  for (const body of seen) for (const secret of SECRETS) expect(body.toString()).not.toContain(secret);
};

const CASES = [
  ['ecdsa', false],
  ['ed25519', false],
  ['ecdsa', true],
  ['ed25519', true],
] as const;

describe.each(CASES)('gateway E2EE with all fields (%s, header stripped on the way: %s)', (algo, strip) => {
  it('tools and a tool call, JSON and stream: sealed on the wire, plaintext and verified for the tool', async () => {
    mitm.route = (path) => ({ target: strip ? stripper.url : sidecar.url, path });
    const strippedBefore = stripper.stripped;
    const gateway = await startTestGateway(mitm.url, {
      policy: testPolicy({ signingAlgo: algo }),
      e2ee: { mode: 'auto', client: nearE2eeClient },
    });
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const from = mitm.seen.length;
      wire.length = 0;
      const { data, response } = await client.chat.completions.create(request).withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('verified');
      const call = data.choices[0]?.message.tool_calls?.[0];
      expect(call?.type === 'function' ? call.function : undefined).toEqual({
        name: FUNCTION,
        arguments: JSON.stringify({ echo: PROMPT }),
      });

      const stream = await client.chat.completions.create({ ...request, stream: true });
      let name = '';
      let args = '';
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta.tool_calls?.[0]?.function;
        name += delta?.name ?? '';
        args += delta?.arguments ?? '';
      }
      expect({ name, args }).toEqual({ name: FUNCTION, args: JSON.stringify({ echo: PROMPT }) });
      expect(gateway.counters.verified).toBe(2);
      expectNothingInClear(from);
      // The header was sent (and, when stripping, removed on the way).
      expect(stripper.stripped - strippedBefore).toBe(strip ? 2 : 0);
    } finally {
      await gateway.close();
    }
  });
});

describe('the gateway E2EE client', () => {
  it('says which fields it protects', () => {
    expect(nearE2eeClient.protects).toMatch(/tool calls.*tool definitions.*function names/);
  });
});
