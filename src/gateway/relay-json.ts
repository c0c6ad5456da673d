import { jsonOf } from '../bytes/index.js';
import type { RelayContext, SignedExchange } from './relay-context.js';
import { sendError, VERIFICATION_HEADER } from './send-error.js';
import { verifyAnswer } from './verify-answer.js';
import { readAnswer } from './wire.js';

/**
 * A JSON answer: read whole (at most `maxAnswerBytes`), verified against the attestation, then
 * released (decrypted first when E2EE is on). A failed answer becomes a 502, or with onFailure
 * 'warn' is released marked failed.
 */
export const relayJson = async (ctx: RelayContext, x: SignedExchange): Promise<void> => {
  const { res, upstream, responseHeaders, e2ee } = x;
  const answer = await readAnswer(upstream, ctx.maxAnswerBytes, 'answer');
  const verdict = await verifyAnswer({
    link: ctx.link,
    attestation: x.attestation,
    stream: false,
    request: x.request,
    response: answer,
    headers: upstream.headers,
    fetch: ctx.providerFetch,
    usage: (jsonOf(answer) as { usage?: unknown } | undefined)?.usage,
  });
  if (!verdict.ok) {
    const error = ctx.state.failed(verdict, { path: x.path, stream: false });
    if (ctx.state.onFailure === 'warn') {
      res.writeHead(upstream.status, {
        ...responseHeaders,
        [VERIFICATION_HEADER]: `failed: ${verdict.failedCheck}`,
      });
      res.end(e2ee === undefined ? answer : await e2ee.restoreBody(answer));
      return;
    }
    sendError(res, error, `failed: ${verdict.failedCheck}`);
    return;
  }
  await ctx.state.verified(verdict, x.attestation, { path: x.path, model: x.model, stream: false });
  const released = e2ee === undefined ? answer : await e2ee.restoreBody(answer);
  res.writeHead(upstream.status, {
    ...responseHeaders,
    'content-length': String(released.length),
    [VERIFICATION_HEADER]: 'verified',
  });
  res.end(released);
};
