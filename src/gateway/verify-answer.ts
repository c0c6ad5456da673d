import { jsonOf } from '../bytes/index.js';
import { SIGNATURE_TRAILER_REQUEST_HEADER, sha256Hex } from '../signatures/index.js';
import { PeerCertificateError } from '../tls/index.js';
import {
  CheckList,
  type CheckResult,
  checkSignedBytes,
  responseIdOf,
  signatureFromTrailer,
} from '../verifier/index.js';
import type { AcceptedIds } from './accepted-ids.js';
import { answerObjects, checkAnswerClaims } from './answer-claims.js';
import type { Attestation } from './attestor.js';
import type { ProviderLink } from './provider-link.js';
import type { Upstream, UpstreamHeaders } from './upstream.js';
import { readAnswer } from './wire.js';

export interface AnswerVerdict {
  ok: boolean;
  /** The first failed check's id (what `X-TeeML-Verification: failed: <id>` names). */
  failedCheck?: string;
  detail?: string;
  checks: CheckResult[];
  id?: string;
  requestSha256: string;
  responseSha256: string;
  record?: { text: string; signature: string; signing_address?: string };
}

const MAX_SIGNATURE_BYTES = 64 * 1024;

/** What checking one answer needs. */
export interface AnswerInput {
  link: ProviderLink;
  attestation: Attestation;
  stream: boolean;
  request: Uint8Array;
  response: Uint8Array;
  headers: UpstreamHeaders;
  /**
   * The answer as received, read to its end: its signature trailer, when the link keeps trailers
   * (`ProviderLink.signatureTrailer`), is the record checked, with no lookup.
   */
  upstream?: Upstream;
  /** sha256 (hex) of `response`, when it was hashed while its bytes arrived. */
  responseSha256?: string;
  /** A JSON answer's body, already parsed by the caller (undefined: not JSON); read once, not twice. */
  parsed?: unknown;
  fetch: typeof globalThis.fetch;
  usage?: unknown;
  /** The request's `model`, which the answer must name (`answer.model`). */
  model: string | undefined;
  /** When the request was sent, and the clock (0G mode: `answer.created`). */
  sentAt: number;
  now: () => number;
  /** Ids already accepted: a repeat fails `answer.replayed`. */
  accepted: AcceptedIds;
  /** Deadline for the signature record. */
  signatureTimeoutMs: number;
}

/**
 * Checks one answer against the pinned attestation: finds its response id (docs/protocol.md, "Response
 * ids"), fetches its signature record through the link, and runs the verifier's
 * `signature.{json,stream}.text/.signer` checks on the exact bytes sent and received; then what the
 * answer says about itself (answer-claims.ts), that its id was not accepted before, and the link's own
 * check (0G SDK). Never throws: a provider problem is a failed check.
 */
export const verifyAnswer = async (input: AnswerInput): Promise<AnswerVerdict> => {
  const kind = input.stream ? 'stream' : 'json';
  const list = new CheckList();
  // Each side hashed once (a stream's answer already as it arrived), and the same digests checked.
  const base = {
    requestSha256: sha256Hex(input.request),
    responseSha256: input.responseSha256 ?? sha256Hex(input.response),
  };
  const done = (extra: Partial<AnswerVerdict> = {}): AnswerVerdict => {
    const failed = list.results.find((c) => c.status === 'fail');
    return {
      ok: failed === undefined,
      ...(failed === undefined ? {} : { failedCheck: failed.id, detail: failed.detail }),
      checks: list.results,
      ...base,
      ...extra,
    };
  };
  const id = responseIdOf(input.headers, input.response, input.stream);
  if (id === undefined) {
    list.fail(
      'answer.id',
      'the answer carries a response id',
      'no ZG-Res-Key header, body id or SSE chunk id',
    );
    return done();
  }
  const signer = input.attestation.signer;
  if (signer === undefined) {
    list.fail('report.signing-key', 'attested signing key', 'the attestation named no signing key');
    return done({ id });
  }
  const trailer = trailerRecord(list, input, signer.algo);
  const record =
    trailer === undefined ? await fetchRecord(list, input, id, signer.algo) : trailer || undefined;
  if (record === undefined) return done({ id });
  checkSignedBytes(list, {
    hashes: { request: base.requestSha256, response: base.responseSha256 },
    ...(trailer === undefined ? {} : { via: "from the answer's signature trailer" }),
    kind,
    request: input.request,
    response: input.response,
    record,
    signer: { algo: signer.algo, bytes: new Uint8Array(0), display: signer.address },
    compareRequest: input.link.requestHashComparable,
    encoding: input.headers.get('content-encoding'),
    what: 'answer',
  });
  if (list.ok) checkClaims(list, input, id);
  if (list.ok) await checkLink(list, input, id);
  return done({ id, record });
};

/** A parsed JSON answer as answerObjects reads it: the object, or nothing for anything else. */
const objectsOf = (parsed: unknown): Record<string, unknown>[] =>
  typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
    ? [parsed as Record<string, unknown>]
    : [];

/** The answer's own claims (model, created) and that its id is new; the id is noted only when all pass. */
const checkClaims = (list: CheckList, input: AnswerInput, id: string): void => {
  const objects =
    !input.stream && 'parsed' in input
      ? objectsOf(input.parsed)
      : answerObjects(input.response, input.stream);
  const signedId = checkSignedId(list, objects, id);
  if (signedId === undefined) return;
  checkAnswerClaims(list, {
    objects,
    model: input.model,
    checkCreated: !input.link.requestHashComparable,
    sentAt: input.sentAt,
    now: input.now(),
  });
  if (!list.ok) return;
  const title = 'the answer was not accepted before';
  if (input.accepted.accept(signedId)) list.pass('answer.replayed', title, 'a new response id');
  else list.fail('answer.replayed', title, `response id ${signedId} was already accepted: a replayed answer`);
};

/**
 * The id the gateway remembers (and the replay check compares) must be one the signature covers: the
 * `ZG-Res-Key` header is not signed, so a man in the middle could serve a kept answer and its record
 * under a fresh header id. Every object of the answer (the body, each stream chunk) names one id, the
 * header's (the sidecar writes the id it signs into the body and every chunk, docs/protocol.md
 * "Response ids"), or `chatcmpl-<header id>` (a 0G broker that signs: its key is the uuid of the
 * id it writes). Returns that signed id, or undefined when the check failed.
 */
const checkSignedId = (
  list: CheckList,
  objects: Record<string, unknown>[],
  id: string,
): string | undefined => {
  const title = 'the response id is the one inside the signed answer';
  const named = [...new Set(objects.map((o) => o['id']).filter((v) => v !== undefined))];
  const signed = named[0];
  if (signed === undefined) list.fail('answer.id', title, 'the signed answer names no id');
  else if (named.length > 1 || typeof signed !== 'string')
    list.fail('answer.id', title, 'the signed answer names more than one id');
  else if (signed !== id && signed !== `chatcmpl-${id}`)
    list.fail('answer.id', title, 'the response id differs from the id in the signed answer');
  else {
    list.pass('answer.id', title, 'the signed answer names it');
    return signed;
  }
  return undefined;
};

const checkLink = async (list: CheckList, input: AnswerInput, id: string): Promise<void> => {
  const title = 'the provider link accepts the answer';
  let accepted = false;
  try {
    accepted = await input.link.afterAnswer({
      id,
      responseBody: input.response,
      streamed: input.stream,
      ...(input.usage === undefined ? {} : { usage: input.usage }),
    });
  } catch {
    accepted = false;
  }
  if (accepted) list.pass('link.after-answer', title, 'accepted');
  else list.fail('link.after-answer', title, 'the provider link rejected the answer');
};

/**
 * Asks the provider for the signature record in a trailer (docs/protocol.md, "The signature in a
 * trailer") when the link keeps trailers, for the attested algorithm: the record then comes with
 * the answer, and no lookup follows it. Adds nothing for a 0G link (its broker does not forward it).
 */
export const askForSignatureTrailer = (
  link: ProviderLink,
  attestation: Attestation,
  headers: Record<string, string>,
): void => {
  const algo = attestation.signer?.algo;
  if (link.signatureTrailer === true && algo !== undefined) headers[SIGNATURE_TRAILER_REQUEST_HEADER] = algo;
};

/**
 * The record the answer carried in its trailer; undefined when none came (a proxy on the path
 * dropped it, an older sidecar: the caller falls back to the lookup); false, with the failed check
 * noted, for a trailer that is not a record: a bad trailer fails like a bad lookup record, and the
 * lookup is not asked to rescue it.
 */
const trailerRecord = (
  list: CheckList,
  input: AnswerInput,
  algo: 'ecdsa' | 'ed25519',
): AnswerVerdict['record'] | false | undefined => {
  if (input.link.signatureTrailer !== true || input.upstream === undefined) return undefined;
  const title = 'the provider serves a signature record for the answer';
  try {
    const carried = signatureFromTrailer({ trailers: input.upstream.trailers() ?? {} }, algo);
    if (carried === undefined) return undefined;
    list.pass('signature.record', title, "in the answer's signature trailer");
    const { text, signature, signing_address } = carried.record;
    return { text, signature, signing_address };
  } catch (error) {
    list.fail(
      'signature.record',
      title,
      `the signature trailer is not a record: ${(error as Error).message}`,
    );
    return false;
  }
};

/** The signature record for `id` (within the deadline), or undefined with the failed check noted. */
const fetchRecord = async (
  list: CheckList,
  input: AnswerInput,
  id: string,
  algo: 'ecdsa' | 'ed25519',
): Promise<AnswerVerdict['record']> => {
  const recordTitle = 'the provider serves a signature record for the answer';
  try {
    const response = await input.fetch(input.link.signatureUrl(id, algo), {
      headers: {
        ...(await input.link.requestHeaders({ openAiPath: '/signature', body: undefined })),
        accept: 'application/json',
      },
      // A provider that never answers must not hold the user's call (issue 21 item 11).
      signal: AbortSignal.timeout(input.signatureTimeoutMs),
    });
    const body = await readAnswer(response, MAX_SIGNATURE_BYTES, 'signature record');
    const json = jsonOf(body) as Record<string, unknown> | undefined;
    if (
      response.status !== 200 ||
      typeof json?.['text'] !== 'string' ||
      typeof json['signature'] !== 'string'
    ) {
      list.fail(
        'signature.record',
        recordTitle,
        `GET /signature/{id} answered HTTP ${response.status} without a signature record`,
      );
      return undefined;
    }
    list.pass('signature.record', recordTitle, `HTTP 200 for ${id}`);
    return {
      text: json['text'],
      signature: json['signature'],
      ...(typeof json['signing_address'] === 'string' ? { signing_address: json['signing_address'] } : {}),
    };
  } catch (error) {
    if (error instanceof PeerCertificateError)
      list.fail(
        'gateway.tls-pinned',
        'the connection shows the TLS key the last attestation pinned',
        error.message,
      );
    else
      list.fail(
        'signature.record',
        recordTitle,
        `request failed: ${error instanceof Error ? error.message : 'unknown error'}`,
      );
    return undefined;
  }
};

/**
 * The verdict on an answer that failed a check of the gateway's own (the TLS pin, a stream that did
 * not complete) before any signature could be checked: nothing was hashed.
 */
export const failedVerdict = (id: string, title: string, detail: string): AnswerVerdict => ({
  ok: false,
  failedCheck: id,
  detail,
  checks: [{ id, title, status: 'fail', detail }],
  requestSha256: '',
  responseSha256: '',
});
