import { Agent as HttpAgent } from 'node:http';
import { type AgentOptions, Agent as HttpsAgent } from 'node:https';
import type { Pool } from 'undici';
import { jsonOf, toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import { callPool } from '../proxy/index.js';
import { PeerCertificateError, TlsPeerChannel } from '../tls/index.js';
import { apiRoot, notASidecar, streamingFetchKeepingTrailers } from '../verifier/index.js';
import type { FetchedAttestation, ProviderLink } from './provider-link.js';
import { callOverChannel, callOverPool, type ProviderCall } from './upstream.js';
import { readAnswer } from './wire.js';

export interface DirectLinkOptions {
  /** The provider's base URL, with or without `/v1` (docs/protocol.md: the sidecar serves both). */
  provider: string;
  /** `--header 'K: V'` values, sent with every request to the provider. */
  headers?: Record<string, string>;
  /** `--api-key`: sent as `Authorization: Bearer <key>` (the provider's AUTH_TOKEN). */
  apiKey?: string;
  /**
   * https providers: ask for the attested TLS key (`include_tls_fingerprint=true`) and pin every
   * connection to it (default true). false (`--no-tls-binding`): ordinary CA-validated https.
   */
  tlsBinding?: boolean;
  /** The most a report fetch may take, milliseconds (default 60 s). */
  reportTimeoutMs?: number;
  /** Extra https.Agent options for the attested-TLS connections (tests). */
  tlsAgent?: AgentOptions;
  fetch?: typeof globalThis.fetch;
}

/** How long a report may take, whole (the attestor gives up at the same time whatever the link does). */
const REPORT_TIMEOUT_MS = 60_000;

/**
 * The pooled connections to the provider. `timeout` closes an idle one after 60 s, and (Node's
 * Agent reads the answer's `Keep-Alive: timeout=N`) 1 s before the provider would: without it, an
 * idle connection stays in the pool past the sidecar's 5 s keep-alive timeout, and the next request
 * may go out on a socket the sidecar is closing (ECONNRESET, a 502 for the user). An answer in
 * flight is not cut by it (Node closes only free sockets on this timeout).
 */
const POOL = { maxSockets: 64, maxFreeSockets: 16, timeout: 60_000 };

/** An 8-GPU report is ~300 KB; anything near this is not a report. */
const MAX_REPORT_BYTES = 32 * 1024 * 1024;

/**
 * Direct mode: the gateway talks to one provider URL (a sidecar, or any proxy that keeps its wire
 * format). Attestation, answers and signatures all come from that URL.
 *
 * Over https (attested TLS, docs/tls.md) the report is fetched with `include_tls_fingerprint=true`
 * on one fresh connection whose certificate the gateway checks (`tls.fingerprint`); answers and
 * signature records go only over connections whose certificate shows the key the last passing
 * attestation pinned (`pinTls`), checked at the end of each handshake, before any request byte is
 * written. Trust comes from the attestation, not a CA: a self-signed certificate is accepted
 * exactly when it is the attested one, and before any attestation passed nothing is sent.
 */
/** Nothing goes over https before an attestation pinned the provider's TLS key. */
const notPinned = (): PeerCertificateError =>
  new PeerCertificateError('no attested TLS key yet: nothing is sent');

export class DirectLink implements ProviderLink {
  readonly requestHashComparable = true;
  readonly fetch?: typeof globalThis.fetch;
  readonly call?: ProviderCall;
  readonly signatureTrailer: boolean;
  private readonly api: string;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof globalThis.fetch;
  /** https with the TLS binding: the pinned connections answers and signatures go over. */
  private readonly channel: TlsPeerChannel | undefined;
  /** Without the TLS binding: the pooled keep-alive connections answers and signatures go over. */
  private readonly agent: HttpAgent | undefined;
  /** Without the TLS binding: the pooled keep-alive connections answers go over. */
  private readonly pool: Pool | undefined;

  constructor(private readonly options: DirectLinkOptions) {
    const url = new URL(options.provider);
    this.api = apiRoot(url.toString());
    this.headers = {
      ...(options.headers ?? {}),
      ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
    };
    this.fetchFn = options.fetch ?? globalThis.fetch;
    if (url.protocol === 'https:' && options.tlsBinding !== false) {
      // Many connections (concurrent streams), each shown its certificate before it is used.
      const channel = new TlsPeerChannel({
        // A non-streaming answer's headers come when the model is done: allow a long generation.
        timeoutMs: 10 * 60 * 1000,
        agent: { ...POOL, ...options.tlsAgent },
      });
      this.channel = channel;
      this.fetch = (input, init) =>
        channel.pinnedFingerprint === undefined
          ? Promise.reject(notPinned())
          : channel.fetch(input as string | URL, init);
      // Answers as node messages over the same pinned connections (issue 23: no web Response per answer).
      const call = callOverChannel(channel);
      this.call = (url, init) =>
        channel.pinnedFingerprint === undefined ? Promise.reject(notPinned()) : call(url, init);
    } else if (options.fetch === undefined) {
      // Node's fetch drops trailers: answers go over node:http(s), pooled and kept alive, whose
      // messages keep the signature trailer (verifier/trailer-fetch.ts).
      const pool = { keepAlive: true, ...POOL };
      this.agent = url.protocol === 'https:' ? new HttpsAgent(pool) : new HttpAgent(pool);
      this.fetch = streamingFetchKeepingTrailers(this.agent);
      // Answers over undici's pool, as node streams with their trailers (issue 23: no web Response
      // per answer, and ~20 µs less per call than node:http's agent).
      this.pool = callPool(url.origin, { connections: POOL.maxSockets, keepAliveMaxTimeout: POOL.timeout });
      this.call = callOverPool(this.pool);
    }
    // A fetch given by the caller may drop trailers: then the lookup only.
    this.signatureTrailer = this.fetch !== undefined;
  }

  /** The TLS key answers go to (SPKI sha256), once an attestation pinned one. */
  get tlsFingerprint(): string | undefined {
    return this.channel?.pinnedFingerprint;
  }

  pinTls(fingerprint: string): void {
    this.channel?.pin(fingerprint);
  }

  async describe(): Promise<Record<string, unknown>> {
    // The URL without credentials: a user:password@ part must not reach the status page.
    const url = new URL(this.options.provider);
    url.username = '';
    url.password = '';
    return { mode: 'direct', provider: url.toString() };
  }

  endpoint(openAiPath: string): URL {
    return new URL(`${this.api}${openAiPath}`);
  }

  async requestHeaders(): Promise<Record<string, string>> {
    return { ...this.headers };
  }

  signatureUrl(id: string, algo: 'ecdsa' | 'ed25519'): URL {
    return new URL(`${this.api}/signature/${encodeURIComponent(id)}?signing_algo=${algo}`);
  }

  async fetchAttestation(nonce: Uint8Array, algo: 'ecdsa' | 'ed25519'): Promise<FetchedAttestation> {
    const url = `${this.api}/attestation/report?nonce=${toHex(nonce)}&signing_algo=${algo}`;
    const headers = { ...this.headers, accept: 'application/json' };
    const source = `${new URL(this.api).origin}${new URL(this.api).pathname}/attestation/report`;
    if (this.channel !== undefined) return this.fetchOverTls(url, headers, source);
    // The whole report (headers and body) within the deadline: a provider that trickles it must
    // not hold the attestation, and with it every re-attestation, forever (issue 21 item 11).
    const response = await this.fetchFn(url, {
      headers,
      signal: AbortSignal.timeout(this.options.reportTimeoutMs ?? REPORT_TIMEOUT_MS),
    });
    const body = await readAnswer(response, MAX_REPORT_BYTES, 'attestation report');
    return { report: this.reportOf(response.status, body), source };
  }

  /**
   * The report over one fresh, unpinned connection (a renewed certificate must be able to attest),
   * with the certificate of that very connection: `tls.fingerprint` compares the two.
   */
  private async fetchOverTls(
    url: string,
    headers: Record<string, string>,
    source: string,
  ): Promise<FetchedAttestation> {
    const once = new TlsPeerChannel({
      maxBytes: MAX_REPORT_BYTES,
      ...(this.options.tlsAgent === undefined ? {} : { agent: this.options.tlsAgent }),
    });
    try {
      let refused = false;
      let answer = await once.request(`${url}&include_tls_fingerprint=true`, { headers });
      if (answer.status === 400) {
        const code = (jsonOf(answer.body) as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (code === 'tls_not_configured') {
          // Still attest the rest; tls.fingerprint fails for it.
          refused = true;
          answer = await once.request(url, { headers });
        }
      }
      return {
        report: this.reportOf(answer.status, answer.body),
        source,
        tls: { peer: answer.peer, refused },
      };
    } finally {
      once.close();
    }
  }

  private reportOf(status: number, body: Uint8Array): unknown {
    const report = status === 200 ? jsonOf(body) : undefined;
    if (report === undefined) {
      // Status and the first bytes: "not a teeml-sidecar: ... HTTP 404 ...: "<!DOCTYPE html>…"".
      throw new SidecarError(notASidecar(status, null, body), { status: 503, code: 'report.fetch' });
    }
    return report;
  }

  async expectedSigner(): Promise<string | undefined> {
    return undefined;
  }

  async afterAnswer(): Promise<boolean> {
    return true;
  }

  async health(): Promise<Record<string, unknown>> {
    return {};
  }

  async close(): Promise<void> {
    this.channel?.close();
    this.agent?.destroy();
    await this.pool?.destroy().catch(() => undefined);
  }
}
