import type { SigningAlgo } from '../verifier/index.js';

/**
 * The E2EE step of the gateway, as a seam (issue 14, item 4). The client half of NEAR AI's E2EE
 * protocol (docs/protocol.md, "Confidentiality") is built in src/e2ee; the gateway only needs these two
 * halves of it, per request:
 * - before forwarding: encrypt the user's message contents to the attested key and add the
 *   protocol's headers (`X-Signing-Algo`, `X-Client-Pub-Key`, ...);
 * - after verifying: decrypt the answer (a JSON body, or each SSE event's data).
 * Signatures cover the ciphertext as sent and received, so verification runs on the wire bytes and
 * only a verified answer is decrypted.
 *
 * The client built in is `nearE2eeClient` (src/gateway/near-e2ee.ts, on src/e2ee's client half);
 * the CLI passes it as `e2ee.client`. Tests pass doubles through the same seam.
 */
export interface E2eeSession {
  /**
   * Whether the answer's sealing authenticates its sender per chunk (only the attested key could
   * have sealed it). Then stream events may be released before the stream's signature verified
   * (stream-release.ts). False for every NEAR scheme built in: each seals with a fresh ephemeral key
   * (src/e2ee/scheme.ts), so anyone can seal to the client's public key.
   */
  readonly authenticatesSender: boolean;
  /** The body to send instead of the user's, and the headers to add. */
  prepareRequest(input: {
    openAiPath: string;
    body: Uint8Array;
  }): Promise<{ body: Uint8Array; headers: Record<string, string> }>;
  /** The decrypted JSON answer. */
  restoreBody(body: Uint8Array): Promise<Uint8Array>;
  /** The decrypted `data` field of one SSE event (never called for `[DONE]`). */
  restoreEventData(data: string): Promise<string>;
}

export interface E2eeClient {
  /** Shown on the status page, e.g. "near-e2ee v2". */
  readonly name: string;
  /** Which fields it seals, in words, for the status page (e.g. "message contents, tool calls, …"). */
  readonly protects?: string;
  /** Whether the provider's attested report says it decrypts E2EE requests. */
  supports(report: unknown): boolean;
  /**
   * A session for one request to `openAiPath` against the attested key; undefined when this route
   * is not encrypted (the protocol covers chat completions).
   */
  session(input: {
    openAiPath: string;
    algo: SigningAlgo;
    /** The attested signing address (ecdsa) or Ed25519 public key. */
    signingAddress: string;
    /** The attested public key (ecdsa: 64-byte point, hex), from the report. */
    signingPublicKey: string | undefined;
  }): E2eeSession | undefined;
}

/**
 * Whether a report advertises E2EE: NEAR AI's cloud envelope (`model_attestations`, issue 12) or an
 * explicit `e2ee` object. A report that says nothing is served in plaintext.
 */
export const reportAdvertisesE2ee = (report: unknown): boolean => {
  if (typeof report !== 'object' || report === null) return false;
  const r = report as Record<string, unknown>;
  return Array.isArray(r['model_attestations']) || (typeof r['e2ee'] === 'object' && r['e2ee'] !== null);
};
