import { Readable } from 'node:stream';

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
  /** Called with each chunk's length before it is kept; may throw to refuse it (the read stops). */
  each?: (length: number) => void;
  /** The longest gap between two chunks (and before the first), and the error when it passes (the read stops). */
  idle?: { ms: number; error: () => Error };
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
  const declared = Number(options.declared ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    // Refused before a byte is read: the body is stopped on the source itself.
    if (options.rest !== 'leave') discardBody(source);
    throw tooLarge();
  }
  if (source === null) return Buffer.alloc(0);
  if (source instanceof Readable) return readNodeStream(source, options);
  const iterator = chunkReader(source, options.idle);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await iterator.next();
      if (done) break;
      total += value.length;
      if (total > limit) throw tooLarge();
      options.each?.(value.length);
      chunks.push(value);
    }
  } catch (error) {
    // Whatever stopped the read (the limit, `each`, a stall, the source's own error) stops the
    // source too, unless its owner keeps the rest.
    if (options.rest !== 'leave') iterator.stop();
    throw error;
  }
  return Buffer.concat(chunks, total);
};

/** A source read chunk by chunk, and how to stop it. */
export interface ChunkReader {
  /** The next chunk, or `idle.error()` when none comes within `idle.ms`. */
  next(): Promise<IteratorResult<Uint8Array>>;
  /** Stops the source (not awaited: cancelling a fetch body can stall, nothing depends on it). */
  stop(): void;
}

/**
 * Reads any byte source chunk by chunk, each chunk due within `idle.ms` of the last. A web stream is
 * read through its own reader, whose `cancel()` stops it even while a read is pending (a stalled
 * provider); an async iterator's `return()` waits for that read first (WHATWG Streams, the async
 * iterator's return steps), so it would never cancel a stream that stalled.
 */
export const chunkReader = (
  source: AsyncIterable<Uint8Array>,
  idle?: ReadCappedOptions['idle'],
): ChunkReader => {
  let read: () => Promise<IteratorResult<Uint8Array>>;
  let stop: () => void;
  if (source instanceof ReadableStream) {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    read = () => reader.read() as Promise<IteratorResult<Uint8Array>>;
    stop = () => void reader.cancel().catch(() => undefined);
  } else {
    const iterator = source[Symbol.asyncIterator]();
    read = () => iterator.next();
    stop = () => void Promise.resolve(iterator.return?.()).catch(() => undefined);
  }
  return { next: idle === undefined ? read : () => within(read(), idle), stop };
};

/** `next`, or `idle.error()` when it has not settled within `idle.ms`. */
const within = <T>(next: Promise<T>, idle: { ms: number; error: () => Error }): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(idle.error()), idle.ms);
  });
  return Promise.race([next, stalled]).finally(() => clearTimeout(timer));
};

/**
 * Stops a body nobody will read: a Node stream is destroyed (a pooled connection holding an unread
 * answer is closed, not left taken), a web stream cancelled. An iterator that was never started
 * cannot do it: `return()` on an unstarted async generator runs none of its code.
 */
export const discardBody = (source: AsyncIterable<Uint8Array> | null): void => {
  if (source instanceof Readable) source.destroy();
  else if (source instanceof ReadableStream) void source.cancel().catch(() => undefined);
  else if (source !== null)
    void Promise.resolve(source[Symbol.asyncIterator]().return?.()).catch(() => undefined);
};

/**
 * The same for a Node stream (an IncomingMessage), read through its events rather than an async
 * iterator: no promise per chunk, one idle timer refreshed per chunk (a request or an answer per
 * call on the gateway's and the sidecar's hot paths). Same rules: past the limit the rest is left
 * paused or the stream destroyed; a stream that closes before its end is an error.
 */
const readNodeStream = (source: Readable, options: ReadCappedOptions): Promise<Buffer> =>
  new Promise<Buffer>((resolve, reject) => {
    if (source.destroyed) {
      reject(source.errored ?? new Error('the stream closed before its end'));
      return;
    }
    const { limit } = options;
    const chunks: Buffer[] = [];
    let total = 0;
    const timer =
      options.idle === undefined ? undefined : setTimeout(() => stop(options.idle?.error()), options.idle.ms);
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
    };
    /** Refuses the rest: left paused for its owner, or destroyed. */
    const stop = (error: unknown): void => {
      cleanup();
      if (options.rest === 'leave') source.pause();
      else source.destroy();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        stop(options.tooLarge());
        return;
      }
      try {
        options.each?.(chunk.length);
      } catch (error) {
        stop(error);
        return;
      }
      chunks.push(chunk);
      timer?.refresh();
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('the stream closed before its end'));
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onClose);
  });
