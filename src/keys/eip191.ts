import { keccak_256 } from '@noble/hashes/sha3.js';
import { toHex } from '../bytes/index.js';

const encoder = new TextEncoder();

/**
 * EIP-191 version 0x45 (`personal_sign`) digest: keccak256("\x19Ethereum Signed Message:\n" + len + message),
 * where len is the decimal byte length of the UTF-8 message. This is what ethers' `hashMessage` and
 * viem's `hashMessage` compute, and what the 0G SDK recovers against.
 */
export const hashMessage = (message: string): Uint8Array => {
  const body = encoder.encode(message);
  const prefix = encoder.encode(`\x19Ethereum Signed Message:\n${body.length}`);
  const buf = new Uint8Array(prefix.length + body.length);
  buf.set(prefix, 0);
  buf.set(body, prefix.length);
  return keccak_256(buf);
};

/**
 * EIP-55 mixed-case checksum of a 20-byte address: a hex digit is upper-cased when the matching nibble
 * of keccak256(lowercase hex) is ≥ 8.
 */
export const checksumAddress = (address: Uint8Array): string => {
  const hex = toHex(address);
  const hash = keccak_256(encoder.encode(hex));
  let out = '0x';
  for (let i = 0; i < hex.length; i++) {
    const nibble = ((hash[i >> 1] ?? 0) >> (i % 2 === 0 ? 4 : 0)) & 0xf;
    const ch = hex[i] ?? '';
    out += nibble >= 8 ? ch.toUpperCase() : ch;
  }
  return out;
};

/** Ethereum address of an uncompressed secp256k1 public key (65 bytes, 0x04 ‖ x ‖ y): last 20 bytes of keccak256(x ‖ y). */
export const addressOfPublicKey = (uncompressed: Uint8Array): Uint8Array => {
  if (uncompressed.length !== 65 || uncompressed[0] !== 0x04) {
    throw new TypeError(`"publicKey" expected 65-byte uncompressed point, got length=${uncompressed.length}`);
  }
  return keccak_256(uncompressed.subarray(1)).subarray(12);
};
