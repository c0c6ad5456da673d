import type { IncomingHttpHeaders } from 'node:http';
import { readCapped } from '../bytes/index.js';
import { trailersOf } from './trailer-fetch.js';

/**
 * HTTP through the injected `fetch`, keeping the exact bytes: signatures are over the bytes a
 * client sent and received (docs/protocol.md), so nothing here decodes and re-encodes a body.
 */
export interface WireResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** What came after the last body byte, when the fetch keeps trailers (trailer-fetch.ts). */
  trailers?: IncomingHttpHeaders;
}

/** The largest body read (an 8-GPU report is ~300 KB). */
export const MAX_WIRE_BYTES = 32 * 1024 * 1024;

export const fetchWire = async (
  fetchFn: typeof globalThis.fetch,
  url: string,
  init: RequestInit = {},
): Promise<WireResponse> => {
  const response = await fetchFn(url, init);
  const body = await readCapped(response.body, {
    limit: MAX_WIRE_BYTES,
    declared: response.headers.get('content-length'),
    tooLarge: () => new Error(`answer from ${new URL(url).pathname} exceeds ${MAX_WIRE_BYTES} bytes`),
  });
  const trailers = trailersOf(response);
  return {
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(body.buffer, body.byteOffset, body.length),
    ...(trailers === undefined ? {} : { trailers }),
  };
};
