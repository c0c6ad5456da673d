import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { parseHex, toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { Signers } from '../keys/index.js';
import type { Logger } from '../log/index.js';
import type { Metrics } from '../metrics/index.js';
import { type PendingSignatures, type SignatureStore, signPair } from '../signatures/index.js';
import { prepareJsonBody } from './json-body.js';
import { readBody } from './read-body.js';
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
  /** Longest silence allowed from the upstream: before its headers, and between two chunks. */
  upstreamTimeoutMs: number;
  adminToken?: string | undefined;
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

const sha256hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

const digestOf = (token: string): Buffer => createHash('sha256').update(token).digest();

/** Constant-time token comparison (hashing first makes the lengths equal). */
export const tokenMatches = (given: string | undefined, expected: string | undefined): boolean =>
  given !== undefined && expected !== undefined && timingSafeEqual(digestOf(given), digestOf(expected));

const upstreamTimeout = (): SidecarError =>
  new SidecarError('upstream model server timed out', { status: 504, code: 'upstream_timeout' });

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
  return sha256hex(body);
};

/** Undo a content-encoding the upstream applied despite `Accept-Encoding: identity`. */
const decoded = (res: IncomingMessage): Readable => {
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

const waitWritable = (out: ServerResponse): Promise<void> =>
  new Promise((resolve, reject) => {
    const onDrain = (): void => {
      out.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      out.off('drain', onDrain);
      reject(new ClientGone('client disconnected'));
    };
    out.once('drain', onDrain);
    out.once('close', onClose);
  });

const write = async (out: ServerResponse, parts: Uint8Array[]): Promise<void> => {
  for (const part of parts) {
    if (out.destroyed) throw new ClientGone('client disconnected');
    if (!out.write(part)) await waitWritable(out);
  }
};

/** Ends the response; resolves true once every byte was handed to the socket, false if the client left. */
const finish = (out: ServerResponse, last?: Uint8Array): Promise<boolean> =>
  new Promise((resolve) => {
    if (out.destroyed) {
      resolve(false);
      return;
    }
    const onFinish = (): void => {
      out.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      out.off('finish', onFinish);
      resolve(out.writableFinished);
    };
    out.once('finish', onFinish);
    out.once('close', onClose);
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
  ctx.metrics.inFlight.inc();
  try {
    const body = route.method === 'POST' ? await readBody(incoming, ctx.maxBodyBytes) : undefined;
    let requestHash: string | undefined;
    if (body !== undefined && route.sign) {
      assertJsonBody(body);
      requestHash = requestHashOf(ctx, incoming, body);
    }
    const call = ctx.upstream.call(
      route.method,
      route.openAiPath,
      route.search,
      forwardRequestHeaders(incoming.headers),
      body,
    );
    const timer = setTimeout(() => call.abort(upstreamTimeout()), ctx.upstreamTimeoutMs);
    const onClientClose = (): void => {
      if (!outgoing.writableFinished) call.abort(new ClientGone('client disconnected'));
    };
    outgoing.once('close', onClientClose);
    try {
      const res = await call.response;
      status = res.statusCode ?? 502;
      const contentType = headerValue(res.headers['content-type'])?.toLowerCase() ?? '';
      if (requestHash === undefined || status >= 400) {
        await passThrough(res, outgoing, timer, status);
        if (route.sign)
          ctx.metrics.unsigned.inc({ reason: status >= 400 ? 'upstream_error' : 'not_signed_route' });
      } else if (contentType.startsWith('text/event-stream')) {
        signedId = await proxyStream(ctx, res, outgoing, timer, requestHash);
      } else {
        signedId = await proxyJson(ctx, res, outgoing, timer, requestHash);
      }
    } finally {
      clearTimeout(timer);
      outgoing.off('close', onClientClose);
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
    ctx.metrics.inFlight.dec();
    ctx.metrics.proxyRequests.inc({ route: route.openAiPath, status: String(status) });
    ctx.logger.info(
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

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

const assertJsonBody = (body: Uint8Array): void => {
  try {
    JSON.parse(strictUtf8.decode(body));
  } catch {
    throw new SidecarError('request body is not valid JSON', { status: 400, code: 'invalid_json' });
  }
};

const passThrough = async (
  res: IncomingMessage,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  status: number,
): Promise<void> => {
  const source = decoded(res);
  outgoing.writeHead(status, forwardResponseHeaders(res.headers));
  for await (const chunk of source) {
    timer.refresh();
    await write(outgoing, [chunk as Buffer]);
  }
  await finish(outgoing);
};

const store = async (
  ctx: ProxyContext,
  id: string,
  requestHash: string,
  responseHash: string,
): Promise<void> => {
  const record = signPair(ctx.signers, requestHash, responseHash);
  try {
    await ctx.store.put(id, record);
    ctx.metrics.signatures.inc({ kind: 'stored' });
  } catch (err) {
    ctx.metrics.storeErrors.inc();
    ctx.logger.error({ err: (err as Error).message, responseId: id }, 'signature store write failed');
  }
};

const proxyJson = async (
  ctx: ProxyContext,
  res: IncomingMessage,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  requestHash: string,
): Promise<string | undefined> => {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of decoded(res)) {
    timer.refresh();
    total += (chunk as Buffer).length;
    if (total > ctx.maxUpstreamBodyBytes) {
      res.destroy();
      throw new SidecarError('upstream response exceeds the size limit', {
        status: 502,
        code: 'upstream_too_large',
      });
    }
    chunks.push(chunk as Buffer);
  }
  clearTimeout(timer);
  const raw = Buffer.concat(chunks, total);
  const status = res.statusCode ?? 200;
  const headers = forwardResponseHeaders(res.headers);
  const prepared = prepareJsonBody(raw);
  if (prepared === undefined) {
    ctx.metrics.unsigned.inc({ reason: 'not_json' });
    outgoing.writeHead(status, { ...headers, 'content-length': String(raw.length) });
    await finish(outgoing, raw);
    return undefined;
  }
  // The body is complete and will be sent whole: sign before sending, so the signature exists by the
  // time the client could ask for it.
  await store(ctx, prepared.id, requestHash, sha256hex(prepared.body));
  outgoing.writeHead(status, {
    ...headers,
    'content-type': headerValue(res.headers['content-type']) ?? 'application/json',
    'content-length': String(prepared.body.length),
    'zg-res-key': prepared.id,
  });
  await finish(outgoing, prepared.body);
  return prepared.id;
};

const proxyStream = async (
  ctx: ProxyContext,
  res: IncomingMessage,
  outgoing: ServerResponse,
  timer: NodeJS.Timeout,
  requestHash: string,
): Promise<string | undefined> => {
  const tap = new SseTap();
  const status = res.statusCode ?? 200;
  const headers = forwardResponseHeaders(res.headers);
  let id: string | undefined;
  const sendHeaders = (): void => {
    id = tap.responseId as string;
    ctx.pending.begin(id);
    outgoing.writeHead(status, {
      ...headers,
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      'zg-res-key': id,
    });
    outgoing.flushHeaders();
  };
  try {
    for await (const chunk of decoded(res)) {
      timer.refresh();
      const out = tap.push(chunk as Buffer);
      if (id === undefined && tap.decided) sendHeaders();
      await write(outgoing, out);
    }
    clearTimeout(timer);
    const { rest, outcome } = tap.end();
    if (id === undefined) sendHeaders();
    await write(outgoing, rest);
    const delivered = await finish(outgoing);
    if (!outcome.complete || !delivered) {
      ctx.metrics.unsigned.inc({ reason: delivered ? 'stream_incomplete' : 'client_disconnected' });
      return undefined;
    }
    // Every byte is with the socket: sign over exactly what was sent.
    await store(ctx, outcome.id, requestHash, outcome.responseHash);
    return outcome.id;
  } catch (err) {
    ctx.metrics.unsigned.inc({
      reason: err instanceof ClientGone || outgoing.destroyed ? 'client_disconnected' : 'upstream_failed',
    });
    throw err;
  } finally {
    if (id !== undefined) ctx.pending.settle(id);
  }
};
