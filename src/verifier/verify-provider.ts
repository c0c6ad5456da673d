import { randomBytes } from 'node:crypto';
import { toHex } from '../bytes/index.js';
import type { SigningAlgo } from '../keys/index.js';
import { CheckList } from './check-list.js';
import { checkSignedExchange } from './signed-exchange.js';
import type { ReportContext, VerificationResult } from './types.js';
import { resultOf, runReportChecks } from './verify-report.js';
import { fetchWire, jsonOf } from './wire.js';

export interface VerifyProviderOptions extends Omit<ReportContext, 'nonce' | 'nowSeconds' | 'fetch'> {
  /** The provider's base URL, with or without a trailing `/v1` (CONTRACT.md: both are served). */
  baseUrl: string;
  /** Used for every request (provider, NRAS); tests inject doubles. Default: global fetch. */
  fetch?: typeof globalThis.fetch;
  /** Clock, milliseconds since the epoch. Default Date.now. */
  now?: () => number;
  /** Fixed verification time (Unix seconds or a Date) instead of the clock, e.g. for recorded collateral. */
  at?: number | Date;
  /** Source of the fresh nonce. Default: crypto.randomBytes. */
  random?: (length: number) => Uint8Array;
  /** Default ecdsa. */
  signingAlgo?: SigningAlgo;
  /** Model for the test completions; default: the first of GET /v1/models. */
  model?: string;
  /** Send the test completions (default true); false skips the signature checks. */
  completion?: boolean;
  /** Extra headers for the proxied routes (e.g. `authorization` when the provider requires a token). */
  headers?: Record<string, string>;
}

/** API root ending in /v1: the sidecar serves every route at the root and under /v1, NEAR only under /v1. */
export const apiRoot = (baseUrl: string): string => {
  const trimmed = baseUrl.replace(/\/+$/, '');
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`;
};

const toSeconds = (at: number | Date): number => Math.floor(at instanceof Date ? at.getTime() / 1000 : at);

const SIGNATURE_CHECKS: [string, string][] = [
  [
    'signature.json.text',
    'non-streaming completion: signed text is sha256(request bytes):sha256(response bytes)',
  ],
  ['signature.json.signer', 'non-streaming completion: signature made by the attested key'],
  [
    'signature.stream.text',
    'streaming completion: signed text is sha256(request bytes):sha256(response bytes)',
  ],
  ['signature.stream.signer', 'streaming completion: signature made by the attested key'],
];

/**
 * Checks a provider end to end: fetches its attestation report for a fresh random nonce, runs every
 * report check (`verifyReport`), then sends a non-streaming and a streaming chat completion and
 * checks both signatures against the attested key. Never throws for a provider's failure: every
 * problem is a failed check. Throws only for a caller error (bad base URL, malformed options).
 */
export const verifyProvider = async (options: VerifyProviderOptions): Promise<VerificationResult> => {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const api = apiRoot(new URL(options.baseUrl).toString());
  const nowSeconds =
    options.at === undefined ? toSeconds((options.now ?? Date.now)() / 1000) : toSeconds(options.at);
  const nonce = (options.random ?? ((n) => new Uint8Array(randomBytes(n))))(32);
  const nonceHex = toHex(nonce);
  const algo = options.signingAlgo ?? 'ecdsa';
  const list = new CheckList();

  const fetchTitle = 'attestation report fetched for a fresh random nonce';
  let report: unknown;
  try {
    const answer = await fetchWire(
      fetchFn,
      `${api}/attestation/report?nonce=${nonceHex}&signing_algo=${algo}`,
      { headers: { accept: 'application/json' } },
    );
    report = jsonOf(answer.body);
    if (answer.status !== 200)
      list.fail('report.fetch', fetchTitle, `GET /attestation/report answered HTTP ${answer.status}`);
    else if (report === undefined) list.fail('report.fetch', fetchTitle, 'the answer is not JSON');
    else list.pass('report.fetch', fetchTitle, `HTTP 200, ${answer.body.length} bytes, nonce ${nonceHex}`);
  } catch (error) {
    list.fail(
      'report.fetch',
      fetchTitle,
      `request failed: ${error instanceof Error ? error.message : 'unknown error'}`,
    );
  }
  if (list.results[0]?.status !== 'pass') return resultOf(list, nonceHex, nowSeconds);

  // Everything but the HTTP-only options is a report-check option.
  const {
    baseUrl: _b,
    fetch: _f,
    now: _c,
    at: _a,
    random: _r,
    model: _m,
    completion: _s,
    headers: _h,
    ...reportOptions
  } = options;
  const ctx: ReportContext = { ...reportOptions, nonce, nowSeconds, signingAlgo: algo, fetch: fetchFn };
  const facts = await runReportChecks(list, report, ctx);

  if (options.completion === false) {
    for (const [id, title] of SIGNATURE_CHECKS)
      list.skip(id, title, 'completions not sent (--no-completion)');
    return resultOf(list, nonceHex, nowSeconds, facts.signer);
  }
  const headers = options.headers ?? {};
  let model = options.model;
  if (model === undefined) {
    try {
      const models = await fetchWire(fetchFn, `${api}/models`, {
        headers: { ...headers, accept: 'application/json' },
      });
      const first = (jsonOf(models.body) as { data?: { id?: unknown }[] } | undefined)?.data?.[0]?.id;
      if (typeof first === 'string') model = first;
    } catch {
      model = undefined;
    }
  }
  if (model === undefined) {
    for (const [id, title] of SIGNATURE_CHECKS)
      list.fail(id, title, 'no model: GET /v1/models named none (use --model)');
    return resultOf(list, nonceHex, nowSeconds, facts.signer);
  }
  for (const stream of [false, true]) {
    const kind = stream ? 'stream' : 'json';
    try {
      await checkSignedExchange(list, { fetch: fetchFn, api, model, stream, signer: facts.signer, headers });
    } catch (error) {
      const reason = `request failed: ${error instanceof Error ? error.message : 'unknown error'}`;
      for (const [id, title] of SIGNATURE_CHECKS.filter(([id]) => id.startsWith(`signature.${kind}.`))) {
        if (!list.results.some((r) => r.id === id)) list.fail(id, title, reason);
      }
    }
  }
  return resultOf(list, nonceHex, nowSeconds, facts.signer);
};
