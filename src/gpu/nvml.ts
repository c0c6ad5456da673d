import { assertBytes, equalBytes } from '../bytes/index.js';
import { SerialQueue } from '../concurrency/index.js';
import { unavailableIn } from '../errors/index.js';
import { FfiUnavailableError } from '../lazy/index.js';
import { withDeadline } from './deadline.js';
import { parseGpuEvidence } from './evidence.js';
import type {
  ConfComputeState,
  GpuArch,
  GpuEvidence,
  GpuEvidenceProvider,
  GpuEvidenceResult,
} from './gpu-evidence-provider.js';
import {
  loadNvml,
  NVML_ARCH_BLACKWELL,
  NVML_ARCH_HOPPER,
  NVML_ERROR_FUNCTION_NOT_FOUND,
  NVML_ERROR_NOT_SUPPORTED,
  NVML_LAYOUT,
  NVML_SUCCESS,
  type NvmlBindings,
  type NvmlDevice,
  nvmlString,
  nvmlU32,
} from './nvml-bindings.js';

/**
 * GPU evidence straight from the driver through NVML (docs/platforms.md, "NVIDIA GPU evidence"), the
 * way NVIDIA's nvtrust/nvattest collect it:
 *
 *   nvmlInit_v2 → nvmlSystemGetConfComputeState (+ Settings where available) → refuse unless CC is
 *   on, the environment is production and devtools mode is off → nvmlDeviceGetCount_v2 → per GPU in
 *   index order: handle, architecture, UUID, VBIOS, attestation report for our nonce, certificate.
 *
 * NVML stays initialised between requests (init costs hundreds of ms) and is shut down by close().
 * All calls go through one queue, one at a time (NVML's CC calls are not safe to overlap), on
 * koffi's worker threads. A deadline rejects the request with 503; the native call it was waiting
 * for still finishes before the next one starts.
 */
export interface NvmlGpuEvidenceOptions {
  /** dlopen name or path of NVML (or the test double). */
  libraryPath?: string;
  /** Deadline for one collection, all GPUs together. */
  timeoutMs?: number;
  /** Binding loader; tests use the real one with the C double. */
  load?: (libraryPath: string) => NvmlBindings;
}

const PROVIDER = 'nvml';

/** nvmlConfComputeSystemState_t.environment: 2 = production (nvml.h NVML_CC_SYSTEM_ENVIRONMENT_PROD). */
const CC_ENVIRONMENT_PRODUCTION = 2;
/** ccFeature: 1 = enabled (NVML_CC_SYSTEM_FEATURE_ENABLED). */
const CC_FEATURE_ENABLED = 1;
/** devToolsMode: 0 = off (NVML_CC_SYSTEM_DEVTOOLS_MODE_OFF). */
const DEVTOOLS_OFF = 0;

const unavailable = unavailableIn('GPU evidence unavailable: ', { provider: PROVIDER });

const ARCHES: Readonly<Record<number, GpuArch>> = {
  [NVML_ARCH_HOPPER]: 'HOPPER',
  [NVML_ARCH_BLACKWELL]: 'BLACKWELL',
};

/** The dlopen name of NVML as the NVIDIA driver installs it. */
export const DEFAULT_NVML_LIBRARY_PATH = 'libnvidia-ml.so.1';

/**
 * The system's confidential-computing state (nvml.h `nvmlConfComputeSystemState_t`, and
 * `nvmlConfComputeSystemSettings_t` for the multi-GPU mode where the driver has it). `call` runs one
 * NVML call and throws for a non-success return; the provider and the doctor pass their own. A
 * driver without the settings call (or one that says it is not supported) leaves the multi-GPU mode
 * unknown; any other failure of it is an error.
 */
export const readConfComputeState = async (
  nvml: NvmlBindings,
  call: (fn: string, run: () => Promise<number>) => Promise<void>,
): Promise<ConfComputeState> => {
  const L = NVML_LAYOUT.systemState;
  const state = new Uint8Array(L.size);
  await call('nvmlSystemGetConfComputeState', () => nvml.getConfComputeState(state));
  const result: ConfComputeState = {
    environment: nvmlU32(state, L.environment),
    ccFeature: nvmlU32(state, L.ccFeature),
    devToolsMode: nvmlU32(state, L.devToolsMode),
  };
  const getSettings = nvml.getConfComputeSettings;
  if (getSettings !== undefined) {
    const S = NVML_LAYOUT.systemSettings;
    const settings = new Uint8Array(S.size);
    new DataView(settings.buffer).setUint32(S.version, S.v1, true);
    const rc = await getSettings(settings).catch(() => NVML_ERROR_FUNCTION_NOT_FOUND);
    if (rc === NVML_SUCCESS) {
      result.multiGpuMode = nvmlU32(settings, S.multiGpuMode);
    } else if (rc !== NVML_ERROR_NOT_SUPPORTED && rc !== NVML_ERROR_FUNCTION_NOT_FOUND) {
      throw unavailable(
        `nvmlSystemGetConfComputeSettings failed: ${nvml.errorString(rc)} (nvmlReturn_t ${rc})`,
        'nvml_error',
        { function: 'nvmlSystemGetConfComputeSettings', rc },
      );
    }
  }
  return result;
};

export class NvmlGpuEvidenceProvider implements GpuEvidenceProvider {
  readonly kind = 'nvml' as const;
  readonly #libraryPath: string;
  readonly #timeoutMs: number;
  readonly #load: (libraryPath: string) => NvmlBindings;
  readonly #queue = new SerialQueue();
  #nvml: NvmlBindings | undefined;
  #initialised = false;
  /** The deadline of the collection now running (the queue runs one at a time). */
  #deadline: AbortSignal | undefined;

  constructor(options: NvmlGpuEvidenceOptions = {}) {
    this.#libraryPath = options.libraryPath ?? DEFAULT_NVML_LIBRARY_PATH;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#load = options.load ?? loadNvml;
  }

  collect(nonce: Uint8Array, signal?: AbortSignal): Promise<GpuEvidenceResult> {
    assertBytes('nonce', nonce, 32);
    const ours = nonce.slice();
    return withDeadline('NVML evidence collection', this.#timeoutMs, signal, (deadline) =>
      this.#queue.run(() => this.#collect(ours, deadline)),
    );
  }

  /** Shuts NVML down once in-flight work has finished. */
  async close(): Promise<void> {
    await this.#queue.run(async () => {
      this.#deadline = undefined;
      if (this.#nvml !== undefined && this.#initialised) {
        this.#initialised = false;
        await this.#nvml.shutdown();
      }
    });
  }

  #bind(): NvmlBindings {
    if (this.#nvml !== undefined) return this.#nvml;
    try {
      this.#nvml = this.#load(this.#libraryPath);
    } catch (cause) {
      if (cause instanceof FfiUnavailableError) {
        throw unavailable(`GPU evidence unavailable: ${cause.message}`, 'ffi_unavailable', {}, cause);
      }
      throw unavailable(
        'could not load NVML with the confidential-computing API (NVIDIA driver ≥ 535 needed)',
        'nvml_unavailable',
        { library: this.#libraryPath },
        cause,
      );
    }
    return this.#nvml;
  }

  /**
   * Runs one NVML call; a non-success nvmlReturn_t becomes a 503 naming the function. A collection
   * whose deadline has passed makes no further calls.
   */
  async #call(nvml: NvmlBindings, fn: string, run: () => Promise<number>): Promise<void> {
    if (this.#deadline?.aborted) throw this.#deadline.reason;
    let rc: number;
    try {
      rc = await run();
    } catch (cause) {
      throw unavailable(`${fn} could not be called`, 'nvml_error', { function: fn }, cause);
    }
    if (rc !== NVML_SUCCESS) {
      throw unavailable(`${fn} failed: ${nvml.errorString(rc)} (nvmlReturn_t ${rc})`, 'nvml_error', {
        function: fn,
        rc,
      });
    }
  }

  async #collect(nonce: Uint8Array, deadline: AbortSignal): Promise<GpuEvidenceResult> {
    if (deadline.aborted) throw deadline.reason;
    this.#deadline = deadline;
    const nvml = this.#bind();
    if (!this.#initialised) {
      await this.#call(nvml, 'nvmlInit_v2', () => nvml.init());
      this.#initialised = true;
    }

    const ccState = await this.#ccState(nvml);
    if (ccState.ccFeature !== CC_FEATURE_ENABLED) {
      throw unavailable('confidential computing is off on the GPUs', 'gpu_cc_disabled', { ...ccState });
    }
    if (ccState.environment !== CC_ENVIRONMENT_PRODUCTION) {
      throw unavailable('the GPU CC environment is not production', 'gpu_cc_not_production', { ...ccState });
    }
    if (ccState.devToolsMode !== DEVTOOLS_OFF) {
      throw unavailable('GPU CC devtools mode is on', 'gpu_cc_devtools_enabled', { ...ccState });
    }

    const countOut = new Uint8Array(4);
    await this.#call(nvml, 'nvmlDeviceGetCount_v2', () => nvml.getCount(countOut));
    const count = nvmlU32(countOut, 0);
    if (count === 0) throw unavailable('NVML reports no GPUs', 'gpu_not_found');

    const driverOut = new Uint8Array(NVML_LAYOUT.driverVersionBuffer);
    await this.#call(nvml, 'nvmlSystemGetDriverVersion', () =>
      nvml.getDriverVersion(driverOut, driverOut.length),
    );
    const driverVersion = nvmlString(driverOut);

    const gpus: GpuEvidence[] = [];
    for (let index = 0; index < count; index++) {
      gpus.push(await this.#gpu(nvml, index, nonce, driverVersion));
    }
    return { gpus, ccState, simulated: false };
  }

  #ccState(nvml: NvmlBindings): Promise<ConfComputeState> {
    return readConfComputeState(nvml, (fn, run) => this.#call(nvml, fn, run));
  }

  async #gpu(
    nvml: NvmlBindings,
    index: number,
    nonce: Uint8Array,
    driverVersion: string,
  ): Promise<GpuEvidence> {
    const handleOut = new Uint8Array(8);
    await this.#call(nvml, 'nvmlDeviceGetHandleByIndex_v2', () => nvml.getHandleByIndex(index, handleOut));
    const device: NvmlDevice = new DataView(handleOut.buffer).getBigUint64(0, true);

    const archOut = new Uint8Array(4);
    await this.#call(nvml, 'nvmlDeviceGetArchitecture', () => nvml.getArchitecture(device, archOut));
    const arch = ARCHES[nvmlU32(archOut, 0)];
    if (arch === undefined) {
      throw unavailable(`GPU ${index} is not a Hopper or Blackwell GPU`, 'gpu_arch_unsupported', {
        gpu: index,
        nvmlArchitecture: nvmlU32(archOut, 0),
      });
    }

    const uuidOut = new Uint8Array(NVML_LAYOUT.uuidBuffer);
    await this.#call(nvml, 'nvmlDeviceGetUUID', () => nvml.getUuid(device, uuidOut, uuidOut.length));
    const vbiosOut = new Uint8Array(NVML_LAYOUT.vbiosVersionBuffer);
    await this.#call(nvml, 'nvmlDeviceGetVbiosVersion', () =>
      nvml.getVbiosVersion(device, vbiosOut, vbiosOut.length),
    );

    const R = NVML_LAYOUT.attestationReport;
    const report = new Uint8Array(R.size);
    report.set(nonce, R.nonce);
    await this.#call(nvml, 'nvmlDeviceGetConfComputeGpuAttestationReport', () =>
      nvml.getAttestationReport(device, report),
    );
    const reportSize = nvmlU32(report, R.attestationReportSize);
    if (reportSize === 0 || reportSize > R.attestationReportCapacity) {
      throw unavailable(`GPU ${index} attestation report size is out of range`, 'gpu_evidence_malformed', {
        gpu: index,
        size: reportSize,
      });
    }
    const evidence = report.slice(R.attestationReport, R.attestationReport + reportSize);
    let evidenceNonce: Uint8Array;
    try {
      evidenceNonce = parseGpuEvidence(evidence).nonce;
    } catch (cause) {
      throw unavailable(
        `GPU ${index} attestation report is malformed`,
        'gpu_evidence_malformed',
        { gpu: index },
        cause,
      );
    }
    if (!equalBytes(evidenceNonce, nonce)) {
      throw unavailable(
        `GPU ${index} attestation report is not bound to our nonce`,
        'gpu_evidence_nonce_mismatch',
        {
          gpu: index,
        },
      );
    }

    const C = NVML_LAYOUT.certificate;
    const cert = new Uint8Array(C.size);
    await this.#call(nvml, 'nvmlDeviceGetConfComputeGpuCertificate', () => nvml.getCertificate(device, cert));
    const chainSize = nvmlU32(cert, C.attestationCertChainSize);
    if (chainSize === 0 || chainSize > C.attestationCertChainCapacity) {
      throw unavailable(
        `GPU ${index} attestation certificate chain size is out of range`,
        'gpu_evidence_malformed',
        {
          gpu: index,
          size: chainSize,
        },
      );
    }
    // PEM text; NVML may count trailing NUL padding in the size.
    const certificateChain = Buffer.from(
      cert.subarray(C.attestationCertChain, C.attestationCertChain + chainSize),
    )
      .toString('utf8')
      .replace(/\0+$/, '');

    return {
      index,
      arch,
      evidence,
      certificateChain,
      uuid: nvmlString(uuidOut),
      driverVersion,
      vbiosVersion: nvmlString(vbiosOut),
    };
  }
}
