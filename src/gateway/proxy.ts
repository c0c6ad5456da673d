import { discardBody, jsonOf, modelOf, nullBody, readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import { PeerCertificateError } from '../tls/index.js';
import type { E2eeChoice } from './e2ee-choice.js';
import type { Answer, Inbound } from './engine-io.js';
import type { HeldBytes } from './held-bytes.js';
import type { CallHandle, InFlightCalls } from './in-flight-calls.js';
import { modelRefusal } from './model-refusal.js';
import { providerRequest } from './provider-request.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { relayJson } from './relay-json.js';
import { relayStream } from './relay-stream.js';
import { errorAnswer, VERIFICATION_HEADER } from './send-error.js';
import type { ProviderCall, Upstream } from './upstream.js';
import { askForSignatureTrailer, failedVerdict } from './verify-answer.js';
import { type BodyGuard, providerTimeout, readAnswer } from './wire.js';

/** What proxying one /v1 request needs beyond relaying its answer. */
export interface ProxyContext extends RelayContext {
  e2ee: E2eeChoice;
  calls: InFlightCalls;
  maxRequestBytes: number;
  /** The policy's `models`: requests for others are refused here, before anything is sent. */
  models?: readonly string[] | undefined;
  /** Answer bytes held across all requests (429 `gateway_busy` beyond its limit). */
  held: HeldBytes;
  /** Deadline for the provider's response headers (a JSON answer's come when the model is done). */
  headersTimeoutMs: number;
  /** The longest gap between two chunks of an answer. */
  idleTimeoutMs: number;
  /** How proxied requests reach the provider (the link's `call`, else over `providerFetch`). */
  providerCall: ProviderCall;
}

/** The check a request fails when the provider's connection does not show the pinned TLS key. */
const TLS_PIN_CHECK = 'gateway.tls-pinned';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself are not forwarded. */
const DROP_RESPONSE_HEADERS = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'content-encoding',
  'trailer',
  'upgrade',
  'date',
]);

/** The user's request body, exact bytes, at most `max` (bytes/readCapped: one capped reader). */
const readRequest = (request: Inbound, max: number): Promise<Uint8Array> =>
  readCapped(request.body, {
    limit: max,
    declared: request.headers['content-length'],
    tooLarge: () =>
      new SidecarError(`request body exceeds ${max} bytes`, { status: 413, code: 'request_too_large' }),
    rest: 'leave',
  });

/** The `error.code` of an OpenAI error body, if it is one. */
const errorCodeOf = (body: Uint8Array): unknown =>
  (jsonOf(body) as { error?: { code?: unknown } } | undefined)?.error?.code;

/**
 * Sends one /v1 request on to the attested provider and answers with the provider's, verified:
 * refused while the provider is not attested or the circuit is open; signed answers (POST, 2xx) are
 * verified before the user sees them (relay-json.ts, relay-stream.ts), anything else passes through
 * marked unsigned. A stream's answer comes at once, with its verdict to come.
 */
export const proxyToProvider = async (ctx: ProxyContext, request: Inbound): Promise<Answer> => {
  const { method, url } = request;
  const openAiPath = url.pathname.slice('/v1'.length) || '/';
  const userBody =
    method === 'GET' || method === 'HEAD' ? undefined : await readRequest(request, ctx.maxRequestBytes);
  const disallowed = modelRefusal(ctx.models, userBody);
  if (disallowed !== undefined) return errorAnswer(disallowed, `refused: ${disallowed.code}`);
  const admitted = ctx.state.admit();
  if ('refusal' in admitted) return errorAnswer(admitted.refusal, admitted.verification);
  const a = admitted.attestation;
  const e2ee = userBody === undefined ? undefined : ctx.e2ee.sessionFor(openAiPath, a);
  const { body, headers } = await providerRequest({
    userHeaders: request.headers,
    userBody,
    openAiPath,
    e2ee,
    link: ctx.link,
  });
  askForSignatureTrailer(ctx.link, a, headers);
  const controller = ctx.calls.start();
  request.onLeave(() => controller.abort());
  const share = ctx.held.share();
  const cleanup = (): void => {
    share.release();
    ctx.calls.end(controller);
  };
  const call = { target: `${openAiPath}${url.search}`, method, headers, body, path: url.pathname };
  const exchange = {
    call,
    userBody,
    e2ee,
    attestation: a,
    controller,
    guard: { take: share.take, idleMs: ctx.idleTimeoutMs },
  };
  let streaming: Promise<void> | undefined;
  try {
    const answer = await relayAnswer(ctx, exchange);
    if (!('done' in answer)) return answer;
    streaming = answer.done;
    return answer.answer;
  } finally {
    if (streaming === undefined) cleanup();
    else void streaming.finally(cleanup);
  }
};

/**
 * The routes that answer media (speech audio, a transcription as text): the only ones where a 2xx
 * that is neither JSON nor an event stream is the sidecar's unsigned relay by design (docs/protocol.md,
 * Routes). Matched on the normalized path the user asked for (one slash, lower case, no trailing one).
 */
const MEDIA_ROUTES = new Set(['/v1/audio/speech', '/v1/audio/transcriptions', '/v1/audio/translations']);

/**
 * An answer the sidecar relays unsigned by design: on a media route, a 2xx whose type is not JSON-like
 * and not an event stream. It passes marked `unsigned` and opens no circuit: nothing was forged. The
 * content type is not signed, so it decides nothing anywhere else: on every other route (chat,
 * responses, moderations, ...) an answer is verified whatever it is labelled, and a relabelled one
 * fails (the openai SDK parses any `*json*` type, and a stream request as a stream, whatever the label).
 */
const unsignedMedia = (path: string, upstream: Upstream, userBody: Uint8Array | undefined): boolean => {
  const route = path
    .replace(/\/{2,}/g, '/')
    .replace(/\/+$/, '')
    .toLowerCase();
  if (!MEDIA_ROUTES.has(route) || asksForStream(userBody)) return false;
  const type = (upstream.headers.get('content-type') ?? '').toLowerCase();
  return type !== '' && !type.includes('json') && !type.includes('event-stream');
};

/**
 * Whether the user asked for a stream (JSON `"stream": true`, or a multipart `stream` field that is
 * true): the SDK then reads the answer as an event stream whatever its label, so it is never media.
 */
const asksForStream = (body: Uint8Array | undefined): boolean => {
  if (body === undefined) return false;
  const json = jsonOf(body) as { stream?: unknown } | undefined;
  if (json !== undefined) return json.stream === true;
  return /name="?stream"?\r?\n(?:[^\r\n]+\r?\n)*\r?\n\s*true\b/i.test(Buffer.from(body).toString('latin1'));
};

/** One call under way: what was sent, and how its answer is read and aborted. */
interface Call {
  call: SentCall;
  userBody: Uint8Array | undefined;
  e2ee: SignedExchange['e2ee'];
  attestation: SignedExchange['attestation'];
  controller: CallHandle;
  guard: BodyGuard;
}

/** Calls the provider and relays its answer: a Response, or a stream under way with its verdict. */
const relayAnswer = async (
  ctx: ProxyContext,
  x: Call,
): Promise<Answer | { answer: Answer; done: Promise<void> }> => {
  const { call, userBody } = x;
  const sentAt = ctx.now();
  const upstream = await callProvider(ctx, call, x.controller);
  if ('reply' in upstream) return upstream.reply;
  const status = upstream.response.status;
  if (status < 200 || status > 599) return invalidStatus(ctx, upstream.response);
  const responseHeaders: Record<string, string> = {};
  upstream.response.headers.forEach((value, name) => {
    // The provider's CORS grants are not the user's: only the gateway decides which origin reads it.
    if (!DROP_RESPONSE_HEADERS.has(name) && !name.startsWith('access-control-'))
      responseHeaders[name] = value;
  });
  const signed = call.method === 'POST' && upstream.response.status >= 200 && upstream.response.status < 300;
  if (!signed || call.body === undefined || unsignedMedia(call.path, upstream.response, x.userBody))
    return relayUnsigned(ctx, upstream.response, responseHeaders, x.guard);
  const exchange: SignedExchange = {
    upstream: upstream.response,
    responseHeaders,
    request: call.body,
    e2ee: x.e2ee,
    attestation: x.attestation,
    path: call.path,
    model: userBody === undefined ? undefined : modelOf(userBody),
    guard: x.guard,
    sentAt,
    call: x.controller,
  };
  const contentType = upstream.response.headers.get('content-type') ?? '';
  if (!contentType.startsWith('text/event-stream')) return relayJson(ctx, exchange);
  const { answer, done } = relayStream(ctx, exchange);
  return { answer, done };
};

/**
 * A final status HTTP does not define (RFC 9110 §15: 1xx to 5xx; Node's parser passes any three
 * digits): the provider's failure, its body stopped unread (its connection closed).
 */
const invalidStatus = (ctx: ProxyContext, upstream: Upstream): Answer => {
  discardBody(upstream.body);
  ctx.state.counters.unsigned += 1;
  return errorAnswer(
    new SidecarError(
      `the provider answered with HTTP status ${upstream.status}, which HTTP does not define`,
      {
        status: 502,
        code: 'upstream_invalid_status',
        type: 'upstream_error',
      },
    ),
    'failed: upstream.invalid-status',
  );
};

/**
 * An answer the provider does not sign (POST answers only are, docs/protocol.md, Routes; errors pass
 * through unsigned). Its 400 `e2ee_model_key_mismatch` says the provider's key is not the one we
 * encrypted to: it may have restarted with a new key, so re-attest now (issue 21 item 13).
 */
const relayUnsigned = async (
  ctx: ProxyContext,
  upstream: Upstream,
  responseHeaders: Record<string, string>,
  guard: BodyGuard,
): Promise<Answer> => {
  const answer = await readAnswer(upstream, ctx.maxAnswerBytes, 'answer', guard);
  ctx.state.counters.unsigned += 1;
  if (upstream.status === 400 && errorCodeOf(answer) === 'e2ee_model_key_mismatch')
    ctx.state.signerDoubted('e2ee_model_key_mismatch');
  return {
    status: upstream.status,
    headers: { ...responseHeaders, [VERIFICATION_HEADER]: 'unsigned' },
    body: nullBody(upstream.status) ? null : answer,
  };
};

/** What goes to the provider for one user request. */
interface SentCall {
  target: string;
  method: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
  path: string;
}

/**
 * The provider's response, or the answer the user gets instead: a TLS pin failure is a failed
 * verification, any other failure to reach the provider a 502 (a user who left gets one no one reads).
 */
const callProvider = async (
  ctx: ProxyContext,
  call: SentCall,
  controller: CallHandle,
): Promise<{ response: Upstream } | { reply: Answer }> => {
  const { method, headers, body, path } = call;
  // A deadline for the headers only: cleared once they came, so it never cuts a long answer's body.
  // It aborts the call itself (one controller per call, no AbortSignal.any per request).
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, ctx.headersTimeoutMs);
  try {
    const upstream = await ctx.providerCall(ctx.link.endpoint(call.target), {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      call: controller,
    });
    ctx.state.providerReached();
    return { response: upstream };
  } catch (error) {
    // Aborted and not by the deadline: the user left (or the engine closed).
    return { reply: callFailure(ctx, error, path, controller.aborted && !timedOut, timedOut) };
  } finally {
    clearTimeout(timer);
  }
};

/** The answer for a provider call that threw (see callProvider). */
const callFailure = (
  ctx: ProxyContext,
  error: unknown,
  path: string,
  left: boolean,
  timedOut: boolean,
): Answer => {
  if (left)
    return errorAnswer(
      new SidecarError('the request was cancelled', { status: 499, code: 'client_closed_request' }),
      'unsigned',
    );
  if (timedOut) {
    ctx.state.counters.unsigned += 1;
    return errorAnswer(providerTimeout('response headers', ctx.headersTimeoutMs), 'failed: upstream.timeout');
  }
  if (error instanceof PeerCertificateError) {
    // The peer is not the attested TLS key (a certificate swapped behind our back): nothing
    // was sent to it. A failed verification: the circuit opens until an attestation passes.
    const title = 'the connection shows the TLS key the last attestation pinned';
    const verdict = failedVerdict(TLS_PIN_CHECK, title, error.message);
    return errorAnswer(ctx.state.failed(verdict, { path, stream: false }), `failed: ${verdict.failedCheck}`);
  }
  ctx.state.counters.unsigned += 1;
  const code = (error as { cause?: { code?: unknown } }).cause?.code;
  ctx.state.providerUnreachable(typeof code === 'string' ? code : (error as Error).message);
  ctx.logger.warn({ event: 'upstream', path, err: (error as Error).message }, 'provider unreachable');
  return errorAnswer(
    new SidecarError('the provider is unreachable', { status: 502, code: 'upstream_unreachable' }),
    'failed: upstream.unreachable',
  );
};
