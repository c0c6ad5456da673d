import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { receiptsCommand } from '../../src/cli/receipts.js';
import type { Attestation } from '../../src/gateway/attestor.js';
import { fileReceiptSink, NOT_CHECKED, verifyReceipts } from '../../src/gateway/index.js';
import { attestationLineOf } from '../../src/gateway/receipts.js';
import { type Collateral, parseCollateral, parseQuote } from '../../src/tdx/index.js';
import { startTestSidecar, startUpstream, type TestSidecar } from '../e2e/harness.js';
import { sharedFixtures } from '../paths.js';
import { SECRET_MARKERS } from '../secrets.js';
import { startTestGateway, testPolicy } from './harness.js';

/**
 * Forged receipts files, each made from a real file written by a real gateway run against a real
 * (simulated) sidecar, then edited the way someone proving what never happened would edit it.
 */
let sidecar: TestSidecar;
let dir: string;
let original: string;

const sink = () => {
  let text = '';
  return {
    stream: {
      write: (chunk: string) => {
        text += chunk;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
    text: () => text,
  };
};

/** `receipts verify` as the user runs it: exit status and what it printed. */
const cli = async (text: string, ...flags: string[]): Promise<{ code: number; out: string }> => {
  const path = join(dir, `${randomBytes(6).toString('hex')}.jsonl`);
  writeFileSync(path, text);
  const out = sink();
  const code = await receiptsCommand(['verify', path, ...flags], out.stream, sink().stream);
  return { code, out: out.text() };
};

type Line = Record<string, unknown> & { report?: Record<string, unknown> };
const linesOf = (text: string): Line[] =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
const textOf = (lines: Line[]): string => `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;

beforeAll(async () => {
  sidecar = await startTestSidecar();
  dir = mkdtempSync(join(tmpdir(), 'teeml-receipts-'));
  const path = join(dir, 'receipts.jsonl');
  const gateway = await startTestGateway(sidecar.url, {
    policy: testPolicy({ signingAlgo: 'ecdsa' }),
    receipts: { sink: await fileReceiptSink(path), label: path },
  });
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  for (let i = 0; i < 2; i += 1)
    await client.chat.completions.create({
      model: 'teeml-demo',
      messages: [{ role: 'user', content: SECRET_MARKERS.prompt }],
    });
  await gateway.receipts.flush();
  await gateway.close();
  original = readFileSync(path, 'utf8');
});
afterAll(async () => {
  await sidecar.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('receipts verify on a simulated run', () => {
  it('fails without --allow-simulated: the quote does not chain to Intel', async () => {
    expect(linesOf(original).map((l) => l['type'])).toEqual(['attestation', 'receipt', 'receipt']);
    const result = await verifyReceipts(original);
    expect(result.ok).toBe(false);
    expect(result.verdicts[0]?.problems.join()).toMatch(/not signed up to Intel's SGX Root CA/);
    const { code, out } = await cli(original);
    expect(code).toBe(1);
    expect(out).toMatch(/^FAIL line 1 attestation SIMULATED: quote is not signed up to Intel/m);
    expect(out).toMatch(/^verdict: FAIL/m);
  });

  it('passes with --allow-simulated and says SIMULATED on every line and in the verdict', async () => {
    const { code, out } = await cli(original, '--allow-simulated');
    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    for (const line of lines.filter((l) => /^(PASS|FAIL) line/.test(l)))
      expect(line).toMatch(/^PASS .* SIMULATED/);
    expect(out).toMatch(/^verdict: PASS SIMULATED \(2 receipts, 1 attestations, 0 failed lines\)$/m);
    expect(out).toMatch(/^SIMULATED: /m);
    expect(out).toContain(`not checked: ${NOT_CHECKED.measurements}`);
  });
});

describe('forged receipts files', () => {
  /** Simulation scrubbed: no marker in the JSON, every check passing, the quote's marker bytes replaced. */
  const scrubbed = (): string => {
    const [attestation, ...receipts] = linesOf(original);
    if (attestation?.report === undefined) throw new Error('no attestation line');
    const report = { ...attestation.report };
    // The labels, the nested copies of the report, and the (synthetic) GPU evidence: a CPU-only "TDX" report.
    for (const key of [
      'simulated',
      'warning',
      'gpu',
      'nvidia_payload',
      'all_attestations',
      'model_attestations',
    ])
      delete report[key];
    delete report['gateway_attestation'];
    report['platform'] = 'tdx';
    report['info'] = {};
    const quote = new Uint8Array(Buffer.from(String(report['intel_quote']), 'hex'));
    const parsed = parseQuote(quote);
    quote.set(Buffer.from('939a7233f79c4ca9940a0db3957f0607', 'hex'), 12); // Intel's QE vendor id
    quote.set(new Uint8Array(20), 28); // header user data
    quote.set(randomBytes(48), parsed.bodyRange.start + 136); // MRTD
    const pem = parsed.signatureData.qeReportCertification?.certification;
    if (pem !== undefined) quote.set(Buffer.from('-'.repeat(pem.data.length)), pem.range.start);
    report['intel_quote'] = Buffer.from(quote).toString('hex');
    const sha = createHash('sha256').update(quote).digest('hex');
    const checks = (attestation['checks'] as Array<Record<string, unknown>>)
      .filter((c) => c['id'] !== 'report.simulated' && !String(c['id']).startsWith('gpu.'))
      .map((c) => ({ id: c['id'], status: 'pass' }));
    const forged = { ...attestation, report, checks, quote_sha256: sha };
    const refs = receipts.map((r) => ({
      ...r,
      attestation: { ...(r['attestation'] as object), quote_sha256: sha },
    }));
    return textOf([forged, ...refs]);
  };

  it('scrubbing every simulated marker and recomputing quote_sha256 still fails', async () => {
    const text = scrubbed();
    expect(text).not.toMatch(/simulated/i);
    const result = await verifyReceipts(text);
    expect(result.ok).toBe(false);
    expect(result.verdicts[0]?.problems.join()).toMatch(/not signed up to Intel's SGX Root CA/);
    expect((await cli(text)).code).toBe(1);
  });

  it('... and with --allow-simulated it is still called SIMULATED', async () => {
    const { code, out } = await cli(scrubbed(), '--allow-simulated');
    expect(code).toBe(0);
    expect(out).toMatch(/^PASS line 1 attestation SIMULATED/m);
    expect(out).toMatch(/^verdict: PASS SIMULATED/m);
  });

  it('a made-up request_sha256 with request_hash_compared false fails beside receipts that compared', async () => {
    const [attestation, first, second] = linesOf(original);
    if (attestation === undefined || first === undefined || second === undefined) throw new Error('lines');
    const madeUp = {
      ...second,
      request_sha256: randomBytes(32).toString('hex'),
      request_hash_compared: false,
    };
    const result = await verifyReceipts(textOf([attestation, first, madeUp]), { allowSimulated: true });
    expect(result.ok).toBe(false);
    expect(result.verdicts[2]?.problems).toEqual([
      'request_hash_compared differs from its attestation line (link mode direct)',
    ]);
  });

  it('... and alone, under its direct-mode attestation line, it fails too', async () => {
    const [attestation, first] = linesOf(original);
    if (attestation === undefined || first === undefined) throw new Error('lines');
    expect(attestation['link']).toEqual({ mode: 'direct', request_hash_compared: true });
    const madeUp = {
      ...first,
      request_sha256: randomBytes(32).toString('hex'),
      request_hash_compared: false,
    };
    const result = await verifyReceipts(textOf([attestation, madeUp]), { allowSimulated: true });
    expect(result.verdicts[1]?.problems).toEqual([
      'request_hash_compared differs from its attestation line (link mode direct)',
    ]);
    // A line written before the link mode was recorded.
    const { link: _link, ...noLink } = attestation;
    const old = await verifyReceipts(textOf([noLink, madeUp]), { allowSimulated: true });
    expect(old.verdicts[1]?.problems).toEqual([
      'request_hash_compared is false but its attestation line records no link mode',
    ]);
  });

  it('under a 0G-mode attestation line it passes, saying the request hash was not compared', async () => {
    const [attestation, first] = linesOf(original);
    if (attestation === undefined || first === undefined) throw new Error('lines');
    const madeUp = {
      ...first,
      request_sha256: randomBytes(32).toString('hex'),
      request_hash_compared: false,
    };
    // What a 0G run writes; the line itself is not signed (SECURITY.md, Receipts).
    const zg = { ...attestation, link: { mode: '0g', request_hash_compared: false } };
    const text = textOf([zg, madeUp]);
    const result = await verifyReceipts(text, { allowSimulated: true });
    expect(result.verdicts[1]?.notChecked).toEqual([
      NOT_CHECKED.recorded,
      NOT_CHECKED.model,
      NOT_CHECKED.requestHash,
    ]);
    expect(result.notChecked).toContain(NOT_CHECKED.requestHash);
    const { out } = await cli(text, '--allow-simulated');
    expect(out).toMatch(
      /^PASS line 2 receipt \S+ SIMULATED \(not checked: id, path, stream and time are as recorded.*; request hash not compared/m,
    );
    expect(out).toMatch(/^not checked: request hash not compared \(0G broker re-serializes requests\)$/m);
  });

  it('a made-up request_sha256 on a receipt that says it was compared fails', async () => {
    const [attestation, first] = linesOf(original);
    if (attestation === undefined || first === undefined) throw new Error('lines');
    const madeUp = { ...first, request_sha256: randomBytes(32).toString('hex') };
    const result = await verifyReceipts(textOf([attestation, madeUp]), { allowSimulated: true });
    expect(result.verdicts[1]?.problems).toEqual(['signed text does not start with the request sha256']);
  });
});

describe('an attestation line with a real Intel quote (NEAR AI capture) and the collateral recorded', () => {
  const E2E = 'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657';
  const body = JSON.parse(
    readFileSync(
      sharedFixtures(`${E2E}/responses/0001_cloud-api.near.ai_v1_attestation_report.body`),
      'utf8',
    ),
  ) as { model_attestations: Array<Record<string, unknown>> };
  // Without its GPU evidence: that capture's nonce is a published sample, which the verifier
  // refuses as replayed evidence (only tests may allow it); the TDX half is what is at stake here.
  const { nvidia_payload: _gpu, ...report } = body.model_attestations[0] ?? {};
  const collateral = parseCollateral(
    JSON.parse(readFileSync(sharedFixtures(`${E2E}/derived/model_intel_quote_collateral.json`), 'utf8')),
  );
  // As dcap-qvl's getCollateral hands it over: byte fields as number arrays.
  const fetched = {
    ...collateral,
    root_ca_crl: [...Buffer.from(String(collateral.root_ca_crl), 'hex')],
    pck_crl: [...Buffer.from(String(collateral.pck_crl), 'hex')],
    tcb_info_signature: [...Buffer.from(String(collateral.tcb_info_signature), 'hex')],
    qe_identity_signature: [...Buffer.from(String(collateral.qe_identity_signature), 'hex')],
  };
  const quoteOf = (r: Record<string, unknown>) =>
    new Uint8Array(Buffer.from(String(r['intel_quote']), 'hex'));
  /** The line the gateway writes for this attestation (at the fixtures' fixed clock, 1782700000). */
  const lineOf = (options: { report?: Record<string, unknown>; collateral?: Collateral } = {}): string => {
    const r = options.report ?? report;
    const attestation: Attestation = {
      ok: true,
      fresh: true,
      nonce: 'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
      at: 1782700000 * 1000,
      source: 'https://cloud-api.near.ai/v1/attestation/report',
      checks: [{ id: 'tdx.quote', title: 'quote', status: 'pass', detail: 'as recorded' }],
      signer: { algo: 'ed25519', address: String(r['signing_address']) },
      quoteSha256: createHash('sha256').update(quoteOf(r)).digest('hex'),
      report: r,
      ...(options.collateral === undefined ? {} : { collateral: options.collateral }),
    };
    return `${JSON.stringify(attestationLineOf(attestation))}\n`;
  };

  it('passes: signatures to Intel, report_data binding, DCAP with the TCB status at the recorded time', async () => {
    const text = lineOf({ collateral: fetched as Collateral });
    expect(JSON.parse(text).collateral.pck_crl).toMatch(/^[0-9a-f]+$/);
    const result = await verifyReceipts(text);
    expect(result.verdicts[0]?.problems).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.simulated).toBe(false);
    expect(result.verdicts[0]?.checked).toEqual([
      "quote signed up to Intel's SGX Root CA (FMSPC 90C06F000000)",
      'DCAP with the recorded collateral: TCB status UpToDate at 2026-06-29T02:26:40.000Z',
    ]);
    expect(result.notChecked).toEqual([NOT_CHECKED.noGpu, NOT_CHECKED.measurements]);
    const { code, out } = await cli(text);
    expect(code).toBe(0);
    expect(out).toMatch(
      /^PASS line 1 attestation \(not checked: no GPU evidence in the report; measurements/m,
    );
    expect(out).not.toMatch(/SIMULATED/);
  });

  it('without recorded collateral it passes and says the TCB status was not re-checked', async () => {
    const result = await verifyReceipts(lineOf());
    expect(result.ok).toBe(true);
    expect(result.notChecked).toContain(NOT_CHECKED.tcb);
  });

  it('a recorded collateral that was edited fails', async () => {
    const edited = { ...collateral, tcb_info: collateral.tcb_info.replace('"UpToDate"', '"OutOfDate"') };
    expect(edited.tcb_info).not.toBe(collateral.tcb_info);
    const result = await verifyReceipts(lineOf({ collateral: edited }));
    expect(result.ok).toBe(false);
    expect(result.verdicts[0]?.problems.join()).toMatch(/tdx.quote with the recorded collateral: .*tcb_info/);
  });

  it('with allow-lists, a genuine quote from another TD fails (--mrtd)', async () => {
    const mrtd = Buffer.from(parseQuote(quoteOf(report)).report.mrTd).toString('hex');
    const text = lineOf();
    const ok = await verifyReceipts(text, { allow: { mrtd: [mrtd] } });
    expect(ok.ok).toBe(true);
    expect(ok.notChecked).not.toContain(NOT_CHECKED.measurements);
    expect(ok.verdicts[0]?.checked).toContain('tdx.measurements: MRTD allowed');
    const other = 'ab'.repeat(48);
    const { code, out } = await cli(text, '--mrtd', `${other},${'cd'.repeat(48)}`);
    expect(code).toBe(1);
    expect(out).toMatch(
      new RegExp(`^FAIL line 1 attestation: tdx.measurements: MRTD ${mrtd} not allowed$`, 'm'),
    );
    expect((await cli(text, '--mrtd', 'abcd')).code).toBe(2);
  });

  it('one flipped byte of the TD report (quote_sha256 recomputed) fails the quote signature', async () => {
    const quote = quoteOf(report);
    const parsed = parseQuote(quote);
    quote[parsed.bodyRange.start + 136] = (quote[parsed.bodyRange.start + 136] ?? 0) ^ 0x01; // MRTD
    const forged = { ...report, intel_quote: Buffer.from(quote).toString('hex') };
    const result = await verifyReceipts(lineOf({ report: forged }));
    expect(result.ok).toBe(false);
    expect(result.verdicts[0]?.problems.join()).toMatch(
      /not signed up to Intel's SGX Root CA \(the attestation key did not sign the quote header and TD report\)/,
    );
  });
});

describe('the gateway records the collateral it fetched at attestation time', () => {
  const E2E = 'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657';
  const collateral = parseCollateral(
    JSON.parse(readFileSync(sharedFixtures(`${E2E}/derived/model_intel_quote_collateral.json`), 'utf8')),
  );
  const hexBody = (v: unknown) => Buffer.from(String(v), 'hex');

  it('a real PCCS answer (loopback, Intel PCS shapes) ends up on the attestation', async () => {
    // A PCCS speaking Intel's PCS v4 API, serving the captured collateral of the NEAR quote.
    const pccs = await startUpstream((req, _body, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const chain = (name: string, value: string) => res.setHeader(name, encodeURIComponent(value));
      if (path.endsWith('/sgx/certification/v4/pckcrl')) {
        chain('SGX-PCK-CRL-Issuer-Chain', collateral.pck_crl_issuer_chain);
        res.end(hexBody(collateral.pck_crl));
      } else if (path.endsWith('/tdx/certification/v4/tcb')) {
        chain('TCB-Info-Issuer-Chain', collateral.tcb_info_issuer_chain);
        res.end(`{"tcbInfo":${collateral.tcb_info},"signature":"${String(collateral.tcb_info_signature)}"}`);
      } else if (path.endsWith('/tdx/certification/v4/qe/identity')) {
        chain('SGX-Enclave-Identity-Issuer-Chain', collateral.qe_identity_issuer_chain);
        res.end(
          `{"enclaveIdentity":${collateral.qe_identity},"signature":"${String(collateral.qe_identity_signature)}"}`,
        );
      } else if (path.endsWith('/sgx/certification/v4/rootcacrl')) res.end(String(collateral.root_ca_crl));
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    // The provider serves NEAR's recorded report (a real Intel quote): it is for another nonce and
    // its collateral has expired, so the attestation fails, but the quote check fetched collateral.
    const body = JSON.parse(
      readFileSync(
        sharedFixtures(`${E2E}/responses/0001_cloud-api.near.ai_v1_attestation_report.body`),
        'utf8',
      ),
    ) as { model_attestations: unknown[] };
    const provider = await startUpstream((_req, _body, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body.model_attestations[0]));
    });
    const gateway = await startTestGateway(provider.url, {
      policy: testPolicy({ signingAlgo: 'ed25519', allowSimulated: false, pccsUrl: pccs.url }),
    });
    try {
      const attestation = gateway.attestor.current ?? (await gateway.attestor.attest());
      expect(pccs.requests.map((r) => new URL(r.url, 'http://x').pathname).sort()).toEqual([
        '/sgx/certification/v4/pckcrl',
        '/sgx/certification/v4/rootcacrl',
        '/tdx/certification/v4/qe/identity',
        '/tdx/certification/v4/tcb',
      ]);
      expect(attestation.collateral?.tcb_info).toBe(collateral.tcb_info);
      const line = attestationLineOf(attestation);
      expect(line.collateral?.pck_crl).toBe(collateral.pck_crl);
      expect(line.collateral?.root_ca_crl).toBe(collateral.root_ca_crl);
      expect(line.collateral?.tcb_info_signature).toBe(collateral.tcb_info_signature);
    } finally {
      await gateway.close();
      await provider.close();
      await pccs.close();
    }
  });
});
