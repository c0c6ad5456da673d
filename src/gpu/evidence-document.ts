import { z } from 'zod';
import { unavailable } from '../errors/index.js';
import { parseGpuEvidence } from './evidence.js';
import type { GpuEvidence } from './gpu-evidence-provider.js';
import { decodeEvidenceEntry, evidenceEntrySchema } from './payload.js';

/**
 * Evidence lists as other tools write them, accepted by the HTTP and fixture providers:
 *
 * - nvattest `collect-evidence` / NVAT test data: a JSON array of entries
 *   `{arch, certificate, evidence, nonce?, driver_version?, vbios_version?, version?}`;
 * - an `nvidia_payload`-like object `{evidence_list: [entries], nonce?, arch?}`.
 *
 * `certificate` is base64 of the PEM chain and `evidence` base64 of the raw SPDM report (same as
 * docs/protocol.md `nvidia_payload`). Unknown extra keys are ignored; the known ones are checked.
 */
const entry = evidenceEntrySchema.extend({
  driver_version: z.string().max(64).optional(),
  vbios_version: z.string().max(64).optional(),
  version: z.string().max(16).optional(),
});

const arraySchema = z.array(entry).min(1).max(64);
const objectSchema = z.object({
  evidence_list: z.array(entry).min(1).max(64),
  nonce: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  arch: z.enum(['HOPPER', 'BLACKWELL']).optional(),
});

export interface EvidenceDocument {
  gpus: GpuEvidence[];
  /** Nonces the document states (top-level and per entry), lowercase hex. */
  statedNonces: string[];
}

const malformed = (source: string, message: string, cause?: unknown) =>
  unavailable(`GPU evidence from ${source} is malformed: ${message}`, 'gpu_evidence_malformed', { cause });

/** Validates a parsed JSON document and decodes it into GpuEvidence in list (= index) order. */
export const parseEvidenceDocument = (json: unknown, source: string): EvidenceDocument => {
  // Pick the form first so that errors name the field rather than "no union member matched".
  const parsed = Array.isArray(json) ? arraySchema.safeParse(json) : objectSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(source, `"${issue?.path.join('.') || '(root)'}" ${issue?.message ?? 'invalid'}`);
  }
  const entries = Array.isArray(parsed.data) ? parsed.data : parsed.data.evidence_list;
  const statedNonces =
    Array.isArray(parsed.data) || parsed.data.nonce === undefined ? [] : [parsed.data.nonce];
  const gpus = entries.map((raw, index): GpuEvidence => {
    if (raw.nonce !== undefined) statedNonces.push(raw.nonce);
    const decoded = decodeEvidenceEntry(raw);
    let info: ReturnType<typeof parseGpuEvidence>;
    try {
      info = parseGpuEvidence(decoded.evidence);
    } catch (cause) {
      throw malformed(source, `entry ${index}: ${(cause as Error).message}`, cause);
    }
    const gpu: GpuEvidence = {
      index,
      arch: decoded.arch,
      evidence: decoded.evidence,
      certificateChain: decoded.certificateChain,
    };
    const driverVersion = info.driverVersion ?? raw.driver_version;
    const vbiosVersion = info.vbiosVersion ?? raw.vbios_version;
    if (driverVersion !== undefined) gpu.driverVersion = driverVersion;
    if (vbiosVersion !== undefined) gpu.vbiosVersion = vbiosVersion;
    return gpu;
  });
  return { gpus, statedNonces };
};
