import type { ServerResponse } from 'node:http';
import { SidecarError } from '../errors/index.js';
import type { Answer } from './engine-io.js';

/** The header (and, for streams, the trailer) that tells the user's tools what the gateway checked. */
export const VERIFICATION_HEADER = 'x-teeml-verification';

/**
 * The header the openai SDKs obey before their own retry rules: `false` on an answer that failed
 * verification, whose retry would only hand a man in the middle another answer (issue 21 item 4).
 */
export const NOT_RETRYABLE = 'x-should-retry';

/**
 * What the verification header says of an answer that became an error on its way (a thrown error):
 * a body over the gateway's limit (413) or the gateway too busy to hold it (429) were refused before
 * any verdict; a provider that broke off, stalled or sent too much is that answer's failure
 * (`failed: upstream.incomplete|timeout|too-large`, the circuit untouched); anything else is the
 * gateway's own (`failed: gateway.internal`).
 */
export const verificationOfError = (error: unknown): string => {
  if (!(error instanceof SidecarError)) return 'failed: gateway.internal';
  if (error.status === 413 || error.code === 'gateway_busy') return 'unsigned';
  if (error.code.startsWith('upstream_'))
    return `failed: upstream.${error.code.slice(9).replaceAll('_', '-')}`;
  return 'failed: gateway.internal';
};

/** The error the user gets for one a route threw: its own when it is ours, else a plain 500 (never a message of Node's). */
export const answerableError = (error: unknown): SidecarError =>
  error instanceof SidecarError
    ? error
    : new SidecarError('internal gateway error', { status: 500, code: 'internal_error' });

/** A SidecarError in the OpenAI error shape, as JSON text (also the data of a stream's error event). */
export const errorBody = (error: SidecarError): string => JSON.stringify(error.toBody());

/**
 * An error in the OpenAI shape with the verification header, as the engine's answer (the openai SDK
 * raises APIError on it); `headers` adds more (e.g. NOT_RETRYABLE).
 */
export const errorAnswer = (
  error: SidecarError,
  verification: string,
  headers: Record<string, string> = {},
): Answer => ({
  status: error.status,
  headers: { ...headers, 'content-type': 'application/json', [VERIFICATION_HEADER]: verification },
  body: errorBody(error),
});

/** The same as a web Response (the in-process client's own refusals). */
export const errorResponse = (
  error: SidecarError,
  verification: string,
  headers: Record<string, string> = {},
): Response => {
  const answer = errorAnswer(error, verification, headers);
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
};

/**
 * Answers the user with an error in the OpenAI shape and the verification header. Once the headers
 * went out (a stream already relaying) there is nothing left to say in the OpenAI shape: end it.
 */
export const sendError = (res: ServerResponse, error: SidecarError, verification: string): void => {
  if (res.headersSent) {
    res.end();
    return;
  }
  const body = errorBody(error);
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    [VERIFICATION_HEADER]: verification,
  });
  res.end(body);
};
