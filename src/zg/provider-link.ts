/**
 * The seam between the gateway and its provider (shared with src/gateway/provider-link.ts on the
 * gateway branch, copied here verbatim until both land; the merge keeps one declaration).
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
  fetchAttestation(
    nonce: Uint8Array,
    algo: 'ecdsa' | 'ed25519',
  ): Promise<{ report: unknown; source: string }>;
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
