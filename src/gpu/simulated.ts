import { randomBytes } from 'node:crypto';
import { assertBytes } from '../bytes/index.js';
import { unavailable } from '../errors/index.js';
import type {
  GpuArch,
  GpuEvidence,
  GpuEvidenceProvider,
  GpuEvidenceResult,
} from './gpu-evidence-provider.js';
import { synthesizeGpuEvidence } from './synthetic-evidence.js';
import { loadSyntheticGpuFixtures, type SyntheticGpuFixtures } from './synthetic-fixtures.js';

/**
 * Simulated GPUs (docs/architecture.md: simulation is loudly labelled). For any nonce it produces evidence
 * with the real SPDM layout, bound to that nonce and signed by the throwaway leaf of
 * attestation-fixtures/gpu/, so the whole pipeline (payload, local check) runs without a GPU. The
 * result says `simulated: true`, the chain ends at "SYNTHETIC TEST ROOT – NOT NVIDIA", and only a
 * caller that pins that root explicitly accepts it; NRAS rejects it.
 */
export interface SimulatedGpuEvidenceOptions {
  gpuCount?: number;
  arch?: GpuArch;
  /** Folder with the synthetic fixtures; default attestation-fixtures/gpu/. */
  fixtureDir?: string;
  /** Source of responder nonces. */
  random?: (length: number) => Uint8Array;
}

export class SimulatedGpuEvidenceProvider implements GpuEvidenceProvider {
  readonly kind = 'simulated' as const;
  readonly #gpuCount: number;
  readonly #arch: GpuArch;
  readonly #fixtureDir: string | undefined;
  readonly #random: (length: number) => Uint8Array;
  #fixtures: Promise<SyntheticGpuFixtures> | undefined;

  constructor(options: SimulatedGpuEvidenceOptions = {}) {
    const gpuCount = options.gpuCount ?? 1;
    if (!Number.isInteger(gpuCount) || gpuCount < 1 || gpuCount > 64) {
      throw new RangeError('"gpuCount" expected an integer in 1..64');
    }
    this.#gpuCount = gpuCount;
    this.#arch = options.arch ?? 'HOPPER';
    this.#fixtureDir = options.fixtureDir;
    this.#random = options.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  /** The root fingerprint a simulated-mode verifier must pin to accept this evidence. */
  async rootFingerprint(): Promise<string> {
    return (await this.#load()).rootFingerprint;
  }

  async collect(nonce: Uint8Array): Promise<GpuEvidenceResult> {
    assertBytes('nonce', nonce, 32);
    const fixtures = await this.#load();
    const gpus: GpuEvidence[] = [];
    for (let index = 0; index < this.#gpuCount; index++) {
      gpus.push({
        index,
        arch: this.#arch,
        evidence: synthesizeGpuEvidence(fixtures.template, fixtures.leafKey, nonce, this.#random(32)),
        certificateChain: fixtures.chainPem,
        uuid: `GPU-00000000-0000-4000-8000-${String(index).padStart(12, '0')}`,
        driverVersion: '550.90.07',
        vbiosVersion: '96.00.9F.00.01',
      });
    }
    return { gpus, ccState: null, simulated: true };
  }

  #load(): Promise<SyntheticGpuFixtures> {
    this.#fixtures ??= loadSyntheticGpuFixtures(this.#fixtureDir).catch((cause: unknown) => {
      this.#fixtures = undefined;
      throw unavailable(
        'simulated GPU evidence: synthetic fixtures could not be loaded',
        'gpu_evidence_unavailable',
        {
          details: { provider: 'simulated' },
          cause,
        },
      );
    });
    return this.#fixtures;
  }
}
