import { assertBytes } from '../bytes/index.js';
import type { GpuEvidenceProvider, GpuEvidenceResult } from './gpu-evidence-provider.js';

/**
 * No GPU (CPU-only TEE, or GPUs deliberately not attested): an empty evidence list and no CC state.
 * The report then says there is no GPU evidence rather than pretending.
 */
export class NoGpuEvidenceProvider implements GpuEvidenceProvider {
  readonly kind = 'none' as const;

  async collect(nonce: Uint8Array): Promise<GpuEvidenceResult> {
    assertBytes('nonce', nonce, 32);
    return { gpus: [], ccState: null, simulated: false };
  }
}
