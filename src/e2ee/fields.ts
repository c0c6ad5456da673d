/**
 * Which JSON fields carry user content, per NEAR AI's protocol (inference-proxy `src/encryption.rs`,
 * `decrypt_request_fields` / `encrypt_response_fields`). One walker per direction, shared by the
 * server (decrypt requests, encrypt answers) and the client half (the reverse), so both always agree
 * on the field set.
 *
 * Kinds:
 * - `text`: a string field; a non-empty string is a ciphertext (requests: a failure is an error).
 * - `lenient`: requests only, fields added by `X-Encrypt-All-Fields`; NEAR decrypts them "if they
 *   decrypt" so older clients that send them in plaintext keep working.
 * - `content`: a request message's content: a string ciphertext whose plaintext may be a JSON array
 *   of content parts (multimodal); an array in the request was not encrypted and passes through.
 * - `json`: a value that is not a string in plaintext (tool parameters schema, logprob byte arrays),
 *   encrypted as its JSON serialization.
 */
export type FieldKind = 'text' | 'lenient' | 'content' | 'json';

/** Endpoints whose fields the protocol defines and this sidecar supports. */
export type E2eeEndpoint = 'chat' | 'completions';

/** Visits one field: `holder[key]` (may be absent); `path` names it for error messages (no values). */
export type FieldVisitor = (
  holder: Record<string, unknown>,
  key: string,
  kind: FieldKind,
  path: string,
) => void;

/** A JSON object (not null, not an array): what the field tables walk. */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const each = (v: unknown, fn: (item: Record<string, unknown>, i: number) => void): void => {
  if (!Array.isArray(v)) return;
  v.forEach((item, i) => {
    if (isObject(item)) fn(item, i);
  });
};

/** Request fields: what a client encrypts and the sidecar decrypts. */
export const visitRequest = (
  body: Record<string, unknown>,
  endpoint: E2eeEndpoint,
  allFields: boolean,
  visit: FieldVisitor,
): void => {
  if (endpoint === 'completions') {
    const prompt = body.prompt;
    if (Array.isArray(prompt)) {
      // A batch of prompts: strings are ciphertexts; token-id arrays are not encrypted.
      prompt.forEach((p, i) => {
        if (typeof p === 'string')
          visit(prompt as unknown as Record<string, unknown>, String(i), 'text', `prompt[${i}]`);
      });
    } else {
      visit(body, 'prompt', 'text', 'prompt');
    }
    return;
  }
  each(body.messages, (msg, i) => {
    const at = `messages[${i}]`;
    visit(msg, 'content', 'content', `${at}.content`);
    visit(msg, 'reasoning_content', 'text', `${at}.reasoning_content`);
    visit(msg, 'reasoning', 'text', `${at}.reasoning`);
    if (isObject(msg.audio)) visit(msg.audio, 'data', 'text', `${at}.audio.data`);
    if (!allFields) return;
    visit(msg, 'refusal', 'lenient', `${at}.refusal`);
    visit(msg, 'name', 'lenient', `${at}.name`);
    each(msg.tool_calls, (call, j) => {
      if (!isObject(call.function)) return;
      visit(call.function, 'arguments', 'lenient', `${at}.tool_calls[${j}].function.arguments`);
      visit(call.function, 'name', 'lenient', `${at}.tool_calls[${j}].function.name`);
    });
    if (isObject(msg.function_call)) {
      visit(msg.function_call, 'arguments', 'lenient', `${at}.function_call.arguments`);
      visit(msg.function_call, 'name', 'lenient', `${at}.function_call.name`);
    }
  });
  if (!allFields) return;
  each(body.tools, (tool, i) => {
    if (!isObject(tool.function)) return;
    visit(tool.function, 'name', 'lenient', `tools[${i}].function.name`);
    visit(tool.function, 'description', 'lenient', `tools[${i}].function.description`);
    visit(tool.function, 'parameters', 'json', `tools[${i}].function.parameters`);
  });
  if (isObject(body.tool_choice) && isObject(body.tool_choice.function)) {
    visit(body.tool_choice.function, 'name', 'lenient', 'tool_choice.function.name');
  }
  if (isObject(body.function_call)) visit(body.function_call, 'name', 'lenient', 'function_call.name');
};

/** Answer fields: what the sidecar encrypts (JSON body or one SSE chunk) and a client decrypts. */
export const visitResponse = (
  body: Record<string, unknown>,
  endpoint: E2eeEndpoint,
  streaming: boolean,
  allFields: boolean,
  visit: FieldVisitor,
): void => {
  each(body.choices, (choice, i) => {
    if (endpoint === 'completions') {
      visit(choice, 'text', 'text', `choices[${i}].text`);
      return;
    }
    const key = streaming ? 'delta' : 'message';
    const msg = choice[key];
    if (!isObject(msg)) return;
    const at = `choices[${i}].${key}`;
    if (Array.isArray(msg.content)) {
      each(msg.content, (part, j) => visit(part, 'text', 'text', `${at}.content[${j}].text`));
    } else {
      visit(msg, 'content', 'text', `${at}.content`);
    }
    visit(msg, 'reasoning_content', 'text', `${at}.reasoning_content`);
    visit(msg, 'reasoning', 'text', `${at}.reasoning`);
    if (isObject(msg.audio)) visit(msg.audio, 'data', 'text', `${at}.audio.data`);
    if (!allFields) return;
    visit(msg, 'refusal', 'text', `${at}.refusal`);
    each(msg.tool_calls, (call, j) => {
      if (!isObject(call.function)) return;
      visit(call.function, 'arguments', 'text', `${at}.tool_calls[${j}].function.arguments`);
      visit(call.function, 'name', 'text', `${at}.tool_calls[${j}].function.name`);
    });
    if (isObject(msg.function_call)) {
      visit(msg.function_call, 'arguments', 'text', `${at}.function_call.arguments`);
      visit(msg.function_call, 'name', 'text', `${at}.function_call.name`);
    }
    if (isObject(choice.logprobs)) {
      for (const list of ['content', 'refusal'] as const) {
        each(choice.logprobs[list], (entry, j) => {
          const p = `choices[${i}].logprobs.${list}[${j}]`;
          visit(entry, 'token', 'text', `${p}.token`);
          visit(entry, 'bytes', 'json', `${p}.bytes`);
          each(entry.top_logprobs, (top, k) => {
            visit(top, 'token', 'text', `${p}.top_logprobs[${k}].token`);
            visit(top, 'bytes', 'json', `${p}.top_logprobs[${k}].bytes`);
          });
        });
      }
    }
  });
};

/** The fields each set seals, in words (for a status page); the visitors above are the definition. */
export const fieldsProtected = (allFields: boolean): string =>
  allFields
    ? 'message contents, reasoning, audio, completion prompts and texts, tool calls (names and arguments), tool definitions (names, descriptions, parameters), tool choice, function names, refusals, logprob tokens'
    : 'message contents, reasoning, audio, completion prompts and texts';
