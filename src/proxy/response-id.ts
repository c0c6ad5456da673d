import { randomBytes } from 'node:crypto';

/** `chatcmpl-<24 hex>` for responses whose upstream gave no id (docs/protocol.md, Response ids). */
export const generateResponseId = (): string => `chatcmpl-${randomBytes(12).toString('hex')}`;

/**
 * Ids we look up: what vLLM and OpenAI produce (`chatcmpl-…`, `cmpl-…`, `embd-…`, uuids), bounded in
 * length. Anything else is rejected before it reaches a store key.
 */
export const RESPONSE_ID_PATTERN = /^[A-Za-z0-9._:~-]{1,256}$/;

/** The string `id` of a JSON object, when it has a usable one. */
export const idOf = (value: unknown): string | undefined => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && RESPONSE_ID_PATTERN.test(id) ? id : undefined;
};
