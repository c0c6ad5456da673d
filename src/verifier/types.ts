import type { SigningAlgo } from '../keys/index.js';
import type { Collateral } from '../tdx/index.js';

/**
 * The verifier's vocabulary: every check is reported separately, by a stable id, so a person (or a
 * script reading `--json`) sees exactly which property of the provider held and which did not.
 */
export type CheckStatus = 'pass' | 'fail' | 'skip';

export interface CheckResult {
  /** Stable, dotted id, e.g. `tdx.quote`, `signature.stream.signer` (README, "Verifying a provider"). */
  id: string;
  title: string;
  status: CheckStatus;
  /** Why it passed, failed or was skipped. Never holds prompts, completions, tokens or keys. */
  detail: string;
  /** Set when the check only passed because simulation was explicitly allowed. */
  simulated?: true;
}

export interface VerificationResult {
  /** `pass` only when no check failed. */
  verdict: 'pass' | 'fail';
  ok: boolean;
  checks: CheckResult[];
  /** The nonce the report was checked against (64 lowercase hex). */
  nonce: string;
  /** Verification time, Unix seconds. */
  at: number;
  /** The attested signing address (ecdsa) or public key (ed25519), when the report had one. */
  signingAddress?: string;
}

/** Allow-lists of measurements (lowercase or uppercase hex; compared case-insensitively). */
export interface MeasurementAllowLists {
  mrtd?: readonly string[];
  rtmr0?: readonly string[];
  rtmr1?: readonly string[];
  rtmr2?: readonly string[];
  /** Dstack `os-image-hash` runtime event (RTMR3). */
  osImageHash?: readonly string[];
}

/** What `verifyReport` needs besides the report: everything is injected, nothing is global. */
export interface ReportContext {
  /** The nonce we asked for: 32 bytes, or 64 hex characters. */
  nonce: Uint8Array | string;
  /** Verification time, Unix seconds (quote TCB windows, GPU certificates, NRAS tokens). */
  nowSeconds: number;
  /** The algorithm we asked for; a report naming another fails `report.signing-key`. */
  signingAlgo?: SigningAlgo;
  /** Collateral for the quote (offline). Otherwise `getCollateral` is asked. */
  collateral?: Collateral;
  /** PCCS for the default `getCollateral` (default: dcap-qvl's, Phala's PCCS). */
  pccsUrl?: string;
  /** Fetches collateral for a quote (default: dcap-qvl `getCollateral` from `pccsUrl`). */
  getCollateral?: (quote: Uint8Array) => Promise<Collateral>;
  /** Told the collateral the quote check used, so a caller can keep it (gateway receipts re-check TCB offline). */
  onCollateral?: (collateral: Collateral) => void;
  /** TCB statuses that pass `tdx.quote`; default `['UpToDate']`. */
  acceptTcb?: readonly string[];
  /** Accept simulated reports (quote, GPU evidence); the checks that rely on it say so. */
  allowSimulated?: boolean;
  /** Do not consult NRAS (the `gpu.nras` check is skipped). */
  offline?: boolean;
  /** `fetch` for NRAS. */
  fetch?: typeof globalThis.fetch;
  nrasUrl?: string;
  /** Expected Dstack compose hash (64 hex), or the exact bytes of app-compose.json. */
  expectedComposeHash?: string;
  composeFile?: Uint8Array;
  allow?: MeasurementAllowLists;
  /** 0G's on-chain `targetTeeAddress`: the attested address must equal it (case-insensitive). */
  expectAddress?: string;
  /**
   * Accept a 0G provider broker's static quote (report_data_scheme `0g-broker-ascii-address`): made
   * once at broker start over its address, for no nonce of ours, so it can be replayed. Then
   * `report.nonce`, `tdx.report-data` and `gpu.payload-nonce` are skipped (saying so),
   * `tdx.report-data.broker-address` must pass, and the GPU evidence is checked against the nonce
   * its payload carries. Default false: such a report fails as a replay.
   */
  acceptBrokerQuote?: boolean;
  /** Accept a report without GPU evidence (CPU-only deployments). Default: GPU evidence required. */
  allowNoGpu?: boolean;
  /** Accept published sample nonces in GPU evidence: only to replay public captures in tests. */
  allowSampleNonces?: boolean;
  /** Extra GPU roots accepted with `allowSimulated` (default: the synthetic test root's fingerprint). */
  simulatedGpuRoots?: readonly string[];
}
