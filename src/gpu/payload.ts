import { z } from 'zod';
import { toHex } from '../bytes/index.js';
import type { GpuArch, GpuEvidence } from './gpu-evidence-provider.js';

/**
 * The `nvidia_payload` of an attestation report (docs/protocol.md, "nvidia_payload"): a JSON *string*
 * that clients `JSON.parse` and POST unchanged to NRAS `/v3/attest/gpu`:
 *
 *   {"nonce":"<64 hex>","evidence_list":[{"certificate":"<base64 PEM chain>",
 *    "evidence":"<base64 raw SPDM report>","arch":"HOPPER"}],"arch":"HOPPER"}
 *
 * One entry per GPU in NVML index order: NRAS names its tokens GPU-0..n-1 in list order.
 */

export interface NvidiaPayload {
  nonce: Uint8Array;
  arch: GpuArch;
  evidenceList: { arch: GpuArch; certificateChain: string; evidence: Uint8Array }[];
}

const b64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/**
 * Builds the payload string. Throws a TypeError for no GPUs (a report without GPUs carries no
 * payload: the caller decides what the report says), for GPUs out of index order and for mixed
 * architectures (NRAS takes one top-level `arch`).
 */
export const buildNvidiaPayload = (nonce: Uint8Array, gpus: readonly GpuEvidence[]): string => {
  if (!(nonce instanceof Uint8Array) || nonce.length !== 32) {
    throw new TypeError('"nonce" expected Uint8Array of length 32');
  }
  const first = gpus[0];
  if (first === undefined) throw new TypeError('"gpus" expected at least one GPU');
  gpus.forEach((gpu, i) => {
    if (gpu.index !== i) throw new TypeError('"gpus" expected NVML index order 0..n-1');
    if (gpu.arch !== first.arch) throw new TypeError('"gpus" expected a single architecture');
  });
  // Key order is part of the contract: nonce, evidence_list, arch; certificate, evidence, arch.
  return JSON.stringify({
    nonce: toHex(nonce),
    evidence_list: gpus.map((gpu) => ({
      certificate: Buffer.from(gpu.certificateChain, 'utf8').toString('base64'),
      evidence: b64(gpu.evidence),
      arch: gpu.arch,
    })),
    arch: first.arch,
  });
};

const HEX64 = /^[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const arch = z.enum(['HOPPER', 'BLACKWELL']);
const base64 = z
  .string()
  .min(4)
  .max(1 << 20)
  .regex(BASE64, 'expected base64');

/** One evidence entry as nvattest and the known payload producers write it (extra keys allowed). */
export const evidenceEntrySchema = z.object({
  arch,
  certificate: base64,
  evidence: base64,
  /** nvattest and NEAR repeat the nonce per entry; Phala omits it. */
  nonce: z.string().regex(HEX64, 'expected 64 lowercase hex').optional(),
});

const payloadSchema = z.strictObject({
  nonce: z.string().regex(HEX64, 'expected 64 lowercase hex'),
  evidence_list: z.array(evidenceEntrySchema.strict()).min(1).max(64),
  arch,
  /** NRAS v4 field; allowed so a v4 body parses too. */
  claims_version: z.string().optional(),
});

/** Turns validated base64 fields into bytes and PEM text. */
export const decodeEvidenceEntry = (entry: z.output<typeof evidenceEntrySchema>) => ({
  arch: entry.arch,
  certificateChain: Buffer.from(entry.certificate, 'base64').toString('utf8'),
  evidence: new Uint8Array(Buffer.from(entry.evidence, 'base64')),
});

/**
 * Parses a `nvidia_payload` string strictly (used by the verifier). Throws an Error naming the
 * first bad field. An entry nonce, where present, must equal the top-level nonce; whether the
 * evidence carries that nonce is the local check's job.
 */
export const parseNvidiaPayload = (payload: string): NvidiaPayload => {
  if (typeof payload !== 'string') throw new Error('nvidia_payload: expected a JSON string');
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    throw new Error('nvidia_payload: not valid JSON');
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`nvidia_payload: "${issue?.path.join('.') ?? ''}" ${issue?.message ?? 'invalid'}`);
  }
  const { nonce, evidence_list, arch: topArch } = parsed.data;
  evidence_list.forEach((entry, i) => {
    if (entry.nonce !== undefined && entry.nonce !== nonce) {
      throw new Error(`nvidia_payload: "evidence_list.${i}.nonce" differs from the top-level nonce`);
    }
    if (entry.arch !== topArch) {
      throw new Error(`nvidia_payload: "evidence_list.${i}.arch" differs from the top-level arch`);
    }
  });
  return {
    nonce: new Uint8Array(Buffer.from(nonce, 'hex')),
    arch: topArch,
    evidenceList: evidence_list.map(decodeEvidenceEntry),
  };
};
