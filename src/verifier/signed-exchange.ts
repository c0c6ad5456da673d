import { jsonOf } from '../bytes/index.js';
import { demoHeard } from '../demo-upstream/index.js';
import { createE2eeClient, type E2eeClient } from '../e2ee/index.js';
import { SIGNATURE_TRAILER_REQUEST_HEADER } from '../signatures/index.js';
import type { CheckList } from './check-list.js';
import type { AttestedSigner } from './report-checks.js';
import { signatureFromTrailer, type TrailerSignature } from './signature-from-trailer.js';
import { checkSignedBytes } from './signed-bytes.js';
import { fetchWire } from './wire.js';

export interface ExchangeInput {
  fetch: typeof globalThis.fetch;
  /** API root ending in /v1. */
  api: string;
  model: string;
  stream: boolean;
  signer: AttestedSigner | undefined;
  headers: Record<string, string>;
  /** Send the prompt end-to-end encrypted to the attested key and decrypt the answer (`e2ee.*`). */
  e2ee?: boolean;
}

const PROMPT = 'teeml-sidecar verify: reply with one short sentence.';

const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/**
 * The response id a client looks the signature up by (docs/protocol.md, "Response ids"): the
 * `ZG-Res-Key` header, else the body's `id`, else (streams) the first SSE chunk that has one.
 */
export const responseIdOf = (
  headers: { get(name: string): string | null },
  body: Uint8Array,
  stream: boolean,
): string | undefined => {
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
 * - `.text`: the signed text is [model ":"] sha256hex(request bytes) ":" sha256hex(response bytes),
 *   recomputed from what went over the wire (a changed byte on either side fails it; a signed model
 *   must be the one requested);
 * - `.signer`: the signature over that text was made by the attested key (EIP-191 recovery for
 *   ecdsa, Ed25519 verification with the attested public key).
 */
export const checkSignedExchange = async (list: CheckList, input: ExchangeInput): Promise<void> => {
  const kind = input.stream ? 'stream' : 'json';
  const textId = `signature.${kind}.text`;
  const signerId = `signature.${kind}.signer`;
  const what = input.stream ? 'streaming' : 'non-streaming';
  const textTitle = `${what} completion: signed text is [model:]sha256(request bytes):sha256(response bytes)`;
  const signerTitle = `${what} completion: signature made by the attested key`;
  const failBoth = (reason: string) => {
    list.fail(textId, textTitle, reason);
    list.fail(signerId, signerTitle, reason);
  };
  const algo = input.signer?.algo ?? 'ecdsa';
  const e2eeId = `e2ee.${kind}`;
  const e2eeTitle = `${what} completion: prompt sealed to the attested key, answer decrypts with ours`;
  let client: E2eeClient | undefined;
  if (input.e2ee === true) {
    if (input.signer?.publicKey === undefined) {
      list.fail(e2eeId, e2eeTitle, 'the report gives no attested signing_public_key to encrypt to');
      failBoth('not sent: no key to encrypt the prompt to');
      return;
    }
    client = createE2eeClient({ algo, modelPublicKey: input.signer.publicKey });
  }

  const body = {
    model: input.model,
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: 16,
    stream: input.stream,
    ...(input.stream ? { stream_options: { include_usage: true } } : {}),
  };
  const request = new TextEncoder().encode(JSON.stringify(client ? client.encryptRequest(body) : body));
  const completion = await fetchWire(input.fetch, `${input.api}/chat/completions`, {
    method: 'POST',
    headers: {
      ...input.headers,
      ...(client?.headers ?? {}),
      'content-type': 'application/json',
      accept: input.stream ? 'text/event-stream' : 'application/json',
      // The hashed bytes are the bytes a client's parser sees (docs/protocol.md): ask for no encoding.
      'accept-encoding': 'identity',
      // The record after the body, where the path keeps trailers; checked against the lookup below.
      [SIGNATURE_TRAILER_REQUEST_HEADER]: algo,
    },
    body: request,
  });
  if (completion.status !== 200) {
    const code = (jsonOf(completion.body) as { error?: { code?: unknown } } | undefined)?.error?.code;
    const reason = `POST /chat/completions answered HTTP ${completion.status}${typeof code === 'string' ? ` (${code})` : ''}`;
    if (client) list.fail(e2eeId, e2eeTitle, reason);
    failBoth(reason);
    return;
  }
  if (client) checkDecryption(list, e2eeId, e2eeTitle, client, completion.body, input.stream);
  const encoding = completion.headers.get('content-encoding');
  const id = responseIdOf(completion.headers, completion.body, input.stream);
  if (id === undefined) {
    failBoth('the completion carries no response id (ZG-Res-Key header, body id or SSE chunk id)');
    return;
  }
  let trailer: TrailerSignature | undefined;
  try {
    trailer =
      completion.trailers === undefined
        ? undefined
        : signatureFromTrailer({ trailers: completion.trailers }, algo);
  } catch (error) {
    failBoth(`the signature trailer is not a record: ${(error as Error).message}`);
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
  if (trailer !== undefined && Buffer.compare(Buffer.from(trailer.json), Buffer.from(answer.body)) !== 0) {
    failBoth('the record in the X-Teeml-Signature trailer differs from what GET /signature/{id} serves');
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
    model: input.model,
    ...(trailer === undefined
      ? {}
      : { via: 'record came in the X-Teeml-Signature trailer, equal to the lookup' }),
  });
};

/**
 * `e2ee.{json,stream}`: every content field of the answer is a ciphertext that decrypts with our
 * client key (a plaintext or foreign-key field fails), and the decrypted text is non-empty. Against
 * the demo upstream it also shows the model received exactly our plaintext prompt (`heard:` tag).
 */
const checkDecryption = (
  list: CheckList,
  id: string,
  title: string,
  client: E2eeClient,
  body: Uint8Array,
  stream: boolean,
): void => {
  const pieces: string[] = [];
  let fields = 0;
  try {
    const values = stream
      ? textOf(body)
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:') && line.slice(5).trim() !== '[DONE]')
          .map((line) => JSON.parse(line.slice(5)) as { choices?: unknown })
      : [JSON.parse(textOf(body)) as { choices?: unknown }];
    for (const value of values) {
      const choices = Array.isArray(value.choices) ? (value.choices as Record<string, unknown>[]) : [];
      for (const choice of choices) {
        const content = (choice[stream ? 'delta' : 'message'] as { content?: unknown } | undefined)?.content;
        if (typeof content !== 'string' || content === '') continue;
        fields++;
        pieces.push(client.decrypt(content));
      }
    }
  } catch {
    list.fail(id, title, `a content field does not decrypt with our key (after ${pieces.length} that did)`);
    return;
  }
  const answer = pieces.join('');
  if (fields === 0 || answer.trim() === '') {
    list.fail(id, title, 'the answer carries no encrypted content');
    return;
  }
  if (answer.startsWith('[demo upstream]')) {
    if (!answer.includes(demoHeard(PROMPT))) {
      list.fail(id, title, 'the demo model did not receive our plaintext prompt');
      return;
    }
    list.pass(
      id,
      title,
      `${fields} field(s) decrypted (${client.algo}); the demo model heard our exact prompt`,
    );
    return;
  }
  list.pass(id, title, `${fields} field(s) decrypted (${client.algo}), ${answer.length} characters`);
};
