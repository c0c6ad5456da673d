import { createHash } from 'node:crypto';
import type { JSONWebKeySet, JWTPayload } from 'jose';
import { z } from 'zod';
import { readCapped } from '../bytes/index.js';
import { SidecarError, unavailableIn } from '../errors/index.js';
import { withDeadline } from './deadline.js';
import { discard } from './discard.js';

/**
 * NVIDIA Remote Attestation Service client (docs/platforms.md, "NRAS"; docs/protocol.md, nvidia_payload).
 *
 *   POST {baseUrl}/v3/attest/gpu   body = the nvidia_payload JSON, unchanged
 *   POST {baseUrl}/v4/attest/gpu   body = the payload plus "claims_version":"3.0"
 *   → 200 [["JWT", <overall EAT>], {"GPU-0": <device JWT>, …}]   (detached EAT, ES384)
 *   GET  {baseUrl}/.well-known/jwks.json   the signing keys (rotate several times a day)
 *
 * NRAS answers HTTP 200 even when it rejects the evidence (e.g. a wrong nonce), so the answer is
 * only meaningful after verifyNrasResult: every token's signature, issuer, time window and
 * claims.
 */
export const NRAS_BASE_URL = 'https://nras.attestation.nvidia.com';
export const NRAS_ISSUER = 'https://nras.attestation.nvidia.com';

export interface NrasOptions {
  baseUrl?: string;
  version?: 'v3' | 'v4';
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
  /** Answer size cap; an 8-GPU answer is ~17 KB, a JWKS ~90 KB. */
  maxBytes?: number;
}

/** The detached EAT: overall token, then the device tokens by name. */
export type NrasAnswer = [['JWT', string], Record<string, string>];

const jwt = z.string().regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'expected a compact JWT');
const answerSchema = z.tuple([z.tuple([z.literal('JWT'), jwt]), z.record(z.string(), jwt)]);
const jwksSchema = z.object({
  keys: z
    .array(z.looseObject({ kty: z.string() }))
    .min(1)
    .max(256),
});

const nrasError = unavailableIn('NRAS: ');

const readJson = async (response: Response, maxBytes: number, what: string): Promise<unknown> => {
  const body = await readCapped(response.body, {
    limit: maxBytes,
    declared: response.headers.get('content-length'),
    tooLarge: () => nrasError(`${what} exceeds ${maxBytes} bytes`, 'nras_malformed'),
  });
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (cause) {
    throw nrasError(`${what} is not JSON`, 'nras_malformed', {}, cause);
  }
};

const request = async (
  options: NrasOptions,
  path: string,
  init: RequestInit,
  what: string,
): Promise<unknown> => {
  const base = (options.baseUrl ?? NRAS_BASE_URL).replace(/\/+$/, '');
  const doFetch = options.fetch ?? globalThis.fetch;
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  try {
    return await withDeadline(what, options.timeoutMs ?? 30_000, undefined, async (signal) => {
      let response: Response;
      try {
        response = await doFetch(`${base}${path}`, { ...init, signal });
      } catch (cause) {
        if (signal.aborted) throw signal.reason;
        throw nrasError(`${what} failed: NRAS could not be reached`, 'nras_unavailable', {}, cause);
      }
      if (response.status !== 200) {
        discard(response);
        throw nrasError(`${what} answered HTTP ${response.status}`, 'nras_unavailable', {
          status: response.status,
        });
      }
      return readJson(response, maxBytes, `${what} answer`);
    });
  } catch (error) {
    if (error instanceof SidecarError && error.code === 'gpu_evidence_timeout') {
      throw nrasError(`${what} timed out`, 'nras_timeout', {}, error);
    }
    throw error;
  }
};

/** Submits a nvidia_payload string to NRAS and returns its (unverified, shape-checked) answer. */
export const submitToNras = async (payload: string, options: NrasOptions = {}): Promise<NrasAnswer> => {
  const version = options.version ?? 'v3';
  let body = payload;
  if (version === 'v4') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      throw new TypeError('"payload" expected a nvidia_payload JSON object');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new TypeError('"payload" expected a nvidia_payload JSON object');
    }
    body = JSON.stringify({ ...parsed, claims_version: '3.0' });
  }
  const json = await request(
    options,
    `/${version}/attest/gpu`,
    { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body },
    `POST /${version}/attest/gpu`,
  );
  const answer = answerSchema.safeParse(json);
  if (!answer.success) throw nrasError('answer is not a detached EAT [["JWT", …], {…}]', 'nras_malformed');
  return answer.data as NrasAnswer;
};

/** Fetches NRAS's signing keys (GET /.well-known/jwks.json). */
export const fetchNrasJwks = async (options: NrasOptions = {}): Promise<JSONWebKeySet> => {
  const json = await request(
    options,
    '/.well-known/jwks.json',
    { method: 'GET', headers: { accept: 'application/json' } },
    'GET /.well-known/jwks.json',
  );
  const jwks = jwksSchema.safeParse(json);
  if (!jwks.success) throw nrasError('JWKS is malformed', 'nras_malformed');
  return jwks.data as JSONWebKeySet;
};

export interface NrasVerifyOptions {
  jwks: JSONWebKeySet;
  /** Our nonce, 64 lowercase hex. */
  nonceHex: string;
  gpuCount: number;
  /** The clock tokens' nbf/exp are checked at. */
  now: Date;
}

/** Every check by name: true passed, false failed (a check that could not run is false). */
export type CheckMap = Record<string, boolean>;

export interface NrasVerification {
  ok: boolean;
  overall: CheckMap;
  gpus: { name: string; checks: CheckMap }[];
  /** "overall.nonce", "GPU-3.measres", …: every failed check. */
  failures: string[];
  /** Why token verification failed (jose error codes), by token name; no token content. */
  errors: Record<string, string>;
}

const sha256hex = (text: string) => createHash('sha256').update(text, 'ascii').digest('hex');

const isDigestFor = (value: unknown, token: string | undefined): boolean =>
  token !== undefined &&
  Array.isArray(value) &&
  value.length === 2 &&
  value[0] === 'DIGEST' &&
  Array.isArray(value[1]) &&
  value[1].length === 2 &&
  value[1][0] === 'SHA-256' &&
  value[1][1] === sha256hex(token);

/**
 * Verifies an NRAS answer. Each JWT must be ES384-signed by a key of `jwks` (by `kid`), issued by
 * NRAS and inside nbf..exp at `now`. The overall token must say `x-nvidia-overall-att-result`
 * true, carry our `eat_nonce`, and bind each device token by `submods["GPU-i"] = ["DIGEST",
 * ["SHA-256", sha256(token)]]`; each device token must carry our nonce, `measres` "success",
 * `secboot` true and `dbgstat` "disabled". Claims of a token whose signature fails count as false.
 */
export const verifyNrasResult = async (
  answer: unknown,
  options: NrasVerifyOptions,
): Promise<NrasVerification> => {
  const errors: Record<string, string> = {};
  // jose is needed only when NRAS answers are checked (self-check, verifier): loaded here.
  const { createLocalJWKSet, jwtVerify } = await import('jose');
  const keys = createLocalJWKSet(options.jwks);
  const verify = async (name: string, token: string | undefined): Promise<JWTPayload | undefined> => {
    if (token === undefined) {
      errors[name] = 'missing';
      return undefined;
    }
    try {
      const { payload } = await jwtVerify(token, keys, {
        algorithms: ['ES384'],
        issuer: NRAS_ISSUER,
        currentDate: options.now,
        requiredClaims: ['iat', 'exp', 'nbf'],
      });
      return payload;
    } catch (error) {
      errors[name] = (error as { code?: string }).code ?? 'ERR_JWT_INVALID';
      return undefined;
    }
  };

  const shaped = answerSchema.safeParse(answer);
  const overallToken = shaped.success ? shaped.data[0][1] : undefined;
  const deviceTokens: Record<string, string> = shaped.success ? shaped.data[1] : {};
  const overallClaims = await verify('overall', overallToken);
  const submods = (overallClaims?.['submods'] ?? {}) as Record<string, unknown>;
  const expectedNames = Array.from({ length: options.gpuCount }, (_, i) => `GPU-${i}`);
  const sameSet = (names: string[]) =>
    names.length === expectedNames.length && expectedNames.every((n) => names.includes(n));

  const overall: CheckMap = {
    shape: shaped.success,
    token: overallClaims !== undefined,
    nonce: overallClaims?.['eat_nonce'] === options.nonceHex,
    result: overallClaims?.['x-nvidia-overall-att-result'] === true,
    gpuCount: sameSet(Object.keys(deviceTokens)) && sameSet(Object.keys(submods)),
  };

  const gpus: NrasVerification['gpus'] = [];
  for (const name of expectedNames) {
    const token = deviceTokens[name];
    const claims = await verify(name, token);
    gpus.push({
      name,
      checks: {
        token: claims !== undefined,
        digest: overallClaims !== undefined && isDigestFor(submods[name], token),
        nonce: claims?.['eat_nonce'] === options.nonceHex,
        measres: claims?.['measres'] === 'success',
        secboot: claims?.['secboot'] === true,
        dbgstat: claims?.['dbgstat'] === 'disabled',
      },
    });
  }

  const failures = [
    ...Object.entries(overall)
      .filter(([, ok]) => !ok)
      .map(([check]) => `overall.${check}`),
    ...gpus.flatMap((gpu) =>
      Object.entries(gpu.checks)
        .filter(([, ok]) => !ok)
        .map(([check]) => `${gpu.name}.${check}`),
    ),
  ];
  return { ok: failures.length === 0 && options.gpuCount > 0, overall, gpus, failures, errors };
};
