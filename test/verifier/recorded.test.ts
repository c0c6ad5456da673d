import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildReportData, SimulatedQuoteProvider } from '../../src/tdx/index.js';
import { type ReportContext, type VerificationResult, verifyReport } from '../../src/verifier/index.js';
import { sharedFixtures } from '../paths.js';
import {
  collateralFile,
  NEAR_AT,
  NEAR_NONCE,
  nearCollateral,
  nearModelAttestation,
  nearNrasFetch,
  sharedText,
} from './fixtures.js';

const statusOf = (result: VerificationResult, id: string) => result.checks.find((c) => c.id === id)?.status;
const failed = (result: VerificationResult) =>
  result.checks.filter((c) => c.status === 'fail').map((c) => c.id);

/** Recorded reports are replays of public data: only tests may accept their published nonces. */
const nearContext = (overrides: Partial<ReportContext> = {}): ReportContext => ({
  nonce: NEAR_NONCE,
  nowSeconds: NEAR_AT,
  collateral: nearCollateral(),
  fetch: nearNrasFetch().fetch,
  allowSampleNonces: true,
  ...overrides,
});

describe('verifyReport on the recorded NEAR AI report (offline, fixed clock)', () => {
  it('passes every check, NRAS answer verified against the captured JWKS', async () => {
    const nras = nearNrasFetch();
    const report = nearModelAttestation();
    const result = await verifyReport(report, nearContext({ fetch: nras.fetch }));
    expect(failed(result)).toEqual([]);
    expect(result.verdict).toBe('pass');
    for (const id of [
      'report.nonce',
      'report.signing-key',
      'report.simulated',
      'tdx.quote',
      'tdx.debug',
      'tdx.report-data',
      'dstack.rtmr3',
      'dstack.rtmr0-2',
      'dstack.compose-hash',
      'gpu.payload-nonce',
      'gpu.evidence-nonce',
      'gpu.local',
      'gpu.nras',
    ]) {
      expect(statusOf(result, id), id).toBe('pass');
    }
    expect(result.checks.find((c) => c.id === 'tdx.quote')?.detail).toContain('UpToDate');
    expect(result.checks.find((c) => c.id === 'tdx.report-data')?.detail).toContain(
      'NEAR tls_cert_fingerprint',
    );
    // The payload went to NRAS byte for byte (docs/protocol.md: POSTed unchanged).
    expect(nras.posted).toEqual([report['nvidia_payload']]);
    expect(result.signingAddress).toBe(report['signing_address']);
  });

  it('accepts the whole cloud-api answer (model_attestations[0] is picked)', async () => {
    const whole = JSON.parse(
      sharedText(
        'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657/responses/0001_cloud-api.near.ai_v1_attestation_report.body',
      ),
    );
    const result = await verifyReport(whole, nearContext({ offline: true }));
    expect(result.ok).toBe(true);
    expect(statusOf(result, 'gpu.nras')).toBe('skip');
  });

  it('offline skips NRAS and still passes', async () => {
    const result = await verifyReport(nearModelAttestation(), nearContext({ offline: true }));
    expect(result.ok).toBe(true);
    expect(result.checks.find((c) => c.id === 'gpu.nras')).toMatchObject({ status: 'skip' });
  });

  it('replayed old report: a request_nonce that is not ours fails report.nonce', async () => {
    const fresh = 'ab'.repeat(32);
    const result = await verifyReport(nearModelAttestation(), nearContext({ nonce: fresh, offline: true }));
    expect(statusOf(result, 'report.nonce')).toBe('fail');
    expect(result.ok).toBe(false);
  });

  it('wrong nonce: a report that echoes our nonce over an old quote fails tdx.report-data and the GPU nonces', async () => {
    const fresh = 'cd'.repeat(32);
    const report = { ...nearModelAttestation(), request_nonce: fresh };
    const result = await verifyReport(report, nearContext({ nonce: fresh, offline: true }));
    expect(statusOf(result, 'report.nonce')).toBe('pass');
    expect(statusOf(result, 'tdx.report-data')).toBe('fail');
    expect(result.checks.find((c) => c.id === 'tdx.report-data')?.detail).toContain('not our nonce');
    expect(statusOf(result, 'gpu.payload-nonce')).toBe('fail');
    expect(statusOf(result, 'gpu.evidence-nonce')).toBe('fail');
  });

  it('flipped quote byte: dcap-qvl rejects the quote signature (tdx.quote)', async () => {
    const report = nearModelAttestation();
    const quote = Buffer.from(String(report['intel_quote']), 'hex');
    // MROWNER (TD report offset 232, after the 48-byte header): covered by the signature, not by
    // any other check, so only tdx.quote can notice.
    quote[48 + 232] = (quote[48 + 232] ?? 0) ^ 0x01;
    const result = await verifyReport(
      { ...report, intel_quote: quote.toString('hex') },
      nearContext({ offline: true }),
    );
    expect(failed(result)).toEqual(['tdx.quote']);
    expect(result.checks.find((c) => c.id === 'tdx.quote')?.detail).toMatch(/signature/i);
  });

  it('wrong address in report_data: another signing key fails tdx.report-data', async () => {
    const other = '11'.repeat(32);
    const report = { ...nearModelAttestation(), signing_address: other, signing_public_key: other };
    const result = await verifyReport(report, nearContext({ offline: true }));
    expect(failed(result)).toEqual(['tdx.report-data']);
    expect(result.checks.find((c) => c.id === 'tdx.report-data')?.detail).toContain('signing key');
  });

  it('swapped GPU evidence (from another fixture) fails gpu.evidence-nonce', async () => {
    const report = nearModelAttestation();
    const payload = JSON.parse(String(report['nvidia_payload'])) as {
      evidence_list: Record<string, string>[];
    };
    const hopper = readFileSync(
      sharedFixtures('nvidia/nvtrust-hopper-sample/hopperAttestationReport.txt'),
      'utf8',
    );
    const chain = readFileSync(sharedFixtures('nvidia/nvtrust-hopper-sample/hopperCertChain.txt'), 'utf8');
    const first = payload.evidence_list[0] as Record<string, string>;
    first['evidence'] = Buffer.from(hopper.trim(), 'hex').toString('base64');
    first['certificate'] = Buffer.from(chain).toString('base64');
    const result = await verifyReport(
      { ...report, nvidia_payload: JSON.stringify(payload) },
      nearContext({ offline: true }),
    );
    expect(failed(result)).toEqual(['gpu.evidence-nonce']);
    expect(result.checks.find((c) => c.id === 'gpu.evidence-nonce')?.detail).toContain('GPU 0');
  });

  it('published sample nonces are refused unless the caller replays a capture on purpose', async () => {
    const result = await verifyReport(
      nearModelAttestation(),
      nearContext({ offline: true, allowSampleNonces: false }),
    );
    expect(statusOf(result, 'gpu.local')).toBe('fail');
    expect(result.checks.find((c) => c.id === 'gpu.local')?.detail).toContain('sampleNonce');
  });

  it('NRAS tokens outside their validity window fail gpu.nras', async () => {
    // Two hours later the tokens (exp = iat + 3600) have expired; the quote window is still open.
    const result = await verifyReport(nearModelAttestation(), nearContext({ nowSeconds: NEAR_AT + 7200 }));
    expect(statusOf(result, 'tdx.quote')).toBe('pass');
    expect(statusOf(result, 'gpu.nras')).toBe('fail');
  });

  it('TCB policy and collateral window: a time outside the collateral fails tdx.quote', async () => {
    const result = await verifyReport(
      nearModelAttestation(),
      nearContext({ nowSeconds: 1795312159, offline: true }),
    );
    expect(statusOf(result, 'tdx.quote')).toBe('fail');
    expect(result.checks.find((c) => c.id === 'tdx.quote')?.detail).toContain('expired');
  });

  it('an empty accepted-TCB list rejects even UpToDate', async () => {
    const result = await verifyReport(nearModelAttestation(), nearContext({ acceptTcb: [], offline: true }));
    expect(result.checks.find((c) => c.id === 'tdx.quote')).toMatchObject({ status: 'fail' });
    expect(result.checks.find((c) => c.id === 'tdx.quote')?.detail).toContain('UpToDate is not accepted');
  });

  it('allow-lists and expectations: matching values pass, others fail', async () => {
    const report = nearModelAttestation();
    const info = report['info'] as {
      tcb_info: Record<string, string>;
      os_image_hash: string;
      compose_hash: string;
    };
    const good = await verifyReport(
      report,
      nearContext({
        offline: true,
        allow: {
          mrtd: [info.tcb_info['mrtd'] ?? ''],
          rtmr0: [info.tcb_info['rtmr0'] ?? ''],
          osImageHash: [info.os_image_hash],
        },
        expectedComposeHash: info.compose_hash,
        expectAddress: String(report['signing_address']).toUpperCase(),
      }),
    );
    expect(failed(good)).toEqual([]);
    expect(statusOf(good, 'tdx.measurements')).toBe('pass');
    expect(statusOf(good, 'dstack.os-image')).toBe('pass');
    expect(statusOf(good, 'signing.expected-address')).toBe('pass');
    const bad = await verifyReport(
      report,
      nearContext({
        offline: true,
        allow: { mrtd: ['00'.repeat(48)], osImageHash: ['00'.repeat(32)] },
        composeFile: new TextEncoder().encode('{"not":"the compose"}'),
        expectAddress: 'ff'.repeat(32),
      }),
    );
    expect(failed(bad).sort()).toEqual(
      ['dstack.compose-hash', 'dstack.os-image', 'signing.expected-address', 'tdx.measurements'].sort(),
    );
  });

  it('a forged compose-hash event (digest recomputed, not trusted) breaks dstack.rtmr3 and the compose check', async () => {
    const report = nearModelAttestation();
    const events = (report['event_log'] as Record<string, unknown>[]).map((e) => ({ ...e }));
    const compose = events.find((e) => e['event'] === 'compose-hash') as Record<string, unknown>;
    compose['event_payload'] = '00'.repeat(32);
    compose['digest'] = ''; // as a "lite" log would send it: the verifier recomputes it anyway
    const result = await verifyReport({ ...report, event_log: events }, nearContext({ offline: true }));
    expect(statusOf(result, 'dstack.rtmr3')).toBe('fail');
    expect(statusOf(result, 'dstack.compose-hash')).toBe('fail');
  });
});

describe('verifyReport on the Dstack fixtures', () => {
  const dstackReport = (quoteHex: string, eventLog: unknown, extra: Record<string, unknown> = {}) => ({
    signing_address: `0x${'11'.repeat(20)}`,
    signing_algo: 'ecdsa',
    request_nonce: '00'.repeat(32),
    intel_quote: quoteHex,
    event_log: eventLog,
    ...extra,
  });

  it('quote-report.json: quote UpToDate, RTMR0-3 replay; its report_data binds no key of ours', async () => {
    const fixture = JSON.parse(sharedText('dstack/verifier-fixtures/quote-report.json')) as Record<
      string,
      string
    >;
    const result = await verifyReport(dstackReport(fixture['quote'] ?? '', fixture['event_log']), {
      nonce: '00'.repeat(32),
      nowSeconds: NEAR_AT,
      collateral: nearCollateral(),
      offline: true,
      allowNoGpu: true,
    });
    expect(statusOf(result, 'tdx.quote')).toBe('pass');
    expect(statusOf(result, 'dstack.rtmr3')).toBe('pass');
    expect(statusOf(result, 'dstack.rtmr0-2')).toBe('pass');
    expect(statusOf(result, 'dstack.compose-hash')).toBe('pass');
    expect(failed(result)).toEqual(['tdx.report-data']);
  });

  it('tdx-lite-getquote.json: empty RTMR3 digests are recomputed and replay', async () => {
    const fixture = JSON.parse(sharedText('dstack/verifier-fixtures/tdx-lite-getquote.json')) as Record<
      string,
      string
    >;
    const result = await verifyReport(dstackReport(fixture['quote'] ?? '', fixture['event_log']), {
      nonce: '00'.repeat(32),
      nowSeconds: NEAR_AT,
      collateral: nearCollateral(),
      offline: true,
      allowNoGpu: true,
    });
    expect(statusOf(result, 'tdx.quote')).toBe('pass');
    expect(statusOf(result, 'dstack.rtmr3')).toBe('pass');
    expect(result.checks.find((c) => c.id === 'gpu.payload-nonce')?.detail).toContain('--allow-no-gpu');
  });

  it('NEAR private-ml-sdk sample: compose hash bound to MRCONFIGID and to Info app_compose', async () => {
    const quote = JSON.parse(sharedText('dstack/nearai-sample/SAMPLE_DSTACK_QUOTE.json')) as Record<
      string,
      string
    >;
    const info = JSON.parse(sharedText('dstack/nearai-sample/SAMPLE_DSTACK_INFO.json')) as Record<
      string,
      unknown
    >;
    const appCompose = (info['tcb_info'] as Record<string, string>)['app_compose'] ?? '';
    const result = await verifyReport(dstackReport(quote['quote'] ?? '', quote['event_log'], { info }), {
      nonce: '00'.repeat(32),
      nowSeconds: 1758100000,
      collateral: collateralFile('tdx/dcap-qvl-near-gas-test/quote_collateral.json'),
      offline: true,
      allowNoGpu: true,
      composeFile: new TextEncoder().encode(appCompose),
    });
    expect(statusOf(result, 'tdx.quote')).toBe('pass');
    expect(statusOf(result, 'dstack.rtmr3')).toBe('pass');
    expect(result.checks.find((c) => c.id === 'dstack.compose-hash')).toMatchObject({ status: 'pass' });
    expect(result.checks.find((c) => c.id === 'dstack.compose-hash')?.detail).toContain('MRCONFIGID matches');
  });

  it('a GPU-less report fails unless --allow-no-gpu', async () => {
    const fixture = JSON.parse(sharedText('dstack/verifier-fixtures/quote-report.json')) as Record<
      string,
      string
    >;
    const result = await verifyReport(dstackReport(fixture['quote'] ?? '', fixture['event_log']), {
      nonce: '00'.repeat(32),
      nowSeconds: NEAR_AT,
      collateral: nearCollateral(),
      offline: true,
    });
    expect(statusOf(result, 'gpu.payload-nonce')).toBe('fail');
  });
});

describe('verifyReport on simulated quotes', () => {
  const nonce = new Uint8Array(32).fill(7);
  const address = new Uint8Array(20).fill(0xaa);

  const simulatedReport = async (reportData: Uint8Array, extra: Record<string, unknown> = {}) => {
    const provider = new SimulatedQuoteProvider();
    const { quote } = await provider.getQuote(reportData);
    return {
      signing_address: `0x${Buffer.from(address).toString('hex')}`,
      signing_algo: 'ecdsa',
      request_nonce: Buffer.from(nonce).toString('hex'),
      intel_quote: Buffer.from(quote).toString('hex'),
      nvidia_payload: '',
      ...extra,
    };
  };
  const ctx = { nonce, nowSeconds: 1_800_000_000, allowNoGpu: true, offline: true } as const;

  it('is detected from the quote markers even when the JSON says nothing', async () => {
    const report = await simulatedReport(buildReportData({ algo: 'ecdsa', address, nonce }));
    const rejected = await verifyReport(report, ctx);
    expect(statusOf(rejected, 'report.simulated')).toBe('fail');
    expect(rejected.checks.find((c) => c.id === 'report.simulated')?.detail).toContain(
      'quote carries simulated markers',
    );
    expect(statusOf(rejected, 'tdx.quote')).toBe('fail');
    const allowed = await verifyReport(report, { ...ctx, allowSimulated: true });
    expect(allowed.ok).toBe(true);
    expect(allowed.checks.find((c) => c.id === 'tdx.quote')).toMatchObject({
      status: 'pass',
      simulated: true,
    });
  });

  it('wrong address in report_data fails tdx.report-data (quote itself intact)', async () => {
    const other = new Uint8Array(20).fill(0xbb);
    const report = await simulatedReport(buildReportData({ algo: 'ecdsa', address: other, nonce }));
    const result = await verifyReport(report, { ...ctx, allowSimulated: true });
    expect(failed(result)).toEqual(['tdx.report-data']);
  });

  it('a debug TD fails tdx.debug', async () => {
    const report = await simulatedReport(buildReportData({ algo: 'ecdsa', address, nonce }));
    // Set TD_ATTRIBUTES bit 0 (DEBUG) at body offset 120; the simulated self-signature then breaks too.
    const quote = Buffer.from(report.intel_quote, 'hex');
    quote[48 + 120] = 0x01;
    const result = await verifyReport(
      { ...report, intel_quote: quote.toString('hex') },
      { ...ctx, allowSimulated: true },
    );
    expect(statusOf(result, 'tdx.debug')).toBe('fail');
    expect(statusOf(result, 'tdx.quote')).toBe('fail');
  });

  it('the tapp scheme: sha512(runtime_data) is report_data and runtime_data carries our 64 bytes', async () => {
    const { buildRuntimeData, reportDataOfRuntimeData } = await import('../../src/tapp/index.js');
    const expected = buildReportData({ algo: 'ecdsa', address, nonce });
    const runtimeData = buildRuntimeData({ signer: address, nonce: expected });
    const report = await simulatedReport(reportDataOfRuntimeData(runtimeData), {
      report_data_scheme: 'tapp-runtime-data-sha512',
      runtime_data: runtimeData,
    });
    const result = await verifyReport(report, { ...ctx, allowSimulated: true });
    expect(result.checks.find((c) => c.id === 'tdx.report-data')).toMatchObject({ status: 'pass' });
    const otherNonce = await verifyReport(report, {
      ...ctx,
      allowSimulated: true,
      nonce: new Uint8Array(32).fill(8),
    });
    expect(statusOf(otherNonce, 'tdx.report-data')).toBe('fail');
  });

  it('the tapp scheme with a TLS binding: runtime_data.nonce binds the key, and tls_public_key must agree', async () => {
    const { buildRuntimeData, reportDataOfRuntimeData } = await import('../../src/tapp/index.js');
    const fingerprint = new Uint8Array(32).fill(0x5a);
    const expected = buildReportData({ algo: 'ecdsa', address, nonce, tlsSpkiSha256: fingerprint });
    const tappReport = async (tlsPublicKey: Uint8Array | undefined) => {
      const runtimeData = buildRuntimeData({
        signer: address,
        nonce: expected,
        ...(tlsPublicKey === undefined ? {} : { tlsPublicKeySha256: tlsPublicKey }),
      });
      return simulatedReport(reportDataOfRuntimeData(runtimeData), {
        report_data_scheme: 'tapp-runtime-data-sha512',
        runtime_data: runtimeData,
        tls_cert_fingerprint: Buffer.from(fingerprint).toString('hex'),
      });
    };
    const agreeing = await verifyReport(await tappReport(fingerprint), { ...ctx, allowSimulated: true });
    expect(agreeing.checks.find((c) => c.id === 'tdx.report-data')).toMatchObject({
      status: 'pass',
      detail:
        'tapp scheme: sha512(runtime_data) = report_data, runtime_data.nonce = sha256(address ‖ tls_cert_fingerprint) ‖ nonce (NEAR tls_cert_fingerprint scheme); runtime_data.tls_public_key = tls_cert_fingerprint',
    });
    const without = await verifyReport(await tappReport(undefined), { ...ctx, allowSimulated: true });
    expect(statusOf(without, 'tdx.report-data')).toBe('pass');
    const disagreeing = await verifyReport(await tappReport(new Uint8Array(32).fill(0x77)), {
      ...ctx,
      allowSimulated: true,
    });
    expect(disagreeing.checks.find((c) => c.id === 'tdx.report-data')).toMatchObject({
      status: 'fail',
      detail: 'tapp scheme: runtime_data.tls_public_key is not tls_cert_fingerprint',
    });
  });
});
