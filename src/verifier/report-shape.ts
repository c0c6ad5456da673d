import { z } from 'zod';

/**
 * The attestation fields the verifier reads (docs/protocol.md, "Attestation report"): the NEAR-compatible
 * core plus our labelled extras. Extra keys are kept and ignored; a provider's claims about itself
 * (`simulated`, `platform`, `report_data_scheme`) are only hints that the checks confirm or refute
 * from the quote, never trusted alone.
 */
const hex = z.string().regex(/^(?:0x)?[0-9a-fA-F]*$/, 'expected hex');

export const attestationSchema = z.looseObject({
  signing_address: hex.min(1),
  signing_algo: z.string().optional(),
  signing_public_key: hex.optional(),
  request_nonce: z.string(),
  intel_quote: hex.min(2),
  nvidia_payload: z.string().optional(),
  /** Dstack: a list of events, or (older agents, the NEAR gateway) a JSON string of one. */
  event_log: z.union([z.array(z.unknown()), z.string()]).optional(),
  info: z.record(z.string(), z.unknown()).optional(),
  platform: z.string().optional(),
  report_data_scheme: z.string().optional(),
  simulated: z.boolean().optional(),
  warning: z.string().optional(),
  gpu: z.looseObject({ simulated: z.boolean().optional() }).optional(),
  /** 0G Tapp scheme: the exact runtime_data bytes (UTF-8 JSON) whose sha512 is report_data. */
  runtime_data: z.string().optional(),
  /** NEAR AI: report_data[0, 32) = sha256(public key ‖ TLS certificate fingerprint). */
  tls_cert_fingerprint: hex.optional(),
});

export type AttestationView = z.output<typeof attestationSchema>;

/**
 * Picks the attestation out of what a provider returned: ours is the top-level object; a NEAR
 * cloud-api answer wraps the model's attestation in `model_attestations[0]`.
 */
export const selectAttestation = (value: unknown): unknown => {
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const models = record['model_attestations'];
  if (record['intel_quote'] === undefined && Array.isArray(models)) return models[0];
  return value;
};

/** Parses a report; the error names the first bad field only (never values). */
export const parseAttestation = (
  value: unknown,
): { ok: true; report: AttestationView } | { ok: false; reason: string } => {
  const parsed = attestationSchema.safeParse(selectAttestation(value));
  if (parsed.success) return { ok: true, report: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, reason: `"${issue?.path.join('.') || '(root)'}" ${issue?.message ?? 'invalid'}` };
};

/** Strips an optional 0x and lowercases. */
export const normalizeHex = (value: string): string =>
  (value.startsWith('0x') || value.startsWith('0X') ? value.slice(2) : value).toLowerCase();
