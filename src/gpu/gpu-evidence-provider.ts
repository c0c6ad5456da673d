/**
 * A source of NVIDIA GPU attestation evidence bound to a nonce. One file per implementation (nvml,
 * http, none, fixture, simulated), chosen by configuration.
 */
export type GpuArch = 'HOPPER' | 'BLACKWELL';

export interface GpuEvidence {
  /** NVML index; evidence is always listed in index order (NRAS names tokens GPU-0..n-1 so). */
  index: number;
  arch: GpuArch;
  /** Raw SPDM GET_MEASUREMENTS request ‖ signed MEASUREMENTS response; nonce at [4, 36). */
  evidence: Uint8Array;
  /** PEM certificate chain, leaf first (5 certificates up to NVIDIA Device Identity CA). */
  certificateChain: string;
  uuid?: string;
  driverVersion?: string;
  vbiosVersion?: string;
}

/** nvmlConfComputeSystemState_t plus multi-GPU mode, where the provider can read them. */
export interface ConfComputeState {
  /** 2 = production. */
  environment: number;
  /** 1 = CC on. */
  ccFeature: number;
  /** Must be 0 in production. */
  devToolsMode: number;
  multiGpuMode?: number;
}

export interface GpuEvidenceResult {
  gpus: GpuEvidence[];
  ccState: ConfComputeState | null;
  /** True for synthetic evidence signed by a throwaway root; a verifier must reject it. */
  simulated: boolean;
}

export interface GpuEvidenceProvider {
  readonly kind: 'nvml' | 'http' | 'none' | 'fixture' | 'simulated';
  /** `nonce` is exactly 32 bytes. Rejects with a SidecarError (503) when evidence is unavailable. */
  collect(nonce: Uint8Array, signal?: AbortSignal): Promise<GpuEvidenceResult>;
  close?(): Promise<void>;
}
