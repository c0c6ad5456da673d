import { readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';

/**
 * Reads a whole provider answer as exact bytes, refusing more than `max` (a provider cannot make
 * the gateway buffer without bound; bytes/readCapped). Signatures are over bytes, so nothing here
 * decodes a body.
 */
export const readAnswer = async (response: Response, max: number, what: string): Promise<Uint8Array> =>
  readCapped(response.body as AsyncIterable<Uint8Array> | null, {
    limit: max,
    declared: response.headers.get('content-length'),
    tooLarge: () =>
      new SidecarError(`${what} exceeds ${max} bytes`, { status: 502, code: 'upstream_too_large' }),
  });

export const concatBytes = (chunks: readonly Uint8Array[], total?: number): Uint8Array => {
  const out = new Uint8Array(total ?? chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};
