import { generateResponseId, idOf } from './response-id.js';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export interface PreparedBody {
  /** The exact bytes to send (and hash). */
  body: Uint8Array;
  id: string;
  /** True when the upstream gave no id and one was injected (the body was serialized once). */
  injected: boolean;
}

/**
 * A non-streaming JSON answer: passed through byte for byte when it has an id; otherwise parsed,
 * given a generated id as its first key, and serialized once (CONTRACT.md: the bytes hashed are the
 * bytes sent). Returns undefined for a body that is not a JSON object (sent unsigned).
 */
export const prepareJsonBody = (
  bytes: Uint8Array,
  newId: () => string = generateResponseId,
): PreparedBody | undefined => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const id = idOf(parsed);
  if (id !== undefined) return { body: bytes, id, injected: false };
  const fresh = newId();
  const { id: _dropped, ...rest } = parsed as Record<string, unknown>;
  return { body: encoder.encode(JSON.stringify({ id: fresh, ...rest })), id: fresh, injected: true };
};
