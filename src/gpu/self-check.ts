import { randomBytes } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import { toHex } from '../bytes/index.js';
import type { GpuEvidenceProvider } from './gpu-evidence-provider.js';
import {
  fetchNrasJwks,
  type NrasOptions,
  type NrasVerification,
  submitToNras,
  verifyNrasResult,
} from './nras.js';
import { buildNvidiaPayload } from './payload.js';

/**
 * Start-up self-check (config NRAS_SELF_CHECK): collect our own GPU evidence for a fresh random
 * nonce, submit it to NRAS exactly as a client would, and verify the answer. The server decides
 * what to do with the result (refuse to serve when it is not ok).
 */
export interface NrasSelfCheckOptions extends NrasOptions {
  /** Keys to verify with; fetched from NRAS when absent. */
  jwks?: JSONWebKeySet;
  now?: () => Date;
  random?: (length: number) => Uint8Array;
  signal?: AbortSignal;
}

export interface NrasSelfCheckResult {
  nonceHex: string;
  gpuCount: number;
  verification: NrasVerification;
}

export const nrasSelfCheck = async (
  provider: GpuEvidenceProvider,
  options: NrasSelfCheckOptions = {},
): Promise<NrasSelfCheckResult> => {
  const nonce = (options.random ?? ((n) => new Uint8Array(randomBytes(n))))(32);
  const evidence = await provider.collect(nonce, options.signal);
  const payload = buildNvidiaPayload(nonce, evidence.gpus);
  const answer = await submitToNras(payload, options);
  const jwks = options.jwks ?? (await fetchNrasJwks(options));
  const nonceHex = toHex(nonce);
  const verification = await verifyNrasResult(answer, {
    jwks,
    nonceHex,
    gpuCount: evidence.gpus.length,
    now: (options.now ?? (() => new Date()))(),
  });
  return { nonceHex, gpuCount: evidence.gpus.length, verification };
};
