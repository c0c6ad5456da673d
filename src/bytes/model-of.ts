import { jsonOf } from './json-of.js';

/**
 * The `model` a JSON request body names (an OpenAI request's model), or undefined for any other
 * body: not JSON, not an object, or no `model` string. One reading for the gateway's policy and
 * answer checks and the verifier's signed-model check.
 */
export const modelOf = (body: Uint8Array): string | undefined => {
  const model = (jsonOf(body) as { model?: unknown } | undefined)?.model;
  return typeof model === 'string' ? model : undefined;
};
