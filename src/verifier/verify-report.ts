import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { getCollateral as dcapGetCollateral, PHALA_PCCS_URL } from '@phala/dcap-qvl';
import { toHex } from '../bytes/index.js';
import { SYNTHETIC_GPU_FIXTURE_DIR } from '../gpu/index.js';
import { type ParsedQuote, parseQuote, QuoteParseError } from '../tdx/index.js';
import { CheckList } from './check-list.js';
import { checkDstack } from './dstack-checks.js';
import { checkGpu, payloadUsesRoots, readNvidiaPayload } from './gpu-checks.js';
import {
  type AttestedSigner,
  checkExpectedAddress,
  checkRequestNonce,
  checkSigningKey,
  checkSimulated,
  simulatedJsonFlags,
} from './report-checks.js';
import { type AttestationView, normalizeHex, parseAttestation } from './report-shape.js';
import { simulatedQuoteMarkers } from './simulated-markers.js';
import {
  checkDebug,
  checkMeasurements,
  checkQuote,
  checkReportData,
  DEFAULT_ACCEPTED_TCB,
} from './tdx-checks.js';
import type { ReportContext, VerificationResult } from './types.js';
import {
  BROKER_QUOTE_NOT_FRESH,
  checkBrokerAddress,
  ZG_BROKER_REPORT_DATA_SCHEME,
} from './zg-broker-checks.js';

/** What the report checks established, for the signature checks that follow them. */
export interface ReportFacts {
  report?: AttestationView;
  signer?: AttestedSigner;
  simulated: boolean;
}

/** A 32-byte nonce from bytes or 64 hex characters; a malformed nonce is the caller's bug. */
export const normalizeNonce = (nonce: Uint8Array | string): Uint8Array => {
  const bytes = typeof nonce === 'string' ? new Uint8Array(Buffer.from(normalizeHex(nonce), 'hex')) : nonce;
  if (bytes.length !== 32 || (typeof nonce === 'string' && normalizeHex(nonce).length !== 64)) {
    throw new TypeError('"nonce" expected 32 bytes (64 hex characters)');
  }
  return bytes;
};

/**
 * Where simulated-mode GPU evidence chains to: the synthetic test root whose fingerprint ships in
 * attestation-fixtures/gpu/synthetic-root.sha256 (read, not retyped, so it cannot drift). Missing
 * file: no synthetic root is known, so simulated GPU evidence simply fails.
 */
const defaultSimulatedRoots = async (): Promise<string[]> => {
  try {
    const text = await readFile(join(SYNTHETIC_GPU_FIXTURE_DIR, 'synthetic-root.sha256'), 'utf8');
    const fingerprint = text.trim().toLowerCase();
    return /^[0-9a-f]{64}$/.test(fingerprint) ? [fingerprint] : [];
  } catch {
    return [];
  }
};

const QUOTE_DEPENDENT: [string, string][] = [
  ['tdx.debug', 'TD is not in debug mode'],
  ['tdx.report-data', 'quote report_data binds the signing key and our nonce'],
  ['tdx.measurements', 'MRTD and RTMR0-2 are on the allow-lists'],
  ['dstack.rtmr3', 'RTMR3 replays from the event log'],
  ['dstack.rtmr0-2', 'RTMR0-2 replay from the event log'],
  ['dstack.compose-hash', 'compose hash is bound (RTMR3 event, MRCONFIGID, app_compose, expected)'],
  ['dstack.os-image', 'OS image hash is on the allow-list'],
];

/**
 * Runs every check that needs only the report (no HTTP except NRAS and collateral, both injected)
 * into `list`. Used by `verifyReport` and, after fetching the report, by `verifyProvider`.
 */
export const runReportChecks = async (
  list: CheckList,
  value: unknown,
  ctx: ReportContext,
): Promise<ReportFacts> => {
  const nonce = normalizeNonce(ctx.nonce);
  const nonceHex = toHex(nonce);
  const parsedReport = parseAttestation(value);
  if (!parsedReport.ok) {
    list.fail('report.shape', 'report has the required fields', parsedReport.reason);
    return { simulated: false };
  }
  list.pass(
    'report.shape',
    'report has the required fields',
    'signing_address, request_nonce, intel_quote present',
  );
  const report = parsedReport.report;
  // A 0G broker's static quote answers no nonce: only an explicit opt-in turns the freshness checks
  // into skips that say so; without it the report fails them like any replay.
  const brokerQuote = report.report_data_scheme === ZG_BROKER_REPORT_DATA_SCHEME;
  const staticQuote = brokerQuote && ctx.acceptBrokerQuote === true;
  if (staticQuote)
    list.skip(
      'report.nonce',
      'report answers our fresh nonce (replay protection)',
      `NOT FRESH, accepted by acceptBrokerQuote: ${BROKER_QUOTE_NOT_FRESH}`,
    );
  else
    checkRequestNonce(
      list,
      report,
      nonceHex,
      brokerQuote
        ? " (a 0G broker's quote is made once at its start: the policy's acceptBrokerQuote accepts it)"
        : '',
    );
  const signer = checkSigningKey(list, report, ctx.signingAlgo);

  let quote: Uint8Array | undefined;
  let parsed: ParsedQuote | undefined;
  let quoteError = '';
  try {
    quote = new Uint8Array(Buffer.from(normalizeHex(report.intel_quote), 'hex'));
    parsed = parseQuote(quote);
  } catch (error) {
    quoteError = error instanceof QuoteParseError ? error.message : 'intel_quote is not a TDX quote';
  }

  const simulatedRoots = ctx.simulatedGpuRoots ?? (await defaultSimulatedRoots());
  const { payload, error: payloadError } = readNvidiaPayload(report);
  const simulated = checkSimulated(
    list,
    {
      jsonFlags: simulatedJsonFlags(report),
      quoteMarkers: parsed === undefined ? [] : simulatedQuoteMarkers(parsed),
      gpuSynthetic: payloadUsesRoots(payload, simulatedRoots),
    },
    ctx.allowSimulated === true,
  );

  if (quote === undefined || parsed === undefined) {
    list.fail('tdx.quote', 'TDX quote verified by Intel DCAP (dcap-qvl) and TCB status accepted', quoteError);
    for (const [id, title] of QUOTE_DEPENDENT) list.fail(id, title, 'no parseable TDX quote');
    if (staticQuote)
      list.fail(
        'tdx.report-data.broker-address',
        "quote report_data binds the signing address in the 0G broker's format",
        'no parseable TDX quote',
      );
  } else {
    const quoteBytes = quote;
    const pccsUrl = ctx.pccsUrl ?? PHALA_PCCS_URL;
    await checkQuote(list, {
      quote: quoteBytes,
      parsed,
      simulatedMarkers: simulatedQuoteMarkers(parsed),
      allowSimulated: ctx.allowSimulated === true,
      nowSeconds: ctx.nowSeconds,
      acceptTcb: ctx.acceptTcb ?? DEFAULT_ACCEPTED_TCB,
      collateral: async () => {
        const used =
          ctx.collateral ?? (await (ctx.getCollateral ?? ((q) => dcapGetCollateral(pccsUrl, q)))(quoteBytes));
        ctx.onCollateral?.(used);
        return used;
      },
    });
    checkDebug(list, parsed);
    if (staticQuote) {
      list.skip(
        'tdx.report-data',
        'quote report_data binds the signing key and our nonce',
        `0G broker scheme, no nonce bound (${BROKER_QUOTE_NOT_FRESH}): see tdx.report-data.broker-address`,
      );
      checkBrokerAddress(list, parsed, signer);
    } else checkReportData(list, report, parsed, signer, nonce);
    checkMeasurements(list, parsed, ctx.allow ?? {});
    checkDstack(list, report, parsed, {
      ...(ctx.expectedComposeHash === undefined ? {} : { expectedComposeHash: ctx.expectedComposeHash }),
      ...(ctx.composeFile === undefined ? {} : { composeFile: ctx.composeFile }),
      ...(ctx.allow === undefined ? {} : { allow: ctx.allow }),
    });
  }

  await checkGpu(list, {
    report,
    ...(payload === undefined ? {} : { payload }),
    ...(payloadError === undefined ? {} : { payloadError }),
    nonce,
    nonceHex,
    now: new Date(ctx.nowSeconds * 1000),
    allowSimulated: ctx.allowSimulated === true,
    simulatedRoots,
    allowNoGpu: ctx.allowNoGpu === true,
    allowSampleNonces: ctx.allowSampleNonces === true,
    nonceFromPayload: staticQuote,
    offline: ctx.offline === true,
    ...(ctx.fetch === undefined ? {} : { fetch: ctx.fetch }),
    ...(ctx.nrasUrl === undefined ? {} : { nrasUrl: ctx.nrasUrl }),
  });
  // A replayable quote is only worth its binding to an address someone else vouches for (0G: the
  // chain's teeSignerAddress): without one it is refused.
  if (staticQuote && ctx.expectAddress === undefined)
    list.fail(
      'signing.expected-address',
      'attested signing address is the expected one',
      "a 0G broker's static quote is accepted only against the address the chain names (expectAddress)",
    );
  else checkExpectedAddress(list, signer, ctx.expectAddress);
  return { report, ...(signer === undefined ? {} : { signer }), simulated };
};

export const resultOf = (
  list: CheckList,
  nonceHex: string,
  at: number,
  signer?: AttestedSigner,
): VerificationResult => ({
  verdict: list.ok ? 'pass' : 'fail',
  ok: list.ok,
  checks: list.results,
  nonce: nonceHex,
  at,
  ...(signer === undefined ? {} : { signingAddress: signer.display }),
});

/**
 * Verifies a recorded attestation report (ours, or NEAR's `model_attestations[0]`) against the
 * nonce it was requested with, at `ctx.nowSeconds`, without talking to the provider.
 */
export const verifyReport = async (report: unknown, ctx: ReportContext): Promise<VerificationResult> => {
  const list = new CheckList();
  const facts = await runReportChecks(list, report, ctx);
  return resultOf(list, toHex(normalizeNonce(ctx.nonce)), ctx.nowSeconds, facts.signer);
};
