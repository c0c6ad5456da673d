import type { Signers } from '../keys/index.js';
import { lazyRecord, lazySignatures } from './lazy-record.js';
import type { SignatureRecord } from './signature-store.js';
import { ECDSA_SIGNATURE_PATTERN, ED25519_SIGNATURE_PATTERN, parseSignedText } from './signed-text.js';

/**
 * A signature record packed for long-lived storage: the two digests (64 bytes), the ECDSA signature
 * (65 bytes) and the Ed25519 signature (64 bytes) as one latin1 string, which V8 keeps as a one-byte
 * string (~210 bytes with its header) instead of three hex strings and three objects (~800 bytes).
 * Addresses are the signers' own strings, shared by every record.
 *
 * A lazily signed record (lazy-record.ts) packs only the signatures made so far and keeps a reference
 * to the signers: the string's length says which are there (64: none, 129: ECDSA, 128: Ed25519,
 * 193: both). A `model`-format text keeps its model name beside the digests.
 */
export interface PackedRecord {
  packed: string;
  ecdsaAddress: string;
  ed25519Address: string;
  /** The signed model name (SIGNED_TEXT_FORMAT=model); absent for the `hashes` format. */
  model?: string;
  /** Set for a lazily signed record: what makes its missing signatures. */
  signers?: Signers | undefined;
}

const DIGESTS = 64;
const ECDSA_BYTES = 65;
const ED25519_BYTES = 64;

const latin1 = (hex: string): string => Buffer.from(hex, 'hex').toString('latin1');
const hexOf = (s: string): string => Buffer.from(s, 'latin1').toString('hex');

/** Packs a record in the canonical shape our signers produce; undefined for anything else. */
export const packRecord = (record: SignatureRecord): PackedRecord | undefined => {
  const parsed = parseSignedText(record.text);
  if (parsed === undefined) return undefined;
  const digests = parsed.requestHash + parsed.responseHash;
  const model = parsed.model === undefined ? {} : { model: parsed.model };
  const lazy = lazySignatures(record);
  if (lazy !== undefined) {
    // Read from the state, not the record: reading `record.ecdsa` would sign.
    const { signers, ecdsa, ed25519 } = lazy;
    if (
      (ecdsa !== undefined && !ECDSA_SIGNATURE_PATTERN.test(ecdsa)) ||
      (ed25519 !== undefined && !ED25519_SIGNATURE_PATTERN.test(ed25519))
    ) {
      return undefined;
    }
    return {
      packed: latin1(digests + (ecdsa?.slice(2) ?? '') + (ed25519 ?? '')),
      ecdsaAddress: signers.ecdsa.address,
      ed25519Address: signers.ed25519.address,
      ...model,
      signers,
    };
  }
  if (
    !ECDSA_SIGNATURE_PATTERN.test(record.ecdsa.signature) ||
    !ED25519_SIGNATURE_PATTERN.test(record.ed25519.signature)
  )
    return undefined;
  return {
    packed: latin1(digests + record.ecdsa.signature.slice(2) + record.ed25519.signature),
    ecdsaAddress: record.ecdsa.address,
    ed25519Address: record.ed25519.address,
    ...model,
  };
};

/**
 * The record a packed one holds. A lazily signed one comes back lazy: `onSign` is called when a
 * missing signature is made, so the store can pack it in.
 */
export const unpackRecord = (
  p: PackedRecord,
  onSign?: (record: SignatureRecord) => void,
): SignatureRecord => {
  const hex = hexOf(p.packed);
  const digests = `${hex.slice(0, 64)}:${hex.slice(64, 128)}`;
  const text = p.model === undefined ? digests : `${p.model}:${digests}`;
  const length = p.packed.length;
  if (p.signers === undefined || length === DIGESTS + ECDSA_BYTES + ED25519_BYTES) {
    return {
      text,
      ecdsa: { signature: `0x${hex.slice(128, 258)}`, address: p.ecdsaAddress },
      ed25519: { signature: hex.slice(258, 386), address: p.ed25519Address },
    };
  }
  const made =
    length === DIGESTS + ECDSA_BYTES
      ? { ecdsa: `0x${hex.slice(128, 258)}` }
      : length === DIGESTS + ED25519_BYTES
        ? { ed25519: hex.slice(128, 256) }
        : {};
  return lazyRecord(p.signers, text, made, onSign);
};
