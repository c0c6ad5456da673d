import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileReceiptSink, verifyReceipts } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { startTestGateway, testPolicy } from './harness.js';

/**
 * The gateway verifies answers signed in either format (docs/protocol.md, Signed text): the openai
 * SDK through the gateway to a sidecar signing 0G's `req:resp` and one signing NEAR's
 * `model:req:resp`; every answer is released verified and its receipts re-verify offline.
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'teeml-formats-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ['hashes', {}],
  ['model', { MODEL_NAME: 'teeml-demo', SIGNED_TEXT_FORMAT: 'model', CACHE_SALT: 'per-user' }],
] as const)('gateway in front of a sidecar signing the %s format', (format, env) => {
  let sidecar: TestSidecar;
  beforeAll(async () => {
    sidecar = await startTestSidecar(env);
  });
  afterAll(() => sidecar.close());

  it('releases JSON and streamed answers verified, and the receipts re-verify', async () => {
    const receiptsPath = join(dir, `receipts-${format}.jsonl`);
    const gateway = await startTestGateway(sidecar.url, {
      policy: testPolicy(),
      receipts: { sink: await fileReceiptSink(receiptsPath), label: receiptsPath },
    });
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const messages = [{ role: 'user' as const, content: 'hi' }];
      const { response } = await client.chat.completions
        .create({ model: 'teeml-demo', messages, max_tokens: 8 })
        .withResponse();
      expect(response.headers.get('x-teeml-verification')).toBe('verified');
      const stream = await client.chat.completions.create({ model: 'teeml-demo', messages, stream: true });
      for await (const _ of stream) {
        // drained: the gateway releases [DONE] only after verifying
      }
      expect(gateway.counters).toMatchObject({ verified: 2, failed: 0 });
      const texts = gateway.receipts.recent.map((r) => r.text ?? '');
      for (const text of texts) expect(text.startsWith('teeml-demo:')).toBe(format === 'model');
      const result = await verifyReceipts(readFileSync(receiptsPath, 'utf8'), { allowSimulated: true });
      expect(result.simulated).toBe(true);
      expect(result.verdicts.filter((v) => !v.ok)).toEqual([]);
      expect(result.receipts).toBe(2);
    } finally {
      await gateway.close();
    }
  });
});
