import type { LibraryHandle } from 'koffi';
import { koffiLoader } from '../lazy/index.js';

/** koffi (a native addon) is loaded only when an FFI provider is used. */
const ffi = koffiLoader();

/**
 * Raw koffi bindings of the NVML functions the NVML provider needs (nvml.h; docs/platforms.md, "NVIDIA
 * GPU evidence"). Structs are passed as byte buffers and read at explicit offsets, listed once in
 * NVML_LAYOUT, which is easier to audit against nvml.h than koffi struct definitions and has no
 * padding surprises (every field is a u32 or a byte array). native/doubles/libnvidia-ml.c checks
 * the same offsets with _Static_assert against C struct definitions.
 *
 * Every call runs on koffi's worker thread (`.async`): NVML calls block for hundreds of ms per GPU
 * and must not stall the event loop. Callers serialize them.
 */
export const NVML_LAYOUT = Object.freeze({
  /** nvmlConfComputeSystemState_t. */
  systemState: { size: 12, environment: 0, ccFeature: 4, devToolsMode: 8 },
  /** nvmlSystemConfComputeSettings_v1_t; the caller sets `version`. */
  systemSettings: {
    size: 20,
    version: 0,
    environment: 4,
    ccFeature: 8,
    devToolsMode: 12,
    multiGpuMode: 16,
    /** NVML_STRUCT_VERSION(SystemConfComputeSettings, 1) = sizeof | 1 << 24. */
    v1: 0x1000014,
  },
  /** nvmlConfComputeGpuAttestationReport_t. */
  attestationReport: {
    size: 12_332,
    isCecAttestationReportPresent: 0,
    attestationReportSize: 4,
    cecAttestationReportSize: 8,
    /** The caller fills in the nonce; the GPU signs it. */
    nonce: 12,
    nonceLength: 32,
    attestationReport: 44,
    attestationReportCapacity: 8192,
    cecAttestationReport: 8236,
    cecAttestationReportCapacity: 4096,
  },
  /** nvmlConfComputeGpuCertificate_t. */
  certificate: {
    size: 9224,
    certChainSize: 0,
    attestationCertChainSize: 4,
    certChain: 8,
    certChainCapacity: 4096,
    /** PEM text; this is the chain NRAS wants. */
    attestationCertChain: 4104,
    attestationCertChainCapacity: 5120,
  },
  /** NVML_DEVICE_UUID_V2_BUFFER_SIZE, NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE, NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE. */
  uuidBuffer: 96,
  driverVersionBuffer: 80,
  vbiosVersionBuffer: 32,
});

/** nvmlDeviceArchitecture_t values we serve (nvml.h NVML_DEVICE_ARCH_*). */
/** A little-endian u32 at `offset` of an NVML struct buffer (nvml.h structs are packed native x86-64). */
export const nvmlU32 = (b: Uint8Array, offset: number): number =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(offset, true);

/** A NUL-terminated string NVML wrote into a char buffer. */
export const nvmlString = (b: Uint8Array): string => {
  const end = b.indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? b.length : end)).toString('utf8');
};

export const NVML_ARCH_HOPPER = 9;
export const NVML_ARCH_BLACKWELL = 10;

/** nvmlReturn_t values the provider treats specially (nvml.h). */
export const NVML_SUCCESS = 0;
export const NVML_ERROR_NOT_SUPPORTED = 3;
export const NVML_ERROR_FUNCTION_NOT_FOUND = 13;

/** An opaque nvmlDevice_t (a pointer: a BigInt in koffi 3). */
export type NvmlDevice = bigint;

type Func = ReturnType<LibraryHandle['func']>;

/** The NVML entry points as promise-returning functions that resolve to the nvmlReturn_t. */
export interface NvmlBindings {
  init(): Promise<number>;
  shutdown(): Promise<number>;
  errorString(rc: number): string;
  getCount(out: Uint8Array): Promise<number>;
  getHandleByIndex(index: number, out: Uint8Array): Promise<number>;
  getConfComputeState(state: Uint8Array): Promise<number>;
  /** Absent on drivers older than the settings API. */
  getConfComputeSettings: ((settings: Uint8Array) => Promise<number>) | undefined;
  getArchitecture(device: NvmlDevice, out: Uint8Array): Promise<number>;
  getUuid(device: NvmlDevice, out: Uint8Array, length: number): Promise<number>;
  getDriverVersion(out: Uint8Array, length: number): Promise<number>;
  getVbiosVersion(device: NvmlDevice, out: Uint8Array, length: number): Promise<number>;
  getAttestationReport(device: NvmlDevice, report: Uint8Array): Promise<number>;
  getCertificate(device: NvmlDevice, certificate: Uint8Array): Promise<number>;
}

const callAsync =
  (fn: Func) =>
  (...args: unknown[]): Promise<number> =>
    new Promise((resolve, reject) => {
      fn.async(...args, (err: unknown, rc: number) => (err ? reject(err) : resolve(rc)));
    });

/** dlopens NVML and declares the functions; throws if the library or a required symbol is missing. */
export const loadNvml = (libraryPath: string): NvmlBindings => {
  const lib = ffi().load(libraryPath);
  const f = (proto: string) => callAsync(lib.func(proto));
  let settings: Func | undefined;
  try {
    settings = lib.func('int nvmlSystemGetConfComputeSettings(void *settings)');
  } catch {
    settings = undefined;
  }
  const errorString = lib.func('const char *nvmlErrorString(int result)');
  return {
    init: f('int nvmlInit_v2(void)'),
    shutdown: f('int nvmlShutdown(void)'),
    errorString: (rc) => String(errorString(rc) ?? 'unknown error'),
    getCount: f('int nvmlDeviceGetCount_v2(void *deviceCount)'),
    getHandleByIndex: f('int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void *device)'),
    getConfComputeState: f('int nvmlSystemGetConfComputeState(void *state)'),
    getConfComputeSettings: settings === undefined ? undefined : callAsync(settings),
    getArchitecture: f('int nvmlDeviceGetArchitecture(void *device, void *arch)'),
    getUuid: f('int nvmlDeviceGetUUID(void *device, void *uuid, unsigned int length)'),
    getDriverVersion: f('int nvmlSystemGetDriverVersion(void *version, unsigned int length)'),
    getVbiosVersion: f('int nvmlDeviceGetVbiosVersion(void *device, void *version, unsigned int length)'),
    getAttestationReport: f('int nvmlDeviceGetConfComputeGpuAttestationReport(void *device, void *report)'),
    getCertificate: f('int nvmlDeviceGetConfComputeGpuCertificate(void *device, void *certificate)'),
  };
};
