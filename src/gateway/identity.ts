import { toHex } from '../bytes/index.js';
import { parseGpuEvidence, parseNvidiaPayload } from '../gpu/index.js';
import { parseQuote } from '../tdx/index.js';
import type { CheckResult } from '../verifier/index.js';

/** What the status page shows of an attested provider; every field is from the verified report. */
export interface ProviderIdentity {
  platform: string;
  simulated: boolean;
  measurements: { mrtd?: string; rtmr0?: string; rtmr1?: string; rtmr2?: string; rtmr3?: string };
  composeHash?: string;
  tcbStatus: string;
  gpus: Array<{ index: number; arch: string; ccMode: string; driver?: string; vbios?: string }>;
  quoteSha256?: string;
}

/** FEATURE_FLAG in the GPU's SPDM opaque data (NVAT `evidence.h`): the confidential-computing mode. */
const CC_MODES: Record<number, string> = {
  0: 'CC on (multi-GPU protected PCIe)',
  1: 'CC on (single GPU)',
  2: 'CC on (PPCIe)',
};

const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

/**
 * Reads the identity out of a report the verifier already checked. Best effort: a field that does
 * not parse is left out (the verifier's checks, not this summary, decide trust).
 */
export const identityOf = (
  report: unknown,
  checks: readonly CheckResult[],
  quoteSha256: string | undefined,
): ProviderIdentity => {
  const simulated = checks.some((c) => c.simulated === true) || field(report, 'simulated') === true;
  const tcb = checks.find((c) => c.id === 'tdx.quote');
  const tcbStatus =
    tcb === undefined
      ? 'unknown'
      : tcb.simulated === true
        ? 'SIMULATED (no Intel TCB)'
        : (/TCB status (\S+)/.exec(tcb.detail)?.[1] ?? (tcb.status === 'pass' ? 'accepted' : 'rejected'));
  const identity: ProviderIdentity = {
    platform: String(field(report, 'platform') ?? 'unknown'),
    simulated,
    measurements: {},
    tcbStatus,
    gpus: [],
    ...(quoteSha256 === undefined ? {} : { quoteSha256 }),
  };
  const quoteHex = field(report, 'intel_quote');
  if (typeof quoteHex === 'string') {
    try {
      const q = parseQuote(new Uint8Array(Buffer.from(quoteHex.replace(/^0x/i, ''), 'hex'))).report;
      identity.measurements = {
        mrtd: toHex(q.mrTd),
        rtmr0: toHex(q.rtmr0),
        rtmr1: toHex(q.rtmr1),
        rtmr2: toHex(q.rtmr2),
        rtmr3: toHex(q.rtmr3),
      };
    } catch {
      // Unparseable quote: tdx.quote already failed; nothing to show.
    }
  }
  const compose = field(field(report, 'info'), 'compose_hash');
  if (typeof compose === 'string') identity.composeHash = compose;
  const payload = field(report, 'nvidia_payload');
  if (typeof payload === 'string') {
    try {
      const parsed = parseNvidiaPayload(payload);
      parsed.evidenceList.forEach((entry, index) => {
        const gpu: ProviderIdentity['gpus'][number] = { index, arch: parsed.arch, ccMode: 'unknown' };
        try {
          const ev = parseGpuEvidence(entry.evidence);
          if (ev.featureFlag !== undefined)
            gpu.ccMode = CC_MODES[ev.featureFlag] ?? `feature flag ${ev.featureFlag}`;
          if (ev.driverVersion !== undefined) gpu.driver = ev.driverVersion;
          if (ev.vbiosVersion !== undefined) gpu.vbios = ev.vbiosVersion;
        } catch {
          // gpu.local already reports unparseable evidence.
        }
        identity.gpus.push(gpu);
      });
    } catch {
      // gpu.payload-nonce already reports an unparseable payload.
    }
  }
  return identity;
};
