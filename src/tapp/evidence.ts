import { z } from 'zod';

/**
 * The evidence blob of GetEvidence: JSON bytes from Tapp's attestation agent,
 * `{"quote": b64, "cc_eventlog": b64 | null, …}`, to which Tapp adds `"runtime_data": b64`
 * (0g-tapp src/boot/mod.rs `attach_runtime_data`; standard base64 with padding). Other keys (e.g.
 * `gpu_evidence`) are kept.
 */
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

export const tappEvidenceSchema = z.looseObject({
  quote: base64.min(4),
  cc_eventlog: base64.nullable().optional(),
  runtime_data: base64.optional(),
});

export interface TappEvidence {
  quote: Uint8Array;
  /** The CCEL event log as Tapp sent it (base64), when present. */
  ccEventlog?: string;
  /** The runtime_data bytes exactly as transmitted; absent from Tapp versions before the nonce field. */
  runtimeData?: Uint8Array;
}

export class EvidenceFormatError extends Error {
  override readonly name = 'EvidenceFormatError';
}

const decodeBase64 = (field: string, value: string): Uint8Array => {
  const bytes = Buffer.from(value, 'base64');
  // Node's decoder skips junk silently; a round trip proves the text was canonical base64.
  if (bytes.toString('base64') !== value)
    throw new EvidenceFormatError(`evidence ${field} is not canonical base64`);
  return new Uint8Array(bytes);
};

export const parseTappEvidence = (evidence: Uint8Array): TappEvidence => {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(evidence));
  } catch {
    throw new EvidenceFormatError(`evidence is not UTF-8 JSON (${evidence.length} bytes)`);
  }
  const parsed = tappEvidenceSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EvidenceFormatError(
      `evidence is malformed${issue === undefined ? '' : ` at ${issue.path.join('.') || 'body'}: ${issue.message}`}`,
    );
  }
  const result: TappEvidence = { quote: decodeBase64('quote', parsed.data.quote) };
  if (typeof parsed.data.cc_eventlog === 'string') result.ccEventlog = parsed.data.cc_eventlog;
  if (parsed.data.runtime_data !== undefined) {
    result.runtimeData = decodeBase64('runtime_data', parsed.data.runtime_data);
  }
  return result;
};
