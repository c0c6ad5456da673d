export interface ReadCappedOptions {
  /** The most bytes accepted. */
  limit: number;
  /** The length the sender declared (a Content-Length header), when it declared one. */
  declared?: number | string | null | undefined;
  /** The error to throw when the body is, or says it is, larger than `limit`. */
  tooLarge: () => Error;
  /**
   * What becomes of the unread rest past the limit. `'cancel'` (the default) stops the source: a
   * fetch body is cancelled, a Node stream destroyed. `'leave'` leaves it unread (it pauses under
   * backpressure) for its owner, e.g. a server that must still answer 413 on that connection.
   */
  rest?: 'cancel' | 'leave';
}

/**
 * Reads a byte stream whole, as the exact bytes received, up to `limit`. A declared length over the
 * limit is refused before a byte is read; a body that grows past it anyway (chunked, or a declared
 * length that lied) is refused at the chunk that crosses it, so memory never holds more than `limit`
 * plus one chunk. Takes anything async-iterable: a Node `IncomingMessage`, a fetch `Response.body`
 * (null, a body-less answer, reads as empty).
 * Errors of the source itself (a connection cut mid-body) are passed on unchanged for the caller to
 * name.
 */
export const readCapped = async (
  source: AsyncIterable<Uint8Array> | null,
  options: ReadCappedOptions,
): Promise<Buffer> => {
  const { limit, tooLarge } = options;
  let iterator: AsyncIterator<Uint8Array> | undefined;
  const refuse = (): Error => {
    if (options.rest !== 'leave' && source !== null) {
      iterator ??= source[Symbol.asyncIterator]();
      // Not awaited: cancelling a fetch body can stall on some implementations, and nothing here
      // depends on its completion.
      void Promise.resolve(iterator.return?.()).catch(() => undefined);
    }
    return tooLarge();
  };
  const declared = Number(options.declared ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) throw refuse();
  if (source === null) return Buffer.alloc(0);
  iterator = source[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await iterator.next();
    if (done) break;
    total += value.length;
    if (total > limit) throw refuse();
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
};
