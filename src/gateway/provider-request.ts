import type { IncomingHttpHeaders } from 'node:http';
import { forwardRequestHeaders } from '../proxy/index.js';
import type { E2eeSession } from './e2ee.js';
import type { ProviderLink } from './provider-link.js';

/**
 * The request the provider gets for the user's: the user's headers through the sidecar's own
 * forwarding filter (proxy/upstream.ts: hop-by-hop fields and those named in `Connection`, the
 * user's bearer token for the gateway, cookies, `origin`, `referer`, `sec-fetch-*`, `x-admin-token`,
 * `x-request-hash`, `x-request-id`, `x-teeml-*`; issue 21, item 12), the body
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
  for (const [name, value] of Object.entries(forwardRequestHeaders(input.userHeaders)))
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
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
