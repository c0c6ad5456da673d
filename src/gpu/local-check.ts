import { verify } from 'node:crypto';
import { equalBytes, toHex } from '../bytes/index.js';
import { unavailable } from '../errors/index.js';
import { NVIDIA_DEVICE_IDENTITY_CA_SHA256, splitPemChain, verifyCertificateChain } from './cert-chain.js';
import { EVIDENCE_NONCE_LENGTH, type ParsedGpuEvidence, parseGpuEvidence } from './evidence.js';
import type { GpuEvidence } from './gpu-evidence-provider.js';

/**
 * The minimal local check of GPU evidence before it is served or accepted (docs/platforms.md, "Minimal
 * local check"): the nonce at [4, 36) is ours, the ECDSA P-384 signature verifies with the leaf
 * certificate's key, and the chain verifies link by link to a pinned root. Full appraisal
 * (reference measurements, revocation) is NRAS's job.
 *
 * It fails closed: anything that cannot be parsed or checked counts as a failure.
 */

/**
 * Nonces of evidence that is public (attestation-fixtures README, sections 4 and 5). Evidence or a
 * request carrying one of these is a replay of a published sample, never fresh evidence.
 */
export const KNOWN_SAMPLE_NONCES: readonly string[] = Object.freeze([
  // nvtrust local_gpu_verifier samples and NVAT unit-test data (hopper, blackwell, invalid-signature).
  '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb',
  // NVAT serialized_test_evidence/multi_gpu_hopper.json (4 GPUs).
  'e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576',
  // nvtrust ppcie-verifier-sdk-cpp tests/data/gpu_evidence.json (8 GPUs).
  '4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e',
  // Published NEAR AI capture (teep e2e recording).
  'e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609',
  // Published Phala capture (teep e2e recording): evidence, NRAS body and client nonces.
  'ef0ed0e8d721eed751bb17a37ffdabfa533973166513f7ad52df7330b9f56c10',
  'aa8aa7cb237cb07d054e2ba1c1660b6d6bf60a1501e4d33bec8115148543e501',
  '732f6f1c1b4445d4ab4ad892728343f7fcb0f595ce79f91ecfdeaae657bb7c7e',
  // NEAR private-ml-sdk NRAS samples.
  '56f5c2c4f23fda73db0536276f39a266569e1517de34023817ce455a79efb6d7',
  'd6a4f9aa17f488cfe8163dcb47cc4f778d3f1c52d42a1f9e6de5e43077ce05cd',
  // An all-zero nonce is never a fresh one.
  '0000000000000000000000000000000000000000000000000000000000000000',
]);

export interface LocalCheckOptions {
  /** The nonce this evidence must be bound to (32 bytes). */
  nonce: Uint8Array;
  /**
   * SHA-256 fingerprints of acceptable roots. Default: only the real NVIDIA Device Identity CA.
   * The synthetic test root is accepted only when a caller passes it here (simulated mode).
   */
  pinnedRoots?: readonly string[];
  /** The clock the certificates' validity is checked at. */
  now: Date;
  /**
   * Accept the published sample nonces above. Only for tests that replay public fixtures; a
   * running sidecar or verifier never sets it.
   */
  allowSampleNonces?: boolean;
}

export type LocalCheckName = 'format' | 'sampleNonce' | 'nonce' | 'signature' | 'chain';

export interface LocalCheckResult {
  ok: boolean;
  /** Each check: true passed, false failed, null could not run (an earlier step failed). */
  checks: Record<LocalCheckName, boolean | null>;
  /** The first failing check and why, without echoing evidence bytes. */
  failure?: { check: LocalCheckName; reason: string };
  parsed?: ParsedGpuEvidence;
}

type EvidenceInput = Pick<GpuEvidence, 'evidence' | 'certificateChain'>;

export const checkGpuEvidence = (gpu: EvidenceInput, options: LocalCheckOptions): LocalCheckResult => {
  const checks: Record<LocalCheckName, boolean | null> = {
    format: null,
    sampleNonce: null,
    nonce: null,
    signature: null,
    chain: null,
  };
  const failures: { check: LocalCheckName; reason: string }[] = [];
  const record = (check: LocalCheckName, passed: boolean, reason: string) => {
    checks[check] = passed;
    if (!passed) failures.push({ check, reason });
  };

  if (!(options.nonce instanceof Uint8Array) || options.nonce.length !== EVIDENCE_NONCE_LENGTH) {
    throw new TypeError(`"nonce" expected Uint8Array of length ${EVIDENCE_NONCE_LENGTH}`);
  }

  let parsed: ParsedGpuEvidence | undefined;
  try {
    parsed = parseGpuEvidence(gpu.evidence);
    record('format', true, '');
  } catch (error) {
    record('format', false, (error as Error).message);
  }

  const chain = verifyCertificateChain(gpu.certificateChain, {
    pinnedRoots: options.pinnedRoots ?? [NVIDIA_DEVICE_IDENTITY_CA_SHA256],
    now: options.now,
  });
  record('chain', chain.ok, chain.ok ? '' : chain.reason);

  if (parsed) {
    const sample =
      KNOWN_SAMPLE_NONCES.includes(toHex(parsed.nonce)) || KNOWN_SAMPLE_NONCES.includes(toHex(options.nonce));
    record(
      'sampleNonce',
      options.allowSampleNonces === true || !sample,
      'nonce is a published sample nonce (replayed evidence)',
    );
    record(
      'nonce',
      equalBytes(parsed.nonce, options.nonce),
      'evidence nonce at [4, 36) is not the expected nonce',
    );
    // The leaf key signs; a broken chain leaves the key untrusted, but the signature is still
    // checked against it so that the result names every failure.
    const leafKey = chain.ok ? chain.leaf.publicKey : leafKeyOf(gpu.certificateChain);
    if (leafKey === undefined) {
      checks.signature = null;
    } else {
      let valid = false;
      try {
        valid = verify(
          'sha384',
          parsed.signedBytes,
          { key: leafKey, dsaEncoding: 'ieee-p1363' },
          parsed.signature,
        );
      } catch {
        valid = false;
      }
      record('signature', valid, 'ECDSA P-384 signature does not verify with the leaf certificate key');
    }
  }

  const ok = failures.length === 0 && Object.values(checks).every((c) => c === true);
  const result: LocalCheckResult = { ok, checks };
  // A check that could not run (null) fails closed too; name it when nothing else failed.
  const unrun = (Object.keys(checks) as LocalCheckName[]).find((name) => checks[name] === null);
  const first =
    failures[0] ?? (unrun === undefined ? undefined : { check: unrun, reason: 'could not be checked' });
  if (first) result.failure = first;
  if (parsed) result.parsed = parsed;
  return result;
};

const leafKeyOf = (pem: string) => {
  try {
    return splitPemChain(pem)[0]?.publicKey;
  } catch {
    return undefined;
  }
};

/**
 * Checks every GPU's evidence and throws a SidecarError (503 `gpu_evidence_invalid`) naming the
 * GPU index and the failed check. Used before evidence is served.
 */
export const assertGpuEvidence = (gpus: readonly EvidenceInput[], options: LocalCheckOptions): void => {
  for (const [i, gpu] of gpus.entries()) {
    const result = checkGpuEvidence(gpu, options);
    if (!result.ok) {
      throw unavailable(
        `GPU ${i} evidence failed the local check (${result.failure?.check ?? 'unknown'}): ${result.failure?.reason ?? ''}`,
        'gpu_evidence_invalid',
        { details: { gpu: i, check: result.failure?.check } },
      );
    }
  }
};
