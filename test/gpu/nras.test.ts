import { createHash } from 'node:crypto';
import { exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT } from 'jose';
import { delay, HttpResponse, http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { fetchNrasJwks, type NrasAnswer, submitToNras, verifyNrasResult } from '../../src/gpu/nras.js';
import { buildNvidiaPayload, parseNvidiaPayload } from '../../src/gpu/payload.js';
import { nrasSelfCheck } from '../../src/gpu/self-check.js';
import { SimulatedGpuEvidenceProvider } from '../../src/gpu/simulated.js';
import { NEAR_CLOCK, NEAR_E2E, PHALA_CLOCK, PHALA_E2E, readText } from './fixtures.js';

const NEAR_NONCE = 'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609';
const nearAnswer = () =>
  JSON.parse(
    readText(`${NEAR_E2E}/responses/0006_nras.attestation.nvidia.com_v3_attest_gpu.body`),
  ) as NrasAnswer;
const nearJwks = () =>
  JSON.parse(
    readText(`${NEAR_E2E}/responses/0007_nras.attestation.nvidia.com_.well-known_jwks.json.body`),
  ) as JSONWebKeySet;
const phalaAnswer = () =>
  JSON.parse(
    readText(`${PHALA_E2E}/responses/0006_nras.attestation.nvidia.com_v3_attest_gpu.body`),
  ) as NrasAnswer;
const phalaJwks = () =>
  JSON.parse(
    readText(`${PHALA_E2E}/responses/0007_nras.attestation.nvidia.com_.well-known_jwks.json.body`),
  ) as JSONWebKeySet;

const near = { jwks: nearJwks(), nonceHex: NEAR_NONCE, gpuCount: 8, now: NEAR_CLOCK };

/** Changes one character in the payload segment of a JWT (signature no longer matches). */
const tamper = (token: string): string => {
  const [h, p, s] = token.split('.') as [string, string, string];
  const flipped = p.slice(0, 20) + (p[20] === 'A' ? 'B' : 'A') + p.slice(21);
  return `${h}.${flipped}.${s}`;
};

describe('verifyNrasResult with captured NRAS answers', () => {
  it('the NEAR e2e answer verifies: 9 signatures, nonce, result, digests and device claims', async () => {
    const result = await verifyNrasResult(nearAnswer(), near);
    expect(result.failures).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.overall).toEqual({ shape: true, token: true, nonce: true, result: true, gpuCount: true });
    expect(result.gpus.map((g) => g.name)).toEqual([
      'GPU-0',
      'GPU-1',
      'GPU-2',
      'GPU-3',
      'GPU-4',
      'GPU-5',
      'GPU-6',
      'GPU-7',
    ]);
    for (const gpu of result.gpus) {
      expect(gpu.checks).toEqual({
        token: true,
        digest: true,
        nonce: true,
        measres: true,
        secboot: true,
        dbgstat: true,
      });
    }
  });

  it('a tampered device token fails its signature and its digest', async () => {
    const answer = nearAnswer();
    answer[1]['GPU-3'] = tamper(answer[1]['GPU-3']!);
    const result = await verifyNrasResult(answer, near);
    expect(result.ok).toBe(false);
    expect(result.failures).toEqual([
      'GPU-3.token',
      'GPU-3.digest',
      'GPU-3.nonce',
      'GPU-3.measres',
      'GPU-3.secboot',
      'GPU-3.dbgstat',
    ]);
    expect(result.errors['GPU-3']).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  });

  it('a tampered overall token fails everything that depends on it', async () => {
    const answer = nearAnswer();
    answer[0][1] = tamper(answer[0][1]);
    const result = await verifyNrasResult(answer, near);
    expect(result.ok).toBe(false);
    expect(result.overall).toMatchObject({ token: false, nonce: false, result: false });
    expect(result.gpus.every((g) => g.checks['digest'] === false)).toBe(true);
  });

  it('swapped device tokens fail the digests', async () => {
    const answer = nearAnswer();
    const zero = answer[1]['GPU-0']!;
    answer[1]['GPU-0'] = answer[1]['GPU-1']!;
    answer[1]['GPU-1'] = zero;
    const result = await verifyNrasResult(answer, near);
    expect(result.failures).toEqual(['GPU-0.digest', 'GPU-1.digest']);
  });

  it('a wrong nonce fails the overall and every device nonce check', async () => {
    const result = await verifyNrasResult(nearAnswer(), { ...near, nonceHex: 'ab'.repeat(32) });
    expect(result.ok).toBe(false);
    expect(result.overall['nonce']).toBe(false);
    expect(result.gpus.every((g) => g.checks['nonce'] === false && g.checks['token'] === true)).toBe(true);
  });

  it.each([
    ['after exp', new Date(1_782_702_413 * 1000), 'ERR_JWT_EXPIRED'],
    ['before nbf', new Date(1_782_698_000 * 1000), 'ERR_JWT_CLAIM_VALIDATION_FAILED'],
  ])('a clock %s is rejected', async (_, now, code) => {
    const result = await verifyNrasResult(nearAnswer(), { ...near, now });
    expect(result.ok).toBe(false);
    expect(result.overall['token']).toBe(false);
    expect(result.errors['overall']).toBe(code);
  });

  it('keys from another JWKS do not verify', async () => {
    const result = await verifyNrasResult(nearAnswer(), { ...near, jwks: phalaJwks() });
    expect(result.ok).toBe(false);
    expect(result.errors['overall']).toBe('ERR_JWKS_NO_MATCHING_KEY');
  });

  it('a GPU count that differs from the answer fails', async () => {
    const result = await verifyNrasResult(nearAnswer(), { ...near, gpuCount: 7 });
    expect(result.ok).toBe(false);
    expect(result.failures).toEqual(['overall.gpuCount']);
  });

  it('a malformed answer fails closed', async () => {
    for (const answer of [null, {}, [['JWT']], [['JWS', 'a.b.c'], {}], 'a.b.c']) {
      const result = await verifyNrasResult(answer, near);
      expect(result.ok).toBe(false);
      expect(result.overall['shape']).toBe(false);
    }
  });

  it('the Phala NEGATIVE answer is rejected for the nonce and the overall result', async () => {
    const clientNonce = '732f6f1c1b4445d4ab4ad892728343f7fcb0f595ce79f91ecfdeaae657bb7c7e';
    const result = await verifyNrasResult(phalaAnswer(), {
      jwks: phalaJwks(),
      nonceHex: clientNonce,
      gpuCount: 8,
      now: PHALA_CLOCK,
    });
    expect(result.ok).toBe(false);
    // Genuine NRAS signatures, but a negative verdict.
    expect(result.overall).toMatchObject({ token: true, nonce: false, result: false });
    for (const gpu of result.gpus) {
      expect(gpu.checks).toMatchObject({ token: true, digest: true, nonce: false, measres: false });
    }
    // Even with the nonce NRAS echoed, the overall result stays false.
    const echoed = await verifyNrasResult(phalaAnswer(), {
      jwks: phalaJwks(),
      nonceHex: 'aa8aa7cb237cb07d054e2ba1c1660b6d6bf60a1501e4d33bec8115148543e501',
      gpuCount: 8,
      now: PHALA_CLOCK,
    });
    expect(echoed.overall).toMatchObject({ nonce: true, result: false });
  });
});

// ---- NRAS over HTTP (msw) -----------------------------------------------------------------------

const BASE = 'https://nras.test';
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

const nearPayload = () => readText(`${NEAR_E2E}/derived/nras_request_body.json`);

describe('submitToNras', () => {
  it('v3 POSTs the payload string unchanged and returns the detached EAT', async () => {
    let seen: { body: string; type: string | null } | undefined;
    server.use(
      http.post(`${BASE}/v3/attest/gpu`, async ({ request }) => {
        seen = { body: await request.text(), type: request.headers.get('content-type') };
        return HttpResponse.json(nearAnswer());
      }),
    );
    const answer = await submitToNras(nearPayload(), { baseUrl: `${BASE}/` });
    expect(seen?.body).toBe(nearPayload());
    expect(seen?.type).toBe('application/json');
    expect(answer).toEqual(nearAnswer());
  });

  it('v4 POSTs to /v4/attest/gpu with claims_version 3.0', async () => {
    let body: Record<string, unknown> = {};
    server.use(
      http.post(`${BASE}/v4/attest/gpu`, async ({ request }) => {
        body = (await request.json()) as Record<string, unknown>;
        return HttpResponse.json(nearAnswer());
      }),
    );
    await submitToNras(nearPayload(), { baseUrl: BASE, version: 'v4' });
    expect(body['claims_version']).toBe('3.0');
    expect(body['nonce']).toBe(NEAR_NONCE);
    expect(parseNvidiaPayload(JSON.stringify(body)).evidenceList).toHaveLength(8);
  });

  it.each([
    ['an HTTP error', () => HttpResponse.json({ error: 'bad' }, { status: 400 }), 'nras_unavailable'],
    ['an answer that is not a detached EAT', () => HttpResponse.json({ ok: true }), 'nras_malformed'],
    ['non-JSON', () => new HttpResponse('<html>', { status: 200 }), 'nras_malformed'],
    ['a network error', () => HttpResponse.error(), 'nras_unavailable'],
  ])('turns %s into a 503', async (_, respond, code) => {
    server.use(http.post(`${BASE}/v3/attest/gpu`, respond));
    const error = await submitToNras(nearPayload(), { baseUrl: BASE }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SidecarError);
    expect(error).toMatchObject({ status: 503, code });
  });

  it('times out with a 503', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      server.use(
        http.post(`${BASE}/v3/attest/gpu`, async () => {
          await delay('infinite');
          return HttpResponse.json([]);
        }),
      );
      const pending = submitToNras(nearPayload(), { baseUrl: BASE, timeoutMs: 500 }).catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(501);
      expect(await pending).toMatchObject({ status: 503, code: 'nras_timeout' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('fetchNrasJwks GETs /.well-known/jwks.json', async () => {
    server.use(http.get(`${BASE}/.well-known/jwks.json`, () => HttpResponse.json(nearJwks())));
    const jwks = await fetchNrasJwks({ baseUrl: BASE });
    expect(jwks.keys).toHaveLength(32);
    server.use(http.get(`${BASE}/.well-known/jwks.json`, () => HttpResponse.json({ keys: [] })));
    await expect(fetchNrasJwks({ baseUrl: BASE })).rejects.toMatchObject({ code: 'nras_malformed' });
  });
});

// ---- self-check against a fake NRAS that signs what it is sent -------------------------------------

describe('nrasSelfCheck', () => {
  const fakeNras = async (options: { lie?: boolean } = {}) => {
    const { privateKey, publicKey } = await generateKeyPair('ES384');
    const kid = 'test-kid';
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid }] };
    const iat = 1_800_000_000;
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'ES384', kid })
        .setIssuer('https://nras.attestation.nvidia.com')
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + 3600)
        .sign(privateKey);
    server.use(
      http.post(`${BASE}/v3/attest/gpu`, async ({ request }) => {
        const payload = parseNvidiaPayload(await request.text());
        const nonce = options.lie ? 'ff'.repeat(32) : Buffer.from(payload.nonce).toString('hex');
        const devices: Record<string, string> = {};
        for (const [i] of payload.evidenceList.entries()) {
          devices[`GPU-${i}`] = await sign({
            eat_nonce: nonce,
            measres: 'success',
            secboot: true,
            dbgstat: 'disabled',
          });
        }
        const submods = Object.fromEntries(
          Object.entries(devices).map(([name, token]) => [
            name,
            ['DIGEST', ['SHA-256', createHash('sha256').update(token).digest('hex')]],
          ]),
        );
        const overall = await sign({ eat_nonce: nonce, 'x-nvidia-overall-att-result': true, submods });
        return HttpResponse.json([['JWT', overall], devices]);
      }),
      http.get(`${BASE}/.well-known/jwks.json`, () => HttpResponse.json(jwks)),
    );
    return new Date((iat + 60) * 1000);
  };

  it('collects for a fresh nonce, submits, fetches the keys and verifies', async () => {
    const now = await fakeNras();
    const result = await nrasSelfCheck(new SimulatedGpuEvidenceProvider({ gpuCount: 2 }), {
      baseUrl: BASE,
      now: () => now,
      random: (n) => new Uint8Array(n).fill(0x42),
    });
    expect(result.nonceHex).toBe('42'.repeat(32));
    expect(result.gpuCount).toBe(2);
    expect(result.verification.failures).toEqual([]);
    expect(result.verification.ok).toBe(true);
  });

  it('reports a structured failure when NRAS answers for another nonce', async () => {
    const now = await fakeNras({ lie: true });
    const result = await nrasSelfCheck(new SimulatedGpuEvidenceProvider(), { baseUrl: BASE, now: () => now });
    expect(result.verification.ok).toBe(false);
    expect(result.verification.failures).toEqual(['overall.nonce', 'GPU-0.nonce']);
  });

  it('builds the payload NRAS receives from the provider evidence', async () => {
    const bodies: string[] = [];
    server.use(
      http.post(`${BASE}/v3/attest/gpu`, async ({ request }) => {
        bodies.push(await request.text());
        return HttpResponse.json(nearAnswer());
      }),
    );
    const provider = new SimulatedGpuEvidenceProvider();
    const random = (n: number) => new Uint8Array(n).fill(7);
    const result = await nrasSelfCheck(provider, {
      baseUrl: BASE,
      jwks: nearJwks(),
      now: () => NEAR_CLOCK,
      random,
    });
    expect(JSON.parse(bodies[0]!).nonce).toBe('07'.repeat(32));
    expect(Object.keys(JSON.parse(bodies[0]!))).toEqual(
      Object.keys(JSON.parse(buildNvidiaPayload(random(32), (await provider.collect(random(32))).gpus))),
    );
    expect(result.verification.ok).toBe(false);
    expect(result.verification.overall['nonce']).toBe(false);
  });
});
