import { readFile } from 'node:fs/promises';
import type { Collateral, TcbStatus } from '@phala/dcap-qvl';
import { z } from 'zod';
import { lazyRequire } from '../lazy/index.js';
import { type ParsedQuote, parseQuote } from './quote.js';

/**
 * Offline DCAP verification of a TDX quote with `@phala/dcap-qvl` (docs/platforms.md): signatures, PCK
 * chain to Intel's root, TCB status against the given collateral, at a caller-chosen time. It does
 * NOT check MRTD, RTMRs or report_data: the caller compares `parsed.report` with what it expects.
 */

/** DCAP verification is needed by verifiers, not by a serving sidecar: loaded on first use. */
const dcap = lazyRequire<typeof import('@phala/dcap-qvl')>('@phala/dcap-qvl');

export type { Collateral, TcbStatus } from '@phala/dcap-qvl';

export interface QuoteVerification {
  /** TCB status from the matching TCB level, e.g. `UpToDate`, `SWHardeningNeeded`, `OutOfDate`. */
  status: TcbStatus;
  advisoryIds: string[];
  /** Our own parse of the same bytes, for the caller's MRTD / RTMR / report_data checks. */
  parsed: ParsedQuote;
}

/** Verification failed; `reason` is dcap-qvl's message (e.g. `TCBInfo expired`). */
export class QuoteVerificationError extends Error {
  override readonly name = 'QuoteVerificationError';
  readonly reason: string;
  constructor(reason: string, cause?: unknown) {
    super(`TDX quote verification failed: ${reason}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
  }
}

/**
 * Verifies `quote` against `collateral` at `nowSeconds` (Unix seconds; pass a fixed value in tests,
 * the real clock in production). Throws `QuoteParseError` when the bytes are not a TDX quote and
 * `QuoteVerificationError` when dcap-qvl rejects it.
 */
export const verifyQuote = (
  quote: Uint8Array,
  collateral: Collateral,
  nowSeconds: number,
): QuoteVerification => {
  if (!Number.isSafeInteger(nowSeconds) || nowSeconds < 0) {
    throw new TypeError('"nowSeconds" expected a non-negative integer number of seconds');
  }
  const parsed = parseQuote(quote);
  let verified: ReturnType<ReturnType<typeof dcap>['verify']>;
  try {
    verified = dcap().verify(quote, collateral, nowSeconds);
  } catch (err) {
    throw new QuoteVerificationError(err instanceof Error ? err.message : 'unknown error', err);
  }
  return { status: verified.status, advisoryIds: [...verified.advisory_ids], parsed };
};

// Byte fields are hex strings in the files dcap-qvl and Intel PCS produce, or byte arrays.
const bytesField = z.union([z.string().regex(/^[0-9a-fA-F]*$/), z.array(z.number().int().min(0).max(255))]);

const collateralSchema = z.object({
  pck_crl_issuer_chain: z.string(),
  root_ca_crl: bytesField,
  pck_crl: bytesField,
  tcb_info_issuer_chain: z.string(),
  tcb_info: z.string(),
  tcb_info_signature: bytesField,
  qe_identity_issuer_chain: z.string(),
  qe_identity: z.string(),
  qe_identity_signature: bytesField,
});

/** Validates the shape of a collateral object (dcap-qvl `Collateral`); extra keys are dropped. */
export const parseCollateral = (value: unknown): Collateral => {
  const result = collateralSchema.safeParse(value);
  if (!result.success) {
    const fields = [...new Set(result.error.issues.map((i) => i.path.join('.') || '(root)'))].join(', ');
    throw new TypeError(`collateral: missing or malformed fields: ${fields}`);
  }
  return result.data;
};

/** Reads a collateral JSON file (as written by dcap-qvl `getCollateral` or a PCCS dump). */
export const loadCollateral = async (
  path: string,
  read: (path: string) => Promise<string> = (p) => readFile(p, 'utf8'),
): Promise<Collateral> => {
  const text = await read(path);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TypeError('collateral: file is not valid JSON', { cause: err });
  }
  return parseCollateral(json);
};
