import { timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { PeerCertificateError } from '../tls/index.js';
import { BROKER_QUOTE_NOT_FRESH } from '../verifier/index.js';
import { type Attestation, Attestor } from './attestor.js';
import type { E2eeClient, E2eeSession } from './e2ee.js';
import type { Policy } from './policy.js';
import type { ProviderLink } from './provider-link.js';
import { type Receipt, ReceiptLog, type ReceiptSink } from './receipts.js';
import { eventData, SseEventSplitter } from './sse-events.js';
import { type GatewayCounters, renderStatusPage } from './status-page.js';
import { type AnswerVerdict, verifyAnswer } from './verify-answer.js';
import { concatBytes, jsonOf, readAnswer } from './wire.js';

export interface GatewayOptions {
  link: ProviderLink;
  policy: Policy;
  logger: Logger;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  onFailure?: 'refuse' | 'warn';
  /** Milliseconds between attestations (default 10 minutes). */
  reattestIntervalMs?: number;
  /** Milliseconds before the next try while the provider is not attested (default 30 s, at most the interval). */
  retryAttestationMs?: number;
  /** Bearer token the gateway requires on /v1/* (required off loopback; the CLI enforces it). */
  authToken?: string;
  receipts?: { sink: ReceiptSink; label: string };
  /** 'auto': E2EE when the client is built in and the attested report advertises it; 'off': --no-e2ee. */
  e2ee?: { mode: 'auto' | 'off'; client?: E2eeClient };
  /** fetch for the provider (answers, signatures) and the verifier (NRAS, PCCS). */
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  random?: (length: number) => Uint8Array;
  /** Timers for re-attestation (tests drive them). */
  timers?: {
    setTimeout: (fn: () => void, ms: number) => unknown;
    clearTimeout: (handle: unknown) => void;
  };
  maxRequestBytes?: number;
  maxAnswerBytes?: number;
}

export interface Gateway {
  url: string;
  server: Server;
  attestor: Attestor;
  counters: Readonly<GatewayCounters>;
  receipts: ReceiptLog;
  /** Whether new requests are refused after a failed answer, and why. */
  circuit(): { open: boolean; check?: string; since?: number };
  /** Runs an attestation now (as the timer does). */
  attestNow(): Promise<Attestation>;
  close(): Promise<void>;
}

export const VERIFICATION_HEADER = 'x-teeml-verification';

/** The check a request fails when the provider's connection does not show the pinned TLS key. */
const TLS_PIN_CHECK = 'gateway.tls-pinned';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself are not forwarded. */
const DROP_REQUEST_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
  'accept-encoding',
  // The user's key for the gateway is not the provider's: --api-key / --header set that.
  'authorization',
  'cookie',
  'expect',
]);
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

const errorBody = (error: SidecarError): string => JSON.stringify(error.toBody());

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host.startsWith('127.');

/** The user's request body, exact bytes, at most `max` (bytes/readCapped: one capped reader). */
const readRequest = (req: IncomingMessage, max: number): Promise<Uint8Array> =>
  readCapped(req, {
    limit: max,
    declared: req.headers['content-length'],
    tooLarge: () =>
      new SidecarError(`request body exceeds ${max} bytes`, { status: 413, code: 'request_too_large' }),
    rest: 'leave',
  });

const modelOf = (body: Uint8Array): string | undefined => {
  const json = jsonOf(body) as { model?: unknown } | undefined;
  return typeof json?.model === 'string' ? json.model : undefined;
};

/**
 * The gateway: a local OpenAI endpoint that attests its provider before trusting it, keeps
 * attesting, and verifies every signed answer against the attested key before the user's tools see
 * it (issue 14). It reaches the provider only through `ProviderLink`.
 */
export const startGateway = async (options: GatewayOptions): Promise<Gateway> => {
  const { link, policy, logger } = options;
  const fetchFn = options.fetch ?? globalThis.fetch;
  // Answers and signature records: the link's own transport when it has one (https: pinned to the
  // attested TLS key), else the gateway's fetch.
  const providerFetch = link.fetch ?? fetchFn;
  const now = options.now ?? Date.now;
  const onFailure = options.onFailure ?? 'refuse';
  const interval = options.reattestIntervalMs ?? 10 * 60 * 1000;
  const retryMs = options.retryAttestationMs ?? 30_000;
  const timers = options.timers ?? {
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
    clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
  };
  const maxRequest = options.maxRequestBytes ?? 10 * 1024 * 1024;
  const maxAnswer = options.maxAnswerBytes ?? 64 * 1024 * 1024;
  const e2eeMode = options.e2ee?.mode ?? 'auto';
  const e2eeClient = options.e2ee?.client;
  const attestor = new Attestor({
    link,
    policy,
    logger,
    now,
    ...(options.random === undefined ? {} : { random: options.random }),
    fetch: fetchFn,
  });
  const receipts = new ReceiptLog(options.receipts?.sink);
  const counters: GatewayCounters = {
    verified: 0,
    failed: 0,
    refused: 0,
    unsigned: 0,
    attestationsPassed: 0,
    attestationsFailed: 0,
  };
  let circuit: { open: boolean; check?: string; since?: number } = { open: false };
  let timer: unknown;
  let nextAttestationAt: number | undefined;
  let closed = false;
  const inFlight = new Set<AbortController>();

  const attestNow = async (): Promise<Attestation> => {
    const a = await attestor.attest();
    if (a.ok) {
      counters.attestationsPassed += 1;
      if (circuit.open)
        logger.info({ event: 'circuit', check: circuit.check }, 'circuit closed: attestation passed');
      circuit = { open: false };
    } else counters.attestationsFailed += 1;
    return a;
  };
  // While the provider is not attested every request is refused: try again sooner than the interval
  // (a provider that restarts or a network blip should not cost the user ten minutes).
  const schedule = () => {
    if (closed) return;
    const wait = attestor.trusted === undefined ? Math.min(interval, retryMs) : interval;
    nextAttestationAt = now() + wait;
    timer = timers.setTimeout(() => {
      attestNow()
        .catch((error: unknown) => logger.error({ err: (error as Error).message }, 'attestation crashed'))
        .finally(schedule);
    }, wait);
  };

  const e2eeState = (): string => {
    if (e2eeMode === 'off') return 'off (--no-e2ee)';
    if (e2eeClient === undefined)
      return 'unavailable: this build has no E2EE client (answers are still verified)';
    const report = attestor.trusted?.report;
    if (report === undefined) return 'waiting for attestation';
    return e2eeClient.supports(report)
      ? `on (${e2eeClient.name})`
      : 'off: the provider does not advertise E2EE';
  };

  const e2eeSessionFor = (openAiPath: string, a: Attestation): E2eeSession | undefined => {
    if (e2eeMode === 'off' || e2eeClient === undefined || a.signer === undefined) return undefined;
    if (!e2eeClient.supports(a.report)) return undefined;
    return e2eeClient.session({
      openAiPath,
      algo: a.signer.algo,
      signingAddress: a.signer.address,
      signingPublicKey: a.signer.publicKey,
    });
  };

  const sendError = (res: ServerResponse, error: SidecarError, verification: string): void => {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(error.status, {
      'content-type': 'application/json',
      [VERIFICATION_HEADER]: verification,
    });
    res.end(errorBody(error));
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (options.authToken === undefined) return true;
    const header = req.headers.authorization ?? '';
    const expected = Buffer.from(`Bearer ${options.authToken}`);
    const given = Buffer.from(header);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };

  const tlsPinFailure = (error: PeerCertificateError): AnswerVerdict => ({
    ok: false,
    failedCheck: TLS_PIN_CHECK,
    detail: error.message,
    checks: [
      {
        id: TLS_PIN_CHECK,
        title: 'the connection shows the TLS key the last attestation pinned',
        status: 'fail',
        detail: error.message,
      },
    ],
    requestSha256: '',
    responseSha256: '',
  });

  const failed = (verdict: AnswerVerdict, meta: { path: string; stream: boolean }): SidecarError => {
    counters.failed += 1;
    logger.warn(
      {
        event: 'verification',
        ok: false,
        check: verdict.failedCheck,
        detail: verdict.detail,
        id: verdict.id,
        path: meta.path,
        stream: meta.stream,
      },
      `answer failed verification: ${verdict.failedCheck}`,
    );
    if (onFailure === 'refuse' && !circuit.open) {
      circuit = {
        open: true,
        ...(verdict.failedCheck === undefined ? {} : { check: verdict.failedCheck }),
        since: now(),
      };
      logger.warn(
        { event: 'circuit', check: verdict.failedCheck },
        'circuit opened: requests refused until the next attestation passes',
      );
    }
    return new SidecarError(`the provider's answer failed verification: ${verdict.failedCheck}`, {
      status: 502,
      code: 'verification_failed',
      type: 'upstream_error',
    });
  };

  const verified = async (
    verdict: AnswerVerdict,
    a: Attestation,
    meta: { path: string; stream: boolean; model: string | undefined },
  ): Promise<void> => {
    counters.verified += 1;
    logger.info(
      { event: 'verification', ok: true, id: verdict.id, path: meta.path, stream: meta.stream },
      'answer verified',
    );
    if (verdict.id === undefined || verdict.record === undefined || a.signer === undefined) return;
    const receipt: Receipt = {
      type: 'receipt',
      v: 1,
      time: new Date(now()).toISOString(),
      id: verdict.id,
      ...(meta.model === undefined ? {} : { model: meta.model }),
      path: meta.path,
      stream: meta.stream,
      request_sha256: verdict.requestSha256,
      response_sha256: verdict.responseSha256,
      request_hash_compared: link.requestHashComparable,
      text: verdict.record.text,
      signature: verdict.record.signature,
      signing_address: a.signer.address,
      signing_algo: a.signer.algo,
      checks: verdict.checks.map((c) => ({ id: c.id, status: c.status })),
      attestation: {
        nonce: a.nonce,
        quote_sha256: a.quoteSha256 ?? null,
        at: new Date(a.at).toISOString(),
        source: a.source,
        fresh: a.fresh,
        ...(a.fresh ? {} : { not_fresh: BROKER_QUOTE_NOT_FRESH }),
      },
    };
    try {
      await receipts.add(receipt, a);
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'receipt not written');
    }
  };

  const proxy = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = req.method ?? 'GET';
    const openAiPath = url.pathname.slice('/v1'.length) || '/';
    const path = url.pathname;
    const userBody = method === 'GET' || method === 'HEAD' ? undefined : await readRequest(req, maxRequest);

    const a = attestor.trusted;
    if (a === undefined) {
      counters.refused += 1;
      const check = attestor.current?.failedCheck ?? 'report.pending';
      sendError(
        res,
        new SidecarError(`the provider is not attested: ${check}`, {
          status: 503,
          code: 'attestation_failed',
        }),
        `failed: ${check}`,
      );
      return;
    }
    if (circuit.open && onFailure === 'refuse') {
      counters.refused += 1;
      sendError(
        res,
        new SidecarError(
          `an earlier answer failed verification (${circuit.check}); requests are refused until the next attestation passes`,
          { status: 503, code: 'circuit_open' },
        ),
        `failed: ${circuit.check ?? 'circuit'}`,
      );
      return;
    }

    const e2ee = userBody === undefined ? undefined : e2eeSessionFor(openAiPath, a);
    let body = userBody;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || DROP_REQUEST_HEADERS.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    if (e2ee !== undefined && userBody !== undefined) {
      const prepared = await e2ee.prepareRequest({ openAiPath, body: userBody });
      body = prepared.body;
      Object.assign(headers, prepared.headers);
    }
    Object.assign(headers, await link.requestHeaders({ openAiPath, body }));
    // The signed bytes are the bytes a client's parser sees (docs/protocol.md): no content-encoding.
    headers['accept-encoding'] = 'identity';

    const controller = new AbortController();
    inFlight.add(controller);
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    try {
      let upstream: Response;
      try {
        upstream = await providerFetch(link.endpoint(`${openAiPath}${url.search}`), {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          signal: controller.signal,
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof PeerCertificateError) {
          // The peer is not the attested TLS key (a certificate swapped behind our back): nothing
          // was sent to it. A failed verification: the circuit opens until an attestation passes.
          const verdict = tlsPinFailure(error);
          sendError(res, failed(verdict, { path, stream: false }), `failed: ${verdict.failedCheck}`);
          return;
        }
        counters.unsigned += 1;
        logger.warn({ event: 'upstream', path, err: (error as Error).message }, 'provider unreachable');
        sendError(
          res,
          new SidecarError('the provider is unreachable', { status: 502, code: 'upstream_unreachable' }),
          'failed: upstream.unreachable',
        );
        return;
      }
      const responseHeaders: Record<string, string> = {};
      upstream.headers.forEach((value, name) => {
        if (!DROP_RESPONSE_HEADERS.has(name)) responseHeaders[name] = value;
      });
      const signed = method === 'POST' && upstream.status >= 200 && upstream.status < 300;
      if (!signed || body === undefined) {
        // The provider signs POST answers only (docs/protocol.md, Routes); errors pass through unsigned.
        const answer = await readAnswer(upstream, maxAnswer, 'answer');
        counters.unsigned += 1;
        res.writeHead(upstream.status, { ...responseHeaders, [VERIFICATION_HEADER]: 'unsigned' });
        res.end(answer);
        return;
      }
      const meta = { path, model: userBody === undefined ? undefined : modelOf(userBody) };
      const contentType = upstream.headers.get('content-type') ?? '';
      if (contentType.startsWith('text/event-stream')) {
        await relayStream(res, upstream, responseHeaders, body, e2ee, a, { ...meta, stream: true });
        return;
      }
      const answer = await readAnswer(upstream, maxAnswer, 'answer');
      const verdict = await verifyAnswer({
        link,
        attestation: a,
        stream: false,
        request: body,
        response: answer,
        headers: upstream.headers,
        fetch: providerFetch,
        usage: (jsonOf(answer) as { usage?: unknown } | undefined)?.usage,
      });
      if (!verdict.ok) {
        const error = failed(verdict, { path, stream: false });
        if (onFailure === 'warn') {
          res.writeHead(upstream.status, {
            ...responseHeaders,
            [VERIFICATION_HEADER]: `failed: ${verdict.failedCheck}`,
          });
          res.end(e2ee === undefined ? answer : await e2ee.restoreBody(answer));
          return;
        }
        sendError(res, error, `failed: ${verdict.failedCheck}`);
        return;
      }
      await verified(verdict, a, { ...meta, stream: false });
      const released = e2ee === undefined ? answer : await e2ee.restoreBody(answer);
      res.writeHead(upstream.status, {
        ...responseHeaders,
        'content-length': String(released.length),
        [VERIFICATION_HEADER]: 'verified',
      });
      res.end(released);
    } finally {
      inFlight.delete(controller);
    }
  };

  /**
   * Streams: events flow to the client as they arrive; the final `data: [DONE]` is held until the
   * stream's signature verified. On failure the client gets an `error` event with an OpenAI error
   * object instead (the openai SDK raises APIError on it), and the trailer names the failed check.
   */
  const relayStream = async (
    res: ServerResponse,
    upstream: Response,
    responseHeaders: Record<string, string>,
    request: Uint8Array,
    e2ee: E2eeSession | undefined,
    a: Attestation,
    meta: { path: string; stream: boolean; model: string | undefined },
  ): Promise<void> => {
    res.writeHead(upstream.status, {
      ...responseHeaders,
      'cache-control': 'no-cache',
      // The verdict is known only at the end: `pending` now, the result in the trailer.
      [VERIFICATION_HEADER]: 'pending',
      trailer: 'X-TeeML-Verification',
    });
    const splitter = new SseEventSplitter();
    const chunks: Uint8Array[] = [];
    let total = 0;
    let done: Uint8Array | undefined;
    let usage: unknown;
    let cut: string | undefined;
    const forward = async (event: Uint8Array): Promise<void> => {
      const data = eventData(event);
      if (data === '[DONE]') {
        done = event;
        return;
      }
      if (done !== undefined) cut = 'events after [DONE]';
      if (data?.includes('"usage"')) {
        const parsed = jsonOf(new TextEncoder().encode(data)) as { usage?: unknown } | undefined;
        if (parsed?.usage != null) usage = parsed.usage;
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
    try {
      if (upstream.body !== null) {
        for await (const chunk of upstream.body as AsyncIterable<Uint8Array>) {
          total += chunk.length;
          if (total > maxAnswer) {
            cut = `stream exceeds ${maxAnswer} bytes`;
            break;
          }
          chunks.push(chunk);
          for (const event of splitter.push(chunk)) await forward(event);
        }
      }
      for (const event of splitter.finish()) await forward(event);
    } catch (error) {
      if (res.destroyed) return;
      cut = `stream broke: ${(error as Error).message}`;
    }
    if (res.destroyed) {
      logger.info({ event: 'client_disconnected', path: meta.path }, 'client left before the stream ended');
      return;
    }
    let verdict: AnswerVerdict;
    const response = concatBytes(chunks);
    if (cut === undefined && done === undefined) cut = 'the stream ended without data: [DONE]';
    if (cut === undefined && splitter.rest > 0) cut = 'bytes after the last complete event';
    if (cut !== undefined) {
      verdict = {
        ok: false,
        failedCheck: 'stream.complete',
        detail: cut,
        checks: [
          { id: 'stream.complete', title: 'the stream completed with [DONE]', status: 'fail', detail: cut },
        ],
        requestSha256: '',
        responseSha256: '',
      };
    } else {
      verdict = await verifyAnswer({
        link,
        attestation: a,
        stream: true,
        request,
        response,
        headers: upstream.headers,
        fetch: providerFetch,
        usage,
      });
    }
    if (verdict.ok) {
      await verified(verdict, a, meta);
      res.write(done ?? 'data: [DONE]\n\n');
      res.addTrailers({ [VERIFICATION_HEADER]: 'verified' });
      res.end();
      return;
    }
    const error = failed(verdict, { path: meta.path, stream: true });
    res.addTrailers({ [VERIFICATION_HEADER]: `failed: ${verdict.failedCheck}` });
    if (onFailure === 'warn' && done !== undefined) {
      res.write(`: x-teeml-verification failed: ${verdict.failedCheck}\n\n`);
      res.write(done);
      res.end();
      return;
    }
    res.end(`event: error\ndata: ${errorBody(error)}\n\n`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://gateway.invalid');
    if ((req.method === 'GET' || req.method === 'HEAD') && url.pathname === '/') {
      const html = renderStatusPage({
        provider: await link.describe(),
        linkHealth: await link.health(),
        current: attestor.current,
        lastPassed: attestor.lastPassed,
        counters,
        circuit,
        onFailure,
        e2ee: e2eeState(),
        receipts: receipts.recent,
        receiptsFile: options.receipts?.label,
        nextAttestationAt,
        now: now(),
      });
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        // No script, no external resource: the page needs none.
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
        'x-content-type-options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : html);
      return;
    }
    if (req.method === 'GET' && url.pathname === '/health') {
      const a = attestor.trusted;
      res.writeHead(a === undefined ? 503 : 200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          status: a === undefined ? 'unattested' : circuit.open ? 'circuit_open' : 'ok',
          provider: await link.describe(),
          signing_address: a?.signer?.address ?? null,
          failed_check: attestor.current?.failedCheck ?? null,
          counters,
          link: await link.health(),
        }),
      );
      return;
    }
    if (url.pathname === '/v1' || url.pathname.startsWith('/v1/')) {
      if (!authorized(req)) {
        sendError(
          res,
          new SidecarError('missing or wrong bearer token for the gateway', {
            status: 401,
            code: 'invalid_api_key',
          }),
          'failed: gateway.auth',
        );
        return;
      }
      await proxy(req, res, url);
      return;
    }
    sendError(
      res,
      new SidecarError('not found: the gateway serves /v1/* and the status page at /', {
        status: 404,
        code: 'not_found',
      }),
      'unsigned',
    );
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const known = error instanceof SidecarError;
      if (!known) logger.error({ err: (error as Error).message }, 'gateway error');
      sendError(
        res,
        known ? error : new SidecarError('internal gateway error', { status: 500, code: 'internal_error' }),
        known && error.status === 413 ? 'unsigned' : 'failed: gateway.internal',
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8090, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  if (options.authToken === undefined && !isLoopback(address.address)) {
    server.close();
    throw new SidecarError('the gateway needs --auth-token to listen off loopback', {
      status: 500,
      code: 'auth_token_required',
    });
  }
  await attestNow();
  schedule();

  return {
    url: `http://${host}:${address.port}`,
    server,
    attestor,
    counters,
    receipts,
    circuit: () => ({ ...circuit }),
    attestNow,
    close: async () => {
      closed = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      for (const c of inFlight) c.abort();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await receipts.close();
      await link.close();
    },
  };
};
