import type { ServerResponse } from 'node:http';
import type { SidecarError } from '../errors/index.js';

/** The header (and, for streams, the trailer) that tells the user's tools what the gateway checked. */
export const VERIFICATION_HEADER = 'x-teeml-verification';

/**
 * The header the openai SDKs obey before their own retry rules: `false` on an answer that failed
 * verification, whose retry would only hand a man in the middle another answer (issue 21 item 4).
 */
export const NOT_RETRYABLE = 'x-should-retry';

/** A SidecarError in the OpenAI error shape, as JSON text (also the data of a stream's error event). */
export const errorBody = (error: SidecarError): string => JSON.stringify(error.toBody());

/**
 * An error in the OpenAI shape with the verification header, as the engine's answer (the openai SDK
 * raises APIError on it); `headers` adds more (e.g. NOT_RETRYABLE).
 */
export const errorResponse = (
  error: SidecarError,
  verification: string,
  headers: Record<string, string> = {},
): Response =>
  new Response(errorBody(error), {
    status: error.status,
    headers: { ...headers, 'content-type': 'application/json', [VERIFICATION_HEADER]: verification },
  });

/**
 * Answers the user with an error in the OpenAI shape and the verification header. Once the headers
 * went out (a stream already relaying) there is nothing left to say in the OpenAI shape: end it.
 */
export const sendError = (res: ServerResponse, error: SidecarError, verification: string): void => {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(error.status, {
    'content-type': 'application/json',
    [VERIFICATION_HEADER]: verification,
  });
  res.end(errorBody(error));
};
