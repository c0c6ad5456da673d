import type { IncomingMessage, ServerResponse } from 'node:http';
import { jsonOf, readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import { PeerCertificateError } from '../tls/index.js';
import type { E2eeChoice } from './e2ee-choice.js';
import type { HeldBytes } from './held-bytes.js';
import type { InFlightCalls } from './in-flight-calls.js';
import { modelRefusal } from './model-refusal.js';
import { providerRequest } from './provider-request.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { relayJson } from './relay-json.js';
import { relayStream } from './relay-stream.js';
import { sendError, VERIFICATION_HEADER } from './send-error.js';
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
const readRequest = (req: IncomingMessage, max: number): Promise<Uint8Array> =>
  readCapped(req, {
    limit: max,
    declared: req.headers['content-length'],
    tooLarge: () =>
      new SidecarError(`request body exceeds ${max} bytes`, { status: 413, code: 'request_too_large' }),
    rest: 'leave',
  });

/** The `error.code` of an OpenAI error body, if it is one. */
const errorCodeOf = (body: Uint8Array): unknown =>
  (jsonOf(body) as { error?: { code?: unknown } } | undefined)?.error?.code;

const modelOf = (body: Uint8Array): string | undefined => {
  const json = jsonOf(body) as { model?: unknown } | undefined;
  return typeof json?.model === 'string' ? json.model : undefined;
};

/**
 * Sends one /v1 request on to the attested provider and relays its answer: refused while the
 * provider is not attested or the circuit is open; signed answers (POST, 2xx) are verified before
 * the user sees them (relay-json.ts, relay-stream.ts), anything else passes through marked unsigned.
 */
export const proxyToProvider = async (
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> => {
  const method = req.method ?? 'GET';
  const openAiPath = url.pathname.slice('/v1'.length) || '/';
  const path = url.pathname;
  const userBody =
    method === 'GET' || method === 'HEAD' ? undefined : await readRequest(req, ctx.maxRequestBytes);
  const disallowed = modelRefusal(ctx.models, userBody);
  if (disallowed !== undefined) {
    sendError(res, disallowed, `refused: ${disallowed.code}`);
    return;
  }
  const admitted = ctx.state.admit();
  if ('refusal' in admitted) {
    sendError(res, admitted.refusal, admitted.verification);
    return;
  }
  const a = admitted.attestation;
  const e2ee = userBody === undefined ? undefined : ctx.e2ee.sessionFor(openAiPath, a);
  const { body, headers } = await providerRequest({
    userHeaders: req.headers,
    userBody,
    openAiPath,
    e2ee,
    link: ctx.link,
  });
  askForSignatureTrailer(ctx.link, a, headers);
  const controller = ctx.calls.start(res);
  const share = ctx.held.share();
  const guard = { take: share.take, idleMs: ctx.idleTimeoutMs };
  try {
    const call = { target: `${openAiPath}${url.search}`, method, headers, body, path };
    const sentAt = ctx.now();
    const upstream = await callProvider(ctx, res, call, controller.signal);
    if (upstream === undefined) return;
    ctx.state.providerReached();
    const responseHeaders: Record<string, string> = {};
    upstream.headers.forEach((value, name) => {
      // The provider's CORS grants are not the user's: only the gateway decides which origin reads it.
      if (!DROP_RESPONSE_HEADERS.has(name) && !name.startsWith('access-control-'))
        responseHeaders[name] = value;
    });
    const signed = method === 'POST' && upstream.status >= 200 && upstream.status < 300;
    if (!signed || body === undefined) {
      await relayUnsigned(ctx, res, upstream, responseHeaders, guard);
      return;
    }
    const model = userBody === undefined ? undefined : modelOf(userBody);
    const exchange: SignedExchange = {
      res,
      upstream,
      responseHeaders,
      request: body,
      e2ee,
      attestation: a,
      path,
      model,
      guard,
      sentAt,
    };
    const contentType = upstream.headers.get('content-type') ?? '';
    if (contentType.startsWith('text/event-stream')) await relayStream(ctx, exchange);
    else await relayJson(ctx, exchange);
  } finally {
    share.release();
    ctx.calls.end(controller);
  }
};

/**
 * An answer the provider does not sign (POST answers only are, docs/protocol.md, Routes; errors pass
 * through unsigned). Its 400 `e2ee_model_key_mismatch` says the provider's key is not the one we
 * encrypted to: it may have restarted with a new key, so re-attest now (issue 21 item 13).
 */
const relayUnsigned = async (
  ctx: ProxyContext,
  res: ServerResponse,
  upstream: Response,
  responseHeaders: Record<string, string>,
  guard: BodyGuard,
): Promise<void> => {
  const answer = await readAnswer(upstream, ctx.maxAnswerBytes, 'answer', guard);
  ctx.state.counters.unsigned += 1;
  if (upstream.status === 400 && errorCodeOf(answer) === 'e2ee_model_key_mismatch')
    ctx.state.signerDoubted('e2ee_model_key_mismatch');
  res.writeHead(upstream.status, { ...responseHeaders, [VERIFICATION_HEADER]: 'unsigned' });
  res.end(answer);
};

/**
 * The provider's response, or undefined when the user already got an answer (or left): a TLS pin
 * failure is a failed verification, any other failure to reach the provider a 502.
 */
const callProvider = async (
  ctx: ProxyContext,
  res: ServerResponse,
  call: {
    target: string;
    method: string;
    headers: Record<string, string>;
    body: Uint8Array | undefined;
    path: string;
  },
  signal: AbortSignal,
): Promise<Response | undefined> => {
  const { method, headers, body, path } = call;
  // A deadline for the headers only: cleared once they came, so it never cuts a long answer's body.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), ctx.headersTimeoutMs);
  try {
    const upstream = await ctx.providerFetch(ctx.link.endpoint(call.target), {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.any([signal, deadline.signal]),
    });
    ctx.state.providerReached();
    return upstream;
  } catch (error) {
    if (signal.aborted) return undefined;
    if (deadline.signal.aborted) {
      ctx.state.counters.unsigned += 1;
      sendError(res, providerTimeout('response headers', ctx.headersTimeoutMs), 'failed: upstream.timeout');
      return undefined;
    }
    if (error instanceof PeerCertificateError) {
      // The peer is not the attested TLS key (a certificate swapped behind our back): nothing
      // was sent to it. A failed verification: the circuit opens until an attestation passes.
      const title = 'the connection shows the TLS key the last attestation pinned';
      const verdict = failedVerdict(TLS_PIN_CHECK, title, error.message);
      sendError(res, ctx.state.failed(verdict, { path, stream: false }), `failed: ${verdict.failedCheck}`);
      return undefined;
    }
    ctx.state.counters.unsigned += 1;
    const code = (error as { cause?: { code?: unknown } }).cause?.code;
    ctx.state.providerUnreachable(typeof code === 'string' ? code : (error as Error).message);
    ctx.logger.warn({ event: 'upstream', path, err: (error as Error).message }, 'provider unreachable');
    sendError(
      res,
      new SidecarError('the provider is unreachable', { status: 502, code: 'upstream_unreachable' }),
      'failed: upstream.unreachable',
    );
    return undefined;
  } finally {
    clearTimeout(timer);
  }
};
