import type { IncomingHttpHeaders } from 'node:http';
import type { E2eeSession } from './e2ee.js';
import type { ProviderLink } from './provider-link.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself are not forwarded. */
const DROP_REQUEST_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
  'accept-encoding',
  // The user's key for the gateway is not the provider's: --api-key / --header set that.
  'authorization',
  'cookie',
  'expect',
]);

/**
 * The request the provider gets for the user's: the user's headers less the dropped ones, the body
 * encrypted when an E2EE session is open, then the link's own headers (direct: --header/--api-key;
 * 0G: the SDK's request headers).
 */
export const providerRequest = async (input: {
  userHeaders: IncomingHttpHeaders;
  userBody: Uint8Array | undefined;
  openAiPath: string;
  e2ee: E2eeSession | undefined;
  link: ProviderLink;
}): Promise<{ body: Uint8Array | undefined; headers: Record<string, string> }> => {
  const { userBody, openAiPath, e2ee, link } = input;
  let body = userBody;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.userHeaders)) {
    if (value === undefined || DROP_REQUEST_HEADERS.has(name)) continue;
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (e2ee !== undefined && userBody !== undefined) {
    const prepared = await e2ee.prepareRequest({ openAiPath, body: userBody });
    body = prepared.body;
    Object.assign(headers, prepared.headers);
  }
  Object.assign(headers, await link.requestHeaders({ openAiPath, body }));
  // The signed bytes are the bytes a client's parser sees (docs/protocol.md): no content-encoding.
  headers['accept-encoding'] = 'identity';
  return { body, headers };
};
