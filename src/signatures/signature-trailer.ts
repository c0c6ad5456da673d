import type { SigningAlgo } from '../keys/index.js';
import type { SignatureRecord } from './signature-store.js';

/**
 * The signature in an HTTP trailer (docs/protocol.md, "The signature in a trailer"): the one owner
 * of the header names and of the trailer's encoding, read by the proxy that sends it and by the
 * verifier that reads it.
 *
 * A client asks with `X-Teeml-Signature-Trailer: ecdsa|ed25519` (our own `x-teeml-` namespace: the
 * sidecar never forwards such a header to the model server nor relays one from it, so neither a
 * client of vLLM nor vLLM itself can collide with it). The answer then declares
 * `Trailer: X-Teeml-Signature` and, after its last body byte, sends that field: base64url (RFC 4648
 * §5, no padding) of the exact JSON bytes `GET /signature/{id}?signing_algo=…` serves. base64url, not
 * the JSON itself, because a field value must be visible ASCII (RFC 9110 §5.5) and the signed text
 * may one day carry a model name in any script; and the decoded bytes compare byte for byte with the
 * lookup's body.
 */
export const SIGNATURE_TRAILER_REQUEST_HEADER = 'x-teeml-signature-trailer';
export const SIGNATURE_TRAILER = 'x-teeml-signature';

/** The body `GET /signature/{id}` serves for `algo` (field order is part of the bytes). */
export interface SignatureAnswer {
  text: string;
  signature: string;
  signing_address: string;
  signing_algo: SigningAlgo;
}

/** The lookup's answer for `algo`; reading `record[algo]` signs a lazily signed record. */
export const signatureAnswer = (record: SignatureRecord, algo: SigningAlgo): SignatureAnswer => {
  const sig = record[algo];
  return { text: record.text, signature: sig.signature, signing_address: sig.address, signing_algo: algo };
};

/** The trailer field's value: base64url of the JSON `GET /signature/{id}` serves. */
export const encodeSignatureTrailer = (record: SignatureRecord, algo: SigningAlgo): string =>
  Buffer.from(JSON.stringify(signatureAnswer(record, algo))).toString('base64url');

const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** A record's JSON is ~350 bytes; anything far larger is not one. */
const MAX_TRAILER_CHARS = 8192;

/**
 * The record a trailer value carries, and its exact JSON bytes; throws a TypeError naming what is
 * wrong (never echoing the value) when it is not base64url of a JSON object with the four string
 * fields, or is for another algorithm than `algo`.
 */
export const decodeSignatureTrailer = (
  value: string,
  algo: SigningAlgo,
): { answer: SignatureAnswer; json: Uint8Array } => {
  const trimmed = value.trim();
  if (trimmed.length > MAX_TRAILER_CHARS || !BASE64URL.test(trimmed)) {
    throw new TypeError(`"${SIGNATURE_TRAILER}" trailer is not base64url`);
  }
  const json = new Uint8Array(Buffer.from(trimmed, 'base64url'));
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch {
    throw new TypeError(`"${SIGNATURE_TRAILER}" trailer is not a JSON record`);
  }
  const r = parsed as Partial<Record<keyof SignatureAnswer, unknown>> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.text !== 'string' ||
    typeof r.signature !== 'string' ||
    typeof r.signing_address !== 'string'
  ) {
    throw new TypeError(`"${SIGNATURE_TRAILER}" trailer lacks text, signature or signing_address`);
  }
  if (r.signing_algo !== algo) {
    throw new TypeError(`"${SIGNATURE_TRAILER}" trailer is not the ${algo} record asked for`);
  }
  return {
    answer: { text: r.text, signature: r.signature, signing_address: r.signing_address, signing_algo: algo },
    json,
  };
};

/**
 * The algorithm a request asks the signature trailer for; undefined when it does not ask. Throws a
 * TypeError for any other value (the proxy answers 400 before anything reaches the model server).
 */
export const signatureTrailerRequest = (value: string | undefined): SigningAlgo | undefined => {
  if (value === undefined) return undefined;
  const algo = value.trim().toLowerCase();
  if (algo === 'ecdsa' || algo === 'ed25519') return algo;
  throw new TypeError(`"X-Teeml-Signature-Trailer" must be ecdsa or ed25519`);
};
