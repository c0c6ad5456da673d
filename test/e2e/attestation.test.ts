import { createHash, randomBytes } from 'node:crypto';
import { hashMessage, recoverAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGpuEvidence, loadSyntheticGpuFixtures, parseNvidiaPayload } from '../../src/gpu/index.js';
import { parseQuote } from '../../src/tdx/index.js';
import { json, postJson, rawRequest, startTestSidecar, type TestSidecar } from './harness.js';

interface Report {
  signing_address: string;
  signing_algo: string;
  signing_public_key: string;
  request_nonce: string;
  intel_quote: string;
  nvidia_payload: string;
  event_log: unknown[];
  info: Record<string, unknown>;
  simulated: boolean;
  platform: string;
  warning?: string;
  report_data: string;
  all_attestations: Array<Record<string, unknown>>;
  model_attestations: Array<Record<string, unknown>>;
  gateway_attestation: Record<string, unknown>;
}

let sidecar: TestSidecar;

/** The embedded default: no TEE, no GPU, no upstream. Only the port is chosen by the test. */
beforeAll(async () => {
  sidecar = await startTestSidecar();
});
afterAll(() => sidecar.close());

const report = async (query: string) => rawRequest(`${sidecar.url}/attestation/report${query}`);

describe('attestation report (simulated default)', () => {
  it('binds address ‖ nonce into the quote and the nonce into every GPU evidence blob', async () => {
    const nonce = randomBytes(32).toString('hex');
    const res = await report(`?nonce=${nonce}&model=Qwen/Qwen2`);
    expect(res.status).toBe(200);
    const r = json<Report>(res);
    expect(r.request_nonce).toBe(nonce);
    expect(r.signing_algo).toBe('ecdsa');
    expect(r.signing_address).toBe(sidecar.signingAddress);
    // Loud simulation.
    expect(r.simulated).toBe(true);
    expect(r.platform).toBe('simulated');
    expect(r.warning).toMatch(/SIMULATED/);

    const quote = parseQuote(new Uint8Array(Buffer.from(r.intel_quote, 'hex')));
    const rd = Buffer.from(quote.report.reportData);
    expect(rd.subarray(0, 20).toString('hex')).toBe(r.signing_address.slice(2).toLowerCase());
    expect(rd.subarray(20, 32).equals(Buffer.alloc(12))).toBe(true);
    expect(rd.subarray(32).toString('hex')).toBe(nonce);
    expect(r.report_data).toBe(rd.toString('hex'));

    expect(typeof r.nvidia_payload).toBe('string');
    const payload = parseNvidiaPayload(r.nvidia_payload);
    expect(Buffer.from(payload.nonce).toString('hex')).toBe(nonce);
    const raw = JSON.parse(r.nvidia_payload) as { arch: string; evidence_list: unknown[] };
    expect(Object.keys(raw)).toEqual(['nonce', 'evidence_list', 'arch']);
    const { rootFingerprint } = await loadSyntheticGpuFixtures();
    expect(payload.evidenceList.length).toBeGreaterThan(0);
    for (const entry of payload.evidenceList) {
      expect(Buffer.from(entry.evidence).subarray(4, 36).toString('hex')).toBe(nonce);
      const ok = checkGpuEvidence(
        { evidence: entry.evidence, certificateChain: entry.certificateChain },
        { nonce: Buffer.from(nonce, 'hex'), now: new Date(), pinnedRoots: [rootFingerprint] },
      );
      expect(ok.ok).toBe(true);
      // Under the real NVIDIA root alone (production pinning), synthetic evidence fails.
      const strict = checkGpuEvidence(
        { evidence: entry.evidence, certificateChain: entry.certificateChain },
        { nonce: Buffer.from(nonce, 'hex'), now: new Date() },
      );
      expect(strict.ok).toBe(false);
      expect(strict.failure?.check).toBe('chain');
    }
    expect(r.all_attestations).toHaveLength(1);
    expect(r.all_attestations[0]?.request_nonce).toBe(nonce);
    // NEAR AI's cloud envelope: their E2EE client reads the model key from model_attestations, their
    // model verifier starts from gateway_attestation; in one CVM both are this attestation.
    const flat = { ...r } as Record<string, unknown>;
    for (const key of ['all_attestations', 'model_attestations', 'gateway_attestation']) delete flat[key];
    expect(r.model_attestations).toEqual([flat]);
    expect(r.gateway_attestation).toEqual(flat);
    expect(r.model_attestations[0]?.signing_public_key).toBe(r.signing_public_key);
  });

  it('a report for another nonce does not carry ours', async () => {
    const mine = randomBytes(32).toString('hex');
    const theirs = randomBytes(32).toString('hex');
    const first = json<Report>(await report(`?nonce=${mine}`));
    const other = json<Report>(await report(`?nonce=${theirs}`));
    const nonceIn = (r: Report) =>
      Buffer.from(parseQuote(new Uint8Array(Buffer.from(r.intel_quote, 'hex'))).report.reportData)
        .subarray(32)
        .toString('hex');
    expect(nonceIn(first)).toBe(mine);
    // The second report was collected for its own nonce, not served from the first one.
    expect(nonceIn(other)).toBe(theirs);
    expect(other.request_nonce).toBe(theirs);
    expect(other.intel_quote).not.toBe(first.intel_quote);
  });

  it('puts the Ed25519 public key in report_data for signing_algo=ed25519', async () => {
    const nonce = randomBytes(32).toString('hex');
    const r = json<Report>(await report(`?nonce=${nonce}&signing_algo=ed25519`));
    expect(r.signing_algo).toBe('ed25519');
    expect(r.signing_address).toMatch(/^[0-9a-f]{64}$/);
    const quote = parseQuote(new Uint8Array(Buffer.from(r.intel_quote, 'hex')));
    expect(Buffer.from(quote.report.reportData).toString('hex')).toBe(`${r.signing_address}${nonce}`);
  });

  it('serves a cached report without a nonce, and the same route under /v1', async () => {
    const a = json<Report>(await report(''));
    const b = json<Report>(await rawRequest(`${sidecar.url}/v1/attestation/report`));
    expect(a.request_nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(b.request_nonce).toBe(a.request_nonce);
    expect(b.intel_quote).toBe(a.intel_quote);
  });

  it('rejects malformed nonces with 400 and a foreign signing_address with 404', async () => {
    for (const bad of ['zz', 'ab'.repeat(31), 'ab'.repeat(33), `0x${'ab'.repeat(32)}`, `${'g'.repeat(64)}`]) {
      const res = await report(`?nonce=${bad}`);
      expect(res.status).toBe(400);
      expect(json(res)).toMatchObject({
        error: { code: 'invalid_nonce', param: 'nonce', type: 'invalid_request_error' },
      });
      expect(res.body.toString()).not.toContain(bad.slice(0, 20));
    }
    const foreign = await report(`?signing_address=0x${'11'.repeat(20)}`);
    expect(foreign.status).toBe(404);
    const mine = await report(
      `?signing_address=${sidecar.signingAddress.toLowerCase()}&nonce=${'cd'.repeat(32)}`,
    );
    expect(mine.status).toBe(200);
    const badAlgo = await report('?signing_algo=rsa');
    expect(badAlgo.status).toBe(400);
  });
});

describe('demo upstream (embedded default)', () => {
  it('answers completions, labelled as a demo, signed by the attested address', async () => {
    const health = json<{ demo_upstream: boolean; simulated: boolean }>(
      await rawRequest(`${sidecar.url}/health`),
    );
    expect(health).toMatchObject({ demo_upstream: true, simulated: true });
    const sent = JSON.stringify({ model: 'teeml-demo', messages: [{ role: 'user', content: 'hi' }] });
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, sent);
    const body = json<{
      id: string;
      system_fingerprint: string;
      choices: Array<{ message: { content: string } }>;
    }>(res);
    expect(body.system_fingerprint).toBe('teeml-sidecar-demo-upstream');
    expect(body.choices[0]?.message.content).toMatch(/^\[demo upstream\]/);
    const sig = json<{ text: string; signature: string }>(
      await rawRequest(`${sidecar.url}/signature/${body.id}`),
    );
    const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
    expect(sig.text).toBe(`${sha(sent)}:${sha(res.body)}`);
    expect(recoverAddress(hashMessage(sig.text), sig.signature)).toBe(sidecar.signingAddress);

    const stream = await postJson(`${sidecar.url}/v1/completions`, {
      model: 'teeml-demo',
      prompt: 'hi',
      stream: true,
      stream_options: { include_usage: true },
    });
    const text = stream.body.toString();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).toContain('"choices":[]');
    const id = stream.headers['zg-res-key'] as string;
    expect(id).toMatch(/^cmpl-/);
    const streamSig = json<{ text: string }>(await rawRequest(`${sidecar.url}/v1/signature/${id}`));
    expect(streamSig.text.split(':')[1]).toBe(sha(stream.body));
  });
});
