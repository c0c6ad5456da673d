import type { Config } from '../config/index.js';
import type { GpuEvidence, GpuEvidenceProvider } from '../gpu/index.js';
import type { Logger } from '../log/index.js';
import type { Collateral, ConfigfsFs, QuoteProvider, QuoteResult } from '../tdx/index.js';

/**
 * What the doctor reads beyond the sidecar's configuration: command-line flags. The TLS paths
 * default to the configuration's TLS_CERT_PATH / TLS_KEY_PATH; the flags check other files.
 */
export interface DoctorInputs {
  /** `--nras`: submit this machine's GPU evidence to NRAS (NRAS_URL) and show its verdict. */
  nras?: boolean;
  /** PCCS (or Intel PCS) to fetch quote collateral from; default Intel PCS. */
  pccsUrl?: string;
  /** Collateral JSON file (dcap-qvl Collateral); when given, nothing is fetched. */
  collateralPath?: string;
  /** PEM certificate (chain) and private key the sidecar serves TLS with. */
  tlsCertPath?: string;
  tlsKeyPath?: string;
  /** 0G: the address registered as the service's `targetTeeAddress`, given directly ... */
  zgTargetTeeAddress?: string;
  /** ... or read from the provider broker's config file (`service.targetTeeAddress`). */
  zgBrokerConfigPath?: string;
  /** 0G chain check: a JSON-RPC endpoint, the inference serving contract and the provider wallet. */
  zgRpcUrl?: string;
  zgServingContract?: string;
  zgProviderAddress?: string;
}

/** Every I/O edge the doctor touches that tests replace (docs/architecture.md, code habit 4). */
export interface DoctorDeps {
  fetch: typeof globalThis.fetch;
  /** Random bytes for report_data and the GPU nonce. */
  random: (length: number) => Uint8Array;
  now: () => Date;
  readFile: (path: string) => Promise<Uint8Array>;
  /** The kernel's TDX guest device (presence only). */
  tdxGuestDevice: string;
  /** Fetches quote collateral from a PCCS / Intel PCS (default dcap-qvl `getCollateral`). */
  getCollateral: (pccsUrl: string, quote: Uint8Array) => Promise<Collateral>;
  /** The local GPU evidence check for a provider (default: the serving one, server/providers.ts). */
  gpuEvidenceChecker: (
    gpus: GpuEvidenceProvider,
  ) => Promise<(list: readonly GpuEvidence[], nonce: Uint8Array) => void>;
  /** configfs-tsm file operations (default node:fs; tests play the kernel). */
  configfsFs?: ConfigfsFs;
  /** Receives the providers' own warnings; silent by default (the doctor reports instead). */
  logger: Logger;
  /** Told when a check ran out of time: its work (maybe a native call) may still be running. */
  onTimeout?: (id: string) => void;
  /** Per-check deadline overrides by check id (tests, and operators of very large machines). */
  timeouts: Readonly<Record<string, number>>;
}

/** What earlier checks learned that later ones build on. */
export interface DoctorState {
  quotes?: QuoteProvider;
  /** Set when the provider could not be chosen; the quote checks then skip. */
  quotesUnavailable?: string;
  quote?: { result: QuoteResult; reportData: Uint8Array };
  /** NVML did not answer in time: do not queue more calls behind the hung one. */
  nvmlHung?: boolean;
  /** NVML could not be loaded or initialised (gpu.nvml says why): evidence through it is skipped. */
  nvmlUnavailable?: boolean;
  gpus?: GpuEvidenceProvider;
  gpuEvidence?: { nonce: Uint8Array; gpus: GpuEvidence[] };
  /** Our ecdsa signing address (EIP-55), once the key check loaded it. */
  signingAddress?: string;
  /** Things to close at the end (providers holding sockets, NVML). */
  closers: (() => Promise<void>)[];
}

export interface DoctorContext {
  config: Config;
  inputs: DoctorInputs;
  deps: DoctorDeps;
  state: DoctorState;
  /** The deadline for a check: the override for its id, else `fallback`. */
  timeout(id: string, fallback: number): number;
}
