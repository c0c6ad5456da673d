import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { responseIdOf, verifySignedText } from '../../src/verifier/index.js';
import { createZgLink, type ZgLink } from '../../src/zg/index.js';
import { MODELS, startZgWorld, USER_KEY, type ZgWorld } from './world.js';

/**
 * The 0G SDK (`processResponse`) against a sidecar signing NEAR's `model:req:resp` behind a
 * separated broker, with per-user cache salts on (docs/protocol.md, "Who reads which signed text").
 * The SDK recovers the signer of whatever `text` the record holds and never parses it, so it accepts
 * the model format as it accepts the 0G one (test/zg/zg-link.test.ts runs the 0G one).
 */

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
let world: ZgWorld;
let zg: ZgLink | undefined;

beforeAll(async () => {
  // The SDK writes to the console; keep it off the test output.
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, method).mockImplementation(() => undefined);
  }
  world = await startZgWorld([USER_KEY], {
    MODEL_NAME: Object.values(MODELS).join(','),
    SIGNED_TEXT_FORMAT: 'model',
    CACHE_SALT: 'per-user',
  });
});

afterAll(async () => {
  await zg?.close();
  await world?.close();
  vi.restoreAllMocks();
});

describe('0G SDK processResponse and SIGNED_TEXT_FORMAT=model', () => {
  it('accepts every answer signed as model:sha256(request):sha256(response)', async () => {
    zg = await createZgLink({
      rpcUrl: world.chain.rpcUrl,
      provider: MODELS.separated,
      privateKey: USER_KEY,
      gasPrice: 1_000_000_000,
      autoFunding: { intervalMs: 3_600_000 },
      createLedger: 10,
      ledgerAddress: world.chain.ledgerAddress,
      inferenceAddress: world.chain.inferenceAddress,
    });
    for (const stream of [false, true]) {
      const sent = new TextEncoder().encode(
        JSON.stringify({ model: MODELS.separated, stream, messages: [{ role: 'user', content: 'hi' }] }),
      );
      const headers = await zg.requestHeaders({ openAiPath: '/chat/completions', body: sent });
      const res = await fetch(zg.endpoint('/chat/completions'), {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'accept-encoding': 'identity' },
        body: sent,
      });
      expect(res.status).toBe(200);
      const body = new Uint8Array(await res.arrayBuffer());
      const id = responseIdOf(res.headers, body, stream) ?? '';
      const record = (await (await fetch(zg.signatureUrl(id, 'ecdsa'))).json()) as {
        text: string;
        signature: string;
      };
      const forwarded = world.separated.forwarded.at(-1) ?? Buffer.alloc(0);
      expect(record.text).toBe(`${MODELS.separated}:${sha(forwarded)}:${sha(body)}`);
      expect(verifySignedText('ecdsa', record.text, record.signature, world.sidecarAddress).ok).toBe(true);
      // The SDK's own verdict (signature by the chain's TargetTeeAddress).
      expect(await zg.afterAnswer({ id, responseBody: body, streamed: stream })).toBe(true);
    }
  });
});
