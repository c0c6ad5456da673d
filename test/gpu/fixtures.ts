import { readFileSync } from 'node:fs';
import { sharedFixtures } from '../paths.js';

/** Readers for the real captured fixtures (shared/attestation-fixtures README, sections 4 and 5). */
export interface RealGpu {
  evidence: Uint8Array;
  certificateChain: string;
  nonce: Uint8Array;
}

export const NEAR_E2E = 'e2e/nearcloud_qwen_qwen3.5-122b-a10b_20260629_020657';
export const PHALA_E2E = 'e2e/phalacloud_phala_deepseek-v3.2_20260610_014917_NEGATIVE_nras';
/** The single clock at which every part of the NEAR e2e capture verifies (README section 5). */
export const NEAR_CLOCK = new Date(1_782_700_000 * 1000);
export const PHALA_CLOCK = new Date(1_781_057_000 * 1000);
export const SAMPLE_NONCE = '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb';

export const readText = (relative: string): string => readFileSync(sharedFixtures(relative), 'utf8');

export const hexFile = (relative: string): Uint8Array =>
  new Uint8Array(Buffer.from(readText(relative).trim(), 'hex'));

const fromHex = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));

export const singleGpu = (report: string, chain: string, nonceHex = SAMPLE_NONCE): RealGpu => ({
  evidence: hexFile(report),
  certificateChain: readText(chain),
  nonce: fromHex(nonceHex),
});

export const hopper = () =>
  singleGpu(
    'nvidia/nvtrust-hopper-sample/hopperAttestationReport.txt',
    'nvidia/nvtrust-hopper-sample/hopperCertChain.txt',
  );
export const blackwell = () =>
  singleGpu(
    'nvidia/nvat-gpu-samples/blackwellAttestationReport.txt',
    'nvidia/nvat-gpu-samples/blackwellCertChain.txt',
  );
export const invalidSignature = () =>
  singleGpu(
    'nvidia/nvat-gpu-samples/hopperAttestationReportInvalidSignature.txt',
    'nvidia/nvat-gpu-samples/hopperCertChainExpired.txt',
  );

/** nvattest-format JSON arrays: [{arch, certificate (base64 PEM), evidence (base64), nonce}]. */
export const jsonList = (relative: string): RealGpu[] =>
  (JSON.parse(readText(relative)) as { certificate: string; evidence: string; nonce: string }[]).map((e) => ({
    evidence: new Uint8Array(Buffer.from(e.evidence, 'base64')),
    certificateChain: Buffer.from(e.certificate, 'base64').toString('utf8'),
    nonce: fromHex(e.nonce),
  }));

export const fourGpu = () => jsonList('nvidia/nvat-evidence/multi_gpu_hopper.json');
export const eightGpu = () => jsonList('nvidia/nvtrust-ppcie-8gpu/gpu_evidence.json');
