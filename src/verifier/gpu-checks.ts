import { equalBytes } from '../bytes/index.js';
import {
  checkGpuEvidence,
  EVIDENCE_NONCE_LENGTH,
  EVIDENCE_NONCE_OFFSET,
  fetchNrasJwks,
  NVIDIA_DEVICE_IDENTITY_CA_SHA256,
  type NvidiaPayload,
  parseNvidiaPayload,
  sha256Fingerprint,
  splitPemChain,
  submitToNras,
  verifyNrasResult,
} from '../gpu/index.js';
import type { CheckList } from './check-list.js';
import type { AttestationView } from './report-shape.js';

const errorText = (error: unknown): string => (error instanceof Error ? error.message : 'unknown error');

const TITLES = {
  payload: 'nvidia_payload is for our nonce',
  evidence: 'every GPU evidence blob carries our nonce at [4, 36)',
  local: 'GPU evidence signatures and certificate chains verify (pinned NVIDIA root)',
  nras: 'NVIDIA NRAS appraises the evidence (JWTs verified against its JWKS)',
} as const;

/** The payload, decoded, or why it could not be. `undefined` payload text = the report has none. */
export const readNvidiaPayload = (report: AttestationView): { payload?: NvidiaPayload; error?: string } => {
  if (report.nvidia_payload === undefined || report.nvidia_payload === '') return {};
  try {
    return { payload: parseNvidiaPayload(report.nvidia_payload) };
  } catch (error) {
    return { error: errorText(error) };
  }
};

/** True when any chain in the payload ends at one of the synthetic roots (simulated GPUs). */
export const payloadUsesRoots = (payload: NvidiaPayload | undefined, roots: readonly string[]): boolean =>
  payload?.evidenceList.some((entry) => {
    try {
      const root = splitPemChain(entry.certificateChain).at(-1);
      return root !== undefined && roots.includes(sha256Fingerprint(root));
    } catch {
      return false;
    }
  }) ?? false;

export interface GpuCheckInput {
  report: AttestationView;
  payload?: NvidiaPayload;
  payloadError?: string;
  nonce: Uint8Array;
  nonceHex: string;
  now: Date;
  allowSimulated: boolean;
  simulatedRoots: readonly string[];
  allowNoGpu: boolean;
  allowSampleNonces: boolean;
  /**
   * A 0G broker's static quote: the payload's nonce was chosen by the broker. The evidence is
   * checked against that nonce (its own consistency, signatures, chains, NRAS), and
   * `gpu.payload-nonce` is skipped, saying the evidence is not for our nonce.
   */
  nonceFromPayload?: boolean;
  offline: boolean;
  fetch?: typeof globalThis.fetch;
  nrasUrl?: string;
}

/**
 * The GPU checks (docs/platforms.md, "NVIDIA GPU evidence"; docs/protocol.md, nvidia_payload):
 * `gpu.payload-nonce`, `gpu.evidence-nonce`, `gpu.local` (P-384 signature by the leaf key and the
 * chain to the pinned NVIDIA Device Identity CA; the synthetic test root only with allowSimulated)
 * and, unless offline, `gpu.nras` (submit the payload unchanged, verify every JWT against NRAS's
 * JWKS: issuer, window, eat_nonce, overall result, per-GPU digests and claims).
 */
export const checkGpu = async (list: CheckList, input: GpuCheckInput): Promise<void> => {
  const { payload } = input;
  if (payload === undefined) {
    const why = input.payloadError ?? 'the report carries no nvidia_payload';
    if (input.payloadError === undefined && input.allowNoGpu) {
      for (const [id, title] of ids()) list.skip(id, title, `${why} (allowed: --allow-no-gpu)`);
      return;
    }
    list.fail('gpu.payload-nonce', TITLES.payload, why);
    for (const [id, title] of ids().slice(1)) list.skip(id, title, 'no usable nvidia_payload');
    return;
  }

  let nonce = input.nonce;
  let nonceHex = input.nonceHex;
  if (input.nonceFromPayload === true) {
    nonce = payload.nonce;
    nonceHex = Buffer.from(payload.nonce).toString('hex');
    list.skip(
      'gpu.payload-nonce',
      TITLES.payload,
      `NOT FRESH: nvidia_payload.nonce ${nonceHex} was chosen by the 0G broker, not our nonce; the evidence is checked against it`,
    );
  } else if (equalBytes(payload.nonce, input.nonce)) {
    list.pass(
      'gpu.payload-nonce',
      TITLES.payload,
      `nonce matches, ${payload.evidenceList.length} GPU(s), ${payload.arch}`,
    );
  } else {
    list.fail('gpu.payload-nonce', TITLES.payload, 'nvidia_payload.nonce is not our nonce');
  }

  const wrongNonce = payload.evidenceList
    .map((entry, i) => ({ i, ok: evidenceNonceIs(entry.evidence, nonce) }))
    .filter((r) => !r.ok)
    .map((r) => r.i);
  if (wrongNonce.length === 0)
    list.pass(
      'gpu.evidence-nonce',
      TITLES.evidence,
      `${payload.evidenceList.length} of ${payload.evidenceList.length}`,
    );
  else
    list.fail(
      'gpu.evidence-nonce',
      TITLES.evidence,
      `GPU ${wrongNonce.join(', ')}: evidence is for another nonce`,
    );

  let simulated = false;
  const localFailures: string[] = [];
  payload.evidenceList.forEach((entry, i) => {
    const run = (roots: readonly string[]) =>
      checkGpuEvidence(entry, {
        nonce,
        now: input.now,
        pinnedRoots: roots,
        allowSampleNonces: input.allowSampleNonces,
      });
    let result = run([NVIDIA_DEVICE_IDENTITY_CA_SHA256]);
    if (result.checks.chain === false && input.allowSimulated && input.simulatedRoots.length > 0) {
      const retry = run(input.simulatedRoots);
      if (retry.checks.chain === true) {
        result = retry;
        simulated = true;
      }
    }
    // The nonce is `gpu.evidence-nonce`'s job; here: format, signature, chain, published samples.
    for (const name of ['format', 'sampleNonce', 'signature', 'chain'] as const) {
      if (result.checks[name] !== true) {
        const reason =
          result.failure?.check === name ? result.failure.reason : `${name} could not be checked`;
        localFailures.push(`GPU ${i} ${name}: ${reason}`);
        break;
      }
    }
  });
  if (localFailures.length > 0) list.fail('gpu.local', TITLES.local, localFailures.join('; '));
  else if (simulated)
    list.pass(
      'gpu.local',
      TITLES.local,
      'SIMULATED: chains to the synthetic test root (allowed by --allow-simulated)',
      true,
    );
  else
    list.pass(
      'gpu.local',
      TITLES.local,
      `${payload.evidenceList.length} GPU(s): signature and chain to the NVIDIA Device Identity CA`,
    );

  if (input.offline) {
    list.skip('gpu.nras', TITLES.nras, 'offline: NRAS not consulted');
    return;
  }
  if (simulated || payloadUsesRoots(payload, input.simulatedRoots)) {
    list.skip('gpu.nras', TITLES.nras, 'simulated GPU evidence: NRAS cannot appraise it');
    return;
  }
  try {
    const nras = {
      ...(input.fetch === undefined ? {} : { fetch: input.fetch }),
      ...(input.nrasUrl === undefined ? {} : { baseUrl: input.nrasUrl }),
    };
    const answer = await submitToNras(input.report.nvidia_payload as string, nras);
    const jwks = await fetchNrasJwks(nras);
    const verdict = await verifyNrasResult(answer, {
      jwks,
      nonceHex,
      gpuCount: payload.evidenceList.length,
      now: input.now,
    });
    if (verdict.ok) {
      list.pass(
        'gpu.nras',
        TITLES.nras,
        `overall result true for ${payload.evidenceList.length} GPU(s); tokens signed, nonce bound, measres success, secboot on, debug disabled`,
      );
    } else {
      const errors = Object.entries(verdict.errors).map(([name, code]) => `${name}: ${code}`);
      list.fail('gpu.nras', TITLES.nras, `failed: ${[...verdict.failures, ...errors].join(', ')}`);
    }
  } catch (error) {
    list.fail('gpu.nras', TITLES.nras, errorText(error));
  }
};

const ids = (): [string, string][] => [
  ['gpu.payload-nonce', TITLES.payload],
  ['gpu.evidence-nonce', TITLES.evidence],
  ['gpu.local', TITLES.local],
  ['gpu.nras', TITLES.nras],
];

const evidenceNonceIs = (evidence: Uint8Array, nonce: Uint8Array): boolean =>
  evidence.length >= EVIDENCE_NONCE_OFFSET + EVIDENCE_NONCE_LENGTH &&
  equalBytes(evidence.subarray(EVIDENCE_NONCE_OFFSET, EVIDENCE_NONCE_OFFSET + EVIDENCE_NONCE_LENGTH), nonce);
