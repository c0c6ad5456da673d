import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Mitm, startMitm, startTestGateway, testPolicy } from './harness.js';

/**
 * Issue 21 item 8 / issue 24 item 3: through the gateway's E2EE, a request with tools and an answer
 * with a tool call cross a man in the middle with no function name, tool description, parameter
 * name or argument in clear (the gateway sends `X-Encrypt-All-Fields: true`); the user's tool still
 * gets the plaintext tool call, verified. The demo upstream calls the named function with
 * `{"echo": <last message>}`.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
const wire: Buffer[] = [];
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
  mitm.mutate = (e) => {
    wire.push(e.body);
    return undefined;
  };
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
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

describe.each(['ecdsa', 'ed25519'] as const)('gateway E2EE with all fields (%s)', (algo) => {
  it('tools and a tool call, JSON and stream: sealed on the wire, plaintext and verified for the tool', async () => {
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
