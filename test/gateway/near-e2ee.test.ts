import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoHeard } from '../../src/demo-upstream/index.js';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm, startTestGateway } from './harness.js';

/**
 * The gateway with the real E2EE client (src/e2ee through src/gateway/near-e2ee.ts) in front of the
 * real sidecar: the user talks plaintext to the gateway, only ciphertext crosses to the provider,
 * the answer is verified over the ciphertext and then decrypted for the user.
 */
let sidecar: TestSidecar;
let mitm: Mitm;
beforeAll(async () => {
  sidecar = await startTestSidecar();
  mitm = await startMitm(sidecar.url);
});
afterAll(async () => {
  await mitm.close();
  await sidecar.close();
});

const PROMPT = SECRET_MARKERS.e2eePrompt;

describe('gateway with the NEAR E2EE client', () => {
  it('JSON and streaming: plaintext for the user, ciphertext on the wire, answers verified', async () => {
    const gateway = await startTestGateway(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const seen = mitm.seen.length;
      const messages = [{ role: 'user' as const, content: PROMPT }];
      const { data, response } = await client.chat.completions
        .create({ model: 'teeml-demo', messages, max_tokens: 6 })
        .withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('verified');
      expect(data.choices[0]?.message.content).toContain(demoHeard(PROMPT));
      const stream = await client.chat.completions.create({
        model: 'teeml-demo',
        messages,
        max_tokens: 6,
        stream: true,
      });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(text.startsWith('[demo upstream]')).toBe(true);
      expect(text).toContain(demoHeard(PROMPT));
      expect(gateway.counters.verified).toBe(2);
      const forwarded = mitm.seen.slice(seen).filter((s) => s.path.includes('/chat/completions'));
      expect(forwarded).toHaveLength(2);
      for (const f of forwarded) {
        expect(f.body.toString()).not.toContain(PROMPT);
        const sent = JSON.parse(f.body.toString()) as { messages: Array<{ content: string }> };
        expect(sent.messages[0]?.content).toMatch(/^[0-9a-f]+$/);
      }
      expect((await rawRequest(`${gateway.url}/`)).body.toString()).toContain('on (near-e2ee v1)');
    } finally {
      await gateway.close();
    }
  });

  it('no session for routes outside the protocol; a non-JSON body is a 400', async () => {
    const health = JSON.parse((await rawRequest(`${sidecar.url}/health`)).body.toString()) as {
      ed25519_public_key: string;
    };
    const session = nearE2eeClient.session({
      openAiPath: '/chat/completions',
      algo: 'ed25519',
      signingAddress: health.ed25519_public_key,
      signingPublicKey: undefined,
    });
    await expect(
      session?.prepareRequest({ openAiPath: '/chat/completions', body: new TextEncoder().encode('x') }),
    ).rejects.toMatchObject({
      status: 400,
    });
    expect(
      nearE2eeClient.session({
        openAiPath: '/embeddings',
        algo: 'ecdsa',
        signingAddress: '0x',
        signingPublicKey: undefined,
      }),
    ).toBeUndefined();
    await expect(
      session?.restoreEventData('{"choices":[{"delta":{"content":"00ff"}}]}'),
    ).rejects.toMatchObject({
      code: 'e2ee_answer_undecryptable',
    });
  });
});
