import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { jsonOf, parseHex, readCapped, toHex } from '../bytes/index.js';
import type { Budget } from '../concurrency/index.js';
import {
  type E2eeSession,
  e2eeUnencryptable,
  e2eeUpstreamError,
  openE2eeSession,
  withoutE2eeHeaders,
} from '../e2ee/index.js';
import { SidecarError, unavailable } from '../errors/index.js';
import type { CacheSalter, Signers, SigningAlgo } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import {
  encodeSignatureTrailer,
  lazyRecord,
  type PendingSignatures,
  SIGNATURE_TRAILER,
  SIGNATURE_TRAILER_REQUEST_HEADER,
  type SignatureClaim,
  type SignatureRecord,
  type SignatureStore,
  sha256Hex,
  signatureTrailerRequest,
  signedText,
  signPair,
} from '../signatures/index.js';
import { cacheSaltFor, SALTED_PATHS, withCacheSalt } from './cache-salt.js';
import type { UpstreamResponse } from './dispatch.js';
import { assertJsonRequest, parseJsonAnswer, withResponseId } from './json-body.js';
import {
  assertAnswerModel,
  checkRequestModel,
  type ModelCheck,
  type ModelPolicy,
  modelCheckedStream,
} from './model-policy.js';
import { readBody } from './read-body.js';
import { generateResponseId } from './response-id.js';
import { SseLimitError } from './sse-parser.js';
import { SseTap } from './sse-tap.js';
import { forwardRequestHeaders, forwardResponseHeaders, type Upstream } from './upstream.js';

export interface ProxyContext {
  upstream: Upstream;
  signers: Signers;
  store: SignatureStore;
  pending: PendingSignatures;
  logger: Logger;
  metrics: Metrics;
  maxBodyBytes: number;
  maxUpstreamBodyBytes: number;
  /** Longest SSE line or event from the upstream, and most bytes held before its first event. */
  maxSseLineBytes?: number;
  /** Longest silence allowed from the upstream: before its headers, and between two chunks. */
  upstreamTimeoutMs: number;
  /** Longest a client may take none of the answer bytes waiting for it; then its connection closes. */
  clientStallMs: number;
  adminToken?: string | undefined;
  /** MODEL_NAME (and SIGNED_TEXT_FORMAT): undefined without MODEL_NAME, when no model is checked. */
  models?: ModelPolicy | undefined;
  /** CACHE_SALT=per-user: the caller's `cache_salt`; undefined when off. */
  cacheSalter?: CacheSalter | undefined;
  /**
   * Sign each algorithm on its first lookup instead of at delivery (signatures/lazy-record.ts). Only
   * for a store this process alone reads: a shared store's records must be signed before they are
   * written, since another replica, which may not hold this key, can serve the lookup.
   */
  lazySigning?: boolean;
  /**
   * Concurrency budgets (docs/protocol.md, Limits): request bodies being received (per client and
   * in all), and requests at the upstream (in all). A full budget answers 429 at once.
   */
  budgets: { uploads: Budget; upstream: Budget };
  /** The client a per-client budget applies to (the TCP peer, or a trusted forwarded address). */
  clientOf: (incoming: IncomingMessage) => string;
}

export interface ProxyRoute {
  method: 'GET' | 'POST';
  /** Path after `/v1`, e.g. `/chat/completions`. */
  openAiPath: string;
  /** Query string including `?`, or ''. Passed on untouched. */
  search: string;
  /** Sign JSON and SSE answers (POST endpoints); `/models` is passed through unsigned. */
  sign: boolean;
  requestId: string;
}

const accessLogs = new WeakMap<Logger, Logger>();

/**
 * The logger for the line each proxied request ends with: `logger` without its redaction pass. That
 * line's keys are fixed (an id, a route, a status, a duration) and none is one the pass censors, so
 * it would only cost a copy per request (half the line's CPU).
 */
const accessLog = (logger: Logger): Logger => {
  let access = accessLogs.get(logger);
  if (access === undefined) {
    access = logger.child({}, { redact: [] });
    accessLogs.set(logger, access);
  }
  return access;
};

const digestOf = (token: string): Buffer => createHash('sha256').update(token).digest();

/** Constant-time token comparison (hashing first makes the lengths equal). */
export const tokenMatches = (given: string | undefined, expected: string | undefined): boolean =>
  given !== undefined && expected !== undefined && timingSafeEqual(digestOf(given), digestOf(expected));

/** The largest single write of an answer's body (finish). */
const WRITE_SLICE_BYTES = 1024 * 1024;

const upstreamTimeout = (): SidecarError =>
  new SidecarError('upstream model server timed out', { status: 504, code: 'upstream_timeout' });

const badUpstream = (message: string, cause?: unknown): SidecarError =>
  new SidecarError(message, { status: 502, code: 'upstream_bad_response', cause });

const refused = (ctx: ProxyContext, budget: 'uploads' | 'upstream'): SidecarError => {
  ctx.metrics.refused.inc({ budget });
  return new SidecarError(
    budget === 'uploads'
      ? 'too many request bodies being received; retry shortly'
      : 'too many requests in flight; retry shortly',
    { status: 429, code: budget === 'uploads' ? 'upload_limit' : 'concurrency_limit' },
  );
};

class ClientGone extends Error {
  override readonly name = 'ClientGone';
}

const headerValue = (value: string | string[] | undefined): string | undefined =>
  Array.isArray(value) ? value[0] : value;

/** The hash the signed text starts with: the exact received bytes, or an admin's X-Request-Hash. */
const requestHashOf = (ctx: ProxyContext, incoming: IncomingMessage, body: Uint8Array): string => {
  const override = headerValue(incoming.headers['x-request-hash']);
  if (
    override !== undefined &&
    tokenMatches(headerValue(incoming.headers['x-admin-token']), ctx.adminToken)
  ) {
    return toHex(parseHex('X-Request-Hash', override.trim(), { bytes: 32 }));
  }
  return sha256Hex(body);
};

/**
 * Request bodies are checked as JSON unless they say they are something else: multipart uploads
 * (`/v1/audio/transcriptions`) and other non-JSON bodies are proxied and signed over their raw bytes.
 */
const declaresJson = (incoming: IncomingMessage): boolean => {
  const type = headerValue(incoming.headers['content-type'])?.toLowerCase();
  return type === undefined || type.includes('json') || type.startsWith('text/plain');
};

/** Undo a content-encoding the upstream applied despite `Accept-Encoding: identity`. */
const decoded = (res: UpstreamResponse): Readable => {
  const encoding = headerValue(res.headers['content-encoding'])?.trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (decoder === undefined) return res;
  return pipeline(res, decoder, () => undefined);
};

/**
 * The upstream's body, chunk by chunk, with every failure of the upstream (a reset or truncated body,
 * a body that does not decode) turned into a 502: the fault is the upstream's, not the sidecar's.
 */
async function* upstreamChunks(res: UpstreamResponse, timer: NodeJS.Timeout): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of decoded(res)) {
      timer.refresh();
      yield chunk as Buffer;
    }
  } catch (err) {
    throw readFailure(err);
  }
  assertComplete(res);
}

/** A failed read of the upstream's body as the client sees it: ours as they are, the upstream's a 502. */
const readFailure = (err: unknown): unknown =>
  err instanceof SidecarError || err instanceof ClientGone
    ? err
    : badUpstream('upstream response could not be read', err);

/** A body cut short without an error event (the socket closed early) is never complete. */
const assertComplete = (res: UpstreamResponse): void => {
  if (!res.complete) throw badUpstream('upstream response ended early');
};

/**
 * The upstream's whole body (a JSON answer), up to `limit` bytes: the same rules as `upstreamChunks`,
 * read through the stream's events (bytes/readCapped) rather than an async iterator, which costs a
 * promise and an end-of-stream watcher per answer. Past the limit the upstream's connection is closed.
 */
const upstreamBody = async (res: UpstreamResponse, timer: NodeJS.Timeout, limit: number): Promise<Buffer> => {
  let raw: Buffer;
  try {
    raw = await readCapped(decoded(res), {
      limit,
      tooLarge: () =>
        new SidecarError('upstream response exceeds the size limit', {
          status: 502,
          code: 'upstream_too_large',
        }),
      each: () => timer.refresh(),
    });
  } catch (err) {
    throw readFailure(err);
  }
  assertComplete(res);
  return raw;
};

const waitWritable = (out: ServerResponse): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = connectionOf(out);
    if (socket === null || socket.destroyed) {
      reject(new ClientGone('client disconnected'));
      return;
    }
    const onDrain = (): void => {
      stopWatching();
      resolve();
    };
    const stopWatching = whenClosed(socket, () => {
      out.off('drain', onDrain);
      reject(new ClientGone('client disconnected'));
    });
    out.once('drain', onDrain);
  });

const write = async (out: ServerResponse, parts: Uint8Array[]): Promise<void> => {
  for (const part of parts) {
    if (out.destroyed) throw new ClientGone('client disconnected');
    if (!out.write(part)) await waitWritable(out);
  }
};

/**
 * Whether the client asked for the signature in a trailer, and for which algorithm (docs/protocol.md,
 * "The signature in a trailer"). Only HTTP/1.1 has chunked encoding, which trailers travel in: an
 * HTTP/1.0 request gets today's answer and looks the signature up.
 */
const trailerAsked = (incoming: IncomingMessage): SigningAlgo | undefined => {
  let algo: SigningAlgo | undefined;
  try {
    algo = signatureTrailerRequest(headerValue(incoming.headers[SIGNATURE_TRAILER_REQUEST_HEADER]));
  } catch (err) {
    throw new SidecarError((err as Error).message, {
      status: 400,
      code: 'invalid_signature_trailer',
      param: 'X-Teeml-Signature-Trailer',
    });
  }
  const http11 =
    incoming.httpVersionMajor > 1 || (incoming.httpVersionMajor === 1 && incoming.httpVersionMinor >= 1);
  return http11 ? algo : undefined;
};

/**
 * The connection a response goes out on. A response to a pipelined request waits for the answers
 * before it and has no socket of its own yet (`out.socket` is null, its bytes are queued): its
 * request's socket is the same connection.
 */
const connectionOf = (out: ServerResponse): Socket | null => out.socket ?? out.req?.socket ?? null;

/**
 * Closes a connection whose client takes none of the bytes waiting for it for `ms` (checked every
 * `ms`: unsent bytes, and none sent since the last check); returns what stops watching. Without it a
 * client that stops reading held its request, and its slot at the model server, as long as it kept
 * the connection open: the writes waited for a drain that never came. A connection with nothing to
 * send (the model still thinking, a pipelined answer waiting its turn) is never cut.
 */
const stallGuard = (out: ServerResponse, ms: number): (() => void) => {
  let last = -1;
  let lastAt = performance.now();
  const timer = setInterval(() => {
    const socket = connectionOf(out);
    if (socket === null) return;
    const waiting = socket.writableLength;
    const sent = socket.bytesWritten - waiting;
    // A late check means this process was busy (writes are sent from its own event loop): no bytes
    // could go out meanwhile, so the next check decides.
    const now = performance.now();
    const late = now - lastAt > 1.5 * ms;
    if (!late && waiting > 0 && sent === last) socket.destroy();
    last = sent;
    lastAt = now;
  }, ms);
  timer.unref();
  return () => clearInterval(timer);
};

/** What waits on each connection's close: one listener per socket, however many requests wait. */
const closeWatchers = new WeakMap<Socket, { waiting: Set<() => void>; fire: () => void }>();

/**
 * Calls `fn` once `socket` closes; returns what stops watching. Requests pipelined on one connection
 * all wait on its close: one 'close' listener fans out to them, rather than one each (past ten Node
 * warns of a leak, a warning any client could make the sidecar print per connection).
 */
const whenClosed = (socket: Socket, fn: () => void): (() => void) => {
  let watch = closeWatchers.get(socket);
  if (watch === undefined) {
    const waiting = new Set<() => void>();
    const fire = (): void => {
      closeWatchers.delete(socket);
      for (const f of waiting) f();
    };
    watch = { waiting, fire };
    closeWatchers.set(socket, watch);
    socket.once('close', fire);
  }
  const { waiting, fire } = watch;
  waiting.add(fn);
  return () => {
    waiting.delete(fn);
    if (waiting.size === 0 && closeWatchers.get(socket) === watch) {
      closeWatchers.delete(socket);
      socket.off('close', fire);
    }
  };
};

/**
 * Ends the response; resolves true once every byte was handed to the socket, false if the client
 * left. Node emits 'finish' on a response even when the last write failed because the client reset
 * the connection (the write callback runs with the error); the socket then carries that error, so
 * it is checked too: only a write that really reached the kernel counts as delivered. A response
 * still queued behind a pipelined one ends when its turn comes; the connection closing first means
 * the client left.
 */
const finish = async (out: ServerResponse, last?: Uint8Array): Promise<boolean> => {
  let rest = last;
  if (rest !== undefined && rest.length > WRITE_SLICE_BYTES) {
    // A large answer goes out a slice at a time, each once the one before has drained: a client
    // that reads it slowly shows progress slice by slice (stallGuard), where one write of the whole
    // answer would show none until its last byte.
    const slices: Uint8Array[] = [];
    let at = 0;
    for (; rest.length - at > WRITE_SLICE_BYTES; at += WRITE_SLICE_BYTES)
      slices.push(rest.subarray(at, at + WRITE_SLICE_BYTES));
    try {
      await write(out, slices);
    } catch {
      return false;
    }
    rest = rest.subarray(at);
  }
  return end(out, rest);
};

/** Ends the response with `last`; true once every byte was handed to the socket (see finish). */
const end = (out: ServerResponse, last: Uint8Array | undefined): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connectionOf(out);
    if (out.destroyed || socket === null || socket.destroyed) {
      resolve(false);
      return;
    }
    const clean = (): boolean => socket.errored === null || socket.errored === undefined;
    const onFinish = (): void => {
      stopWatching();
      resolve(clean());
    };
    const stopWatching = whenClosed(socket, () => {
      out.off('finish', onFinish);
      resolve(out.writableFinished && clean());
    });
    out.once('finish', onFinish);
    if (last === undefined) out.end();
    else out.end(last);
  });

/**
 * Proxies one request to the upstream and signs the pair when the route asks for it.
 *
 * Errors before the first response byte are thrown (the app's error handler renders them); after
 * that the response is destroyed so the client sees a truncated body, never a signed one.
 */
export const proxyRequest = async (
  ctx: ProxyContext,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  route: ProxyRoute,
): Promise<void> => {
  const started = performance.now();
  let status = 0;
  let signedId: string | undefined;
  let releaseSlot: (() => void) | undefined;
  ctx.metrics.inFlight.inc();
  try {
    const trailer = route.sign ? trailerAsked(incoming) : undefined;
    let body: Buffer | undefined;
    if (route.method === 'POST') {
      // A slow body holds an upload slot, never one of the upstream's.
      const releaseUpload = ctx.budgets.uploads.tryTake(ctx.clientOf(incoming));
      if (releaseUpload === undefined) throw refused(ctx, 'uploads');
      try {
        body = await readBody(incoming, ctx.maxBodyBytes);
      } finally {
        releaseUpload();
      }
    }
    let requestHash: string | undefined;
    /** The body as parsed when it was checked as JSON, for whatever reads it next. */
    let parsed: { value: unknown } | undefined;
    if (body !== undefined && route.sign) {
      if (declaresJson(incoming)) parsed = { value: assertJsonRequest(body) };
      requestHash = requestHashOf(ctx, incoming, body);
    }
    // E2EE (NEAR AI protocol): the hash above is over the ciphertext as received; the model gets the
    // plaintext, and the answer is encrypted before it is hashed and sent.
    const e2ee = openE2eeSession(
      (name) => headerValue(incoming.headers[name]),
      route.openAiPath,
      ctx.signers,
    );
    const decrypted = e2ee !== undefined && body !== undefined ? e2ee.decryptRequest(body) : body;
    const { forwarded, model } = beforeUpstream(
      ctx,
      incoming,
      route,
      decrypted,
      decrypted === body ? parsed : undefined,
    );
    // Not kept across the model server's answer: a large prompt's objects would outlive the young
    // generation and cost the collector more than parsing them twice.
    parsed = undefined;
    releaseSlot = ctx.budgets.upstream.tryTake();
    if (releaseSlot === undefined) throw refused(ctx, 'upstream');
    const call = ctx.upstream.call(
      route.method,
      route.openAiPath,
      route.search,
      e2ee === undefined
        ? forwardRequestHeaders(incoming.headers)
        : withoutE2eeHeaders(forwardRequestHeaders(incoming.headers)),
      forwarded,
    );
    const timer = setTimeout(() => call.abort(upstreamTimeout()), ctx.upstreamTimeoutMs);
    const stopGuard = stallGuard(outgoing, ctx.clientStallMs);
    const onClientClose = (): void => {
      if (!outgoing.writableFinished) call.abort(new ClientGone('client disconnected'));
    };
    // The connection, not the response: a response queued behind a pipelined one has no socket yet
    // and hears nothing when the client leaves.
    const connection = connectionOf(outgoing);
    const stopWatching = connection === null ? undefined : whenClosed(connection, onClientClose);
    try {
      const res = await call.response;
      status = res.statusCode ?? 502;
      const contentType = headerValue(res.headers['content-type'])?.toLowerCase() ?? '';
      if (status < 200 || status > 599 || (status >= 300 && status < 400)) {
        // Nothing the client could use: a redirect to an address behind the sidecar, or a status
        // HTTP does not define. The body is dropped.
        res.destroy();
        throw badUpstream(`upstream answered with status ${status}, which the proxy does not relay`);
      }
      if (e2ee !== undefined && !SIGNED_STATUS(status)) {
        withholdUnsealable(ctx, res, status);
      } else if (requestHash === undefined || !SIGNED_STATUS(status)) {
        await passThrough(res, outgoing, timer, status);
        if (route.sign)
          ctx.metrics.unsigned.inc({ reason: status >= 400 ? 'upstream_error' : 'not_signed_route' });
      } else if (contentType.startsWith('text/event-stream')) {
        signedId = await proxyStream(ctx, res, outgoing, timer, requestHash, e2ee, model, trailer);
      } else {
        signedId = await proxyJson(ctx, res, outgoing, timer, requestHash, e2ee, model, trailer);
      }
    } finally {
      clearTimeout(timer);
      stopGuard();
      stopWatching?.();
    }
  } catch (err) {
    // The client left (before or during the answer): nothing to send, nothing signed; 499 in logs.
    if (err instanceof ClientGone || (outgoing.destroyed && !outgoing.writableFinished)) {
      status = 499;
      return;
    }
    if (outgoing.headersSent) {
      // Mid-response failure: the client must see a broken body, not a complete-looking one.
      outgoing.destroy();
      status = status || 502;
      return;
    }
    status = err instanceof SidecarError ? err.status : 500;
    throw err;
  } finally {
    releaseSlot?.();
    ctx.metrics.inFlight.dec();
    ctx.metrics.proxyRequests.inc({ route: route.openAiPath, status: String(status) });
    accessLog(ctx.logger).info(
      {
        reqId: route.requestId,
        route: route.openAiPath,
        status,
        ms: Math.round((performance.now() - started) * 10) / 10,
        responseId: signedId,
        signed: signedId !== undefined,
      },
      'proxied',
    );
  }
};

const objectOf = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

/**
 * The body as a JSON object, whatever content type it declares (a model server may read JSON under
 * any label, so MODEL_NAME and CACHE_SALT must too); undefined for anything else (not JSON, an
 * array, a multipart upload).
 */
const jsonObjectOf = (body: Uint8Array): Record<string, unknown> | undefined => objectOf(jsonOf(body));

/**
 * MODEL_NAME and CACHE_SALT on the way to the model server (docs/protocol.md): a request for a model
 * not served is refused here (404, the model server is never called), and the body the model server
 * gets carries this caller's `cache_salt`. The signed request hash was taken before, over the bytes
 * the client sent. Without either setting the body is not read again; `parsed` is `body` as already
 * parsed, when it was.
 */
const beforeUpstream = (
  ctx: ProxyContext,
  incoming: IncomingMessage,
  route: ProxyRoute,
  body: Uint8Array | undefined,
  parsed: { value: unknown } | undefined,
): { forwarded: Uint8Array | undefined; model: ModelCheck | undefined } => {
  if (body === undefined || !route.sign || (ctx.models === undefined && ctx.cacheSalter === undefined)) {
    return { forwarded: body, model: undefined };
  }
  const value = parsed === undefined ? jsonObjectOf(body) : objectOf(parsed.value);
  const model = ctx.models === undefined ? undefined : checkRequestModel(ctx.models, value);
  const salted =
    ctx.cacheSalter !== undefined && value !== undefined && SALTED_PATHS.has(route.openAiPath)
      ? withCacheSalt(body, value, cacheSaltFor(ctx.cacheSalter, incoming.headers))
      : body;
  return { forwarded: salted, model };
};

/**
 * Which upstream answers are signed (docs/protocol.md): 2xx with a body. 204/205 have none and 206 is
 * a part of one; they pass through unsigned, like every 4xx/5xx.
 */
const SIGNED_STATUS = (status: number): boolean =>
  status >= 200 && status < 300 && status !== 204 && status !== 205 && status !== 206;

/** An E2EE request's answer that cannot be sealed (an error, no body) is not relayed: see e2eeUpstreamError. */
const withholdUnsealable = (ctx: ProxyContext, res: UpstreamResponse, status: number): never => {
  res.destroy();
  ctx.metrics.unsigned.inc({ reason: status >= 400 ? 'upstream_error' : 'not_signed_route' });
  throw e2eeUpstreamError(status);
};

const passThrough = async (
  res: UpstreamResponse,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  status: number,
): Promise<void> => {
  let started = false;
  for await (const chunk of upstreamChunks(res, timer)) {
    if (!started) {
      outgoing.writeHead(status, forwardResponseHeaders(res.headers));
      started = true;
    }
    await write(outgoing, [chunk]);
  }
  if (!started) outgoing.writeHead(status, forwardResponseHeaders(res.headers));
  await finish(outgoing);
};

/**
 * Claims the id the client will see: the upstream's own when it is free, else a fresh one. An id
 * already stored or still in flight (here, or on a replica sharing the store) is never reused, so no
 * response's record can replace another's.
 */
const claimResponseId = async (
  ctx: ProxyContext,
  upstreamId: string | undefined,
): Promise<SignatureClaim> => {
  if (upstreamId !== undefined) {
    const claim = await ctx.store.claim(upstreamId);
    if (claim !== undefined) return claim;
    ctx.metrics.idReassigned.inc({ reason: 'taken' });
    ctx.logger.warn({ upstreamId }, 'upstream response id already taken: the response gets a fresh id');
  } else {
    ctx.metrics.idReassigned.inc({ reason: 'missing' });
  }
  // 96 random bits: a collision is not expected, but a taken id is never used, whatever happens.
  for (let attempt = 0; attempt < 3; attempt++) {
    const claim = await ctx.store.claim(generateResponseId());
    if (claim !== undefined) return claim;
  }
  throw unavailable('no response id could be allocated', 'id_unavailable');
};

/**
 * The record for a pair: both signatures made on their first read where this process alone serves
 * lookups (lazy-record.ts), both at once otherwise.
 */
const recordOf = (
  ctx: ProxyContext,
  requestHash: string,
  responseHash: string,
  model?: ModelCheck,
): SignatureRecord => {
  // SIGNED_TEXT_FORMAT=model: the model the request asked for, which every answer chunk named.
  const signedModel = model?.signed === true ? model.expected : undefined;
  return ctx.lazySigning === true
    ? lazyRecord(ctx.signers, signedText(requestHash, responseHash, signedModel))
    : signPair(ctx.signers, requestHash, responseHash, signedModel);
};

/**
 * Fills the claim with the record of an answer every byte of which was handed to the socket. Returns
 * the record when it was stored (what a lookup will serve), else undefined.
 */
const storeRecord = async (
  ctx: ProxyContext,
  claim: SignatureClaim,
  record: SignatureRecord,
): Promise<SignatureRecord | undefined> => {
  try {
    if (await ctx.store.put(claim, record)) {
      ctx.metrics.signatures.inc({ kind: 'stored' });
      return record;
    }
    ctx.metrics.unsigned.inc({ reason: 'id_conflict' });
    ctx.logger.error(
      { responseId: claim.id },
      'signature not stored: the response id is held by another response',
    );
  } catch (err) {
    ctx.metrics.storeErrors.inc();
    ctx.logger.error({ err: (err as Error).message, responseId: claim.id }, 'signature store write failed');
  }
  return undefined;
};

const proxyJson = async (
  ctx: ProxyContext,
  res: UpstreamResponse,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  requestHash: string,
  e2ee?: E2eeSession,
  model?: ModelCheck,
  trailer?: SigningAlgo,
): Promise<string | undefined> => {
  const raw = await upstreamBody(res, timer, ctx.maxUpstreamBodyBytes);
  clearTimeout(timer);
  const status = res.statusCode ?? 200;
  const headers = forwardResponseHeaders(res.headers);
  const answer = parseJsonAnswer(raw);
  // An E2EE answer goes out encrypted or not at all.
  if (answer === undefined && e2ee !== undefined) throw e2eeUnencryptable();
  if (answer === undefined) {
    ctx.metrics.unsigned.inc({ reason: 'not_json' });
    outgoing.writeHead(status, { ...headers, 'content-length': String(raw.length) });
    await finish(outgoing, raw);
    return undefined;
  }
  // Checked on the model server's own answer, before anything is encrypted, sent or signed.
  if (model !== undefined) assertAnswerModel(answer.value, model);
  e2ee?.encryptValue(answer.value, false);
  const claim = await claimResponseId(ctx, answer.id);
  const body = claim.id === answer.id && e2ee === undefined ? raw : withResponseId(answer, claim.id);
  // Signed only once every byte is with the socket (a client that leaves half-way gets no record). A
  // lookup that arrives meanwhile waits for the id to settle, so the signature is there within the
  // few ms a client may be early by.
  ctx.pending.begin(claim.id);
  try {
    const contentType = headerValue(res.headers['content-type']) ?? 'application/json';
    if (trailer !== undefined) {
      const head = { ...headers, 'content-type': contentType, 'zg-res-key': claim.id };
      await jsonWithTrailer(ctx, outgoing, { status, head, body, claim, requestHash, algo: trailer, model });
      return claim.id;
    }
    outgoing.writeHead(status, {
      ...headers,
      'content-type': contentType,
      'content-length': String(body.length),
      'zg-res-key': claim.id,
    });
    if (!(await finish(outgoing, body))) {
      ctx.metrics.unsigned.inc({ reason: 'client_disconnected' });
      throw new ClientGone('client disconnected');
    }
    // Every byte is with the socket: signed over exactly what was sent.
    await storeRecord(ctx, claim, recordOf(ctx, requestHash, sha256Hex(body), model));
    return claim.id;
  } finally {
    ctx.pending.settle(claim.id);
  }
};

/**
 * A JSON answer with its signature in a trailer: chunked instead of Content-Length (a trailer needs
 * chunked encoding, RFC 9112 §7.1.2). The answer is complete, so its record is made first; the body
 * then goes out with the trailer in its last write (a small answer: one write), and the record is
 * stored only once every byte was handed over. A client that left before gets no stored record, and the signature made for its
 * trailer is dropped unsent: bytes on a connection arrive in order, so no one reads the trailer
 * without every byte of the body before it.
 */
const jsonWithTrailer = async (
  ctx: ProxyContext,
  outgoing: ServerResponse,
  a: {
    status: number;
    head: Record<string, string | string[]>;
    body: Uint8Array;
    claim: SignatureClaim;
    requestHash: string;
    algo: SigningAlgo;
    model: ModelCheck | undefined;
  },
): Promise<void> => {
  const record = recordOf(ctx, a.requestHash, sha256Hex(a.body), a.model);
  outgoing.writeHead(a.status, { ...a.head, trailer: SIGNATURE_TRAILER });
  outgoing.addTrailers({ [SIGNATURE_TRAILER]: encodeSignatureTrailer(record, a.algo) });
  if (!(await finish(outgoing, a.body))) {
    ctx.metrics.unsigned.inc({ reason: 'client_disconnected' });
    throw new ClientGone('client disconnected');
  }
  await storeRecord(ctx, a.claim, record);
};

const proxyStream = async (
  ctx: ProxyContext,
  res: UpstreamResponse,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  requestHash: string,
  e2ee?: E2eeSession,
  model?: ModelCheck,
  trailer?: SigningAlgo,
): Promise<string | undefined> => {
  const limit = ctx.maxSseLineBytes;
  const tap = new SseTap(limit === undefined ? {} : { maxLineBytes: limit, maxHeldBytes: limit });
  const status = res.statusCode ?? 200;
  const headers = forwardResponseHeaders(res.headers);
  let claim: SignatureClaim | undefined;
  /** Claims the id, sends the headers, and returns the held bytes (as sent or rewritten). */
  const start = async (): Promise<Uint8Array[]> => {
    claim = await claimResponseId(ctx, tap.upstreamId);
    ctx.pending.begin(claim.id);
    outgoing.writeHead(status, {
      ...headers,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      'zg-res-key': claim.id,
      ...(trailer === undefined ? {} : { trailer: SIGNATURE_TRAILER }),
    });
    outgoing.flushHeaders();
    return tap.confirm(claim.id);
  };
  try {
    try {
      const raw = upstreamChunks(res, timer);
      const chunks = model === undefined ? raw : modelCheckedStream(raw, model, limit);
      for await (const chunk of e2ee === undefined ? chunks : e2ee.sseEncryptor(limit).transform(chunks)) {
        const out = tap.push(chunk);
        await write(outgoing, tap.proposed ? await start() : out);
      }
    } catch (err) {
      if (err instanceof SseLimitError) {
        throw new SidecarError('upstream event stream exceeds the size limits', {
          status: 502,
          code: 'upstream_bad_stream',
        });
      }
      if (claim !== undefined && isModelMismatch(err)) {
        await endWithError(ctx, res, outgoing, err);
        return undefined;
      }
      throw err;
    }
    clearTimeout(timer);
    tap.endOfInput();
    if (tap.proposed) await write(outgoing, await start());
    const outcome = tap.end();
    // Asked for the trailer: the record of a complete stream is made now and its trailer ends the
    // answer (as for JSON, jsonWithTrailer); it is stored only if the whole answer reaches the socket.
    const early =
      trailer !== undefined && outcome.complete && claim !== undefined
        ? recordOf(ctx, requestHash, outcome.responseHash, model)
        : undefined;
    if (early !== undefined && trailer !== undefined)
      outgoing.addTrailers({ [SIGNATURE_TRAILER]: encodeSignatureTrailer(early, trailer) });
    const delivered = await finish(outgoing);
    if (!outcome.complete || !delivered || claim === undefined) {
      ctx.metrics.unsigned.inc({ reason: delivered ? 'stream_incomplete' : 'client_disconnected' });
      return undefined;
    }
    // Every byte is with the socket: sign over exactly what was sent.
    await storeRecord(ctx, claim, early ?? recordOf(ctx, requestHash, outcome.responseHash, model));
    return claim.id;
  } catch (err) {
    ctx.metrics.unsigned.inc({
      reason: err instanceof ClientGone || outgoing.destroyed ? 'client_disconnected' : 'upstream_failed',
    });
    throw err;
  } finally {
    if (claim !== undefined) ctx.pending.settle(claim.id);
  }
};

const isModelMismatch = (err: unknown): err is SidecarError =>
  err instanceof SidecarError && err.code === 'model_mismatch';

/**
 * A stream already under way whose model server switched models: the client gets an error event in
 * the OpenAI shape and the stream ends without `[DONE]`, so no client takes it for a whole answer,
 * and nothing is signed (docs/protocol.md, Model identity). The bytes sent so far end on an event
 * boundary (model-policy.ts), so the error event parses on its own.
 */
const endWithError = async (
  ctx: ProxyContext,
  res: UpstreamResponse,
  outgoing: ServerResponse,
  err: SidecarError,
): Promise<void> => {
  res.destroy();
  ctx.metrics.unsigned.inc({ reason: 'model_mismatch' });
  ctx.logger.warn({ code: err.code }, 'stream ended: the model server answered with another model');
  await write(outgoing, [
    new TextEncoder().encode(`event: error\ndata: ${JSON.stringify(err.toBody())}\n\n`),
  ]);
  await finish(outgoing);
};
