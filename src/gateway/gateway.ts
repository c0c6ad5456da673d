import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SidecarError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { AttestationLoop, type AttestationTimers, nodeTimers } from './attestation-loop.js';
import { type Attestation, Attestor } from './attestor.js';
import { BrowserGuard } from './browser-guard.js';
import type { E2eeClient } from './e2ee.js';
import { E2eeChoice } from './e2ee-choice.js';
import { type Circuit, GatewayState } from './gateway-state.js';
import { HeldBytes } from './held-bytes.js';
import { InFlightCalls } from './in-flight-calls.js';
import type { Policy } from './policy.js';
import type { ProviderLink } from './provider-link.js';
import { type ProxyContext, proxyToProvider } from './proxy.js';
import { ReceiptLog, type ReceiptSink } from './receipts.js';
import { gatewayRoutes } from './routes.js';
import type { GatewayCounters } from './status-page.js';
import { streamReleaseOf } from './stream-release.js';

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
  /** More Host names the gateway answers to besides loopback and its listen address (`--allowed-host`). */
  allowedHosts?: readonly string[];
  /** Web origins a browser may call the gateway from (`--allow-origin`); none by default. */
  allowOrigins?: readonly string[];
  /** Bearer token the gateway requires on /v1/* (required off loopback; the CLI enforces it). */
  authToken?: string;
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
 * The gateway's deadlines on provider calls (issue 21 item 11), milliseconds: a JSON answer's
 * headers come when the model is done, so they get a long one; a gap mid-answer, a signature
 * record or a report has no such reason to take long.
 */
export const DEADLINES = {
  headersMs: 10 * 60 * 1000,
  idleMs: 5 * 60 * 1000,
  signatureMs: 30_000,
  reportMs: 60_000,
};

export interface Gateway {
  url: string;
  server: Server;
  attestor: Attestor;
  counters: Readonly<GatewayCounters>;
  receipts: ReceiptLog;
  /** Whether new requests are refused after a failed answer, and why. */
  circuit(): Circuit;
  /** Runs an attestation now (as the timer does). */
  attestNow(): Promise<Attestation>;
  /** Since when the provider has not answered (report or request), if it does not now. */
  unreachableSince(): number | undefined;
  /** When stream events reach the user, in words, for the trusted attestation (stream-release.ts). */
  streamRelease(): string;
  close(): Promise<void>;
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * The gateway: a local OpenAI endpoint that attests its provider before trusting it, keeps
 * attesting, and verifies every signed answer against the attested key before the user's tools see
 * it (issue 14). It reaches the provider only through `ProviderLink`. This composes the parts: the
 * state (gateway-state.ts), the re-attestation timer (attestation-loop.ts), the routes (routes.ts)
 * and the proxy with its two relays (proxy.ts, relay-json.ts, relay-stream.ts).
 */
export const startGateway = async (options: GatewayOptions): Promise<Gateway> => {
  const { link, policy, logger } = options;
  const fetchFn = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  const random = options.random === undefined ? {} : { random: options.random };
  const e2ee = new E2eeChoice(
    options.e2ee?.mode ?? 'auto',
    options.e2ee?.client,
    policy.requireE2ee ?? options.e2ee?.required ?? true,
  );
  const requirement = e2ee.requirement();
  const attestor = new Attestor({
    link,
    policy,
    logger,
    now,
    ...random,
    fetch: fetchFn,
    reportDeadlineMs: options.deadlines?.reportMs ?? DEADLINES.reportMs,
    ...(requirement === undefined ? {} : { e2ee: requirement }),
  });
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
  const { calls } = proxy;
  const server: Server = createServer(
    gatewayRoutes({
      state,
      link,
      e2ee,
      logger,
      now,
      nextAttestationAt: () => loop.nextAt,
      authToken: options.authToken,
      receiptsLabel: options.receipts?.label,
      streamRelease: () => streamReleaseLabel(proxy, attestor.trusted),
      guard: browserGuardOf((): Server => server, options),
      proxy: (req, res, url) => proxyToProvider(proxy, req, res, url),
    }),
  );
  const url = await listen(server, options);
  await state.attestNow();
  loop.schedule();

  return {
    url,
    server,
    attestor,
    counters: state.counters,
    receipts,
    circuit: () => ({ ...state.circuit }),
    attestNow: () => state.attestNow(),
    unreachableSince: () => state.unreachableSince,
    streamRelease: () => streamReleaseLabel(proxy, attestor.trusted),
    close: async () => {
      loop.stop();
      calls.abortAll();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await receipts.close();
      await link.close();
    },
  };
};

/** The browser guard for the address the server listens on (known once it listens). */
const browserGuardOf = (server: () => Server, options: GatewayOptions): BrowserGuard => {
  const address = () => server().address() as AddressInfo;
  return new BrowserGuard({
    port: () => address().port,
    listenAddress: () => address().address,
    ...(options.allowedHosts === undefined ? {} : { allowedHosts: options.allowedHosts }),
    ...(options.allowOrigins === undefined ? {} : { allowOrigins: options.allowOrigins }),
  });
};

/** What proxying needs: the state, the link's transport, the limits and the deadlines. */
const proxyContextOf = (
  options: GatewayOptions,
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
    // attested TLS key), else the gateway's fetch.
    providerFetch: link.fetch ?? fetchFn,
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

/** Listens, and refuses to serve off loopback without a token: the gateway spends the user's key. */
const listen = async (server: Server, options: GatewayOptions): Promise<string> => {
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
  return `http://${host}:${address.port}`;
};
