import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import koffi from 'koffi';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { checkGpuEvidence } from '../../src/gpu/local-check.js';
import { NvmlGpuEvidenceProvider } from '../../src/gpu/nvml.js';
import { loadNvml, NVML_LAYOUT } from '../../src/gpu/nvml-bindings.js';
import { buildNvidiaPayload, parseNvidiaPayload } from '../../src/gpu/payload.js';
import { synthesizeGpuEvidence } from '../../src/gpu/synthetic-evidence.js';
import { loadSyntheticGpuFixtures, type SyntheticGpuFixtures } from '../../src/gpu/synthetic-fixtures.js';
import { nativeDouble } from '../paths.js';
import { rejection } from '../rejection.js';

/**
 * The NVML provider against the C double native/doubles/libnvidia-ml.c (built by the global
 * setup). The test signs evidence for the nonce it will ask for into a temp folder; the double
 * serves it only when the provider put that nonce into the report struct.
 */
const LIBRARY = nativeDouble('libnvidia-ml.so.1');
const lib = koffi.load(LIBRARY);
const double = {
  reset: lib.func('void nvml_double_reset(void)'),
  fail: lib.func('int nvml_double_fail(const char *function, int rc)'),
  setDir: lib.func('int nvml_double_set_dir(const char *path)'),
  setGpus: lib.func('void nvml_double_set_gpus(unsigned int count, unsigned int arch)'),
  setCc: lib.func(
    'void nvml_double_set_cc(unsigned int env, unsigned int cc, unsigned int devtools, unsigned int multi)',
  ),
  setDelay: lib.func('void nvml_double_set_delay_ms(unsigned int ms)'),
  inits: lib.func('int64_t nvml_double_inits(void)'),
  shutdowns: lib.func('int64_t nvml_double_shutdowns(void)'),
  maxInFlight: lib.func('int32_t nvml_double_max_in_flight(void)'),
  calls: lib.func('int64_t nvml_double_calls(void)'),
};

const now = new Date('2026-06-01T00:00:00Z');
let fixtures: SyntheticGpuFixtures;
let dir: string;
let provider: NvmlGpuEvidenceProvider;

/** Writes evidence for `nonce` for `count` GPUs; returns what each GPU will serve. */
const prepare = (nonce: Uint8Array, count = 1): Uint8Array[] => {
  const evidence: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const e = synthesizeGpuEvidence(
      fixtures.template,
      fixtures.leafKey,
      nonce,
      new Uint8Array(32).fill(i + 1),
    );
    writeFileSync(join(dir, `gpu${i}.evidence`), e);
    // NVML hands PEM in a fixed buffer; trailing NULs must not reach the payload.
    writeFileSync(join(dir, `gpu${i}.chain`), `${fixtures.chainPem}\0\0\0\0`);
    evidence.push(e);
  }
  double.setGpus(count, 9);
  return evidence;
};

const freshNonce = () => new Uint8Array(randomBytes(32));

beforeAll(async () => {
  fixtures = await loadSyntheticGpuFixtures();
});

beforeEach(() => {
  double.reset();
  dir = mkdtempSync(join(tmpdir(), 'nvml-double-'));
  expect(double.setDir(dir)).toBe(0);
  provider = new NvmlGpuEvidenceProvider({ libraryPath: LIBRARY, timeoutMs: 10_000 });
});

afterEach(async () => {
  vi.useRealTimers();
  await provider.close();
  rmSync(dir, { recursive: true, force: true });
});

afterAll(() => {
  double.reset();
});

describe('NvmlGpuEvidenceProvider with the NVML double', () => {
  it('the struct layout matches docs/platforms.md', () => {
    expect(NVML_LAYOUT.attestationReport).toMatchObject({
      size: 12_332,
      nonce: 12,
      attestationReport: 44,
      cecAttestationReport: 8236,
    });
    expect(NVML_LAYOUT.certificate).toMatchObject({
      size: 9224,
      attestationCertChainSize: 4,
      attestationCertChain: 4104,
    });
    expect(NVML_LAYOUT.systemSettings).toMatchObject({ size: 20, multiGpuMode: 16, v1: 0x1000014 });
  });

  it('collects evidence that carries our nonce and passes the local check with the synthetic root', async () => {
    const nonce = freshNonce();
    const [served] = prepare(nonce);
    const result = await provider.collect(nonce);
    expect(result.simulated).toBe(false);
    expect(result.ccState).toEqual({ environment: 2, ccFeature: 1, devToolsMode: 0, multiGpuMode: 1 });
    expect(result.gpus).toHaveLength(1);
    const gpu = result.gpus[0]!;
    expect(gpu).toMatchObject({
      index: 0,
      arch: 'HOPPER',
      uuid: 'GPU-00000000-0000-4000-8000-000000000000',
      driverVersion: '550.90.07',
      vbiosVersion: '96.00.9F.00.01',
      certificateChain: fixtures.chainPem,
    });
    expect(Buffer.from(gpu.evidence)).toEqual(Buffer.from(served!));
    const payload = parseNvidiaPayload(buildNvidiaPayload(nonce, result.gpus));
    expect(payload.nonce).toEqual(nonce);
    for (const entry of payload.evidenceList) {
      expect(checkGpuEvidence(entry, { nonce, now, pinnedRoots: [fixtures.rootFingerprint] }).ok).toBe(true);
      expect(checkGpuEvidence(entry, { nonce, now }).failure?.check).toBe('chain');
    }
  });

  it('lists GPUs in NVML index order', async () => {
    const nonce = freshNonce();
    const served = prepare(nonce, 4);
    const result = await provider.collect(nonce);
    expect(result.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);
    expect(result.gpus.map((g) => g.uuid?.slice(-1))).toEqual(['0', '1', '2', '3']);
    result.gpus.forEach((gpu, i) => {
      expect(Buffer.from(gpu.evidence)).toEqual(Buffer.from(served[i]!));
    });
  });

  it('reports Blackwell GPUs as BLACKWELL and refuses other architectures', async () => {
    const nonce = freshNonce();
    prepare(nonce);
    double.setGpus(1, 10);
    expect((await provider.collect(nonce)).gpus[0]?.arch).toBe('BLACKWELL');
    double.setGpus(1, 7); // Ampere
    const error = await rejection(provider.collect(nonce));
    expect(error).toMatchObject({ status: 503, code: 'gpu_arch_unsupported' });
  });

  it.each([
    ['CC off', [2, 0, 0, 0], 'gpu_cc_disabled'],
    ['a non-production environment', [1, 1, 0, 0], 'gpu_cc_not_production'],
    ['devtools mode on', [2, 1, 1, 0], 'gpu_cc_devtools_enabled'],
  ] as const)('refuses %s with a 503', async (_, cc, code) => {
    const nonce = freshNonce();
    prepare(nonce);
    double.setCc(...cc);
    const error = await rejection(provider.collect(nonce));
    expect(error).toMatchObject({ status: 503, code });
  });

  it.each([
    'nvmlInit_v2',
    'nvmlSystemGetConfComputeState',
    'nvmlDeviceGetCount_v2',
    'nvmlSystemGetDriverVersion',
    'nvmlDeviceGetHandleByIndex_v2',
    'nvmlDeviceGetArchitecture',
    'nvmlDeviceGetUUID',
    'nvmlDeviceGetVbiosVersion',
    'nvmlDeviceGetConfComputeGpuAttestationReport',
    'nvmlDeviceGetConfComputeGpuCertificate',
    'nvmlSystemGetConfComputeSettings',
  ])('a failing %s gives a 503 naming the function and NVML error', async (fn) => {
    const nonce = freshNonce();
    prepare(nonce);
    expect(double.fail(fn, 15)).toBe(0); // NVML_ERROR_GPU_IS_LOST
    const error = await rejection(provider.collect(nonce));
    expect(error.status).toBe(503);
    expect(error.code).toBe('nvml_error');
    expect(error.message).toBe(`GPU evidence unavailable: ${fn} failed: GPU is lost (nvmlReturn_t 15)`);
  });

  it.each([
    [3, 'NOT_SUPPORTED'],
    [13, 'FUNCTION_NOT_FOUND'],
  ])('goes on without multiGpuMode when the settings call answers %i (%s)', async (rc) => {
    const nonce = freshNonce();
    prepare(nonce);
    double.fail('nvmlSystemGetConfComputeSettings', rc);
    expect((await provider.collect(nonce)).ccState).toEqual({
      environment: 2,
      ccFeature: 1,
      devToolsMode: 0,
    });
  });

  it('gets no evidence when the GPU has none for our nonce', async () => {
    prepare(freshNonce());
    const error = await rejection(provider.collect(freshNonce()));
    expect(error.message).toMatch(/nvmlDeviceGetConfComputeGpuAttestationReport failed: Invalid Argument/);
  });

  it('a binding that forgets to put the nonce into the report struct fails', async () => {
    const nonce = freshNonce();
    prepare(nonce);
    const forgetful = new NvmlGpuEvidenceProvider({
      libraryPath: LIBRARY,
      load: (path) => {
        const real = loadNvml(path);
        return {
          ...real,
          getAttestationReport: (device, report) => real.getAttestationReport(device, report.fill(0)),
        };
      },
    });
    try {
      const error = await rejection(forgetful.collect(nonce));
      expect(error.code).toBe('nvml_error');
    } finally {
      await forgetful.close();
    }
  });

  it('refuses when there are no GPUs', async () => {
    double.setGpus(0, 9);
    expect(await rejection(provider.collect(freshNonce()))).toMatchObject({ code: 'gpu_not_found' });
  });

  it('a missing library is a 503, per request', async () => {
    const missing = new NvmlGpuEvidenceProvider({ libraryPath: join(dir, 'no-such-libnvidia-ml.so.1') });
    const error = await rejection(missing.collect(freshNonce()));
    expect(error).toMatchObject({ status: 503, code: 'nvml_unavailable' });
    expect(error.message).not.toContain(dir);
  });

  it('initialises NVML once and shuts it down on close', async () => {
    const nonce = freshNonce();
    prepare(nonce);
    await provider.collect(nonce);
    await provider.collect(nonce);
    expect(double.inits()).toBe(1);
    await provider.close();
    expect(double.shutdowns()).toBe(1);
  });

  it('serializes concurrent collections: NVML never sees two calls at once', async () => {
    const nonce = freshNonce();
    prepare(nonce, 2);
    double.setDelay(2);
    const results = await Promise.all([
      provider.collect(nonce),
      provider.collect(nonce),
      provider.collect(nonce),
    ]);
    expect(results.map((r) => r.gpus.length)).toEqual([2, 2, 2]);
    expect(double.maxInFlight()).toBe(1);
  });

  it('keeps the event loop free while NVML blocks', async () => {
    const nonce = freshNonce();
    prepare(nonce);
    double.setDelay(20);
    let done = false;
    const collecting = provider.collect(nonce).then(() => {
      done = true;
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    await collecting;
    expect(done).toBe(true);
  });

  it('times out with a 503 and makes no further NVML calls for that request', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const nonce = freshNonce();
    prepare(nonce);
    double.setDelay(100);
    const slow = new NvmlGpuEvidenceProvider({ libraryPath: LIBRARY, timeoutMs: 50 });
    const pending = rejection(slow.collect(nonce));
    await vi.advanceTimersByTimeAsync(60);
    const error = await pending;
    expect(error).toMatchObject({ status: 503, code: 'gpu_evidence_timeout' });
    vi.useRealTimers();
    double.setDelay(0);
    // close() waits for the native call in flight, then shuts down.
    await slow.close();
    expect(double.maxInFlight()).toBe(1);
    // Init and shutdown only: the timed-out request stopped after the call in flight.
    expect(double.inits()).toBe(1);
    expect(double.shutdowns()).toBe(1);
    expect(double.calls()).toBe(2);
  });
});
