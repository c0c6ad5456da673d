import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { jsonOf } from '../bytes/index.js';
import type { E2eeSession } from './e2ee.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { errorBody, VERIFICATION_HEADER } from './send-error.js';
import { eventData, SseEventSplitter } from './sse-events.js';
import { type AnswerVerdict, failedVerdict, verifyAnswer } from './verify-answer.js';
import { concatBytes } from './wire.js';

/** What the relay saw of a stream: its final `data: [DONE]` event, its usage, and why it was cut. */
interface StreamTally {
  done: Uint8Array | undefined;
  usage: unknown;
  cut: string | undefined;
}

/** A stream as read to its end: the exact bytes received, and what is left in the splitter. */
interface StreamRead extends StreamTally {
  response: Uint8Array;
  rest: number;
}

/**
 * Streams: events flow to the client as they arrive; the final `data: [DONE]` is held until the
 * stream's signature verified. On failure the client gets an `error` event with an OpenAI error
 * object instead (the openai SDK raises APIError on it), and the trailer names the failed check.
 */
export const relayStream = async (ctx: RelayContext, x: SignedExchange): Promise<void> => {
  const { res, upstream } = x;
  res.writeHead(upstream.status, {
    ...x.responseHeaders,
    'cache-control': 'no-cache',
    // The verdict is known only at the end: `pending` now, the result in the trailer.
    [VERIFICATION_HEADER]: 'pending',
    trailer: 'X-TeeML-Verification',
  });
  const read = await readStream(ctx, x);
  if (read === undefined) return;
  if (res.destroyed) {
    ctx.logger.info({ event: 'client_disconnected', path: x.path }, 'client left before the stream ended');
    return;
  }
  const cut = read.cut ?? incomplete(read);
  const verdict: AnswerVerdict =
    cut !== undefined
      ? failedVerdict('stream.complete', 'the stream completed with [DONE]', cut)
      : await verifyAnswer({
          link: ctx.link,
          attestation: x.attestation,
          stream: true,
          request: x.request,
          response: read.response,
          headers: upstream.headers,
          fetch: ctx.providerFetch,
          usage: read.usage,
        });
  await finishStream(ctx, x, verdict, read.done);
};

/** Why a stream that was not cut is still incomplete, if it is: it must end with `data: [DONE]` and nothing after. */
const incomplete = (read: StreamRead): string | undefined => {
  if (read.done === undefined) return 'the stream ended without data: [DONE]';
  if (read.rest > 0) return 'bytes after the last complete event';
  return undefined;
};

/**
 * Reads the provider's stream to its end (at most `maxAnswerBytes`), forwarding each complete event
 * as it arrives. Undefined when the stream broke because the user left: nothing more to say.
 */
const readStream = async (ctx: RelayContext, x: SignedExchange): Promise<StreamRead | undefined> => {
  const max = ctx.maxAnswerBytes;
  const splitter = new SseEventSplitter();
  const chunks: Uint8Array[] = [];
  const tally: StreamTally = { done: undefined, usage: undefined, cut: undefined };
  let total = 0;
  try {
    if (x.upstream.body !== null) {
      for await (const chunk of x.upstream.body as AsyncIterable<Uint8Array>) {
        total += chunk.length;
        if (total > max) {
          tally.cut = `stream exceeds ${max} bytes`;
          break;
        }
        chunks.push(chunk);
        for (const event of splitter.push(chunk)) await forwardEvent(x.res, x.e2ee, tally, event);
      }
    }
    for (const event of splitter.finish()) await forwardEvent(x.res, x.e2ee, tally, event);
  } catch (error) {
    if (x.res.destroyed) return undefined;
    tally.cut = `stream broke: ${(error as Error).message}`;
  }
  return { ...tally, response: concatBytes(chunks), rest: splitter.rest };
};

/**
 * Forwards one event to the user (its data decrypted when E2EE is on), except `data: [DONE]`, which
 * is held until the verdict. Notes the usage the link's fee accounting needs.
 */
const forwardEvent = async (
  res: ServerResponse,
  e2ee: E2eeSession | undefined,
  tally: StreamTally,
  event: Uint8Array,
): Promise<void> => {
  const data = eventData(event);
  if (data === '[DONE]') {
    tally.done = event;
    return;
  }
  if (tally.done !== undefined) tally.cut = 'events after [DONE]';
  if (data?.includes('"usage"')) {
    const parsed = jsonOf(new TextEncoder().encode(data)) as { usage?: unknown } | undefined;
    if (parsed?.usage != null) tally.usage = parsed.usage;
  }
  const bytes =
    e2ee === undefined || data === undefined
      ? event
      : `${(await e2ee.restoreEventData(data))
          .split('\n')
          .map((l) => `data: ${l}`)
          .join('\n')}\n\n`;
  // Backpressure: a slow client slows the read from the provider instead of filling memory.
  if (!res.write(bytes) && !res.destroyed) await Promise.race([once(res, 'drain'), once(res, 'close')]);
};

/**
 * Ends the stream with its verdict: the held `[DONE]` and a `verified` trailer, or an `error` event
 * (with onFailure 'warn' and a `[DONE]` received: a comment, then the `[DONE]`) and a `failed` trailer.
 */
const finishStream = async (
  ctx: RelayContext,
  x: SignedExchange,
  verdict: AnswerVerdict,
  done: Uint8Array | undefined,
): Promise<void> => {
  const { res } = x;
  if (verdict.ok) {
    await ctx.state.verified(verdict, x.attestation, { path: x.path, stream: true, model: x.model });
    res.write(done ?? 'data: [DONE]\n\n');
    res.addTrailers({ [VERIFICATION_HEADER]: 'verified' });
    res.end();
    return;
  }
  const error = ctx.state.failed(verdict, { path: x.path, stream: true });
  res.addTrailers({ [VERIFICATION_HEADER]: `failed: ${verdict.failedCheck}` });
  if (ctx.state.onFailure === 'warn' && done !== undefined) {
    res.write(`: x-teeml-verification failed: ${verdict.failedCheck}\n\n`);
    res.write(done);
    res.end();
    return;
  }
  res.end(`event: error\ndata: ${errorBody(error)}\n\n`);
};
