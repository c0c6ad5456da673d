import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileReceiptSink, NOT_CHECKED, verifyReceipts } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { startTestGateway, testPolicy } from './harness.js';

/**
 * A receipts file written by a real gateway against a sidecar that signs the model format
 * (`model:request:response`), then edited by whoever holds it: the recorded model, a copied id or
 * answer, and the fields no signature covers (which `receipts verify` must say are as recorded).
 */
type Line = Record<string, unknown>;
let sidecar: TestSidecar;
let dir: string;
let original: string;
const linesOf = (t: string): Line[] =>
  t
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
const textOf = (lines: Line[]): string => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
const verify = (lines: Line[]) => verifyReceipts(textOf(lines), { allowSimulated: true });

beforeAll(async () => {
  sidecar = await startTestSidecar({ MODEL_NAME: 'teeml-demo', SIGNED_TEXT_FORMAT: 'model' });
  dir = mkdtempSync(join(tmpdir(), 'teeml-receipts-edits-'));
  const path = join(dir, 'receipts.jsonl');
  const gateway = await startTestGateway(sidecar.url, {
    policy: testPolicy({ signingAlgo: 'ecdsa' }),
    receipts: { sink: await fileReceiptSink(path), label: path },
  });
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (let i = 0; i < 2; i += 1)
    await client.chat.completions.create({
      model: 'teeml-demo',
      messages: [{ role: 'user', content: 'hi' }],
    });
  await gateway.receipts.flush();
  await gateway.close();
  original = readFileSync(path, 'utf8');
});
afterAll(async () => {
  await sidecar.close();
  rmSync(dir, { recursive: true, force: true });
});

const lines = (): [Line, Line, Line] => linesOf(original) as [Line, Line, Line];

describe('receipts verify on edited receipts (model format)', () => {
  it('the genuine file passes and says which fields are only as recorded', async () => {
    const [a, r1] = lines();
    expect(String(r1['text'])).toMatch(/^teeml-demo:/);
    expect(a['link']).toEqual({ mode: 'direct', request_hash_compared: true });
    const result = await verify(lines());
    expect(result.ok).toBe(true);
    expect(result.verdicts[1]?.notChecked).toEqual([NOT_CHECKED.recorded]);
    expect(result.notChecked).toContain(NOT_CHECKED.recorded);
  });

  it('a receipt whose model contradicts its signed model name fails', async () => {
    const [a, r1, r2] = lines();
    const result = await verify([a, { ...r1, model: 'gpt-4o-premium' }, r2]);
    expect(result.ok).toBe(false);
    expect(result.verdicts[1]?.problems).toEqual(['model is not the model named in its signed text']);
  });

  it("a receipt given another receipt's id fails", async () => {
    const [a, r1, r2] = lines();
    const result = await verify([a, { ...r1, id: String(r2['id']) }, r2]);
    expect(result.ok).toBe(false);
    expect(result.verdicts[2]?.problems).toEqual(['id already recorded by line 2']);
  });

  it('a receipt copied under a new id fails (one answer, one receipt)', async () => {
    const [a, r1, r2] = lines();
    const result = await verify([a, r1, r2, { ...r2, id: 'chatcmpl-made-up' }]);
    expect(result.ok).toBe(false);
    expect(result.verdicts[3]?.problems).toEqual(['response_sha256 already recorded by line 3']);
  });

  it('path, stream and time edits pass only as recorded: the output says no signature covers them', async () => {
    const [a, r1, r2] = lines();
    const edited = { ...r1, path: '/v1/completions', stream: true, time: '2020-01-01T00:00:00.000Z' };
    const result = await verify([a, edited, r2]);
    expect(result.ok).toBe(true);
    expect(result.verdicts[1]?.notChecked).toEqual([NOT_CHECKED.recorded]);
  });

  it('a direct-mode file flipped to request_hash_compared:false with another request hash fails', async () => {
    const [a, r1, r2] = lines();
    const other = 'ab'.repeat(32);
    const result = await verify([
      a,
      { ...r1, request_hash_compared: false, request_sha256: other },
      { ...r2, request_hash_compared: false },
    ]);
    expect(result.ok).toBe(false);
    expect(result.verdicts[1]?.problems).toEqual([
      'request_hash_compared differs from its attestation line (link mode direct)',
    ]);
  });

  it('an attestation line claiming a direct link that does not compare request hashes fails', async () => {
    const [a, r1, r2] = lines();
    const result = await verify([{ ...a, link: { mode: 'direct', request_hash_compared: false } }, r1, r2]);
    expect(result.ok).toBe(false);
    expect(result.verdicts[0]?.problems).toEqual(['link: a direct-mode run compares request hashes']);
  });
});
