import { SidecarError } from '../errors/index.js';
import { type E2eeEndpoint, isObject } from './fields.js';

/**
 * Whether a parameter asks for its answer field. vLLM's pydantic models read leniently: `false`
 * is 0 for an integer (completions `logprobs: 0` still returns the sampled tokens), and 0 is false
 * for a boolean. So an integer parameter asks unless null or absent, a boolean one unless also
 * false or 0; anything else (strings such as "false" included) counts as asking.
 */
const asked = (kind: 'int' | 'bool', v: unknown): boolean =>
  v !== undefined && v !== null && !(kind === 'bool' && (v === false || v === 0));

/**
 * Request parameters whose answers carry the prompt or the completion outside the fields NEAR AI's
 * protocol seals (src/e2ee/fields.ts): vLLM's `prompt_logprobs` (each prompt token's
 * `decoded_token`), `return_token_ids` (`token_ids`, `prompt_token_ids`: a public tokenizer turns
 * them back into text), completions `logprobs` (`choices[].logprobs.tokens`, `top_logprobs`: the
 * protocol seals only chat logprobs), and chat `logprobs`/`top_logprobs` unless the extended fields
 * are sealed (`X-Encrypt-All-Fields`, or any extended field came sealed). docs/protocol.md, E2EE.
 */
const unsealableParams = (
  endpoint: E2eeEndpoint,
  sealsAllFields: boolean,
): Array<[string, 'int' | 'bool']> => {
  const params: Array<[string, 'int' | 'bool']> = [
    ['prompt_logprobs', 'int'],
    ['return_token_ids', 'bool'],
  ];
  if (endpoint === 'completions') params.push(['logprobs', 'int']);
  else if (!sealsAllFields) params.push(['logprobs', 'bool'], ['top_logprobs', 'int']);
  return params;
};

/**
 * Throws 400 `e2ee_unsealable_parameter` for an E2EE request (its decrypted body) that asks for an
 * answer field the sidecar could only send in clear; checked before the model server is called.
 */
export const refuseUnsealableParams = (
  body: Record<string, unknown>,
  endpoint: E2eeEndpoint,
  sealsAllFields: boolean,
): void => {
  const param = unsealableParams(endpoint, sealsAllFields).find(([p, kind]) => asked(kind, body[p]))?.[0];
  if (param === undefined) return;
  throw new SidecarError(
    `"${param}" cannot be used with end-to-end encryption: its answer would carry prompt or completion tokens in clear (docs/protocol.md, E2EE)`,
    { status: 400, code: 'e2ee_unsealable_parameter', param },
  );
};

/** Answer fields (body or SSE chunk, and each choice) that spell out tokens and are never sealed. */
const TOKEN_FIELDS = ['prompt_logprobs', 'prompt_token_ids', 'token_ids'] as const;

/**
 * Removes, in place, any answer field the protocol does not seal and that carries tokens, should the
 * model server send one unasked (refuseUnsealableParams keeps it from being asked): never relayed in
 * clear. Logprobs the protocol cannot seal become null, the value OpenAI's shape has for none.
 */
export const withholdUnsealable = (
  value: Record<string, unknown>,
  endpoint: E2eeEndpoint,
  sealsAllFields: boolean,
): void => {
  for (const key of TOKEN_FIELDS) delete value[key];
  if (!Array.isArray(value.choices)) return;
  for (const choice of value.choices) {
    if (!isObject(choice)) continue;
    for (const key of TOKEN_FIELDS) delete choice[key];
    if ((endpoint === 'completions' || !sealsAllFields) && choice.logprobs !== undefined)
      choice.logprobs = null;
  }
};
