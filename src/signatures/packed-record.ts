import type { SignatureRecord } from './signature-store.js';
import { ECDSA_SIGNATURE_PATTERN, ED25519_SIGNATURE_PATTERN, SIGNED_TEXT_PATTERN } from './signed-text.js';

/**
 * A signature record packed for long-lived storage: the two digests (64 bytes), the ECDSA signature
 * (65 bytes) and the Ed25519 signature (64 bytes) as one 193-character latin1 string, which V8 keeps
 * as a one-byte string (~210 bytes with its header) instead of three hex strings and three objects
 * (~800 bytes). Addresses are the signers' own strings, shared by every record.
 */
export interface PackedRecord {
  packed: string;
  ecdsaAddress: string;
  ed25519Address: string;
}

/** Packs a record in the canonical shape our signers produce; undefined for anything else. */
export const packRecord = (record: SignatureRecord): PackedRecord | undefined => {
  if (
    !SIGNED_TEXT_PATTERN.test(record.text) ||
    !ECDSA_SIGNATURE_PATTERN.test(record.ecdsa.signature) ||
    !ED25519_SIGNATURE_PATTERN.test(record.ed25519.signature)
  ) {
    return undefined;
  }
  const hex =
    record.text.slice(0, 64) +
    record.text.slice(65) +
    record.ecdsa.signature.slice(2) +
    record.ed25519.signature;
  return {
    packed: Buffer.from(hex, 'hex').toString('latin1'),
    ecdsaAddress: record.ecdsa.address,
    ed25519Address: record.ed25519.address,
  };
};

export const unpackRecord = (p: PackedRecord): SignatureRecord => {
  const hex = Buffer.from(p.packed, 'latin1').toString('hex');
  return {
    text: `${hex.slice(0, 64)}:${hex.slice(64, 128)}`,
    ecdsa: { signature: `0x${hex.slice(128, 258)}`, address: p.ecdsaAddress },
    ed25519: { signature: hex.slice(258, 386), address: p.ed25519Address },
  };
};
