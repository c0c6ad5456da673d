import { toHex } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';
import { apiRoot } from '../verifier/index.js';
import type { ProviderLink } from './provider-link.js';
import { jsonOf, readCapped } from './wire.js';

export interface DirectLinkOptions {
  /** The provider's base URL, with or without `/v1` (docs/protocol.md: the sidecar serves both). */
  provider: string;
  /** `--header 'K: V'` values, sent with every request to the provider. */
  headers?: Record<string, string>;
  /** `--api-key`: sent as `Authorization: Bearer <key>` (the provider's AUTH_TOKEN). */
  apiKey?: string;
  fetch?: typeof globalThis.fetch;
}

/** An 8-GPU report is ~300 KB; anything near this is not a report. */
const MAX_REPORT_BYTES = 32 * 1024 * 1024;

/**
 * Direct mode: the gateway talks to one provider URL (a sidecar, or any proxy that keeps its wire
 * format). Attestation, answers and signatures all come from that URL.
 */
export class DirectLink implements ProviderLink {
  readonly requestHashComparable = true;
  private readonly api: string;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof globalThis.fetch;

  constructor(private readonly options: DirectLinkOptions) {
    this.api = apiRoot(new URL(options.provider).toString());
    this.headers = {
      ...(options.headers ?? {}),
      ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
    };
    this.fetchFn = options.fetch ?? globalThis.fetch;
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

  async fetchAttestation(
    nonce: Uint8Array,
    algo: 'ecdsa' | 'ed25519',
  ): Promise<{ report: unknown; source: string }> {
    const url = `${this.api}/attestation/report?nonce=${toHex(nonce)}&signing_algo=${algo}`;
    const response = await this.fetchFn(url, { headers: { ...this.headers, accept: 'application/json' } });
    const body = await readCapped(response, MAX_REPORT_BYTES, 'attestation report');
    if (response.status !== 200) {
      throw new SidecarError(`GET /attestation/report answered HTTP ${response.status}`, {
        status: 503,
        code: 'report.fetch',
      });
    }
    const report = jsonOf(body);
    if (report === undefined) {
      throw new SidecarError('GET /attestation/report answered something that is not JSON', {
        status: 503,
        code: 'report.fetch',
      });
    }
    return { report, source: `${new URL(this.api).origin}${new URL(this.api).pathname}/attestation/report` };
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

  async close(): Promise<void> {}
}
