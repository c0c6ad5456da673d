import { readFileSync } from 'node:fs';
import { type Collateral, parseCollateral } from '../../src/tdx/index.js';
import { sharedFixtures } from '../paths.js';

/** The NEAR AI end-to-end capture (attestation-fixtures README, "End-to-end set"). */
const NEAR = 'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657';

/** The single clock at which everything in the NEAR capture verifies. */
export const NEAR_AT = 1782700000;
export const NEAR_NONCE = 'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609';

const text = (relative: string): string => readFileSync(sharedFixtures(relative), 'utf8');

/** A fresh copy of `model_attestations[0]` each call, so tests can tamper freely. */
export const nearModelAttestation = (): Record<string, unknown> => {
  const body = JSON.parse(text(`${NEAR}/responses/0001_cloud-api.near.ai_v1_attestation_report.body`)) as {
    model_attestations: Record<string, unknown>[];
  };
  const first = body.model_attestations[0];
  if (first === undefined) throw new Error('fixture: no model attestation');
  return first;
};

export const nearCollateral = (): Collateral =>
  parseCollateral(JSON.parse(text(`${NEAR}/derived/model_intel_quote_collateral.json`)));

export const collateralFile = (relative: string): Collateral => parseCollateral(JSON.parse(text(relative)));

/** The captured NRAS exchange: the answer to POST /v3/attest/gpu and the JWKS of that day. */
export const nearNrasFetch = (): { fetch: typeof fetch; posted: string[] } => {
  const answer = readFileSync(
    sharedFixtures(`${NEAR}/responses/0006_nras.attestation.nvidia.com_v3_attest_gpu.body`),
  );
  const jwks = readFileSync(
    sharedFixtures(`${NEAR}/responses/0007_nras.attestation.nvidia.com_.well-known_jwks.json.body`),
  );
  const posted: string[] = [];
  const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    if (url.origin !== 'https://nras.attestation.nvidia.com')
      return new Response('unexpected host', { status: 599 });
    if (url.pathname === '/v3/attest/gpu' && init?.method === 'POST') {
      posted.push(String(init.body));
      return new Response(answer, { status: 200, headers: { 'content-type': 'application/json' } });
    }
    if (url.pathname === '/.well-known/jwks.json') {
      return new Response(jwks, { status: 200, headers: { 'content-type': 'application/json' } });
    }
    return new Response('not found', { status: 404 });
  };
  return { fetch: fetchFn as typeof fetch, posted };
};

export const sharedText = text;
