import type { Logger } from '../log/index.js';
import type { Attestation } from './attestor.js';
import type { E2eeSession } from './e2ee.js';
import type { GatewayState } from './gateway-state.js';
import type { CallHandle } from './in-flight-calls.js';
import type { ProviderLink } from './provider-link.js';
import type { Upstream } from './upstream.js';
import type { BodyGuard } from './wire.js';

/** What relaying a signed answer needs: the state its verdict goes to and the provider's transport. */
export interface RelayContext {
  state: GatewayState;
  link: ProviderLink;
  /** Answers and signature records: the link's own transport when it has one, else the gateway's fetch. */
  providerFetch: typeof globalThis.fetch;
  logger: Logger;
  maxAnswerBytes: number;
  /** The policy's `releaseUnverifiedStreams`: stream events go out before verification on any path. */
  releaseUnverified: boolean;
  now: () => number;
  /** Deadline for one signature record (issue 21 item 11). */
  signatureTimeoutMs: number;
}

/** One signed exchange on its way back to the user: the answer is verified against these. */
export interface SignedExchange {
  upstream: Upstream;
  /** The provider's response headers the gateway forwards. */
  responseHeaders: Record<string, string>;
  /** The exact bytes sent to the provider (encrypted when E2EE is on): what the signature covers. */
  request: Uint8Array;
  e2ee: E2eeSession | undefined;
  attestation: Attestation;
  path: string;
  model: string | undefined;
  /** How the answer's body is read: counted against the held-bytes bound, with an idle deadline. */
  guard: BodyGuard;
  /** When the request went to the provider (0G mode: an answer's `created` must be after it). */
  sentAt: number;
  /** The provider call's: a stream's reader that cancels aborts it, and the provider read stops. */
  call: CallHandle;
}
