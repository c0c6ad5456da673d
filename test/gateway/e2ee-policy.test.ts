import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nearE2eeClient } from '../../src/gateway/index.js';
import { json, rawRequest, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  type Exchange,
  type Mitm,
  startMitm,
  startTestGateway,
  type TestGateway,
  testPolicy,
} from './harness.js';

/**
 * Issue 21, item 3: the fields that offer E2EE (`model_attestations`) are bound by no quote, so a man
 * in the middle (or a 0G broker relaying the report) strips them and, before the fix, the next
 * prompts left in clear. Now a report without E2EE for the attested key fails attestation
 * (`e2ee.required`, policy `requireE2ee`, default on), and a key that offered it must keep offering it
 * (`e2ee.downgrade`). The man in the middle must never see the prompt.
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

const PROMPT = SECRET_MARKERS.e2eePrompt;

/** The report with its E2EE offer rewritten: removed, or listing another key only. */
const rewriteReport =
  (how: 'strip' | 'other-key') =>
  (e: Exchange): Exchange | undefined => {
    if (!e.path.includes('/attestation/report')) return undefined;
    const report = JSON.parse(e.body.toString()) as Record<string, unknown>;
    if (how === 'strip') delete report['model_attestations'];
    else
      report['model_attestations'] = [{ signing_address: `0x${'11'.repeat(20)}`, signing_public_key: 'ab' }];
    delete report['e2ee'];
    return { ...e, body: Buffer.from(JSON.stringify(report)) };
  };

const ask = (gateway: TestGateway) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions.create({
    model: 'teeml-demo',
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: 4,
  });

const clearSeen = (from: number) => mitm.seen.slice(from).filter((s) => s.body.toString().includes(PROMPT));

const health = async (gateway: TestGateway) =>
  json<{ failed_check: string | null; e2ee: { state: string; required: boolean; check?: string } }>(
    await rawRequest(`${gateway.url}/health`),
  );

describe('E2EE downgrade', () => {
  it.each(['strip', 'other-key'] as const)(
    'a report whose E2EE offer was tampered (%s) at start: e2ee.required, nothing sent',
    async (how) => {
      mitm.mutate = rewriteReport(how);
      const from = mitm.seen.length;
      const gateway = await startTestGateway(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
      try {
        expect(gateway.attestor.current?.failedCheck).toBe('e2ee.required');
        await expect(ask(gateway)).rejects.toMatchObject({ status: 503, code: 'attestation_failed' });
        expect(clearSeen(from)).toEqual([]);
        expect(mitm.seen.slice(from).filter((s) => s.path.includes('chat/completions'))).toEqual([]);
        expect(await health(gateway)).toMatchObject({
          failed_check: 'e2ee.required',
          e2ee: { state: 'refused', required: true, check: 'e2ee.required' },
        });
        expect((await rawRequest(`${gateway.url}/`)).body.toString()).toContain('refused (e2ee.required)');
        expect(gateway.logs.join('')).toContain('provider attestation failed: e2ee.required');
      } finally {
        await gateway.close();
      }
    },
  );

  it('stripped mid-session: the next attestation fails e2ee.downgrade, even with requireE2ee off', async () => {
    for (const requireE2ee of [true, false]) {
      const gateway = await startTestGateway(mitm.url, {
        e2ee: { mode: 'auto', client: nearE2eeClient },
        policy: testPolicy({ requireE2ee }),
      });
      try {
        const from = mitm.seen.length;
        await ask(gateway);
        expect((await health(gateway)).e2ee).toMatchObject({ state: 'on', required: requireE2ee });
        mitm.mutate = rewriteReport('strip');
        expect((await gateway.attestNow()).failedCheck).toBe('e2ee.downgrade');
        await expect(ask(gateway)).rejects.toMatchObject({ status: 503 });
        expect(clearSeen(from)).toEqual([]);
        expect((await health(gateway)).e2ee).toMatchObject({ state: 'refused', check: 'e2ee.downgrade' });
        expect(gateway.logs.join('')).toContain('provider attestation failed: e2ee.downgrade');
        // The offer back: trusted again, encrypted again.
        mitm.mutate = () => undefined;
        expect((await gateway.attestNow()).ok).toBe(true);
        await ask(gateway);
        expect(clearSeen(from)).toEqual([]);
      } finally {
        mitm.mutate = () => undefined;
        await gateway.close();
      }
    }
  });

  it('with E2EE required, a route the protocol does not encrypt is refused, not sent in clear', async () => {
    const required = await startTestGateway(mitm.url, { e2ee: { mode: 'auto', client: nearE2eeClient } });
    const optional = await startTestGateway(mitm.url, {
      e2ee: { mode: 'auto', client: nearE2eeClient },
      policy: testPolicy({ requireE2ee: false }),
    });
    try {
      const embed = (g: TestGateway) =>
        new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 }).embeddings.create({
          model: 'teeml-demo',
          input: PROMPT,
        });
      const from = mitm.seen.length;
      await expect(embed(required)).rejects.toMatchObject({ status: 400, code: 'e2ee_unsupported_endpoint' });
      expect(clearSeen(from)).toEqual([]);
      // Opted out of the requirement: the route goes in clear, as the user chose.
      await embed(optional);
      expect(clearSeen(from)).toHaveLength(1);
    } finally {
      await Promise.all([required.close(), optional.close()]);
    }
  });

  it('requireE2ee false or --no-e2ee: a provider without E2EE is served in clear, as asked', async () => {
    mitm.mutate = rewriteReport('strip');
    const optOut = await startTestGateway(mitm.url, {
      e2ee: { mode: 'auto', client: nearE2eeClient },
      policy: testPolicy({ requireE2ee: false }),
    });
    const off = await startTestGateway(mitm.url, { e2ee: { mode: 'off', client: nearE2eeClient } });
    try {
      for (const gateway of [optOut, off]) {
        expect(gateway.attestor.current?.ok).toBe(true);
        const data = await ask(gateway);
        expect(data.choices[0]?.message.content).toBeTruthy();
        expect((await health(gateway)).e2ee.state).toBe('off');
      }
    } finally {
      await Promise.all([optOut.close(), off.close()]);
    }
  });
});
