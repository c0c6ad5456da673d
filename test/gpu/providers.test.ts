import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SidecarError } from '../../src/errors/index.js';
import { FixtureGpuEvidenceProvider } from '../../src/gpu/fixture.js';
import { checkGpuEvidence } from '../../src/gpu/local-check.js';
import { NoGpuEvidenceProvider } from '../../src/gpu/none.js';
import { buildNvidiaPayload, parseNvidiaPayload } from '../../src/gpu/payload.js';
import { SimulatedGpuEvidenceProvider } from '../../src/gpu/simulated.js';
import { sharedFixtures } from '../paths.js';
import { NEAR_E2E } from './fixtures.js';

const now = new Date('2026-06-01T00:00:00Z');
const nonce = () => new Uint8Array(randomBytes(32));

describe('SimulatedGpuEvidenceProvider', () => {
  it('binds evidence to any nonce; it passes the local check only with the synthetic root pinned', async () => {
    const provider = new SimulatedGpuEvidenceProvider({ gpuCount: 2 });
    const n = nonce();
    const result = await provider.collect(n);
    expect(result.simulated).toBe(true);
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1]);
    const root = await provider.rootFingerprint();
    for (const gpu of result.gpus) {
      expect(checkGpuEvidence(gpu, { nonce: n, now, pinnedRoots: [root] }).ok).toBe(true);
      expect(checkGpuEvidence(gpu, { nonce: n, now }).failure?.check).toBe('chain');
    }
    expect(Buffer.compare(result.gpus[0]!.evidence, result.gpus[1]!.evidence)).not.toBe(0);
  });

  it('its payload round-trips and every entry carries the request nonce', async () => {
    const provider = new SimulatedGpuEvidenceProvider({ gpuCount: 3, arch: 'BLACKWELL' });
    const n = nonce();
    const payload = parseNvidiaPayload(buildNvidiaPayload(n, (await provider.collect(n)).gpus));
    expect(payload.arch).toBe('BLACKWELL');
    for (const gpu of payload.evidenceList)
      expect(Buffer.from(gpu.evidence.subarray(4, 36))).toEqual(Buffer.from(n));
  });

  it('fails with a 503 when its fixtures are missing', async () => {
    const provider = new SimulatedGpuEvidenceProvider({ fixtureDir: '/nonexistent' });
    await expect(provider.collect(nonce())).rejects.toMatchObject({
      status: 503,
      code: 'gpu_evidence_unavailable',
    });
  });

  it('rejects a bad GPU count and a short nonce', async () => {
    expect(() => new SimulatedGpuEvidenceProvider({ gpuCount: 0 })).toThrow(RangeError);
    await expect(new SimulatedGpuEvidenceProvider().collect(new Uint8Array(31))).rejects.toThrow(/"nonce"/);
  });
});

describe('NoGpuEvidenceProvider', () => {
  it('returns an empty, non-simulated list', async () => {
    await expect(new NoGpuEvidenceProvider().collect(nonce())).resolves.toEqual({
      gpus: [],
      ccState: null,
      simulated: false,
    });
  });
});

describe('FixtureGpuEvidenceProvider', () => {
  it.each([
    ['nvattest array (4 GPUs)', 'nvidia/nvat-evidence/multi_gpu_hopper.json', 4],
    ['nvattest array with versions (8 GPUs)', 'nvidia/nvtrust-ppcie-8gpu/gpu_evidence.json', 8],
    ['nvidia_payload form (NEAR)', `${NEAR_E2E}/derived/nras_request_body.json`, 8],
  ])('reads the %s and marks it as replayed', async (_, file, count) => {
    const result = await new FixtureGpuEvidenceProvider({ path: sharedFixtures(file) }).collect(nonce());
    expect(result.simulated).toBe(true);
    expect(result.gpus.map((g) => g.index)).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(result.gpus[0]?.driverVersion).toMatch(/^\d+\.\d+/);
  });

  it('turns unreadable, non-JSON and malformed files into 503s', async () => {
    const read = (text: string) => new FixtureGpuEvidenceProvider({ path: 'x', readFile: async () => text });
    await expect(
      new FixtureGpuEvidenceProvider({ path: '/nonexistent.json' }).collect(nonce()),
    ).rejects.toMatchObject({
      status: 503,
      code: 'gpu_evidence_unavailable',
    });
    await expect(read('{').collect(nonce())).rejects.toMatchObject({ code: 'gpu_evidence_malformed' });
    await expect(read('[{"arch":"HOPPER"}]').collect(nonce())).rejects.toBeInstanceOf(SidecarError);
    await expect(
      read(JSON.stringify([{ arch: 'HOPPER', certificate: 'AAAA', evidence: 'AAAA' }])).collect(nonce()),
    ).rejects.toMatchObject({ code: 'gpu_evidence_malformed', message: /entry 0: GPU evidence: "evidence"/ });
  });
});
