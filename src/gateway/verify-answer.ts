import { sha256 } from '@noble/hashes/sha2.js';
import { jsonOf, toHex } from '../bytes/index.js';
import { PeerCertificateError } from '../tls/index.js';
import { CheckList, type CheckResult, checkSignedBytes, responseIdOf } from '../verifier/index.js';
import type { Attestation } from './attestor.js';
import type { ProviderLink } from './provider-link.js';
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

/**
 * Checks one answer against the pinned attestation: finds its response id (docs/protocol.md, "Response
 * ids"), fetches its signature record through the link, and runs the verifier's
 * `signature.{json,stream}.text/.signer` checks on the exact bytes sent and received. Then the
 * link's own check (0G SDK). Never throws: a provider problem is a failed check.
 */
export const verifyAnswer = async (input: {
  link: ProviderLink;
  attestation: Attestation;
  stream: boolean;
  request: Uint8Array;
  response: Uint8Array;
  headers: Headers;
  fetch: typeof globalThis.fetch;
  usage?: unknown;
}): Promise<AnswerVerdict> => {
  const kind = input.stream ? 'stream' : 'json';
  const list = new CheckList();
  const base = { requestSha256: toHex(sha256(input.request)), responseSha256: toHex(sha256(input.response)) };
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
  let record: AnswerVerdict['record'];
  const recordTitle = 'the provider serves a signature record for the answer';
  try {
    const response = await input.fetch(input.link.signatureUrl(id, signer.algo), {
      headers: {
        ...(await input.link.requestHeaders({ openAiPath: '/signature', body: undefined })),
        accept: 'application/json',
      },
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
      return done({ id });
    }
    record = {
      text: json['text'],
      signature: json['signature'],
      ...(typeof json['signing_address'] === 'string' ? { signing_address: json['signing_address'] } : {}),
    };
    list.pass('signature.record', recordTitle, `HTTP 200 for ${id}`);
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
    return done({ id });
  }
  checkSignedBytes(list, {
    kind,
    request: input.request,
    response: input.response,
    record,
    signer: { algo: signer.algo, bytes: new Uint8Array(0), display: signer.address },
    compareRequest: input.link.requestHashComparable,
    encoding: input.headers.get('content-encoding'),
    what: 'answer',
  });
  if (list.ok) {
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
  }
  return done({ id, record });
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
