import { SidecarError } from '../errors/index.js';
import { SseParser } from './sse-parser.js';

/**
 * MODEL_NAME and SIGNED_TEXT_FORMAT as the proxy applies them (docs/protocol.md, Model identity).
 * NEAR AI's inference-proxy signs `model:sha256(request):sha256(response)` with its MODEL_NAME; here
 * the model named is the one the request asked for, which must be served, and every answer must name
 * that same model, so a signature never vouches for an answer from another model.
 */
export interface ModelPolicy {
  /** MODEL_NAME: the served names; the first answers a request that names no model (vLLM's default). */
  readonly served: readonly string[];
  /** SIGNED_TEXT_FORMAT=model: the signed text starts with the model. */
  readonly signModel: boolean;
}

/** What one request's answer is held to. */
export interface ModelCheck {
  /** The model the request asked for: every `model` in the answer must equal it. */
  readonly expected: string;
  /** Sign it into the text (SIGNED_TEXT_FORMAT=model). */
  readonly signed: boolean;
}

export const modelNotFound = (): SidecarError =>
  new SidecarError('the requested model is not served here', {
    status: 404,
    code: 'model_not_found',
    type: 'invalid_request_error',
    param: 'model',
  });

export const modelMismatch = (): SidecarError =>
  new SidecarError('the model server answered with another model than the one requested', {
    status: 502,
    code: 'model_mismatch',
  });

/**
 * The check for a request whose body is `value` (a JSON object, or undefined for a body that is not
 * one, such as a multipart upload): its `model` must be served; a request naming none gets the
 * default name. A `model` that is not a served name (or not a string) is 404 `model_not_found`,
 * before anything reaches the model server.
 */
export const checkRequestModel = (
  policy: ModelPolicy,
  value: Record<string, unknown> | undefined,
): ModelCheck => {
  const asked = value !== undefined && Object.hasOwn(value, 'model') ? value['model'] : undefined;
  const expected = asked === undefined ? policy.served[0] : asked;
  if (typeof expected !== 'string' || !policy.served.includes(expected)) throw modelNotFound();
  return { expected, signed: policy.signModel };
};

/** Throws 502 `model_mismatch` when a JSON answer (or one SSE chunk) names another model. */
export const assertAnswerModel = (value: unknown, check: ModelCheck): void => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
  if (Object.hasOwn(value, 'model') && (value as Record<string, unknown>)['model'] !== check.expected) {
    throw modelMismatch();
  }
};

/**
 * The upstream's event stream, checked chunk by chunk: every data event whose JSON names a model
 * must name the requested one (decided on parsed JSON, like the tap's error rule). Bytes are passed on
 * only up to the end of the last complete event, so when a later chunk fails the check, what the
 * client already has ends on an event boundary and the proxy can close the stream with an error event
 * (docs/protocol.md). Throws `modelMismatch()` before yielding the chunk that named another model.
 */
export async function* modelCheckedStream(
  chunks: AsyncIterable<Buffer>,
  check: ModelCheck,
  maxLineBytes?: number,
): AsyncGenerator<Buffer> {
  const parser = new SseParser(maxLineBytes);
  let held: Buffer[] = [];
  for await (const chunk of chunks) {
    for (const event of parser.push(chunk)) {
      if (event.data === undefined || event.data === '[DONE]') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(event.data);
      } catch {
        continue;
      }
      assertAnswerModel(parsed, check);
    }
    held.push(chunk);
    if (parser.pendingBytes === 0) {
      yield held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held);
      held = [];
    }
  }
  if (held.length > 0) yield Buffer.concat(held);
}
