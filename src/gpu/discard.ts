/**
 * Reads a fetch Response body up to `maxBytes`, cancelling the stream past it (content-length can
 * be absent or wrong). `tooLarge` builds the error to throw.
 */
export const readCapped = async (
  response: Response,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Uint8Array> => {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    discard(response);
    throw tooLarge();
  }
  const reader = response.body?.getReader();
  if (reader === undefined) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      void reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return new Uint8Array(Buffer.concat(chunks));
};

/**
 * Drops an unread body without waiting: awaiting cancel() can stall on some fetch implementations
 * (msw's interceptor), and nothing depends on its completion.
 */
export const discard = (response: Response): void => {
  void response.body?.cancel().catch(() => undefined);
};
