import type { E2eeEndpoint } from '../e2ee/index.js';
import { SidecarError } from '../errors/index.js';

/**
 * What the gateway lets leave while it encrypts (docs/protocol.md, E2EE, "Fields the gateway
 * sends"): every field of a request is either sealed by NEAR AI's protocol (with
 * `X-Encrypt-All-Fields: true`, src/e2ee/fields.ts) or on the allow-list below of fields that carry
 * no user content (numbers, booleans, fixed words). Anything else (stop sequences, metadata, `user`,
 * predicted outputs, JSON schemas, custom tools, vLLM documents and guided decoding, token-id
 * prompts, parameters whose answers the protocol leaves in clear) is refused before anything is
 * sent: the protocol has no sealed slot for it, and inventing one would break NEAR compatibility.
 *
 * A rule returns the path of the first value it refuses, or undefined.
 */
type Rule = (value: unknown, path: string) => string | undefined;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const when =
  (ok: (v: unknown) => boolean): Rule =>
  (v, path) =>
    v === null || ok(v) ? undefined : path;

const num = when((v) => typeof v === 'number');
const bool = when((v) => typeof v === 'boolean');
/** An id or a model name: routing, not content (OpenAI ids such as `call_…` are made by the model). */
const id = when((v) => typeof v === 'string');
const word = (...words: string[]): Rule => when((v) => typeof v === 'string' && words.includes(v));
/** A string field the protocol seals (client.ts seals every string it visits). */
const sealedText = id;
/** A value the protocol seals whole as its JSON text (message content, tool parameters). */
const sealedAny: Rule = () => undefined;
const emptyList = when((v) => Array.isArray(v) && v.length === 0);
/** Present but empty (clients such as LangChain send `logit_bias: {}`): nothing to leak. */
const empty = when(
  (v) => v === '' || (Array.isArray(v) ? v.length === 0 : isObject(v) && Object.keys(v).length === 0),
);
/** Only null: vLLM reads `false` as 0 for its integer fields, which still returns tokens. */
const nullOnly = when(() => false);

const anyOf =
  (...rules: Rule[]): Rule =>
  (v, path) => {
    let refused: string | undefined;
    for (const rule of rules) {
      refused = rule(v, path);
      if (refused === undefined) return undefined;
    }
    return refused;
  };

/** A field name safe to put in an error: a plain identifier, never a key that could be content. */
const nameOf = (key: string): string => (/^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(key) ? key : '<field>');

const fields =
  (table: Record<string, Rule>): Rule =>
  (v, path) => {
    if (v === null) return undefined;
    if (!isObject(v)) return path;
    for (const [key, value] of Object.entries(v)) {
      const at = path === '' ? nameOf(key) : `${path}.${nameOf(key)}`;
      const rule = Object.hasOwn(table, key) ? table[key] : undefined;
      const refused = rule === undefined ? at : rule(value, at);
      if (refused !== undefined) return refused;
    }
    return undefined;
  };

const list =
  (rule: Rule): Rule =>
  (v, path) => {
    if (v === null) return undefined;
    if (!Array.isArray(v)) return path;
    for (const [i, item] of v.entries()) {
      const refused = rule(item, `${path}[${i}]`);
      if (refused !== undefined) return refused;
    }
    return undefined;
  };

/** Numbers, booleans and fixed words both endpoints share (sampling, lengths, streaming). */
const SHARED: Record<string, Rule> = {
  model: id,
  stream: bool,
  stream_options: fields({ include_usage: bool, continuous_usage_stats: bool }),
  temperature: num,
  top_p: num,
  top_k: num,
  min_p: num,
  max_tokens: num,
  min_tokens: num,
  n: num,
  seed: num,
  presence_penalty: num,
  frequency_penalty: num,
  repetition_penalty: num,
  ignore_eos: bool,
  // vLLM: the prompt (or last message) comes back inside the sealed text or content.
  echo: bool,
  skip_special_tokens: bool,
  // Fields that may carry content, accepted only empty (or null); docs/protocol.md says why.
  stop: empty,
  logit_bias: empty,
  user: empty,
  metadata: empty,
  prompt_logprobs: nullOnly,
  return_token_ids: when((v) => v === false),
};

const content = anyOf(id, list(when(isObject)));
const name = sealedText;
const functionCall = fields({ name, arguments: sealedText });

const MESSAGE = fields({
  role: word('system', 'developer', 'user', 'assistant', 'tool', 'function'),
  content,
  name,
  refusal: sealedText,
  reasoning_content: sealedText,
  reasoning: sealedText,
  audio: fields({ data: sealedText, id }),
  tool_calls: list(fields({ id, type: word('function'), function: functionCall })),
  function_call: functionCall,
  tool_call_id: id,
  annotations: emptyList,
});

const CHAT = fields({
  ...SHARED,
  messages: (v, path) => (Array.isArray(v) ? list(MESSAGE)(v, path) : path),
  // Chat logprob tokens are sealed with X-Encrypt-All-Fields, which the gateway always sends.
  logprobs: bool,
  top_logprobs: num,
  parallel_tool_calls: bool,
  max_completion_tokens: num,
  reasoning_effort: word('none', 'minimal', 'low', 'medium', 'high'),
  verbosity: word('low', 'medium', 'high'),
  service_tier: word('auto', 'default', 'flex', 'scale', 'priority'),
  response_format: fields({ type: word('text', 'json_object') }),
  tools: list(
    fields({
      type: word('function'),
      function: fields({ name, description: sealedText, parameters: sealedAny, strict: bool }),
    }),
  ),
  tool_choice: anyOf(
    word('none', 'auto', 'required'),
    fields({ type: word('function'), function: fields({ name }) }),
  ),
  function_call: anyOf(word('none', 'auto'), fields({ name })),
  // Known switches only: a key is as free as a value, and could carry text (docs/protocol.md).
  chat_template_kwargs: fields({
    enable_thinking: bool,
    thinking: bool,
    add_generation_prompt: bool,
    continue_final_message: bool,
  }),
});

// Completions: only `prompt` is sealed (a string or strings; token arrays are not), and nothing of
// an answer but `choices[].text`, so `logprobs` (tokens in clear) is refused.
const COMPLETIONS = fields({
  ...SHARED,
  prompt: anyOf(id, list(id)),
  best_of: num,
  suffix: empty,
  logprobs: nullOnly,
});

/** Throws 400 `e2ee_field_unprotected` naming the first field the request may not carry in clear. */
export const assertE2eeProtected = (body: Record<string, unknown>, endpoint: E2eeEndpoint): void => {
  const refused = (endpoint === 'chat' ? CHAT : COMPLETIONS)(body, '');
  if (refused === undefined) return;
  throw new SidecarError(
    `request field "${refused}" is not end-to-end encrypted by the provider's E2EE protocol and may carry user content; nothing was sent (remove it, or run the gateway with --no-e2ee; docs/protocol.md, E2EE)`,
    { status: 400, code: 'e2ee_field_unprotected', param: refused },
  );
};
