import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The one owner of what is signed and stored (docs/protocol.md, Signed text): the proxy, the stores
 * and the verifier all read the format from here, so changing it in one place changes it everywhere
 * (a record the signer makes always packs in memory and always passes the Redis reader's check).
 *
 * `text = sha256hex(request bytes) ":" sha256hex(response bytes)`, lowercase hex, 64 characters each.
 */
const HEX64 = '[0-9a-f]{64}';

export const SIGNED_TEXT_PATTERN = new RegExp(`^${HEX64}:${HEX64}$`);
/** EIP-191 personal_sign: `0x` r(32) s(32) v(1), lowercase as the signer writes it. */
export const ECDSA_SIGNATURE_PATTERN = /^0x[0-9a-f]{130}$/;
/** Ed25519: 64 bytes, lowercase hex. */
export const ED25519_SIGNATURE_PATTERN = /^[0-9a-f]{128}$/;

/** sha256 of exact bytes, as lowercase hex: each half of the signed text. */
export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The signed text for a pair of digests; throws for anything but two lowercase sha256 hex digests. */
export const signedText = (requestHash: string, responseHash: string): string => {
  const text = `${requestHash}:${responseHash}`;
  if (!SIGNED_TEXT_PATTERN.test(text)) {
    throw new TypeError('signed text expects two lowercase sha256 hex digests');
  }
  return text;
};

/** The two digests of a signed text; undefined when it is not exactly that format. */
export const parseSignedText = (text: string): { requestHash: string; responseHash: string } | undefined =>
  SIGNED_TEXT_PATTERN.test(text)
    ? { requestHash: text.slice(0, 64), responseHash: text.slice(65) }
    : undefined;

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
