import { createHash } from 'node:crypto';
import { jsonOf } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { E2eeSession } from './e2ee.js';
import type { Answer } from './engine-io.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { errorBody, VERIFICATION_HEADER } from './send-error.js';
import { eventData, framingError, SseEventSplitter } from './sse-events.js';
import { type StreamSink, streamBody } from './stream-body.js';
import { type StreamRelease, streamReleaseOf } from './stream-release.js';
import { type AnswerVerdict, failedVerdict, verifyAnswer } from './verify-answer.js';
import { concatBytes, guardedBody } from './wire.js';

/**
 * Why reading a stream stopped early. `framing` and `e2ee.answer` are failed verifications (the
 * circuit opens); `incomplete` is the provider breaking off, unsigned (that answer fails, no more);
 * `error` is the gateway's own refusal (429 `gateway_busy`).
 */
type Cut =
  | { kind: 'framing' | 'e2ee.answer' | 'incomplete'; detail: string }
  | { kind: 'error'; error: SidecarError };

/** A stream as read to its end: the exact bytes received, the events not yet released, and why it stopped. */
interface StreamRead {
  response: Uint8Array;
  /** sha256 hex of `response`, hashed chunk by chunk as the bytes arrived. */
  sha256: string;
  /** Whether the events were held for release after the verdict (else forwarded as they came). */
  held: boolean;
  done: Uint8Array | undefined;
  usage: unknown;
  cut: Cut | undefined;
}

/**
 * Streams (SECURITY.md, "The gateway's answer path"): events are released as they arrive only over a
 * channel that authenticates every byte (stream-release.ts); otherwise the whole stream is held
 * until its signature verified, then released. Either way the final `data: [DONE]` waits for the
 * verdict, and any event that is not well formed ends the stream at once, unforwarded. On failure
 * the user gets an `error` event with an OpenAI error object (the openai SDK raises APIError on it),
 * and the trailer names the failed check. The stream is the Response's body (stream-body.ts); `verdict`
 * settles with the trailer's value and `done` when the relay is over.
 */
export const relayStream = (
  ctx: RelayContext,
  x: SignedExchange,
): { answer: Answer; done: Promise<void> } => {
  const release = streamReleaseOf({
    attestation: x.attestation,
    link: ctx.link,
    e2eeAuthenticatesSender: x.e2ee?.authenticatesSender,
    releaseUnverified: ctx.releaseUnverified,
  });
  const { body, sink, verdict } = streamBody(x.call, x.guard.idleMs);
  // The response now even when events are held: the user's tool sees the call accepted. The verdict
  // is known only at the end: `pending` now, the result in the trailer (the listener sends it).
  const answer: Answer = {
    status: x.upstream.status,
    headers: {
      ...x.responseHeaders,
      'cache-control': 'no-cache',
      [VERIFICATION_HEADER]: release.unauthenticated ? 'pending-unauthenticated' : 'pending',
    },
    body,
    verdict,
  };
  const done = pumpStream(ctx, x, release, sink).catch((error: unknown) => {
    ctx.logger.error({ event: 'stream', path: x.path, err: (error as Error).message }, 'stream relay failed');
    const failure = new SidecarError('internal gateway error', { status: 500, code: 'internal_error' });
    sink.end('failed: gateway.internal', `event: error\ndata: ${errorBody(failure)}\n\n`);
  });
  return { answer, done };
};

/** Reads, verifies and ends one stream through `sink`. */
const pumpStream = async (
  ctx: RelayContext,
  x: SignedExchange,
  release: StreamRelease,
  sink: StreamSink,
): Promise<void> => {
  const read = await readStream(ctx, x, release, sink);
  if (read === undefined) return;
  if (sink.gone) {
    ctx.logger.info({ event: 'client_disconnected', path: x.path }, 'client left before the stream ended');
    return;
  }
  if (read.cut !== undefined) {
    endCut(ctx, x, read.cut, sink);
    return;
  }
  const verdict = await verifyAnswer({
    link: ctx.link,
    attestation: x.attestation,
    stream: true,
    request: x.request,
    response: read.response,
    headers: x.upstream.headers,
    upstream: x.upstream,
    responseSha256: read.sha256,
    fetch: ctx.providerFetch,
    usage: read.usage,
    model: x.model,
    sentAt: x.sentAt,
    now: ctx.now,
    accepted: ctx.state.accepted,
    signatureTimeoutMs: ctx.signatureTimeoutMs,
  });
  await finishStream(ctx, x, verdict, read, sink);
};

/**
 * Reads the provider's stream to its end (at most `maxAnswerBytes`, counted against the shared
 * bound, with an idle deadline), checking each event's framing; released early, each event is
 * forwarded as it arrives, else it is held. Undefined when the user left: nothing more to say.
 */
const readStream = async (
  ctx: RelayContext,
  x: SignedExchange,
  release: StreamRelease,
  sink: StreamSink,
): Promise<StreamRead | undefined> => {
  const max = ctx.maxAnswerBytes;
  const splitter = new SseEventSplitter();
  const chunks: Uint8Array[] = [];
  const hash = createHash('sha256');
  const read: StreamRead = {
    response: new Uint8Array(0),
    sha256: '',
    held: !release.early,
    done: undefined,
    usage: undefined,
    cut: undefined,
  };
  let total = 0;
  const take = async (events: Uint8Array[]): Promise<void> => {
    for (const event of events) {
      if (read.cut !== undefined) return;
      await takeEvent(read, event, release.early ? x.e2ee : undefined, sink, release.early);
    }
  };
  try {
    for await (const chunk of guardedBody(x.upstream.body, x.guard, 'stream')) {
      total += chunk.length;
      if (total > max) {
        read.cut = { kind: 'incomplete', detail: `stream exceeds ${max} bytes` };
        break;
      }
      chunks.push(chunk);
      hash.update(chunk);
      await take(splitter.push(chunk));
      if (read.cut !== undefined) break;
    }
    if (read.cut === undefined) await take(splitter.finish());
  } catch (error) {
    if (sink.gone) return undefined;
    read.cut =
      error instanceof SidecarError
        ? { kind: 'error', error }
        : { kind: 'incomplete', detail: `stream broke: ${(error as Error).message}` };
  }
  read.response = concatBytes(chunks);
  read.sha256 = hash.digest('hex');
  if (read.cut === undefined && read.done === undefined)
    read.cut = { kind: 'incomplete', detail: 'the stream ended without data: [DONE]' };
  else if (read.cut === undefined && splitter.rest > 0)
    read.cut = { kind: 'incomplete', detail: 'bytes after the last complete event' };
  return read;
};

/**
 * One event: checked for framing (a bad one cuts the stream, unforwarded), `[DONE]` kept for the
 * verdict, the usage noted for the link's fee accounting; then forwarded (decrypted when E2EE is on)
 * or held.
 */
const takeEvent = async (
  read: StreamRead,
  event: Uint8Array,
  e2ee: E2eeSession | undefined,
  sink: StreamSink,
  early: boolean,
): Promise<void> => {
  const bad = framingError(event, read.done !== undefined);
  if (bad !== undefined) {
    read.cut = { kind: 'framing', detail: bad };
    return;
  }
  const data = eventData(event);
  if (data === '[DONE]') {
    read.done = event;
    return;
  }
  if (data?.includes('"usage"')) {
    const parsed = jsonOf(new TextEncoder().encode(data)) as { usage?: unknown } | undefined;
    if (parsed?.usage != null) read.usage = parsed.usage;
  }
  // Held events are not copied: they are cut again from the received bytes after the verdict.
  if (!early) return;
  const opened = await openEvent(event, data, e2ee);
  if (opened === undefined) read.cut = { kind: 'e2ee.answer', detail: UNDECRYPTABLE };
  else await sink.write(opened);
};

const UNDECRYPTABLE = "the answer does not decrypt with this request's E2EE key";

/** The event as the user gets it: its data decrypted when E2EE is on; undefined when it does not decrypt. */
const openEvent = async (
  event: Uint8Array,
  data: string | undefined,
  e2ee: E2eeSession | undefined,
): Promise<Uint8Array | string | undefined> => {
  if (e2ee === undefined || data === undefined) return event;
  try {
    const plain = await e2ee.restoreEventData(data);
    return `${plain
      .split('\n')
      .map((l) => `data: ${l}`)
      .join('\n')}\n\n`;
  } catch {
    return undefined;
  }
};

/** The events of a whole verified stream, but its `[DONE]` (released last, as received). */
const heldEvents = (response: Uint8Array): Uint8Array[] => {
  const splitter = new SseEventSplitter();
  return [...splitter.push(response), ...splitter.finish()].filter((e) => eventData(e) !== '[DONE]');
};

/** A stream that stopped early: its error event, and what the state makes of it. */
const endCut = (ctx: RelayContext, x: SignedExchange, cut: Cut, sink: StreamSink): void => {
  const meta = { path: x.path, stream: true };
  if (cut.kind === 'error') {
    sink.end(`failed: ${cut.error.code}`, `event: error\ndata: ${errorBody(cut.error)}\n\n`);
    return;
  }
  if (cut.kind === 'incomplete') {
    const verdict = failedVerdict('stream.complete', 'the stream completed with [DONE]', cut.detail);
    const error = ctx.state.providerError(verdict, meta);
    sink.end('failed: stream.complete', `event: error\ndata: ${errorBody(error)}\n\n`);
    return;
  }
  const title =
    cut.kind === 'framing'
      ? 'every event of the stream is well formed'
      : "the answer decrypts with this request's key";
  const verdict = failedVerdict(cut.kind === 'framing' ? 'stream.framing' : 'e2ee.answer', title, cut.detail);
  const error = ctx.state.failed(verdict, meta);
  sink.end(`failed: ${verdict.failedCheck}`, `event: error\ndata: ${errorBody(error)}\n\n`);
};

/**
 * Ends a whole stream with its verdict: verified, the held events (decrypted; one that does not
 * decrypt fails `e2ee.answer`, nothing of it released) and the held `[DONE]` with a `verified`
 * trailer; failed, an `error` event (with onFailure 'warn': the held events, a comment, then the
 * `[DONE]`) and a `failed` trailer.
 */
const finishStream = async (
  ctx: RelayContext,
  x: SignedExchange,
  checked: AnswerVerdict,
  read: StreamRead,
  sink: StreamSink,
): Promise<void> => {
  let verdict = checked;
  const opened: (Uint8Array | string)[] = [];
  const held = read.held ? heldEvents(read.response) : [];
  for (const event of verdict.ok ? held : []) {
    const plain = await openEvent(event, eventData(event), x.e2ee);
    if (plain === undefined) {
      verdict = failedVerdict('e2ee.answer', "the answer decrypts with this request's key", UNDECRYPTABLE);
      break;
    }
    opened.push(plain);
  }
  const done = read.done ?? 'data: [DONE]\n\n';
  if (verdict.ok) {
    await ctx.state.verified(verdict, x.attestation, { path: x.path, stream: true, model: x.model });
    for (const event of opened) await sink.write(event);
    sink.end('verified', done);
    return;
  }
  const error = ctx.state.failed(verdict, { path: x.path, stream: true });
  if (ctx.state.onFailure === 'warn' && verdict.failedCheck !== 'e2ee.answer') {
    for (const event of held) {
      const plain = await openEvent(event, eventData(event), x.e2ee);
      if (plain !== undefined) await sink.write(plain);
    }
    await sink.write(`: x-teeml-verification failed: ${verdict.failedCheck}\n\n`);
    sink.end(`failed: ${verdict.failedCheck}`, done);
    return;
  }
  sink.end(`failed: ${verdict.failedCheck}`, `event: error\ndata: ${errorBody(error)}\n\n`);
};
