import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type E2eeClient, reportAdvertisesE2ee } from '../../src/gateway/index.js';
import { rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import { type Mitm, startMitm, startTestGateway, testPolicy } from './harness.js';

/**
 * The E2EE step is a seam (src/gateway/e2ee.ts) until the E2EE client lands; a test double stands in
 * for it: it "encrypts" message contents (reversed, base64) and marks restored answers. The wire
 * between gateway and sidecar must carry only the transformed body, signatures are checked over it,
 * and the user sees the restored answer.
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

const seal = (s: string) => `sealed:${Buffer.from([...s].reverse().join('')).toString('base64')}`;

const double = (supports: (report: unknown) => boolean, calls: string[]): E2eeClient => ({
  name: 'test double',
  supports,
  session: ({ openAiPath, algo, signingAddress }) => {
    calls.push(`session ${openAiPath} ${algo} ${signingAddress.length}`);
    if (openAiPath !== '/chat/completions') return undefined;
    return {
      authenticatesSender: false,
      prepareRequest: async ({ body }) => {
        const json = JSON.parse(new TextDecoder().decode(body)) as { messages: Array<{ content: string }> };
        for (const m of json.messages) m.content = seal(m.content);
        // Not the protocol's X-Signing-Algo: the sidecar answers that header 400 without a client key
        // and real ciphertexts (NEAR's rule), and these bodies are only reversed text.
        return { body: new TextEncoder().encode(JSON.stringify(json)), headers: { 'x-e2ee-double': algo } };
      },
      restoreBody: async (body) => {
        const json = JSON.parse(new TextDecoder().decode(body)) as {
          choices: Array<{ message: { content: string } }>;
        };
        for (const c of json.choices) c.message.content = `restored:${c.message.content}`;
        return new TextEncoder().encode(JSON.stringify(json));
      },
      restoreEventData: async (data) => {
        const json = JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> };
        for (const c of json.choices)
          if (c.delta.content !== undefined) c.delta.content = `restored:${c.delta.content}`;
        return JSON.stringify(json);
      },
    };
  },
});

const messages = [{ role: 'user' as const, content: SECRET_MARKERS.prompt }];

describe('E2EE seam', () => {
  it('encrypts before forwarding, verifies the ciphertext exchange, restores what the user sees', async () => {
    const calls: string[] = [];
    const gateway = await startTestGateway(mitm.url, {
      e2ee: { mode: 'auto', client: double(() => true, calls) },
    });
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const seen = mitm.seen.length;
      const { data, response } = await client.chat.completions
        .create({ model: 'teeml-demo', messages, max_tokens: 4 })
        .withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('verified');
      expect(data.choices[0]?.message.content).toMatch(/^restored:/);
      const stream = await client.chat.completions.create({
        model: 'teeml-demo',
        messages,
        max_tokens: 4,
        stream: true,
      });
      const deltas: string[] = [];
      for await (const chunk of stream)
        if (chunk.choices[0]?.delta.content) deltas.push(chunk.choices[0].delta.content);
      expect(deltas.length).toBeGreaterThan(0);
      expect(deltas.every((d) => d.startsWith('restored:'))).toBe(true);
      expect(gateway.counters.verified).toBe(2);
      // What crossed the wire: the sealed prompt, never the plain one.
      const forwarded = mitm.seen.slice(seen).filter((s) => s.path.includes('/chat/completions'));
      expect(forwarded).toHaveLength(2);
      for (const f of forwarded) expect(f.body.toString()).not.toContain(SECRET_MARKERS.prompt);
      expect(calls).toEqual(['session /chat/completions ecdsa 42', 'session /chat/completions ecdsa 42']);
      const page = (await rawRequest(`${gateway.url}/`)).body.toString();
      expect(page).toContain('on (test double)');
    } finally {
      await gateway.close();
    }
  });

  it('the request the sidecar signed is the sealed body the gateway sent', async () => {
    const gateway = await startTestGateway(mitm.url, {
      e2ee: { mode: 'auto', client: double(() => true, []) },
    });
    try {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'teeml-demo', messages, max_tokens: 2 }),
      });
      expect(res.headers.get('x-teeml-verification')).toBe('verified');
      const sent =
        mitm.seen.filter((s) => s.path.includes('/chat/completions')).at(-1)?.body ?? Buffer.alloc(0);
      expect(sent.toString()).toContain(seal(SECRET_MARKERS.prompt));
      expect(sent.toString()).not.toContain(SECRET_MARKERS.prompt);
      const receipt = gateway.receipts.recent[0];
      expect(receipt?.request_sha256).toBe(createHash('sha256').update(sent).digest('hex'));
      expect(receipt?.text.startsWith(`${receipt.request_sha256}:`)).toBe(true);
    } finally {
      await gateway.close();
    }
  });

  it('off with --no-e2ee, and off when the report does not advertise E2EE', async () => {
    const calls: string[] = [];
    const off = await startTestGateway(sidecar.url, {
      e2ee: { mode: 'off', client: double(() => true, calls) },
    });
    // The sidecar's report carries NEAR's envelope, so it advertises E2EE: a client whose check says
    // no stands for a provider that does not.
    const report: unknown = JSON.parse(
      (await rawRequest(`${sidecar.url}/v1/attestation/report`)).body.toString(),
    );
    expect(reportAdvertisesE2ee(report)).toBe(true);
    // Served in clear only because the policy says so (requireE2ee is on by default: e2ee-policy.test.ts).
    const quiet = await startTestGateway(sidecar.url, {
      e2ee: { mode: 'auto', client: double(() => false, calls) },
      policy: testPolicy({ requireE2ee: false }),
    });
    try {
      for (const g of [off, quiet]) {
        const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 });
        const data = await client.chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 });
        expect(data.choices[0]?.message.content).not.toMatch(/^restored:/);
      }
      expect(calls).toEqual([]);
      expect((await rawRequest(`${off.url}/`)).body.toString()).toContain('off (--no-e2ee)');
      expect((await rawRequest(`${quiet.url}/`)).body.toString()).toContain('does not advertise E2EE');
      expect(reportAdvertisesE2ee({ model_attestations: [{}] })).toBe(true);
      expect(reportAdvertisesE2ee({ signing_address: '0x' })).toBe(false);
    } finally {
      await Promise.all([off.close(), quiet.close()]);
    }
  });
});
