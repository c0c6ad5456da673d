import type { CheckList } from '../verifier/index.js';
import { eventData, SseEventSplitter } from './sse-events.js';

/**
 * How far an answer's `created` may lie before the request was sent, or after now (seconds): clocks
 * of provider and user differ a little; a replayed answer is older than that (issue 21 item 5).
 */
export const CREATED_SKEW_SECONDS = 120;

/** The JSON objects an answer is made of: the body, or each stream event's data (not `[DONE]`). */
export const answerObjects = (response: Uint8Array, stream: boolean): Record<string, unknown>[] => {
  const texts: string[] = [];
  if (stream) {
    const splitter = new SseEventSplitter();
    for (const event of [...splitter.push(response), ...splitter.finish()]) {
      const data = eventData(event);
      if (data !== undefined && data !== '[DONE]') texts.push(data);
    }
  } else texts.push(new TextDecoder().decode(response));
  const objects: Record<string, unknown>[] = [];
  for (const text of texts) {
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === 'object' && value !== null && !Array.isArray(value))
        objects.push(value as Record<string, unknown>);
    } catch {
      // Not an object: the signature covers it; the claims below have nothing to read in it.
    }
  }
  return objects;
};

/**
 * What a signed answer says about itself must fit this request (issue 21 item 5): every object's
 * `model` is the request's (`answer.model`: a genuine answer for another model is not this answer;
 * in direct mode an object without `model` passes),
 * and where the request hash is not comparable (0G mode: the broker re-serializes the request) its
 * `created` is recent (`answer.created`), so an old signed answer cannot be served again.
 */
export const checkAnswerClaims = (
  list: CheckList,
  input: {
    objects: Record<string, unknown>[];
    model: string | undefined;
    checkCreated: boolean;
    sentAt: number;
    now: number;
  },
): void => {
  if (input.model !== undefined) {
    const title = "the answer names the request's model";
    // Where the request hash is compared, the signed answer is this request's anyway: an answer
    // that names no model passes (some upstreams leave it out); where it is not, it must name it.
    const other = input.objects.find(
      (o) => o['model'] !== input.model && (input.checkCreated || o['model'] !== undefined),
    );
    if (other === undefined) list.pass('answer.model', title, 'same model');
    else
      list.fail(
        'answer.model',
        title,
        `the answer names ${describe(other['model'])}, not the request's model`,
      );
  }
  if (!input.checkCreated) return;
  const title = 'the answer was created after the request was sent';
  const earliest = Math.floor(input.sentAt / 1000) - CREATED_SKEW_SECONDS;
  const latest = Math.ceil(input.now / 1000) + CREATED_SKEW_SECONDS;
  const stale = input.objects.find(
    (o) => typeof o['created'] !== 'number' || o['created'] < earliest || o['created'] > latest,
  );
  if (stale === undefined && input.objects.length > 0)
    list.pass('answer.created', title, `within ${CREATED_SKEW_SECONDS} s of the request`);
  else
    list.fail(
      'answer.created',
      title,
      `created ${describe(stale?.['created'])} is not within ${CREATED_SKEW_SECONDS} s of the request`,
    );
};

/** A value for an error detail: short, never a whole answer. */
const describe = (value: unknown): string =>
  typeof value === 'string' || typeof value === 'number' ? JSON.stringify(value).slice(0, 80) : typeof value;
