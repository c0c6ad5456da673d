/**
 * HTTP through the injected `fetch`, keeping the exact bytes: signatures are over the bytes a
 * client sent and received (CONTRACT.md), so nothing here decodes and re-encodes a body.
 */
export interface WireResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** The largest body read (an 8-GPU report is ~300 KB). */
export const MAX_WIRE_BYTES = 32 * 1024 * 1024;

export const fetchWire = async (
  fetchFn: typeof globalThis.fetch,
  url: string,
  init: RequestInit = {},
): Promise<WireResponse> => {
  const response = await fetchFn(url, init);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_WIRE_BYTES) {
    await response.body?.cancel();
    throw new Error(`answer from ${new URL(url).pathname} exceeds ${MAX_WIRE_BYTES} bytes`);
  }
  const body = new Uint8Array(await response.arrayBuffer());
  if (body.length > MAX_WIRE_BYTES)
    throw new Error(`answer from ${new URL(url).pathname} exceeds ${MAX_WIRE_BYTES} bytes`);
  return { status: response.status, headers: response.headers, body };
};

/** JSON of a body, or undefined when it is not JSON. */
export const jsonOf = (body: Uint8Array): unknown => {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
};
