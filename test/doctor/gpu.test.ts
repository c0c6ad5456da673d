import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor/index.js';
import {
  loadSyntheticGpuFixtures,
  type SyntheticGpuFixtures,
  synthesizeGpuEvidence,
} from '../../src/gpu/index.js';
import { gpuEvidenceChecker } from '../../src/server/index.js';
import {
  baseDeps,
  byId,
  cleanupScratch,
  config,
  GPU_NONCE,
  type Loopback,
  NVML,
  nvmlDouble,
  scratch,
  startFakeNras,
} from './harness.js';

let fixtures: SyntheticGpuFixtures;
let nras: Loopback | undefined;

/** What each GPU of the double serves: evidence for the doctor's (injected) nonce, signed by the synthetic root. */
const prepare = (count = 1, arch = 9): void => {
  const dir = mkdtempSync(join(scratch, 'nvml-'));
  for (let i = 0; i < count; i++) {
    writeFileSync(
      join(dir, `gpu${i}.evidence`),
      synthesizeGpuEvidence(fixtures.template, fixtures.leafKey, GPU_NONCE, new Uint8Array(32).fill(i + 1)),
    );
    writeFileSync(join(dir, `gpu${i}.chain`), `${fixtures.chainPem}\0\0`);
  }
  expect(nvmlDouble.setDir(dir)).toBe(0);
  nvmlDouble.setGpus(count, arch);
};

const gpu = async (...args: Parameters<typeof runDoctor>) =>
  (await runDoctor(...args)).filter((r) => r.id.startsWith('gpu.'));
const nvmlEnv = (extra: Record<string, string> = {}) =>
  config({ GPU_EVIDENCE: 'nvml', NVML_LIBRARY_PATH: NVML, ...extra });

beforeAll(async () => {
  fixtures = await loadSyntheticGpuFixtures();
});
beforeEach(() => {
  nvmlDouble.reset();
});
afterEach(async () => {
  await nras?.close();
  nras = undefined;
});
afterAll(() => {
  nvmlDouble.reset();
  cleanupScratch();
});

describe('doctor: GPU checks against the NVML double', () => {
  it('a production CC GPU: library, driver, GPU, CC mode; evidence for our nonce passes the local check', async () => {
    prepare();
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toEqual({
      id: 'gpu.nvml',
      status: 'pass',
      detail: `${NVML}: driver 550.90.07, 1 GPU (GPU 0 GPU-00000000-0000-4000-8000-000000000000 HOPPER); CC on, environment production, devtools off, multi-GPU mode protected PCIe`,
    });
    expect(byId(results, 'gpu.evidence')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(
        /^GPU_EVIDENCE=nvml: 1 GPU: GPU 0 GPU-0+-0+-4000-8000-0+ HOPPER \(report \d+ B\); local check .* passed$/,
      ),
    });
    expect(byId(results, 'gpu.nras')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('--nras'),
    });
    // init and shutdown pair up: the probe and the provider each shut NVML down.
    expect(Number(nvmlDouble.shutdowns())).toBe(Number(nvmlDouble.inits()));
  });

  it('CC off: NVML says so with the host-side fix, and the provider refuses evidence', async () => {
    prepare();
    nvmlDouble.setCc(2, 0, 0, 1);
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/CC off, .*: CC is off$/),
      hint: expect.stringContaining('nvidia-smi conf-compute'),
    });
    expect(byId(results, 'gpu.evidence')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('confidential computing is off'),
    });
  });

  it('devtools mode on and a non-production environment are failures', async () => {
    prepare();
    nvmlDouble.setCc(1, 1, 1, 1);
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml').detail).toMatch(
      /environment simulation, devtools on, .*: the CC environment is not production, devtools mode is on$/,
    );
  });

  it('several GPUs without a multi-GPU mode: a warning', async () => {
    prepare(2);
    nvmlDouble.setCc(2, 1, 0, 0);
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(
        /2 GPUs \(GPU 0 .*; GPU 1 .*\).*multi-GPU mode none: 2 GPUs with multi-GPU mode none$/,
      ),
      hint: expect.stringContaining('protected PCIe'),
    });
    expect(byId(results, 'gpu.evidence').detail).toContain('2 GPUs');
  });

  it('a GPU that is not Hopper or Blackwell fails', async () => {
    prepare(1, 7);
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('AMPERE'),
    });
  });

  it("an NVML error code names the function and NVML's message", async () => {
    prepare();
    nvmlDouble.fail('nvmlDeviceGetCount_v2', 15);
    const results = await gpu(nvmlEnv(), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/nvmlDeviceGetCount_v2 failed: .* \(nvmlReturn_t 15\)$/),
    });
  });

  it('no NVML on the machine: the library does not load, with what to mount', async () => {
    const results = await gpu(config({ GPU_EVIDENCE: 'nvml' }), {}, baseDeps());
    expect(byId(results, 'gpu.nvml')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('libnvidia-ml.so.1 does not load: no NVIDIA driver visible'),
      hint: expect.stringContaining('capabilities [gpu, utility]'),
    });
    expect(byId(results, 'gpu.evidence')).toMatchObject({
      status: 'skip',
      detail: 'no usable NVML (see gpu.nvml)',
    });
  });

  it('a hung NVML costs one deadline; evidence is then not queued behind it', async () => {
    prepare();
    nvmlDouble.setDelay(1500);
    const all = await runDoctor(nvmlEnv(), {}, baseDeps({ timeouts: { 'gpu.nvml': 100 } }));
    expect(byId(all, 'gpu.nvml')).toMatchObject({ status: 'fail', detail: 'no answer within 100 ms' });
    expect(byId(all, 'gpu.evidence')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('NVML did not answer'),
    });
    expect(all.at(-1)?.id).toBe('zg.chain');
  });

  it('the serving local check accepts only the real NVIDIA root for NVML evidence', async () => {
    prepare();
    const results = await gpu(nvmlEnv(), {}, baseDeps({ gpuEvidenceChecker }));
    expect(byId(results, 'gpu.evidence')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('local check: GPU 0 evidence failed the local check (chain)'),
    });
  });

  it('GPU_EVIDENCE=none: NVML not probed, a warning that verifiers need GPU evidence', async () => {
    const results = await gpu(config({ GPU_EVIDENCE: 'none' }), {}, baseDeps());
    expect(results.map((r) => [r.id, r.status])).toEqual([
      ['gpu.nvml', 'skip'],
      ['gpu.evidence', 'warn'],
      ['gpu.nras', 'skip'],
    ]);
  });
});

describe('doctor --nras against a loopback NRAS', () => {
  it('submits the evidence and shows NRAS accepted it', async () => {
    prepare(2);
    nras = await startFakeNras();
    const results = await gpu(nvmlEnv({ NRAS_URL: nras.url }), { nras: true }, baseDeps());
    expect(byId(results, 'gpu.nras')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+ accepted 2 GPUs: overall result true/),
    });
    expect(nras.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /v3/attest/gpu',
      'GET /.well-known/jwks.json',
    ]);
    expect(JSON.parse(nras.requests[0]!.body).nonce).toBe(Buffer.from(GPU_NONCE).toString('hex'));
  });

  it("shows NRAS's rejection by check", async () => {
    prepare();
    nras = await startFakeNras({ reject: true });
    const results = await gpu(nvmlEnv({ NRAS_URL: nras.url }), { nras: true }, baseDeps());
    expect(byId(results, 'gpu.nras')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('rejected the evidence: overall.result, GPU-0.measres'),
    });
  });

  it('an unreachable NRAS is a failure naming where it tried', async () => {
    prepare();
    nras = await startFakeNras();
    const url = nras.url;
    await nras.close();
    nras = undefined;
    const results = await gpu(nvmlEnv({ NRAS_URL: url }), { nras: true }, baseDeps());
    expect(byId(results, 'gpu.nras')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('NRAS could not be reached'),
      hint: expect.stringContaining('outbound HTTPS'),
    });
  });
});
