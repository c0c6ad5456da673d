import { SidecarError } from '../errors/index.js';

/**
 * Reads a whole response body as exact bytes, refusing more than `max` (a provider cannot make the
 * gateway buffer without bound). Signatures are over bytes, so nothing here decodes a body.
 */
export const readCapped = async (response: Response, max: number, what: string): Promise<Uint8Array> => {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > max) {
    await response.body?.cancel();
    throw new SidecarError(`${what} exceeds ${max} bytes`, { status: 502, code: 'upstream_too_large' });
  }
  if (response.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > max) {
      throw new SidecarError(`${what} exceeds ${max} bytes`, { status: 502, code: 'upstream_too_large' });
    }
    chunks.push(chunk);
  }
  return concatBytes(chunks, total);
};

export const concatBytes = (chunks: readonly Uint8Array[], total?: number): Uint8Array => {
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};

/** JSON of a body, or undefined when it is not UTF-8 JSON. */
export const jsonOf = (body: Uint8Array): unknown => {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
};
