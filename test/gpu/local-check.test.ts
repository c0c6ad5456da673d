import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import {
  NVIDIA_DEVICE_IDENTITY_CA_SHA256,
  splitPemChain,
  verifyCertificateChain,
} from '../../src/gpu/cert-chain.js';
import { assertGpuEvidence, checkGpuEvidence, KNOWN_SAMPLE_NONCES } from '../../src/gpu/local-check.js';
import { parseNvidiaPayload } from '../../src/gpu/payload.js';
import { ownFixtures } from '../paths.js';
import {
  blackwell,
  eightGpu,
  fourGpu,
  hopper,
  invalidSignature,
  NEAR_CLOCK,
  NEAR_E2E,
  PHALA_E2E,
  readText,
  SAMPLE_NONCE,
} from './fixtures.js';

const now = NEAR_CLOCK;
const replay = { now, allowSampleNonces: true } as const;
const syntheticRoot = readFileSync(ownFixtures('gpu/synthetic-root.sha256'), 'utf8').trim();
const syntheticChain = readFileSync(ownFixtures('gpu/synthetic-cert-chain.pem'), 'utf8');

describe('checkGpuEvidence on real evidence', () => {
  it.each([
    ['H100 (nvtrust sample)', hopper],
    ['Blackwell (NVAT sample)', blackwell],
  ])('%s passes every check given its own nonce', (_, load) => {
    const gpu = load();
    const result = checkGpuEvidence(gpu, { ...replay, nonce: gpu.nonce });
    expect(result.checks).toEqual({
      format: true,
      sampleNonce: true,
      nonce: true,
      signature: true,
      chain: true,
    });
    expect(result.ok).toBe(true);
  });

  it.each([
    ['4-GPU NVAT list', fourGpu, 4],
    ['8-GPU PPCIE list', eightGpu, 8],
  ])('%s: every GPU passes', (_, load, count) => {
    const gpus = load();
    expect(gpus).toHaveLength(count);
    for (const gpu of gpus) expect(checkGpuEvidence(gpu, { ...replay, nonce: gpu.nonce }).ok).toBe(true);
  });

  it('the NEAR e2e nvidia_payload: all 8 GPUs pass for the client nonce', () => {
    const payload = parseNvidiaPayload(readText(`${NEAR_E2E}/derived/nras_request_body.json`));
    expect(payload.evidenceList).toHaveLength(8);
    for (const gpu of payload.evidenceList) {
      expect(checkGpuEvidence(gpu, { ...replay, nonce: payload.nonce }).ok).toBe(true);
    }
  });

  it('the Phala payload fails for the nonce only (its evidence is genuine, its body nonce is not)', () => {
    const payload = parseNvidiaPayload(readText(`${PHALA_E2E}/derived/nras_request_body.json`));
    for (const gpu of payload.evidenceList) {
      const result = checkGpuEvidence(gpu, { ...replay, nonce: payload.nonce });
      expect(result.ok).toBe(false);
      expect(result.checks).toMatchObject({ nonce: false, signature: true, chain: true });
    }
  });

  it('the NVAT invalid-signature report fails for the signature alone', () => {
    const gpu = invalidSignature();
    const result = checkGpuEvidence(gpu, { ...replay, nonce: gpu.nonce });
    expect(result.ok).toBe(false);
    expect(result.checks).toEqual({
      format: true,
      sampleNonce: true,
      nonce: true,
      signature: false,
      chain: true,
    });
    expect(result.failure?.check).toBe('signature');
  });

  it('a report checked with another GPU chain fails for the signature', () => {
    const gpu = hopper();
    const other = blackwell();
    const result = checkGpuEvidence(
      { ...gpu, certificateChain: other.certificateChain },
      { ...replay, nonce: gpu.nonce },
    );
    expect(result.checks.signature).toBe(false);
    expect(result.checks.chain).toBe(true);
  });

  it('a wrong nonce fails for the nonce', () => {
    const gpu = hopper();
    const wrong = gpu.nonce.slice();
    wrong[0] = (wrong[0] as number) ^ 1;
    const result = checkGpuEvidence(gpu, { ...replay, nonce: wrong });
    expect(result.ok).toBe(false);
    expect(result.failure).toEqual({
      check: 'nonce',
      reason: 'evidence nonce at [4, 36) is not the expected nonce',
    });
  });

  it('a flipped evidence byte fails the signature', () => {
    const gpu = hopper();
    const evidence = gpu.evidence.slice();
    evidence[100] = (evidence[100] as number) ^ 0x80;
    expect(checkGpuEvidence({ ...gpu, evidence }, { ...replay, nonce: gpu.nonce }).failure?.check).toBe(
      'signature',
    );
  });

  it('malformed evidence fails closed for the format', () => {
    const gpu = hopper();
    const result = checkGpuEvidence(
      { ...gpu, evidence: gpu.evidence.slice(0, 500) },
      { ...replay, nonce: gpu.nonce },
    );
    expect(result.ok).toBe(false);
    expect(result.checks).toMatchObject({ format: false, nonce: null, signature: null });
  });
});

describe('certificate chain', () => {
  const realPems = () =>
    readText('nvidia/nvtrust-hopper-sample/hopperCertChain.txt').match(
      /-----BEGIN[\s\S]+?END CERTIFICATE-----\n?/g,
    )!;
  const syntheticPems = () => syntheticChain.match(/-----BEGIN[\s\S]+?END CERTIFICATE-----\n?/g)!;

  it('the real chain verifies to the pinned NVIDIA root, which is the constant the sidecar pins', () => {
    const result = verifyCertificateChain(readText('nvidia/nvtrust-hopper-sample/hopperCertChain.txt'), {
      pinnedRoots: ['102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48'],
      now,
    });
    expect(result).toMatchObject({
      ok: true,
      rootFingerprint: '102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48',
    });
    expect(result).toMatchObject({ rootFingerprint: NVIDIA_DEVICE_IDENTITY_CA_SHA256 });
  });

  it('a real chain whose root is swapped for a foreign one fails for the chain', () => {
    const gpu = hopper();
    const swapped = [...realPems().slice(0, 4), syntheticPems()[4]].join('');
    for (const pinnedRoots of [undefined, [syntheticRoot]]) {
      const result = checkGpuEvidence(
        { ...gpu, certificateChain: swapped },
        { ...replay, nonce: gpu.nonce, ...(pinnedRoots ? { pinnedRoots } : {}) },
      );
      expect(result.checks.chain).toBe(false);
      expect(result.failure?.reason).toMatch(
        /certificate 3 was not issued by the next one|not a pinned root/,
      );
    }
  });

  it('the synthetic chain is refused unless its root is pinned explicitly', () => {
    expect(
      verifyCertificateChain(syntheticChain, {
        pinnedRoots: ['102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48'],
        now,
      }),
    ).toEqual({
      ok: false,
      reason: 'certificate chain: root is not a pinned root',
    });
    expect(verifyCertificateChain(syntheticChain, { pinnedRoots: [syntheticRoot], now }).ok).toBe(true);
  });

  it('rejects wrong lengths, reordered certificates and foreign text', () => {
    const pems = realPems();
    const opts = { pinnedRoots: ['102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48'], now };
    expect(verifyCertificateChain(pems.slice(0, 4).join(''), opts)).toMatchObject({
      ok: false,
      reason: /expected 5 certificates, got 4/,
    });
    expect(verifyCertificateChain([pems[1], pems[0], ...pems.slice(2)].join(''), opts).ok).toBe(false);
    expect(verifyCertificateChain(`${pems.join('')}garbage`, opts)).toMatchObject({
      ok: false,
      reason: /outside PEM/,
    });
    expect(verifyCertificateChain('', opts).ok).toBe(false);
  });

  it('checks validity at the injected clock', () => {
    const opts = { pinnedRoots: [syntheticRoot] };
    expect(
      verifyCertificateChain(syntheticChain, { ...opts, now: new Date('2019-01-01T00:00:00Z') }),
    ).toMatchObject({
      ok: false,
      reason: /not valid at the current time/,
    });
    expect(
      verifyCertificateChain(syntheticChain, { ...opts, now: new Date('2030-01-01T00:00:00Z') }).ok,
    ).toBe(true);
  });

  it('splitPemChain tolerates NVML NUL padding but not other bytes', () => {
    const chain = readText('nvidia/nvtrust-hopper-sample/hopperCertChain.txt');
    expect(splitPemChain(`${chain}\n\0\0\0`)).toHaveLength(5);
    expect(() => splitPemChain(`${chain}\u0001`)).toThrow(/outside PEM/);
  });
});

describe('sample nonce deny list', () => {
  it('lists the nvtrust/NVAT sample nonce and every fixture nonce of the README', () => {
    for (const nonce of [
      SAMPLE_NONCE,
      'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576',
      '4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e',
      'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
      'ef0ed0e8d721eed751bb17a37ffdabfa533973166513f7ad52df7330b9f56c10',
      'aa8aa7cb237cb07d054e2ba1c1660b6d6bf60a1501e4d33bec8115148543e501',
      '56f5c2c4f23fda73db0536276f39a266569e1517de34023817ce455a79efb6d7',
      'd6a4f9aa17f488cfe8163dcb47cc4f778d3f1c52d42a1f9e6de5e43077ce05cd',
    ]) {
      expect(KNOWN_SAMPLE_NONCES).toContain(nonce);
    }
  });

  it.each([
    ['H100 sample', hopper],
    ['4-GPU list', () => fourGpu()[0]!],
    ['8-GPU list', () => eightGpu()[7]!],
  ])('rejects the %s by default even though everything else verifies', (_, load) => {
    const gpu = load();
    const result = checkGpuEvidence(gpu, { nonce: gpu.nonce, now });
    expect(result.ok).toBe(false);
    expect(result.checks).toEqual({
      format: true,
      sampleNonce: false,
      nonce: true,
      signature: true,
      chain: true,
    });
    expect(result.failure?.check).toBe('sampleNonce');
  });

  it('assertGpuEvidence throws a 503 naming the GPU and the check, without evidence bytes', () => {
    const gpus = eightGpu();
    expect.assertions(5);
    try {
      assertGpuEvidence(gpus, { nonce: gpus[0]!.nonce, now });
    } catch (error) {
      expect(error).toBeInstanceOf(SidecarError);
      const e = error as SidecarError;
      expect(e.status).toBe(503);
      expect(e.code).toBe('gpu_evidence_invalid');
      expect(e.message).toMatch(/^GPU 0 evidence failed the local check \(sampleNonce\)/);
      expect(e.message).not.toContain(SAMPLE_NONCE.slice(0, 16));
    }
  });

  it('assertGpuEvidence passes evidence that passes', () => {
    const gpus = fourGpu();
    expect(() =>
      assertGpuEvidence(gpus, { nonce: gpus[0]!.nonce, now, allowSampleNonces: true }),
    ).not.toThrow();
  });
});
