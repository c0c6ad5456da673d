import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { AttestationLoop, type AttestationTimers, nodeTimers } from './attestation-loop.js';
import { type Attestation, Attestor } from './attestor.js';
import type { E2eeClient } from './e2ee.js';
import { E2eeChoice } from './e2ee-choice.js';
import { type Answer, type Inbound, inboundOf, responseOf } from './engine-io.js';
import { type Circuit, GatewayState } from './gateway-state.js';
import { HeldBytes } from './held-bytes.js';
import { InFlightCalls } from './in-flight-calls.js';
import type { Policy } from './policy.js';
import type { ProviderLink } from './provider-link.js';
import { type ProxyContext, proxyToProvider } from './proxy.js';
import { ReceiptLog, type ReceiptSink } from './receipts.js';
import { answerableError, errorAnswer, verificationOfError } from './send-error.js';
import type { GatewayCounters } from './status-page.js';
import { streamReleaseOf } from './stream-release.js';
import { callOverFetch } from './upstream.js';

/** What the engine verifies with: the provider, the policy and the limits (the gateway adds its listener's). */
export interface EngineOptions {
  link: ProviderLink;
  policy: Policy;
  logger: Logger;
  onFailure?: 'refuse' | 'warn';
  /** Milliseconds between attestations (default 10 minutes). */
  reattestIntervalMs?: number;
  /** Milliseconds before the next try while the provider is not attested (default 30 s, at most the interval). */
  retryAttestationMs?: number;
  receipts?: { sink: ReceiptSink; label: string };
  /**
   * 'auto': E2EE when the client is built in and the attested report offers it; 'off': --no-e2ee.
   * `required` (the policy's `requireE2ee` wins; default true): a report without E2EE for the
   * attested key fails attestation (`e2ee.required`); the CLI sets it false for a 0G broker that signs.
   */
  e2ee?: { mode: 'auto' | 'off'; client?: E2eeClient; required?: boolean };
  /** fetch for the provider (answers, signatures) and the verifier (NRAS, PCCS). */
  fetch?: typeof globalThis.fetch;
  now?: () => number;
  random?: (length: number) => Uint8Array;
  /** Timers for re-attestation (tests drive them). */
  timers?: AttestationTimers;
  maxRequestBytes?: number;
  maxAnswerBytes?: number;
  /** Answer bytes held across all requests at once (default 256 MiB); beyond it 429 `gateway_busy`. */
  maxHeldBytes?: number;
  /** Provider deadlines, milliseconds (issue 21 item 11): see DEADLINES for the defaults. */
  deadlines?: Partial<typeof DEADLINES>;
}

/**
 * The deadlines on provider calls (issue 21 item 11), milliseconds: a JSON answer's headers come
 * when the model is done, so they get a long one; a gap mid-answer, a signature record or a report
 * has no such reason to take long.
 */
export const DEADLINES = {
  headersMs: 10 * 60 * 1000,
  idleMs: 5 * 60 * 1000,
  signatureMs: 30_000,
  reportMs: 60_000,
};

/**
 * The verifying engine: one function from the user's `Request` to a verified `Response` (code habit
 * 11), with the attestation state behind it. The gateway serves it behind an HTTP listener
 * (gateway.ts); `teeml-sidecar/client` hands it to the user's own code as a `fetch`.
 */
export interface Engine {
  /** Answers one OpenAI request (`/v1/*`); every failure is a Response in the OpenAI error shape. */
  fetch(request: Request): Promise<Response>;
  /** The same for the gateway's listener, without web Request and Response objects (engine-io.ts). */
  serve(request: Inbound): Promise<Answer>;
  state: GatewayState;
  attestor: Attestor;
  link: ProviderLink;
  e2ee: E2eeChoice;
  logger: Logger;
  now: () => number;
  counters: Readonly<GatewayCounters>;
  receipts: ReceiptLog;
  receiptsLabel: string | undefined;
  /** Whether new requests are refused after a failed answer, and why. */
  circuit(): Circuit;
  /** Runs an attestation now (as the timer does). */
  attestNow(): Promise<Attestation>;
  /** When the next attestation runs. */
  nextAttestationAt(): number | undefined;
  /** Since when the provider has not answered (report or request), if it does not now. */
  unreachableSince(): number | undefined;
  /** When stream events reach the user, in words, for the trusted attestation (stream-release.ts). */
  streamRelease(): string;
  /** The first attestation, then re-attestation on its interval. */
  start(): Promise<Attestation>;
  /** Stops re-attesting, aborts the calls in flight, closes the receipts and the link. */
  close(): Promise<void>;
}

/** Builds the engine; nothing is attested until `start()`. */
export const createEngine = (options: EngineOptions): Engine => {
  const { link, policy, logger } = options;
  const fetchFn = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const e2ee = new E2eeChoice(
    options.e2ee?.mode ?? 'auto',
    options.e2ee?.client,
    policy.requireE2ee ?? options.e2ee?.required ?? true,
  );
  const attestor = attestorOf(options, now, fetchFn, e2ee);
  const receipts = new ReceiptLog(options.receipts?.sink);
  const onFailure = options.onFailure ?? 'refuse';
  const state = new GatewayState({ attestor, receipts, logger, now, onFailure, link });
  const loop = new AttestationLoop({
    attest: () => state.attestNow(),
    attested: () => attestor.trusted !== undefined,
    intervalMs: options.reattestIntervalMs ?? 10 * 60 * 1000,
    retryMs: options.retryAttestationMs ?? 30_000,
    timers: options.timers ?? nodeTimers,
    now,
    logger,
  });
  state.onSignerDoubt = () => loop.runNow(() => state.attestNow('signer'));
  const proxy = proxyContextOf(options, state, fetchFn, now, e2ee);
  let closed: Promise<void> | undefined;
  return {
    fetch: async (request) => responseOfAnswer(await answer(proxy, inboundOf(request))),
    serve: (request) => answer(proxy, request),
    state,
    attestor,
    link,
    e2ee,
    logger,
    now,
    counters: state.counters,
    receipts,
    receiptsLabel: options.receipts?.label,
    circuit: () => ({ ...state.circuit }),
    attestNow: () => state.attestNow(),
    nextAttestationAt: () => (closed === undefined ? loop.nextAt : undefined),
    unreachableSince: () => state.unreachableSince,
    streamRelease: () => streamReleaseLabel(proxy, attestor.trusted),
    start: async () => {
      const a = await state.attestNow();
      loop.schedule();
      return a;
    },
    close: () => {
      closed ??= (async () => {
        loop.stop();
        proxy.calls.abortAll();
        await receipts.close();
        await link.close();
      })();
      return closed;
    },
  };
};

/** The attestor under the policy, with the E2EE requirement the choice makes. */
const attestorOf = (
  options: EngineOptions,
  now: () => number,
  fetchFn: typeof globalThis.fetch,
  e2ee: E2eeChoice,
): Attestor => {
  const requirement = e2ee.requirement();
  return new Attestor({
    link: options.link,
    policy: options.policy,
    logger: options.logger,
    now,
    ...(options.random === undefined ? {} : { random: options.random }),
    fetch: fetchFn,
    reportDeadlineMs: options.deadlines?.reportMs ?? DEADLINES.reportMs,
    ...(requirement === undefined ? {} : { e2ee: requirement }),
  });
};

/**
 * The answer as the caller's web Response; one the Fetch standard cannot carry is the gateway's own
 * error in the OpenAI shape, never a throw (`teeml-sidecar/client` promises a Response for every call).
 */
const responseOfAnswer = (a: Answer): Response => {
  try {
    return responseOf(a);
  } catch (error) {
    return responseOf(errorAnswer(answerableError(error), verificationOfError(error)));
  }
};

/**
 * One request: `/v1/*` goes to the provider (proxy.ts), anything else is 404. Whatever throws is
 * answered in the OpenAI shape, its verification header saying why (send-error.ts verificationOfError).
 */
const answer = async (proxy: ProxyContext, request: Inbound): Promise<Answer> => {
  const { pathname } = request.url;
  if (pathname !== '/v1' && !pathname.startsWith('/v1/'))
    return errorAnswer(
      new SidecarError('not found: the gateway serves /v1/* and the status page at /', {
        status: 404,
        code: 'not_found',
      }),
      'unsigned',
    );
  try {
    return await proxyToProvider(proxy, request);
  } catch (error) {
    if (!(error instanceof SidecarError))
      proxy.logger.error({ err: (error as Error).message }, 'gateway error');
    return errorAnswer(answerableError(error), verificationOfError(error));
  }
};

/** What proxying needs: the state, the link's transport, the limits and the deadlines. */
const proxyContextOf = (
  options: EngineOptions,
  state: GatewayState,
  fetchFn: typeof globalThis.fetch,
  now: () => number,
  e2ee: E2eeChoice,
): ProxyContext => {
  const { link, logger, policy } = options;
  const deadlines = { ...DEADLINES, ...options.deadlines };
  return {
    state,
    link,
    // Answers and signature records: the link's own transport when it has one (https: pinned to the
    // attested TLS key), else the engine's fetch.
    providerFetch: link.fetch ?? fetchFn,
    // Proxied requests: the link's cheaper transport when it has one (plain http: node messages).
    providerCall: link.call ?? callOverFetch(link.fetch ?? fetchFn),
    logger,
    maxAnswerBytes: options.maxAnswerBytes ?? 64 * 1024 * 1024,
    maxRequestBytes: options.maxRequestBytes ?? 10 * 1024 * 1024,
    models: policy.models,
    e2ee,
    calls: new InFlightCalls(),
    now,
    held: new HeldBytes(options.maxHeldBytes ?? 256 * 1024 * 1024),
    releaseUnverified: policy.releaseUnverifiedStreams,
    headersTimeoutMs: deadlines.headersMs,
    idleTimeoutMs: deadlines.idleMs,
    signatureTimeoutMs: deadlines.signatureMs,
  };
};

/** The stream release for a chat stream under attestation `a` (a throwaway E2EE session says its scheme). */
const streamReleaseLabel = (proxy: ProxyContext, a: Attestation | undefined): string => {
  let session: { authenticatesSender: boolean } | undefined;
  try {
    session = a === undefined ? undefined : proxy.e2ee.sessionFor('/chat/completions', a);
  } catch {
    session = undefined;
  }
  return streamReleaseOf({
    attestation: a,
    link: proxy.link,
    e2eeAuthenticatesSender: session?.authenticatesSender,
    releaseUnverified: proxy.releaseUnverified,
  }).label;
};
