import { toHex } from '../bytes/index.js';
import {
  buildNvidiaPayload,
  type ConfComputeState,
  fetchNrasJwks,
  type GpuEvidenceProvider,
  loadNvml,
  NVML_LAYOUT,
  type NvmlBindings,
  nvmlString,
  nvmlU32,
  readConfComputeState,
  submitToNras,
  verifyNrasResult,
} from '../gpu/index.js';
import { FFI_UNAVAILABLE_HINT, FfiUnavailableError } from '../lazy/index.js';
import { selectGpuProvider } from '../server/index.js';
import { type CheckOutcome, type DoctorCheck, fail, pass, skip, warn } from './check.js';
import type { DoctorContext } from './context.js';
import { describeError, showUrl } from './describe-error.js';

/** nvml.h values (docs/platforms.md, "NVIDIA GPU evidence"). */
const ARCH_NAMES: Readonly<Record<number, string>> = { 7: 'AMPERE', 8: 'ADA', 9: 'HOPPER', 10: 'BLACKWELL' };
const SUPPORTED_ARCHES = new Set([9, 10]);
const MULTI_GPU_MODES: Readonly<Record<number, string>> = {
  0: 'none',
  1: 'protected PCIe',
  2: 'NVLink encryption',
};
const ENVIRONMENTS: Readonly<Record<number, string>> = { 0: 'unavailable', 1: 'simulation', 2: 'production' };

const NO_NVML_HINT =
  'give the container the GPUs with NVML (compose: capabilities [gpu, utility]; the NVIDIA container toolkit mounts libnvidia-ml.so.1) or set NVML_LIBRARY_PATH; driver ≥ 535 with CC support';
const CC_HINT =
  'on the host, put the GPUs in production CC mode with devtools off (nvidia-smi conf-compute -f must say CC status: ON), then restart the CVM';
const MULTI_GPU_HINT =
  'several GPUs in CC mode need protected PCIe (or NVLink encryption) mode set on the host, else the GPUs exchange data in the clear';

class NvmlCallError extends Error {
  override readonly name = 'NvmlCallError';
}

/** How the CC state reads, and what is wrong with it for production (empty: nothing). */
export const describeCcState = (
  state: ConfComputeState,
  gpuCount: number,
): { text: string; problems: string[]; warnings: string[] } => {
  const multi =
    state.multiGpuMode === undefined
      ? 'unknown'
      : (MULTI_GPU_MODES[state.multiGpuMode] ?? `mode ${state.multiGpuMode}`);
  const text = `CC ${state.ccFeature === 1 ? 'on' : 'off'}, environment ${ENVIRONMENTS[state.environment] ?? state.environment}, devtools ${state.devToolsMode === 0 ? 'off' : 'on'}, multi-GPU mode ${multi}`;
  const problems: string[] = [];
  if (state.ccFeature !== 1) problems.push('CC is off');
  if (state.environment !== 2) problems.push('the CC environment is not production');
  if (state.devToolsMode !== 0) problems.push('devtools mode is on');
  const warnings: string[] = [];
  if (gpuCount > 1 && state.multiGpuMode === 0) warnings.push(`${gpuCount} GPUs with multi-GPU mode none`);
  return { text, problems, warnings };
};

/**
 * `gpu.nvml`, `gpu.evidence`, `gpu.nras`: NVML itself (library, driver, GPUs, CC mode), GPU evidence
 * for a fresh nonce through the configured provider with the serving local check, and, with
 * `--nras`, NVIDIA's verdict on that evidence.
 */
export const gpuChecks = (ctx: DoctorContext): DoctorCheck[] => {
  const { config, deps, inputs, state } = ctx;

  const nvml: DoctorCheck = {
    id: 'gpu.nvml',
    timeoutMs: ctx.timeout('gpu.nvml', config.GPU_EVIDENCE_TIMEOUT_MS),
    failHint:
      'NVML did not answer: a GPU in a bad state or a driver problem; check nvidia-smi inside the CVM',
    async run(signal) {
      signal.addEventListener('abort', () => {
        state.nvmlHung = true;
      });
      if (config.GPU_EVIDENCE !== 'nvml' && config.GPU_EVIDENCE !== 'simulated') {
        return skip(`GPU_EVIDENCE=${config.GPU_EVIDENCE}: the sidecar does not use NVML`);
      }
      let bindings: NvmlBindings;
      try {
        bindings = loadNvml(config.NVML_LIBRARY_PATH);
      } catch (error) {
        state.nvmlUnavailable = true;
        if (error instanceof FfiUnavailableError) {
          return fail('koffi, the FFI library NVML is called through, does not load', FFI_UNAVAILABLE_HINT);
        }
        return fail(
          `${config.NVML_LIBRARY_PATH} does not load: no NVIDIA driver visible (${describeError(error)})`,
          NO_NVML_HINT,
        );
      }
      const call = async (fn: string, run: () => Promise<number>): Promise<void> => {
        if (signal.aborted) throw signal.reason;
        const rc = await run();
        if (rc !== 0)
          throw new NvmlCallError(`${fn} failed: ${bindings.errorString(rc)} (nvmlReturn_t ${rc})`);
      };
      try {
        await call('nvmlInit_v2', () => bindings.init());
      } catch (error) {
        state.nvmlUnavailable = true;
        return fail(`${config.NVML_LIBRARY_PATH} loads, but ${describeError(error)}`, NO_NVML_HINT);
      }
      try {
        return await inspectNvml(bindings, call, config.NVML_LIBRARY_PATH);
      } catch (error) {
        return fail(
          `${config.NVML_LIBRARY_PATH}: ${describeError(error)}`,
          'check nvidia-smi -q inside the CVM',
        );
      } finally {
        if (!signal.aborted) await bindings.shutdown().catch(() => undefined);
      }
    },
  };

  const evidence: DoctorCheck = {
    id: 'gpu.evidence',
    timeoutMs: ctx.timeout('gpu.evidence', config.GPU_EVIDENCE_TIMEOUT_MS + 1000),
    failHint:
      'GPU evidence collection did not finish: raise GPU_EVIDENCE_TIMEOUT_MS for many GPUs, or see gpu.nvml',
    async run(signal) {
      if (config.GPU_EVIDENCE === 'none') {
        return warn(
          'GPU_EVIDENCE=none: reports carry no GPU evidence; 0G and NEAR/Phala verifiers require it',
          'set GPU_EVIDENCE=nvml on a machine with GPUs in CC mode',
        );
      }
      if (config.GPU_EVIDENCE === 'simulated') {
        return fail(
          'GPU_EVIDENCE=simulated: synthetic evidence from a throwaway root; NRAS and every verifier reject it',
          'set GPU_EVIDENCE=nvml (or http with a local evidence service) on a machine with GPUs in CC mode',
        );
      }
      if (state.nvmlHung)
        return skip('NVML did not answer (see gpu.nvml); not queueing more calls behind it');
      if (state.nvmlUnavailable && config.GPU_EVIDENCE === 'nvml')
        return skip('no usable NVML (see gpu.nvml)');
      const gpus: GpuEvidenceProvider = selectGpuProvider(config);
      const close = gpus.close;
      if (close !== undefined) state.closers.push(() => close.call(gpus));
      const nonce = deps.random(32);
      let result: Awaited<ReturnType<GpuEvidenceProvider['collect']>>;
      try {
        result = await gpus.collect(nonce, signal);
      } catch (error) {
        return fail(
          `GPU_EVIDENCE=${config.GPU_EVIDENCE}: ${describeError(error)}`,
          evidenceHint(config.GPU_EVIDENCE),
        );
      }
      const list = result.gpus
        .map(
          (g) =>
            `GPU ${g.index}${g.uuid === undefined ? '' : ` ${g.uuid}`} ${g.arch} (report ${g.evidence.length} B)`,
        )
        .join('; ');
      const seen = `GPU_EVIDENCE=${config.GPU_EVIDENCE}: ${result.gpus.length} GPU${result.gpus.length === 1 ? '' : 's'}: ${list}`;
      if (result.gpus.length === 0)
        return fail(`${seen}: no GPU evidence`, evidenceHint(config.GPU_EVIDENCE));
      try {
        (await deps.gpuEvidenceChecker(gpus))(result.gpus, nonce);
      } catch (error) {
        return fail(
          `${seen}; local check: ${describeError(error)}`,
          'evidence must carry our nonce, be signed by the GPU and chain to the NVIDIA Device Identity CA',
        );
      }
      state.gpuEvidence = { nonce, gpus: result.gpus };
      return pass(`${seen}; local check (nonce, signature, chain to NVIDIA root) passed`);
    },
  };

  const nras: DoctorCheck = {
    id: 'gpu.nras',
    timeoutMs: ctx.timeout('gpu.nras', 60_000),
    failHint: `NRAS did not answer in time: the CVM needs outbound HTTPS to ${showUrl(config.NRAS_URL)}`,
    async run(signal) {
      if (inputs.nras !== true)
        return skip(`not asked (--nras submits the evidence to ${showUrl(config.NRAS_URL)})`);
      const collected = state.gpuEvidence;
      if (collected === undefined) return skip('no GPU evidence to submit (see gpu.evidence)');
      const options = { baseUrl: config.NRAS_URL, fetch: wrapFetch(deps.fetch, signal) };
      const nonceHex = toHex(collected.nonce);
      let outcome: CheckOutcome;
      try {
        const answer = await submitToNras(buildNvidiaPayload(collected.nonce, collected.gpus), options);
        const jwks = await fetchNrasJwks(options);
        const verdict = await verifyNrasResult(answer, {
          jwks,
          nonceHex,
          gpuCount: collected.gpus.length,
          now: deps.now(),
        });
        outcome = verdict.ok
          ? pass(
              `${showUrl(config.NRAS_URL)} accepted ${collected.gpus.length} GPU${collected.gpus.length === 1 ? '' : 's'}: overall result true, measurements match, secure boot on, debug off`,
            )
          : fail(
              `${showUrl(config.NRAS_URL)} rejected the evidence: ${verdict.failures.join(', ')}`,
              'NVIDIA did not accept this GPU state: production CC mode, devtools off, and a driver/VBIOS NVIDIA publishes reference values for',
            );
      } catch (error) {
        outcome = fail(
          `${showUrl(config.NRAS_URL)}: ${describeError(error)}`,
          `the CVM needs outbound HTTPS to ${showUrl(config.NRAS_URL)} (verifiers reach NRAS themselves; this only checks NVIDIA accepts this machine)`,
        );
      }
      return outcome;
    },
  };

  return [nvml, evidence, nras];
};

/** fetch bound to the check's deadline signal, so a hung NRAS connection is dropped with it. */
const wrapFetch =
  (f: typeof globalThis.fetch, signal: AbortSignal): typeof globalThis.fetch =>
  (input, init) =>
    f(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });

const evidenceHint = (source: string): string =>
  source === 'http'
    ? 'the GPU evidence service at GPU_EVIDENCE_URL did not give evidence for our nonce: check it runs and reaches NVML'
    : CC_HINT;

const inspectNvml = async (
  nvml: NvmlBindings,
  call: (fn: string, run: () => Promise<number>) => Promise<void>,
  library: string,
): Promise<CheckOutcome> => {
  const driver = new Uint8Array(NVML_LAYOUT.driverVersionBuffer);
  await call('nvmlSystemGetDriverVersion', () => nvml.getDriverVersion(driver, driver.length));
  const countOut = new Uint8Array(4);
  await call('nvmlDeviceGetCount_v2', () => nvml.getCount(countOut));
  const count = nvmlU32(countOut, 0);

  const cc = await readConfComputeState(nvml, call);

  const gpus: string[] = [];
  const unsupported: string[] = [];
  for (let index = 0; index < count; index++) {
    const handle = new Uint8Array(8);
    await call('nvmlDeviceGetHandleByIndex_v2', () => nvml.getHandleByIndex(index, handle));
    const device = new DataView(handle.buffer).getBigUint64(0, true);
    const archOut = new Uint8Array(4);
    await call('nvmlDeviceGetArchitecture', () => nvml.getArchitecture(device, archOut));
    const arch = nvmlU32(archOut, 0);
    const uuid = new Uint8Array(NVML_LAYOUT.uuidBuffer);
    await call('nvmlDeviceGetUUID', () => nvml.getUuid(device, uuid, uuid.length));
    const name = ARCH_NAMES[arch] ?? `architecture ${arch}`;
    gpus.push(`GPU ${index} ${nvmlString(uuid)} ${name}`);
    if (!SUPPORTED_ARCHES.has(arch)) unsupported.push(`GPU ${index}`);
  }

  const { text, problems, warnings } = describeCcState(cc, count);
  const seen = `${library}: driver ${nvmlString(driver)}, ${count} GPU${count === 1 ? '' : 's'}${gpus.length > 0 ? ` (${gpus.join('; ')})` : ''}; ${text}`;
  if (count === 0)
    return fail(`${seen}: no GPUs`, 'NVML sees no GPU: pass the GPUs through to the CVM and the container');
  if (unsupported.length > 0) {
    return fail(
      `${seen}: ${unsupported.join(', ')} not Hopper/Blackwell`,
      'GPU confidential computing needs H100/H200 (Hopper) or Blackwell GPUs',
    );
  }
  if (problems.length > 0) return fail(`${seen}: ${problems.join(', ')}`, CC_HINT);
  if (warnings.length > 0) return warn(`${seen}: ${warnings.join(', ')}`, MULTI_GPU_HINT);
  return pass(seen);
};
