import type { PeerCertificate } from '../tls/index.js';
import type { ProviderCall } from './upstream.js';

/**
 * The one seam between the gateway and the provider it verifies (notes: PROVIDER-LINK). The direct
 * mode (`--provider <url>`, direct-link.ts) and the 0G mode (src/zg) implement it; the gateway
 * reaches its provider through nothing else, so both modes get the same attestation, per-answer
 * verification, receipts and status page.
 */
export interface ProviderLink {
  /** What the status page and /health show: e.g. { mode: 'direct', provider: url } or 0G details. */
  describe(): Promise<Record<string, unknown>>;
  /** Base URL the OpenAI routes are sent to; `openAiPath` like '/chat/completions' is appended. */
  endpoint(openAiPath: string): URL;
  /** Extra headers for one proxied request (0G: the SDK's request headers; direct: --header/--api-key). */
  requestHeaders(input: {
    openAiPath: string;
    body: Uint8Array | undefined;
  }): Promise<Record<string, string>>;
  /** Where the signature for a response id is fetched (direct: {provider}/signature/{id}; 0G: broker's /v1/proxy/signature/{id}). */
  signatureUrl(id: string, algo: 'ecdsa' | 'ed25519'): URL;
  /**
   * Fetches attestation evidence for `nonce` in the flat report shape the verifier library reads
   * (src/verifier verifyReport input). 0G: the sidecar's report behind /v1/proxy, or the broker's
   * /v1/quote adapted. Returns the raw JSON plus a label of where it came from.
   */
  fetchAttestation(nonce: Uint8Array, algo: 'ecdsa' | 'ed25519'): Promise<FetchedAttestation>;
  /**
   * How the gateway reaches the provider for answers and signature records, when the link has its
   * own transport (direct mode over https: connections pinned to the attested TLS key). Undefined:
   * the gateway's fetch.
   */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * How proxied requests are sent, when the link has a transport cheaper than its `fetch` (direct mode
   * over plain http: `node:http` messages read as they are, no web Response per answer). Undefined:
   * through `fetch` (or the gateway's).
   */
  readonly call?: ProviderCall;
  /**
   * True when the link's `fetch` keeps HTTP trailers and the provider sends the signature record in
   * one when asked (docs/protocol.md, "The signature in a trailer"): the gateway then asks for it on
   * every signed request and checks the answer without `GET /signature/{id}`, falling back to that
   * lookup when no trailer arrives. Undefined (0G: the broker does not forward it): the lookup only.
   */
  readonly signatureTrailer?: boolean;
  /**
   * Called when an attestation passed whose `tls.fingerprint` check passed: from now on the link's
   * `fetch` talks only to a peer presenting this key (SPKI sha256, lowercase hex).
   */
  pinTls?(fingerprint: string): void;
  /**
   * The signer address some authority other than the report says answers must be signed by
   * (0G: TargetTeeAddress / acknowledged teeSignerAddress from the chain); undefined in direct mode
   * (then the policy's expected address, if any, applies).
   */
  expectedSigner(): Promise<string | undefined>;
  /** Whether the provider signs the request bytes the gateway sent (false: a broker re-serializes; receipts say so). */
  readonly requestHashComparable: boolean;
  /** Called after every answer the gateway received (0G: SDK processResponse for fee accounting). Returns false when the SDK says the answer failed its checks. */
  afterAnswer(input: {
    id: string;
    responseBody: Uint8Array;
    streamed: boolean;
    usage?: unknown;
  }): Promise<boolean>;
  /** Gateway /health and status extras (0G: wallet address, ledger balance, spend). */
  health(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** What `fetchAttestation` returns. */
export interface FetchedAttestation {
  report: unknown;
  source: string;
  /**
   * Over https with the TLS binding asked for (`include_tls_fingerprint=true`): the certificate of
   * the connection that carried the report, or that the provider refused to bind one. The gateway
   * then runs the verifier's `tls.fingerprint` check.
   */
  tls?: { peer: PeerCertificate | undefined; refused: boolean };
}
