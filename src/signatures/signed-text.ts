import { hash } from 'node:crypto';
import { z } from 'zod';

/**
 * The one owner of what is signed and stored (docs/protocol.md, Signed text): the proxy, the stores
 * and the verifier all read the format from here, so changing it in one place changes it everywhere
 * (a record the signer makes always packs in memory and always passes the Redis reader's check).
 *
 * Two formats (config SIGNED_TEXT_FORMAT), lowercase hex, 64 characters per digest:
 * - `hashes` (the 0G format): `sha256hex(request bytes) ":" sha256hex(response bytes)`;
 * - `model` (NEAR AI's inference-proxy): `model ":" sha256hex(request bytes) ":" sha256hex(response bytes)`.
 * Readers accept both; the digests are always the last two parts, so a model name may itself hold ':'.
 */
export const SIGNED_TEXT_FORMATS = ['hashes', 'model'] as const;
export type SignedTextFormat = (typeof SIGNED_TEXT_FORMATS)[number];

const HEX64 = '[0-9a-f]{64}';
/** A served model name as it may be signed: 1–256 characters, no whitespace, no control characters. */
const MODEL = '[^\\s\\p{Cc}]{1,256}';
export const MODEL_NAME_PATTERN = new RegExp(`^${MODEL}$`, 'u');

export const SIGNED_TEXT_PATTERN = new RegExp(`^(?:(${MODEL}):)?(${HEX64}):(${HEX64})$`, 'u');
/** EIP-191 personal_sign: `0x` r(32) s(32) v(1), lowercase as the signer writes it. */
export const ECDSA_SIGNATURE_PATTERN = /^0x[0-9a-f]{130}$/;
/** Ed25519: 64 bytes, lowercase hex. */
export const ED25519_SIGNATURE_PATTERN = /^[0-9a-f]{128}$/;

/** sha256 of exact bytes, as lowercase hex: each half of the signed text. */
export const sha256Hex = (bytes: Uint8Array): string => hash('sha256', bytes, 'hex');

/**
 * The signed text for a pair of digests, in the `model` format when a model is given; throws for
 * anything but two lowercase sha256 hex digests and a well-formed model name.
 */
export const signedText = (requestHash: string, responseHash: string, model?: string): string => {
  const text =
    model === undefined ? `${requestHash}:${responseHash}` : `${model}:${requestHash}:${responseHash}`;
  if (!SIGNED_TEXT_PATTERN.test(text) || (model !== undefined && !MODEL_NAME_PATTERN.test(model))) {
    throw new TypeError('signed text expects two lowercase sha256 hex digests (and a model name)');
  }
  return text;
};

export interface ParsedSignedText {
  /** The signed model name (`model` format); undefined for the `hashes` format. */
  model: string | undefined;
  requestHash: string;
  responseHash: string;
}

/** The parts of a signed text in either format; undefined when it is neither. */
export const parseSignedText = (text: string): ParsedSignedText | undefined => {
  const match = SIGNED_TEXT_PATTERN.exec(text);
  if (match === null) return undefined;
  return { model: match[1], requestHash: match[2] ?? '', responseHash: match[3] ?? '' };
};

/**
 * A signature record as stored and served, checked whenever one comes from outside this process
 * (Redis). Addresses are accepted in any hex case (EIP-55 checksummed for ecdsa).
 */
export const signatureRecordSchema = z.object({
  text: z.string().regex(SIGNED_TEXT_PATTERN),
  ecdsa: z.object({
    signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/),
    address: z.string().regex(/^0x[0-9a-fA-F]{40}$/),
  }),
  ed25519: z.object({
    signature: z.string().regex(/^[0-9a-fA-F]{128}$/),
    address: z.string().regex(/^[0-9a-fA-F]{64}$/),
  }),
});
