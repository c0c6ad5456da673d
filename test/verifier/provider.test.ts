import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type VerificationResult, verifyProvider } from '../../src/verifier/index.js';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';

const statusOf = (result: VerificationResult, id: string) => result.checks.find((c) => c.id === id)?.status;
const failed = (result: VerificationResult) =>
  result.checks.filter((c) => c.status === 'fail').map((c) => c.id);

/** A fetch that lets a test rewrite one kind of answer on its way back from the real sidecar. */
const rewriting =
  (
    match: (url: URL, init?: RequestInit) => boolean,
    rewrite: (body: Uint8Array) => Uint8Array | Promise<Uint8Array>,
  ) =>
  async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const response = await fetch(input, init);
    if (!match(new URL(String(input)), init)) return response;
    const body = await rewrite(new Uint8Array(await response.arrayBuffer()));
    const headers = new Headers(response.headers);
    headers.delete('content-length');
    return new Response(body, { status: response.status, headers });
  };

/** The request body as text (the verifier sends bytes). */
const isStream = (init?: RequestInit): boolean =>
  init?.body instanceof Uint8Array && new TextDecoder().decode(init.body).includes('"stream":true');

let sidecar: TestSidecar;

beforeAll(async () => {
  // The real sidecar in simulated mode with its demo upstream (no UPSTREAM_URL).
  sidecar = await startTestSidecar();
});
afterAll(async () => {
  await sidecar.close();
});

describe('verifyProvider against a simulated sidecar', () => {
  it('passes every check with allowSimulated, and says which passes were simulated', async () => {
    const result = await verifyProvider({ baseUrl: sidecar.url, allowSimulated: true });
    expect(failed(result)).toEqual([]);
    expect(result.verdict).toBe('pass');
    expect(result.signingAddress?.toLowerCase()).toBe(sidecar.signingAddress.toLowerCase());
    for (const id of [
      'report.fetch',
      'report.nonce',
      'tdx.report-data',
      'gpu.payload-nonce',
      'gpu.evidence-nonce',
      'signature.json.text',
      'signature.json.signer',
      'signature.stream.text',
      'signature.stream.signer',
    ]) {
      expect(statusOf(result, id), id).toBe('pass');
    }
    const simulated = result.checks.filter((c) => c.simulated).map((c) => c.id);
    expect(simulated).toEqual(['report.simulated', 'tdx.quote', 'gpu.local']);
    expect(statusOf(result, 'gpu.nras')).toBe('skip');
  });

  it('fails without allowSimulated, naming report.simulated', async () => {
    const result = await verifyProvider({ baseUrl: sidecar.url });
    expect(result.ok).toBe(false);
    expect(failed(result)).toContain('report.simulated');
    expect(result.checks.find((c) => c.id === 'report.simulated')?.detail).toContain('SIMULATED');
  });

  it('detects simulation from the quote bytes when the JSON labels are stripped', async () => {
    const strip = rewriting(
      (url) => url.pathname.endsWith('/attestation/report'),
      (body) => {
        const report = JSON.parse(new TextDecoder().decode(body)) as Record<string, unknown>;
        for (const key of [
          'simulated',
          'platform',
          'warning',
          'gpu',
          'all_attestations',
          'model_attestations',
          'gateway_attestation',
        ])
          delete report[key];
        return new TextEncoder().encode(JSON.stringify(report));
      },
    );
    const result = await verifyProvider({
      baseUrl: sidecar.url,
      fetch: strip,
      offline: true,
      completion: false,
    });
    const check = result.checks.find((c) => c.id === 'report.simulated');
    expect(check?.status).toBe('fail');
    expect(check?.detail).toContain('quote carries simulated markers');
    expect(check?.detail).not.toContain('"simulated": true');
  });

  it('works with ed25519 signatures, and at /v1 as the base', async () => {
    const result = await verifyProvider({
      baseUrl: `${sidecar.url}/v1/`,
      allowSimulated: true,
      signingAlgo: 'ed25519',
    });
    expect(failed(result)).toEqual([]);
    expect(result.checks.find((c) => c.id === 'signature.stream.signer')?.detail).toContain('ed25519');
  });

  it('replayed report: an answer for another nonce fails report.nonce', async () => {
    // A man in the middle answers with a report fetched earlier for a different nonce.
    const old = await fetch(`${sidecar.url}/v1/attestation/report?nonce=${'42'.repeat(32)}`);
    const oldBody = new Uint8Array(await old.arrayBuffer());
    const replay = rewriting(
      (url) => url.pathname.endsWith('/attestation/report'),
      () => oldBody,
    );
    const result = await verifyProvider({
      baseUrl: sidecar.url,
      fetch: replay,
      allowSimulated: true,
      completion: false,
    });
    expect(statusOf(result, 'report.nonce')).toBe('fail');
    expect(statusOf(result, 'tdx.report-data')).toBe('fail');
    expect(result.ok).toBe(false);
  });

  it('response body changed by one byte fails signature.json.text', async () => {
    const flip = rewriting(
      (url, init) => url.pathname.endsWith('/chat/completions') && !isStream(init),
      (body) => {
        const copy = Uint8Array.from(body);
        // A byte inside the JSON (a space would still parse the same: hash the bytes, not the JSON).
        const at = copy.lastIndexOf(0x7d); // the final '}'
        copy[at - 1] = copy[at - 1] === 0x30 ? 0x31 : 0x30;
        return copy;
      },
    );
    const result = await verifyProvider({ baseUrl: sidecar.url, fetch: flip, allowSimulated: true });
    expect(failed(result)).toEqual(['signature.json.text']);
    expect(result.checks.find((c) => c.id === 'signature.json.text')?.detail).toContain('response hash');
  });

  it('a streamed byte changed fails signature.stream.text', async () => {
    const flip = rewriting(
      (url, init) => url.pathname.endsWith('/chat/completions') && isStream(init),
      (body) => {
        const copy = Uint8Array.from(body);
        copy[copy.length - 3] = 0x20; // inside "data: [DONE]\n\n"
        return copy;
      },
    );
    const result = await verifyProvider({ baseUrl: sidecar.url, fetch: flip, allowSimulated: true });
    expect(failed(result)).toEqual(['signature.stream.text']);
  });

  it('a signature from another key fails signature.json.signer', async () => {
    const stranger = Wallet.createRandom();
    const forge = rewriting(
      (url) => url.pathname.includes('/signature/'),
      async (body) => {
        const record = JSON.parse(new TextDecoder().decode(body)) as Record<string, string>;
        record['signature'] = await stranger.signMessage(record['text'] ?? '');
        return new TextEncoder().encode(JSON.stringify(record));
      },
    );
    const result = await verifyProvider({ baseUrl: sidecar.url, fetch: forge, allowSimulated: true });
    expect(failed(result)).toEqual(['signature.json.signer', 'signature.stream.signer']);
    expect(result.checks.find((c) => c.id === 'signature.json.signer')?.detail).toContain(stranger.address);
  });

  it('expectAddress: the attested address, in any case, passes; another fails', async () => {
    const good = await verifyProvider({
      baseUrl: sidecar.url,
      allowSimulated: true,
      completion: false,
      expectAddress: sidecar.signingAddress.toLowerCase(),
    });
    expect(statusOf(good, 'signing.expected-address')).toBe('pass');
    expect(good.checks.filter((c) => c.id.startsWith('signature.')).map((c) => c.status)).toEqual([
      'skip',
      'skip',
      'skip',
      'skip',
    ]);
    const bad = await verifyProvider({
      baseUrl: sidecar.url,
      allowSimulated: true,
      completion: false,
      expectAddress: `0x${'12'.repeat(20)}`,
    });
    expect(failed(bad)).toEqual(['signing.expected-address']);
  });

  it('uses the injected clock and nonce source', async () => {
    const nonce = new Uint8Array(32).fill(0x5a);
    const result = await verifyProvider({
      baseUrl: sidecar.url,
      allowSimulated: true,
      completion: false,
      now: () => 1_800_000_000_000,
      random: () => nonce,
    });
    expect(result.at).toBe(1_800_000_000);
    expect(result.nonce).toBe('5a'.repeat(32));
    expect(result.ok).toBe(true);
  });

  it('an unreachable provider fails report.fetch without throwing', async () => {
    const refuse = async (): Promise<Response> => {
      throw new TypeError('fetch failed');
    };
    const result = await verifyProvider({ baseUrl: 'http://127.0.0.1:9', fetch: refuse });
    expect(result.checks).toEqual([expect.objectContaining({ id: 'report.fetch', status: 'fail' })]);
    expect(result.ok).toBe(false);
  });
});

describe("verifyProvider against a sidecar signing NEAR's model:req:resp", () => {
  it('passes with the served model, and the sidecar refuses another before the upstream', async () => {
    const named = await startTestSidecar({
      MODEL_NAME: 'demo-a,demo-b',
      SIGNED_TEXT_FORMAT: 'model',
      CACHE_SALT: 'per-user',
    });
    try {
      const result = await verifyProvider({ baseUrl: named.url, allowSimulated: true, model: 'demo-b' });
      expect(failed(result)).toEqual([]);
      expect(result.checks.find((c) => c.id === 'signature.stream.text')?.detail).toContain(
        'model as requested',
      );
      const other = await verifyProvider({ baseUrl: named.url, allowSimulated: true, model: 'demo-c' });
      expect(other.checks.find((c) => c.id === 'signature.json.text')?.detail).toContain('model_not_found');
    } finally {
      await named.close();
    }
  });
});

describe('verifyProvider --e2ee', () => {
  it.each(['ecdsa', 'ed25519'] as const)(
    '%s: prompts go sealed to the attested key, answers decrypt, signatures still hold',
    async (signingAlgo) => {
      const result = await verifyProvider({
        baseUrl: sidecar.url,
        allowSimulated: true,
        offline: true,
        signingAlgo,
        e2ee: true,
      });
      expect(failed(result)).toEqual([]);
      for (const id of ['e2ee.json', 'e2ee.stream', 'signature.json.signer', 'signature.stream.text']) {
        expect(statusOf(result, id), id).toBe('pass');
      }
      expect(result.checks.find((c) => c.id === 'e2ee.stream')?.detail).toContain('heard our exact prompt');
    },
  );

  it('fails e2ee.json when an answer field is not a ciphertext for our key', async () => {
    const plain = rewriting(
      (url, init) => url.pathname.endsWith('/chat/completions') && !isStream(init),
      (body) => {
        const value = JSON.parse(new TextDecoder().decode(body)) as {
          choices: { message: { content: string } }[];
        };
        const choice = value.choices[0];
        if (choice) choice.message.content = 'a plaintext answer';
        return new TextEncoder().encode(JSON.stringify(value));
      },
    );
    const result = await verifyProvider({
      baseUrl: sidecar.url,
      allowSimulated: true,
      offline: true,
      e2ee: true,
      fetch: plain,
    });
    expect(statusOf(result, 'e2ee.json')).toBe('fail');
    expect(statusOf(result, 'e2ee.stream')).toBe('pass');
    // The body was changed on the way: its signature no longer covers what we received.
    expect(statusOf(result, 'signature.json.text')).toBe('fail');
  });
});
