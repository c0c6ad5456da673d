import type { IncomingHttpHeaders } from 'node:http';
import type { SigningAlgo } from '../keys/index.js';
import { decodeSignatureTrailer, SIGNATURE_TRAILER, type SignatureAnswer } from '../signatures/index.js';
import { trailersOf } from './trailer-fetch.js';

/** What a signature trailer carried: the record, and its exact JSON bytes (as the lookup serves). */
export interface TrailerSignature {
  record: SignatureAnswer;
  json: Uint8Array;
}

/**
 * The signature record an answer carried in its `X-Teeml-Signature` trailer (docs/protocol.md,
 * "The signature in a trailer"), for an answer requested with `X-Teeml-Signature-Trailer: <algo>`.
 * Accepts the trailers of a `node:http` message or undici `request()` answer (`{ trailers }`), or a
 * `Response` of `fetchKeepingTrailers` (Node's own fetch drops trailers: see trailer-fetch.ts).
 * Read it only once the body was read whole: trailers come after the last byte.
 *
 * Undefined when no trailer came (a proxy on the path dropped it, an older sidecar, a 0G broker): the
 * caller falls back to `GET /signature/{id}`. Throws
 * a TypeError, naming the field and never echoing it, for a trailer that is not a record for `algo`.
 */
export const signatureFromTrailer = (
  response: Response | { trailers: IncomingHttpHeaders | Record<string, string | string[] | undefined> },
  algo: SigningAlgo,
): TrailerSignature | undefined => {
  const trailers = response instanceof Response ? trailersOf(response) : response.trailers;
  const raw = trailers?.[SIGNATURE_TRAILER];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || value === '') return undefined;
  const { answer, json } = decodeSignatureTrailer(value, algo);
  return { record: answer, json };
};
