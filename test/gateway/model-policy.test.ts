import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json, rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Exchange, type Mitm, startMitm, startTestGateway, testPolicy } from './harness.js';

/**
 * Issue 24, item 5: the policy's `models`. A request for another model is refused by the gateway
 * (400 `model_not_allowed`) and never reaches the provider; a report whose `model_name` (NEAR's
 * field, flat and in `model_attestations`) is not allowed, or that names none, fails `report.model`.
 * The man in the middle stands for a provider that states one model name or another.
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
afterEach(() => {
  mitm.mutate = () => undefined;
});

/** The report as a provider serving `name` states it (flat and in NEAR's envelope). */
const namedReport =
  (flat: string | undefined, entry: string | undefined) =>
  (e: Exchange): Exchange | undefined => {
    if (!e.path.includes('/attestation/report')) return undefined;
    const report = JSON.parse(e.body.toString()) as Record<string, unknown>;
    if (flat !== undefined) report['model_name'] = flat;
    const entries = report['model_attestations'] as Array<Record<string, unknown>>;
    for (const m of entries) if (entry !== undefined) m['model_name'] = entry;
    return { ...e, body: Buffer.from(JSON.stringify(report)) };
  };

const chats = () => mitm.seen.filter((s) => s.path.includes('chat/completions')).length;

describe('policy models', () => {
  it('a request for a model not in the list is refused locally: 400 model_not_allowed, nothing sent', async () => {
    mitm.mutate = namedReport('teeml-demo', 'teeml-demo');
    const gateway = await startTestGateway(mitm.url, { policy: testPolicy({ models: ['teeml-demo'] }) });
    try {
      expect(gateway.attestor.current?.ok).toBe(true);
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const before = chats();
      const messages = [{ role: 'user' as const, content: 'hi' }];
      await expect(client.chat.completions.create({ model: 'gpt-premium', messages })).rejects.toMatchObject({
        status: 400,
        code: 'model_not_allowed',
        param: 'model',
      });
      const noModel = await rawRequest(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
      });
      expect(noModel.status).toBe(400);
      expect(json<{ error: { code: string; message: string } }>(noModel).error.code).toBe(
        'model_not_allowed',
      );
      expect(chats()).toBe(before);
      const ok = await client.chat.completions.create({ model: 'teeml-demo', messages, max_tokens: 4 });
      expect(ok.choices[0]?.message.content).toBeTruthy();
      expect(chats()).toBe(before + 1);
      expect(gateway.attestor.current?.checks.find((c) => c.id === 'report.model')?.status).toBe('pass');
    } finally {
      await gateway.close();
    }
  });

  it.each([
    ['another model, flat and in the envelope', 'cheap-model', 'cheap-model'],
    ['another model in the envelope only', undefined, 'cheap-model'],
    ['no model_name at all', undefined, undefined],
  ])('a report naming %s fails report.model', async (_label, flat, entry) => {
    mitm.mutate = namedReport(flat, entry);
    const gateway = await startTestGateway(mitm.url, { policy: testPolicy({ models: ['teeml-demo'] }) });
    try {
      expect(gateway.attestor.current?.failedCheck).toBe('report.model');
      const res = await rawRequest(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'teeml-demo', messages: [] }),
      });
      expect(res.status).toBe(503);
      expect(json<{ error: { message: string } }>(res).error.message).toContain('report.model');
    } finally {
      await gateway.close();
    }
  });

  it('a provider serving several names passes when one is allowed; without models nothing is checked', async () => {
    mitm.mutate = namedReport('teeml-demo,cheap-model', undefined);
    const several = await startTestGateway(mitm.url, { policy: testPolicy({ models: ['teeml-demo'] }) });
    const open = await startTestGateway(mitm.url);
    try {
      expect(several.attestor.current?.ok).toBe(true);
      expect(open.attestor.current?.checks.some((c) => c.id === 'report.model')).toBe(false);
    } finally {
      await Promise.all([several.close(), open.close()]);
    }
  });

  it('the policy refuses an empty list or a non-string name', () => {
    expect(() => testPolicy({ models: [] })).toThrow(/models/);
    expect(() => testPolicy({ models: [1] })).toThrow(/models/);
  });
});
