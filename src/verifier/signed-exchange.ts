import type { CheckList } from './check-list.js';
import type { AttestedSigner } from './report-checks.js';
import { checkSignedBytes } from './signed-bytes.js';
import { fetchWire, jsonOf } from './wire.js';

export interface ExchangeInput {
  fetch: typeof globalThis.fetch;
  /** API root ending in /v1. */
  api: string;
  model: string;
  stream: boolean;
  signer: AttestedSigner | undefined;
  headers: Record<string, string>;
}

const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/**
 * The response id a client looks the signature up by (CONTRACT.md, "Response ids"): the
 * `ZG-Res-Key` header, else the body's `id`, else (streams) the first SSE chunk that has one.
 */
export const responseIdOf = (headers: Headers, body: Uint8Array, stream: boolean): string | undefined => {
  const header = headers.get('zg-res-key');
  if (header !== null && header !== '') return header;
  if (!stream) {
    const json = jsonOf(body) as { id?: unknown } | undefined;
    return typeof json?.id === 'string' ? json.id : undefined;
  }
  for (const line of textOf(body).split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '[DONE]') break;
    const json = jsonOf(new TextEncoder().encode(data)) as { id?: unknown } | undefined;
    if (typeof json?.id === 'string' && json.id !== '') return json.id;
  }
  return undefined;
};

/**
 * `signature.{json,stream}.text` and `.signer`: one chat completion through the provider, exact
 * request and response bytes kept, then `GET /signature/{id}`:
 * - `.text`: the signed text is sha256hex(request bytes) ":" sha256hex(response bytes), recomputed
 *   from what went over the wire (a changed byte on either side fails it);
 * - `.signer`: the signature over that text was made by the attested key (EIP-191 recovery for
 *   ecdsa, Ed25519 verification with the attested public key).
 */
export const checkSignedExchange = async (list: CheckList, input: ExchangeInput): Promise<void> => {
  const kind = input.stream ? 'stream' : 'json';
  const textId = `signature.${kind}.text`;
  const signerId = `signature.${kind}.signer`;
  const what = input.stream ? 'streaming' : 'non-streaming';
  const textTitle = `${what} completion: signed text is sha256(request bytes):sha256(response bytes)`;
  const signerTitle = `${what} completion: signature made by the attested key`;
  const failBoth = (reason: string) => {
    list.fail(textId, textTitle, reason);
    list.fail(signerId, signerTitle, reason);
  };
  const algo = input.signer?.algo ?? 'ecdsa';

  const request = new TextEncoder().encode(
    JSON.stringify({
      model: input.model,
      messages: [{ role: 'user', content: 'teeml-sidecar verify: reply with one short sentence.' }],
      max_tokens: 16,
      stream: input.stream,
      ...(input.stream ? { stream_options: { include_usage: true } } : {}),
    }),
  );
  const completion = await fetchWire(input.fetch, `${input.api}/chat/completions`, {
    method: 'POST',
    headers: {
      ...input.headers,
      'content-type': 'application/json',
      accept: input.stream ? 'text/event-stream' : 'application/json',
      // The hashed bytes are the bytes a client's parser sees (CONTRACT.md): ask for no encoding.
      'accept-encoding': 'identity',
    },
    body: request,
  });
  if (completion.status !== 200) {
    failBoth(`POST /chat/completions answered HTTP ${completion.status}`);
    return;
  }
  const encoding = completion.headers.get('content-encoding');
  const id = responseIdOf(completion.headers, completion.body, input.stream);
  if (id === undefined) {
    failBoth('the completion carries no response id (ZG-Res-Key header, body id or SSE chunk id)');
    return;
  }
  const signatureUrl = `${input.api}/signature/${encodeURIComponent(id)}?model=${input.model}&signing_algo=${algo}`;
  const answer = await fetchWire(input.fetch, signatureUrl, {
    headers: { ...input.headers, accept: 'application/json' },
  });
  const record = jsonOf(answer.body) as Record<string, unknown> | undefined;
  if (
    answer.status !== 200 ||
    typeof record?.['text'] !== 'string' ||
    typeof record['signature'] !== 'string'
  ) {
    failBoth(`GET /signature/{id} answered HTTP ${answer.status} without a signature record`);
    return;
  }
  checkSignedBytes(list, {
    kind,
    request,
    response: completion.body,
    record: {
      text: record['text'],
      signature: record['signature'],
      signing_address: typeof record['signing_address'] === 'string' ? record['signing_address'] : undefined,
    },
    signer: input.signer,
    encoding,
  });
};
