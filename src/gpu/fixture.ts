import { readFile } from 'node:fs/promises';
import { assertBytes } from '../bytes/index.js';
import { unavailable } from '../errors/index.js';
import { parseEvidenceDocument } from './evidence-document.js';
import type { GpuEvidenceProvider, GpuEvidenceResult } from './gpu-evidence-provider.js';

/**
 * Evidence read from a JSON file (nvattest array form or `{evidence_list: [...]}`), for tests and
 * demos. The evidence is whatever the file holds: it is bound to the file's nonce, not the
 * caller's, so it is replayed rather than fresh, and the result is marked `simulated: true`.
 */
export interface FixtureGpuEvidenceOptions {
  path: string;
  readFile?: (path: string) => Promise<string>;
}

export class FixtureGpuEvidenceProvider implements GpuEvidenceProvider {
  readonly kind = 'fixture' as const;
  readonly #path: string;
  readonly #readFile: (path: string) => Promise<string>;

  constructor(options: FixtureGpuEvidenceOptions) {
    this.#path = options.path;
    this.#readFile = options.readFile ?? ((path) => readFile(path, 'utf8'));
  }

  async collect(nonce: Uint8Array): Promise<GpuEvidenceResult> {
    assertBytes('nonce', nonce, 32);
    let text: string;
    try {
      text = await this.#readFile(this.#path);
    } catch (cause) {
      throw unavailable('GPU evidence fixture could not be read', 'gpu_evidence_unavailable', {
        details: { provider: 'fixture' },
        cause,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw unavailable('GPU evidence fixture is not JSON', 'gpu_evidence_malformed', { cause });
    }
    return { gpus: parseEvidenceDocument(json, 'the fixture file').gpus, ccState: null, simulated: true };
  }
}
