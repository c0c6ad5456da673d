import { Writable } from 'node:stream';
import { SidecarError } from '../errors/index.js';
import {
  createEngine,
  DirectLink,
  type Engine,
  type EngineOptions,
  errorResponse,
  nearE2eeClient,
  type Policy,
  type ProviderLink,
  parsePolicy,
  type ReceiptSink,
} from '../gateway/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { AttestationRefusedError } from './attestation-refused.js';

export interface VerifiedFetchOptions {
  /** The provider: a teeml-sidecar's base URL (with or without /v1), or a ProviderLink (e.g. 0G). */
  provider: string | ProviderLink;
  /** The attestation policy, as in the gateway's --policy file (docs/policy.md); defaults apply. */
  policy?: Partial<Policy>;
  /** Accept a simulated provider (development only; it proves nothing). Default false. */
  allowSimulated?: boolean;
  /** E2EE with the built-in NEAR client (default true): prompts leave encrypted to the attested key. */
  e2ee?: boolean;
  /** 'refuse' (default): a failed answer is a 502; 'warn': released, marked failed. */
  onFailure?: 'refuse' | 'warn';
  /** Where a receipt of every verified answer goes (e.g. fileReceiptSink from teeml-sidecar). */
  receipts?: ReceiptSink;
  /** Sent with every provider request (a URL `provider` only): the provider's bearer token. */
  apiKey?: string;
  headers?: Record<string, string>;
  /** fetch for the provider, NRAS and PCCS (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Provider deadlines, milliseconds (headersMs, idleMs, signatureMs, reportMs). */
  deadlines?: EngineOptions['deadlines'];
  /** Milliseconds between attestations (default 10 minutes); the timers never keep a script alive. */
  reattestIntervalMs?: number;
  /** Milliseconds before the next try while the provider is not attested (default 30 s). */
  retryAttestationMs?: number;
  /** A pino logger; none by default (silent). */
  logger?: Logger;
}

/** What the client knows now, as the gateway's /health says it (circuit, attestation, counters). */
export interface VerifiedFetchStatus {
  attested: boolean;
  /** The failed check of the latest attestation, when it failed. */
  failedCheck: string | undefined;
  signingAddress: string | undefined;
  circuit: ReturnType<Engine['circuit']>;
  counters: Engine['counters'];
  nextAttestationAt: number | undefined;
  unreachableSince: number | undefined;
}

/** A `fetch` that verifies every answer (the openai SDK takes it as its `fetch` option). */
export type VerifiedFetch = ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) & {
  /** Stops re-attesting and aborts calls in flight; later calls answer 503. */
  close(): Promise<void>;
  status(): VerifiedFetchStatus;
  /** Runs an attestation now (as the timer does). */
  attestNow(): Promise<void>;
};

const silent = (): Logger =>
  createLogger(
    'silent',
    new Writable({
      write: (_chunk, _enc, done) => done(),
    }),
  );

/** The engine options for the client's: a URL becomes a DirectLink; the policy parsed as the gateway's file. */
const engineOptionsOf = (options: VerifiedFetchOptions): EngineOptions => {
  const link =
    typeof options.provider === 'string'
      ? new DirectLink({
          provider: options.provider,
          ...(options.headers === undefined ? {} : { headers: options.headers }),
          ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
          ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        })
      : options.provider;
  const policy = parsePolicy(JSON.stringify(options.policy ?? {}), {
    ...(options.allowSimulated === true ? { allowSimulated: true } : {}),
  });
  return {
    link,
    policy,
    logger: options.logger ?? silent(),
    e2ee: { mode: options.e2ee === false ? 'off' : 'auto', client: nearE2eeClient },
    ...(options.onFailure === undefined ? {} : { onFailure: options.onFailure }),
    ...(options.receipts === undefined
      ? {}
      : { receipts: { sink: options.receipts, label: 'receipts sink' } }),
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.deadlines === undefined ? {} : { deadlines: options.deadlines }),
    ...(options.reattestIntervalMs === undefined ? {} : { reattestIntervalMs: options.reattestIntervalMs }),
    ...(options.retryAttestationMs === undefined ? {} : { retryAttestationMs: options.retryAttestationMs }),
  };
};

/**
 * The gateway's guarantees inside the user's own process (issue 22 item 3): attests the provider
 * under the policy, then resolves to a `fetch` that sends each OpenAI request through the same
 * engine the gateway serves (src/gateway/engine.ts): every answer verified before the caller sees it,
 * with `x-teeml-verification`; a failed one is the gateway's OpenAI-shaped 502. Rejects with
 * AttestationRefusedError (the failed check, its reason and a hint) when the first attestation fails.
 * The request URL's path, which must start with `/v1` (a base URL such as `http://teeml.invalid/v1`,
 * no prefix before `/v1`), is what is sent; its host is ignored.
 */
export const createVerifiedFetch = async (options: VerifiedFetchOptions): Promise<VerifiedFetch> => {
  const engine = createEngine(engineOptionsOf(options));
  const first = await engine.start().catch(async (error: unknown) => {
    await engine.close();
    throw error;
  });
  if (!first.ok) {
    await engine.close();
    const check = first.failedCheck ?? 'report.pending';
    const reason = first.checks.find((c) => c.id === check)?.detail ?? 'attestation failed';
    throw new AttestationRefusedError(check, reason, first.checks);
  }
  let closed = false;
  const verifiedFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    closed ? closedAnswer() : engine.fetch(new Request(input, init));
  return Object.assign(verifiedFetch, {
    close: () => {
      closed = true;
      return engine.close();
    },
    status: () => statusOf(engine),
    attestNow: async () => {
      await engine.attestNow();
    },
  });
};

const closedAnswer = (): Response =>
  errorResponse(
    new SidecarError('this verified fetch was closed', { status: 503, code: 'client_closed' }),
    'unsigned',
  );

const statusOf = (engine: Engine): VerifiedFetchStatus => {
  const current = engine.attestor.current;
  return {
    attested: engine.attestor.trusted !== undefined,
    failedCheck: current?.failedCheck,
    signingAddress: engine.attestor.trusted?.signer?.address,
    circuit: engine.circuit(),
    counters: { ...engine.counters },
    nextAttestationAt: engine.nextAttestationAt(),
    unreachableSince: engine.unreachableSince(),
  };
};
