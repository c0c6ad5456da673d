import { chunkReader, readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';

/** How one answer's body is read: its bytes counted against the shared bound, and a deadline between chunks. */
export interface BodyGuard {
  /** Takes from the gateway's held-bytes budget (held-bytes.ts); throws 429 `gateway_busy` past it. */
  take(n: number): void;
  /** The longest gap between two chunks before the answer counts as stalled (issue 21 item 11). */
  idleMs: number;
}

/** 504 in the OpenAI shape: the provider stopped sending (a deadline of the gateway, not a verdict). */
export const providerTimeout = (what: string, ms: number): SidecarError =>
  new SidecarError(`the provider sent nothing for ${ms / 1000} s (${what})`, {
    status: 504,
    code: 'upstream_timeout',
  });

/**
 * A provider body read under a guard: each chunk counted before it is kept, and a chunk due within
 * `idleMs` of the last one. A provider that trickles or stalls cannot hold a user's call (and its
 * bytes) forever; the body is cancelled when the guard gives up.
 */
export async function* guardedBody(
  body: AsyncIterable<Uint8Array> | null,
  guard: BodyGuard,
  what: string,
): AsyncGenerator<Uint8Array> {
  if (body === null) return;
  // bytes/chunkReader: a stalled web stream is cancelled too (its reader's cancel, not return()).
  const chunks = chunkReader(body, { ms: guard.idleMs, error: () => providerTimeout(what, guard.idleMs) });
  try {
    for (;;) {
      const next = await chunks.next();
      if (next.done === true) return;
      guard.take(next.value.length);
      yield next.value;
    }
  } finally {
    chunks.stop();
  }
}

/**
 * Reads a whole provider answer as exact bytes, refusing more than `max` (a provider cannot make
 * the gateway buffer without bound; bytes/readCapped). Signatures are over bytes, so nothing here
 * decodes a body. With a guard, the bytes count against the shared bound and stalls time out.
 */
export const readAnswer = async (
  response: { body: unknown; headers: { get(name: string): string | null } },
  max: number,
  what: string,
  guard?: BodyGuard,
): Promise<Uint8Array> => {
  const body = response.body as AsyncIterable<Uint8Array> | null;
  try {
    // A body refused on its declared length is stopped unread (its pooled connection closed).
    return await readCapped(body, {
      limit: max,
      declared: response.headers.get('content-length'),
      tooLarge: () =>
        new SidecarError(`${what} exceeds ${max} bytes`, { status: 502, code: 'upstream_too_large' }),
      ...(guard === undefined
        ? {}
        : { each: guard.take, idle: { ms: guard.idleMs, error: () => providerTimeout(what, guard.idleMs) } }),
    });
  } catch (error) {
    if (error instanceof SidecarError) throw error;
    // The connection broke before the answer's end: the provider's failure, not the gateway's.
    throw new SidecarError(`the provider's ${what} broke off before its end`, {
      status: 502,
      code: 'upstream_incomplete',
      type: 'upstream_error',
    });
  }
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
