import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectLink, type ProviderLink } from '../../src/gateway/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type Exchange, type Mitm, startMitm, startTestGateway } from './harness.js';

/**
 * A man in the middle keeps a verified answer and serves it again under a fresh `ZG-Res-Key` (the
 * header is not signed), answering `GET /signature/<fresh id>` with the kept record. The id the
 * gateway remembers must be the one inside the signed bytes, so the renamed answer fails `answer.id`
 * (before, the header's id won: every replay verified, and with a 0G-like link one answer was
 * served for other prompts).
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

/** From the second chat answer on, the first one is served again under a fresh header id. */
const replayUnderFreshIds = (): void => {
  let kept: Exchange | undefined;
  let keptId = '';
  let n = 0;
  mitm.mutate = (e) => {
    if (!e.path.endsWith('/chat/completions')) return undefined;
    n += 1;
    if (kept === undefined) {
      kept = e;
      keptId = String(e.headers['zg-res-key']);
      return undefined;
    }
    return { ...kept, headers: { ...kept.headers, 'zg-res-key': `replayed-${n}` } };
  };
  mitm.route = (path) => ({ target: sidecar.url, path: path.replace(/replayed-\d+/, keptId) });
};

const reset = (): void => {
  mitm.mutate = () => undefined;
  mitm.route = (path) => ({ target: sidecar.url, path });
};

const request = { model: 'teeml-demo', messages: [{ role: 'user' as const, content: 'what is the date?' }] };

describe('a kept answer renamed with a fresh ZG-Res-Key', () => {
  it.each([false, true])('stream=%s: the replay fails answer.id', async (stream) => {
    const gateway = await startTestGateway(mitm.url, { e2ee: { mode: 'off' } });
    replayUnderFreshIds();
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const ask = async (): Promise<void> => {
        if (!stream) {
          await client.chat.completions.create(request);
          return;
        }
        for await (const _ of await client.chat.completions.create({ ...request, stream: true })) {
          // drained: the verdict comes at the end
        }
      };
      await ask();
      await expect(ask()).rejects.toThrow(/answer\.id/);
      expect({ verified: gateway.counters.verified, failed: gateway.counters.failed }).toEqual({
        verified: 1,
        failed: 1,
      });
    } finally {
      reset();
      await gateway.close();
    }
  });

  it('with a link whose request hash is not compared (0G), prompt A’s answer is not served for prompt B', async () => {
    const direct = new DirectLink({ provider: mitm.url });
    const link: ProviderLink = {
      describe: () => direct.describe(),
      endpoint: (p) => direct.endpoint(p),
      requestHeaders: () => direct.requestHeaders(),
      signatureUrl: (id, algo) => direct.signatureUrl(id, algo),
      fetchAttestation: (n, a) => direct.fetchAttestation(n, a),
      expectedSigner: () => direct.expectedSigner(),
      afterAnswer: () => direct.afterAnswer(),
      health: () => direct.health(),
      close: () => direct.close(),
      requestHashComparable: false,
    };
    const gateway = await startTestGateway(mitm.url, { link, e2ee: { mode: 'off' } });
    replayUnderFreshIds();
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const ask = (content: string) =>
        client.chat.completions.create({ model: 'teeml-demo', messages: [{ role: 'user', content }] });
      await ask('prompt A');
      await expect(ask('prompt B, a different question')).rejects.toThrow(/answer\.id/);
      expect(gateway.counters.verified).toBe(1);
    } finally {
      reset();
      await gateway.close();
    }
  });
});
