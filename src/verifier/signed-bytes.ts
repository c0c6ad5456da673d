import { sha256 } from '@noble/hashes/sha2.js';
import { modelOf, toHex } from '../bytes/index.js';
import { parseSignedText } from '../signatures/index.js';
import type { CheckList } from './check-list.js';
import type { AttestedSigner } from './report-checks.js';
import { normalizeHex } from './report-shape.js';
import { verifySignedText } from './verify-signed-text.js';

export interface SignedBytesInput {
  /** `json` or `stream`: names the checks `signature.{kind}.text` and `signature.{kind}.signer`. */
  kind: 'json' | 'stream';
  /** The exact request bytes sent. */
  request: Uint8Array;
  /** The exact response bytes received. */
  response: Uint8Array;
  /** The provider's signature record (`GET /signature/{id}` body). */
  record: { text: string; signature: string; signing_address?: string | undefined };
  signer: AttestedSigner | undefined;
  /**
   * False when a hop between us and the provider re-serializes the request (the 0G broker): only
   * the response half of the signed text can then be compared with our bytes.
   */
  compareRequest?: boolean;
  /** The response's content-encoding, named in the failure when it was not identity. */
  encoding?: string | null;
  /** What to call the exchange in the titles; default "completion". */
  what?: string;
  /**
   * The model the request asked for. A text in the `model` format (docs/protocol.md, Signed text)
   * must name exactly this model. Default: the `model` of the request bytes when they are the bytes
   * the provider received (`compareRequest`); otherwise a signed model is only reported.
   */
  model?: string | undefined;
  /** Where the record came from, added to the signer's pass detail (e.g. the signature trailer). */
  via?: string;
  /**
   * sha256 hex of `request` and `response`, when the caller already hashed them (the gateway hashes
   * a stream as its bytes arrive): each side is then hashed once, not twice.
   */
  hashes?: { request: string; response: string };
}

/**
 * `signature.{json,stream}.text` and `.signer` from bytes already in hand (docs/protocol.md, "Signed text
 * and signatures"):
 * - `.text`: the signed text is sha256hex(request bytes) ":" sha256hex(response bytes), recomputed
 *   from what went over the wire (a changed byte on either side fails it), or NEAR AI's
 *   `model:request:response`, whose model must then be the one requested;
 * - `.signer`: the signature over that text was made by the attested key (EIP-191 recovery for
 *   ecdsa, Ed25519 verification with the attested public key), and the record names that key.
 */
export const checkSignedBytes = (list: CheckList, input: SignedBytesInput): void => {
  const textId = `signature.${input.kind}.text`;
  const signerId = `signature.${input.kind}.signer`;
  const what = `${input.kind === 'stream' ? 'streaming' : 'non-streaming'} ${input.what ?? 'completion'}`;
  const textTitle = `${what}: signed text is [model:]sha256(request bytes):sha256(response bytes)`;
  const signerTitle = `${what}: signature made by the attested key`;
  const compareRequest = input.compareRequest ?? true;
  const text = input.record.text;

  const requestHash = input.hashes?.request ?? toHex(sha256(input.request));
  const responseHash = input.hashes?.response ?? toHex(sha256(input.response));
  // The format is the signatures feature's (signed-text.ts); the hashes above are recomputed here with
  // another library than the signer's, on purpose.
  const parsed = parseSignedText(text);
  const wellFormed = parsed !== undefined;
  const req = parsed?.requestHash;
  const res = parsed?.responseHash;
  if (!wellFormed) {
    list.fail(
      textId,
      textTitle,
      'signed text is not two lowercase sha256 hex digests joined by ":", optionally after a model name',
    );
  } else {
    // Only a `model`-format text names a model to compare; the request is not parsed for any other.
    const requested =
      parsed.model === undefined
        ? undefined
        : (input.model ?? (compareRequest ? modelOf(input.request) : undefined));
    const problems = [
      modelProblem(parsed.model, requested),
      compareRequest && req !== requestHash ? 'request hash differs from our request bytes' : undefined,
      res !== responseHash ? 'response hash differs from the bytes we received' : undefined,
      res !== responseHash && input.encoding != null && input.encoding !== 'identity'
        ? `response had content-encoding ${input.encoding}`
        : undefined,
    ].filter((p) => p !== undefined);
    if (problems.length > 0) list.fail(textId, textTitle, problems.join('; '));
    else
      list.pass(
        textId,
        textTitle,
        `${input.response.length} response bytes hashed${parsed.model === undefined ? '' : `, model ${requested === undefined ? 'signed (not compared)' : 'as requested'}`}${compareRequest ? '' : ' (request hash not comparable: re-serialized on the way)'}`,
      );
  }

  if (input.signer === undefined) {
    list.fail(signerId, signerTitle, 'no valid attested signing key to compare with');
    return;
  }
  const algo = input.signer.algo;
  const verdict = verifySignedText(algo, text, input.record.signature, input.signer.display);
  const claimed = input.record.signing_address;
  if (!verdict.ok) list.fail(signerId, signerTitle, verdict.reason ?? 'signature does not verify');
  else if (claimed !== undefined && normalizeHex(claimed) !== normalizeHex(input.signer.display)) {
    list.fail(signerId, signerTitle, 'the signature record names another signing_address');
  } else {
    const via = input.via === undefined ? '' : `; ${input.via}`;
    list.pass(signerId, signerTitle, `${algo} signature by ${verdict.signer ?? input.signer.display}${via}`);
  }
};

/** A `model`-format text names the model; it must be the one requested (a substituted model fails). */
const modelProblem = (signed: string | undefined, requested: string | undefined): string | undefined =>
  signed !== undefined && requested !== undefined && signed !== requested
    ? 'signed model differs from the model requested'
    : undefined;
