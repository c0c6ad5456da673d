import { jsonOf } from '../bytes/index.js';
import type { Answer } from './engine-io.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { errorAnswer, NOT_RETRYABLE, VERIFICATION_HEADER } from './send-error.js';
import { type AnswerVerdict, failedVerdict, verifyAnswer } from './verify-answer.js';
import { readAnswer } from './wire.js';

/**
 * A JSON answer: read whole (at most `maxAnswerBytes`, counted against the shared bound), verified
 * against the attestation, then decrypted when E2EE is on, then released. An answer that does not
 * decrypt with this request's key fails `e2ee.answer` like any failed check (issue 21 item 4: a
 * swapped client key must not count as verified). A failed answer becomes a 502 the openai SDK does
 * not retry, or with onFailure 'warn' is released marked failed.
 */
export const relayJson = async (ctx: RelayContext, x: SignedExchange): Promise<Answer> => {
  const { upstream, responseHeaders, e2ee } = x;
  const answer = await readAnswer(upstream, ctx.maxAnswerBytes, 'answer', x.guard);
  // Parsed once: for the usage the link accounts and for the claims the verdict checks.
  const parsed = jsonOf(answer);
  let verdict = await verifyAnswer({
    link: ctx.link,
    attestation: x.attestation,
    stream: false,
    request: x.request,
    response: answer,
    headers: upstream.headers,
    upstream,
    fetch: ctx.providerFetch,
    parsed,
    usage: (parsed as { usage?: unknown } | undefined)?.usage,
    model: x.model,
    sentAt: x.sentAt,
    now: ctx.now,
    accepted: ctx.state.accepted,
    signatureTimeoutMs: ctx.signatureTimeoutMs,
  });
  let released = answer;
  if (verdict.ok && e2ee !== undefined) {
    const opened = await e2ee.restoreBody(answer).catch(() => undefined);
    if (opened === undefined) verdict = undecryptable();
    else released = opened;
  }
  if (!verdict.ok) {
    const error = ctx.state.failed(verdict, { path: x.path, stream: false });
    if (ctx.state.onFailure === 'warn' && verdict.failedCheck !== 'e2ee.answer') {
      const body = e2ee === undefined ? answer : await e2ee.restoreBody(answer).catch(() => answer);
      return {
        status: upstream.status,
        headers: { ...responseHeaders, [VERIFICATION_HEADER]: `failed: ${verdict.failedCheck}` },
        body,
      };
    }
    return errorAnswer(error, `failed: ${verdict.failedCheck}`, { [NOT_RETRYABLE]: 'false' });
  }
  await ctx.state.verified(verdict, x.attestation, { path: x.path, model: x.model, stream: false });
  return {
    status: upstream.status,
    headers: {
      ...responseHeaders,
      'content-length': String(released.length),
      [VERIFICATION_HEADER]: 'verified',
    },
    body: released,
  };
};

const undecryptable = (): AnswerVerdict =>
  failedVerdict(
    'e2ee.answer',
    "the answer decrypts with this request's key",
    "the answer does not decrypt with this request's E2EE key",
  );
