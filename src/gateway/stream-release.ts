import type { Attestation } from './attestor.js';
import type { ProviderLink } from './provider-link.js';

/** When a stream's events reach the user, and why (the status page shows `label`). */
export interface StreamRelease {
  /** Events go to the user as they arrive (else: held until the stream's signature verified). */
  early: boolean;
  /** Early, but over a channel that does not authenticate every byte (the policy's opt-in). */
  unauthenticated: boolean;
  label: string;
}

/**
 * Stream events may reach the user before the stream's signature verified only over a channel that
 * ends in the attested TEE and authenticates every byte (issue 21 item 2; SECURITY.md, "The
 * gateway's answer path"): attested TLS pinned to the attested key, or an E2EE scheme that
 * authenticates the sender of each chunk. On any other path (plain http, https through a terminator,
 * E2EE sealed to the client's key by anyone) whoever sits on it could inject content, tool calls
 * included, that the tool acts on before the verdict: the stream is held whole and released once
 * verified, unless the policy's `releaseUnverifiedStreams` opts out (marked
 * `X-TeeML-Verification: pending-unauthenticated`).
 */
export const streamReleaseOf = (input: {
  attestation: Attestation | undefined;
  link: ProviderLink;
  /** Whether this request's E2EE authenticates the sender; undefined without E2EE. */
  e2eeAuthenticatesSender: boolean | undefined;
  releaseUnverified: boolean;
}): StreamRelease => {
  if (input.attestation?.tlsFingerprint !== undefined && input.link.fetch !== undefined)
    return { early: true, unauthenticated: false, label: 'as-they-arrive (attested TLS)' };
  if (input.e2eeAuthenticatesSender === true)
    return { early: true, unauthenticated: false, label: 'as-they-arrive (E2EE authenticates the sender)' };
  const why =
    input.e2eeAuthenticatesSender === false
      ? 'no attested TLS; the E2EE scheme does not authenticate the sender'
      : 'no attested TLS and no sender-authenticating E2EE';
  if (input.releaseUnverified)
    return {
      early: true,
      unauthenticated: true,
      label: `as-they-arrive, unauthenticated (${why}; releaseUnverifiedStreams)`,
    };
  return { early: false, unauthenticated: false, label: `held until verified (${why})` };
};
