import { assertBytes, equalBytes, readCapped, toHex } from '../bytes/index.js';
import { unavailableIn } from '../errors/index.js';
import { withDeadline } from './deadline.js';
import { discard } from './discard.js';
import { parseGpuEvidence } from './evidence.js';
import { parseEvidenceDocument } from './evidence-document.js';
import type { GpuEvidenceProvider, GpuEvidenceResult } from './gpu-evidence-provider.js';

/**
 * GPU evidence from a local HTTP evidence service (docs/platforms.md: NVIDIA ships none; small helper
 * services wrap nvattest or the Python SDK). The request and answer this provider expects:
 *
 *   GET <url>/evidence?nonce=<64 lowercase hex>
 *   200 application/json, either
 *     {"evidence_list":[{"arch":"HOPPER","certificate":"<base64 PEM chain>","evidence":"<base64 SPDM report>"}, …],
 *      "nonce":"<hex>"?, "arch":"HOPPER"?}                           (nvidia_payload-like)
 *   or the nvattest `collect-evidence` array
 *     [{"arch","certificate","evidence","nonce"?,"driver_version"?,"vbios_version"?,"version"?}, …]
 *
 * Entries are GPUs in NVML index order. Every nonce the answer states and the nonce inside every
 * report (bytes [4, 36)) must be ours: a service that ignores the nonce is caught here, not by a
 * verifier. Bodies are capped; any failure is a 503.
 */
export interface HttpGpuEvidenceOptions {
  /** Base URL of the evidence service, e.g. http://127.0.0.1:8089 */
  url: string;
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
  /** Answer size cap; 8 GPUs of evidence are ~100 KB. */
  maxBytes?: number;
}

const PROVIDER = 'http';

const unavailable = unavailableIn('GPU evidence unavailable: ', { provider: PROVIDER });

export class HttpGpuEvidenceProvider implements GpuEvidenceProvider {
  readonly kind = 'http' as const;
  readonly #url: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(options: HttpGpuEvidenceOptions) {
    this.#url = options.url.replace(/\/+$/, '');
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  }

  collect(nonce: Uint8Array, signal?: AbortSignal): Promise<GpuEvidenceResult> {
    assertBytes('nonce', nonce, 32);
    const ours = nonce.slice();
    return withDeadline('GPU evidence service request', this.#timeoutMs, signal, (deadline) =>
      this.#collect(ours, deadline),
    );
  }

  async #collect(nonce: Uint8Array, signal: AbortSignal): Promise<GpuEvidenceResult> {
    const hex = toHex(nonce);
    let response: Response;
    try {
      response = await this.#fetch(`${this.#url}/evidence?nonce=${hex}`, {
        method: 'GET',
        headers: { accept: 'application/json' },
        signal,
      });
    } catch (cause) {
      if (signal.aborted) throw signal.reason;
      throw unavailable('evidence service could not be reached', 'gpu_evidence_unavailable', {}, cause);
    }
    if (response.status !== 200) {
      discard(response);
      throw unavailable(`evidence service answered HTTP ${response.status}`, 'gpu_evidence_unavailable', {
        status: response.status,
      });
    }
    const body = await readCapped(response.body, {
      limit: this.#maxBytes,
      declared: response.headers.get('content-length'),
      tooLarge: () =>
        unavailable(`evidence service answer exceeds ${this.#maxBytes} bytes`, 'gpu_evidence_too_large'),
    });
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
    } catch (cause) {
      throw unavailable('evidence service answer is not JSON', 'gpu_evidence_malformed', {}, cause);
    }
    const document = parseEvidenceDocument(json, 'the evidence service');
    if (document.statedNonces.some((n) => n !== hex)) {
      throw unavailable('evidence service answered for another nonce', 'gpu_evidence_nonce_mismatch');
    }
    for (const gpu of document.gpus) {
      if (!equalBytes(parseGpuEvidence(gpu.evidence).nonce, nonce)) {
        throw unavailable(
          `GPU ${gpu.index} report is not bound to our nonce`,
          'gpu_evidence_nonce_mismatch',
          {
            gpu: gpu.index,
          },
        );
      }
    }
    return { gpus: document.gpus, ccState: null, simulated: false };
  }
}
