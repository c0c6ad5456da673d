import { randomBytes, X509Certificate } from 'node:crypto';
import { jsonOf, toHex } from '../bytes/index.js';
import type { SigningAlgo } from '../keys/index.js';
import { type PeerCertificate, pemCertificates, spkiSha256, TlsPeerChannel } from '../tls/index.js';
import { CheckList } from './check-list.js';
import { fetchFailure, notASidecar } from './fetch-failure.js';
import { normalizeHex } from './report-shape.js';
import { checkSignedExchange } from './signed-exchange.js';
import { fetchKeepingTrailers, fetchOverChannelKeepingTrailers } from './trailer-fetch.js';
import type { CheckResult, ReportContext, VerificationResult } from './types.js';
import { resultOf, runReportChecks } from './verify-report.js';
import { fetchWire } from './wire.js';

export interface VerifyProviderOptions extends Omit<ReportContext, 'nonce' | 'nowSeconds' | 'fetch'> {
  /** The provider's base URL, with or without a trailing `/v1` (docs/protocol.md: both are served). */
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
  /**
   * https providers: the one-connection channel the report and the completions go over (default: a
   * new TlsPeerChannel; not used when `fetch` is injected and this is not given).
   */
  tlsChannel?: TlsPeerChannel;
  /** false: do not ask for or check the TLS binding (`tls.fingerprint` skipped). Default true. */
  tlsBinding?: boolean;
  /** Send the test completions end-to-end encrypted (NEAR AI protocol) and check the answers decrypt. */
  e2ee?: boolean;
  /** Called with each check as it completes, in order (the CLI prints them as they come). */
  onCheck?: (check: CheckResult) => void;
}

/** API root ending in /v1: the sidecar serves every route at the root and under /v1, NEAR only under /v1. */
export const apiRoot = (baseUrl: string): string => {
  const trimmed = baseUrl.replace(/\/+$/, '');
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`;
};

const TLS_ID = 'tls.fingerprint';
const TLS_TITLE = 'the TLS certificate of the connection that carried the report is the attested one';

const leafFingerprint = (pem: string): string | undefined => {
  try {
    const first = pemCertificates(pem)[0];
    return first === undefined ? undefined : toHex(spkiSha256(new X509Certificate(first)));
  } catch {
    return undefined;
  }
};

/**
 * `tls.fingerprint` (attested TLS, docs/tls.md): the sha256 of the SubjectPublicKeyInfo of the
 * certificate presented on the connection that carried the report equals the report's
 * `tls_cert_fingerprint` (whose binding into report_data `tdx.report-data` checks), and the
 * envelope's `tls_certificate`, when present, is that certificate. The gateway runs it too, on the
 * connection its direct link fetched the report over.
 */
export const checkTlsFingerprint = (
  list: CheckList,
  report: unknown,
  attested: string | undefined,
  state: { https: boolean; wanted: boolean; peer?: PeerCertificate | undefined; refused: boolean },
): void => {
  if (!state.https) {
    list.skip(TLS_ID, TLS_TITLE, 'plain HTTP: there is no TLS connection whose certificate could be bound');
    return;
  }
  if (!state.wanted) {
    list.skip(TLS_ID, TLS_TITLE, 'not asked for (--no-tls-binding)');
    return;
  }
  if (state.peer === undefined) {
    list.skip(TLS_ID, TLS_TITLE, 'the injected fetch does not expose the peer certificate');
    return;
  }
  if (state.refused) {
    list.fail(
      TLS_ID,
      TLS_TITLE,
      'the provider refused include_tls_fingerprint=true: it binds no TLS certificate',
    );
    return;
  }
  if (attested === undefined) {
    list.fail(TLS_ID, TLS_TITLE, 'the report has no tls_cert_fingerprint');
    return;
  }
  if (attested !== state.peer.fingerprint) {
    list.fail(
      TLS_ID,
      TLS_TITLE,
      `the live certificate's SPKI sha256 is ${state.peer.fingerprint}, the report binds ${attested}`,
    );
    return;
  }
  const envelope = (report as { tls_certificate?: unknown } | undefined)?.tls_certificate;
  if (typeof envelope === 'string' && leafFingerprint(envelope) !== attested) {
    list.fail(TLS_ID, TLS_TITLE, 'tls_certificate (PEM) is not the certificate the report binds');
    return;
  }
  list.pass(TLS_ID, TLS_TITLE, `SPKI sha256 ${attested} on the same connection as the report`);
};

const toSeconds = (at: number | Date): number => Math.floor(at instanceof Date ? at.getTime() / 1000 : at);

const SIGNATURE_CHECKS: [string, string][] = [
  [
    'signature.json.text',
    'non-streaming completion: signed text is [model:]sha256(request bytes):sha256(response bytes)',
  ],
  ['signature.json.signer', 'non-streaming completion: signature made by the attested key'],
  [
    'signature.stream.text',
    'streaming completion: signed text is [model:]sha256(request bytes):sha256(response bytes)',
  ],
  ['signature.stream.signer', 'streaming completion: signature made by the attested key'],
];

const E2EE_CHECKS: [string, string][] = [
  ['e2ee.json', 'non-streaming completion: prompt sealed to the attested key, answer decrypts with ours'],
  ['e2ee.stream', 'streaming completion: prompt sealed to the attested key, answer decrypts with ours'],
];

/**
 * Checks a provider end to end: fetches its attestation report for a fresh random nonce, runs every
 * report check (`verifyReport`), then sends a non-streaming and a streaming chat completion and
 * checks both signatures against the attested key. Never throws for a provider's failure: every
 * problem is a failed check. Throws only for a caller error (bad base URL, malformed options).
 */
export const verifyProvider = async (options: VerifyProviderOptions): Promise<VerificationResult> => {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const base = new URL(options.baseUrl);
  const https = base.protocol === 'https:';
  const channel =
    https && (options.tlsChannel !== undefined || options.fetch === undefined)
      ? (options.tlsChannel ?? new TlsPeerChannel())
      : undefined;
  try {
    return await verifyOver(options, fetchFn, base, channel);
  } finally {
    if (options.tlsChannel === undefined) channel?.close();
  }
};

const verifyOver = async (
  options: VerifyProviderOptions,
  fetchFn: typeof globalThis.fetch,
  base: URL,
  channel: TlsPeerChannel | undefined,
): Promise<VerificationResult> => {
  const https = base.protocol === 'https:';
  const wantTls = https && options.tlsBinding !== false;
  // Over TLS everything after the report goes over the pinned channel (no prompt to another key).
  const providerFetch = channel?.fetch ?? fetchFn;
  const api = apiRoot(base.toString());
  const nowSeconds =
    options.at === undefined ? toSeconds((options.now ?? Date.now)() / 1000) : toSeconds(options.at);
  const nonce = (options.random ?? ((n) => new Uint8Array(randomBytes(n))))(32);
  const nonceHex = toHex(nonce);
  const algo = options.signingAlgo ?? 'ecdsa';
  const list = new CheckList(options.onCheck);

  const fetchTitle = 'attestation report fetched for a fresh random nonce';
  let report: unknown;
  const tlsState: { https: boolean; wanted: boolean; peer?: PeerCertificate; refused: boolean } = {
    https,
    wanted: wantTls,
    refused: false,
  };
  try {
    const reportUrl = (tls: boolean) =>
      `${api}/attestation/report?nonce=${nonceHex}&signing_algo=${algo}${tls ? '&include_tls_fingerprint=true' : ''}`;
    const get = async (tls: boolean) => {
      if (channel === undefined)
        return fetchWire(fetchFn, reportUrl(tls), { headers: { accept: 'application/json' } });
      // One connection: the certificate read here is the one that carried this very answer.
      const answer = await channel.request(reportUrl(tls), { headers: { accept: 'application/json' } });
      tlsState.peer = answer.peer;
      return answer;
    };
    let answer = await get(wantTls);
    if (wantTls && answer.status === 400) {
      const code = (jsonOf(answer.body) as { error?: { code?: unknown } } | undefined)?.error?.code;
      if (code === 'tls_not_configured') {
        // Still check the rest; tls.fingerprint fails for it.
        tlsState.refused = true;
        answer = await get(false);
      }
    }
    report = jsonOf(answer.body);
    if (answer.status !== 200 || report === undefined) {
      const type = answer.headers.get('content-type');
      list.fail('report.fetch', fetchTitle, notASidecar(answer.status, type, answer.body));
    } else list.pass('report.fetch', fetchTitle, `HTTP 200, ${answer.body.length} bytes, nonce ${nonceHex}`);
  } catch (error) {
    list.fail('report.fetch', fetchTitle, fetchFailure(error, api));
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
    tlsChannel: _t,
    tlsBinding: _tb,
    e2ee: _e,
    onCheck: _o,
    ...reportOptions
  } = options;
  const ctx: ReportContext = { ...reportOptions, nonce, nowSeconds, signingAlgo: algo, fetch: fetchFn };
  const facts = await runReportChecks(list, report, ctx);
  const attested =
    facts.report?.tls_cert_fingerprint === undefined
      ? undefined
      : normalizeHex(facts.report.tls_cert_fingerprint);
  checkTlsFingerprint(list, report, attested, tlsState);
  if (channel !== undefined && attested !== undefined && /^[0-9a-f]{64}$/.test(attested))
    channel.pin(attested);

  const checks = options.e2ee === true ? [...SIGNATURE_CHECKS, ...E2EE_CHECKS] : SIGNATURE_CHECKS;
  if (options.completion === false) {
    for (const [id, title] of checks) list.skip(id, title, 'completions not sent (--no-completion)');
    return resultOf(list, nonceHex, nowSeconds, facts.signer);
  }
  const headers = options.headers ?? {};
  let model = options.model;
  let modelsError: string | undefined;
  if (model === undefined) {
    try {
      const models = await fetchWire(providerFetch, `${api}/models`, {
        headers: { ...headers, accept: 'application/json' },
      });
      const first = (jsonOf(models.body) as { data?: { id?: unknown }[] } | undefined)?.data?.[0]?.id;
      if (typeof first === 'string') model = first;
    } catch (error) {
      model = undefined;
      modelsError = fetchFailure(error, api);
    }
  }
  if (model === undefined) {
    for (const [id, title] of checks)
      list.fail(
        id,
        title,
        modelsError === undefined
          ? 'no model: GET /v1/models named none (use --model)'
          : `no model: GET /v1/models failed: ${modelsError}`,
      );
    return resultOf(list, nonceHex, nowSeconds, facts.signer);
  }
  for (const stream of [false, true]) {
    const kind = stream ? 'stream' : 'json';
    try {
      await checkSignedExchange(list, {
        // Node's fetch drops trailers: the pinned channel's whole-answer requests, or node:http,
        // keep them, so the signature can come with the answer (docs/protocol.md).
        fetch:
          channel === undefined
            ? (options.fetch ?? fetchKeepingTrailers)
            : fetchOverChannelKeepingTrailers(channel),
        api,
        model,
        stream,
        signer: facts.signer,
        headers,
        e2ee: options.e2ee === true,
      });
    } catch (error) {
      const reason = fetchFailure(error, api);
      for (const [id, title] of checks.filter(
        ([id]) => id.startsWith(`signature.${kind}.`) || id === `e2ee.${kind}`,
      )) {
        if (!list.results.some((r) => r.id === id)) list.fail(id, title, reason);
      }
    }
  }
  return resultOf(list, nonceHex, nowSeconds, facts.signer);
};
