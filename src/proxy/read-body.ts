import type { IncomingMessage } from 'node:http';
import { readCapped } from '../bytes/index.js';
import { SidecarError } from '../errors/index.js';

export const tooLarge = (limit: number): SidecarError =>
  new SidecarError(`request body exceeds the limit of ${limit} bytes`, {
    status: 413,
    code: 'request_too_large',
  });

/**
 * Reads a request body as the exact bytes received, up to `limit` (bytes/readCapped). A declared
 * Content-Length over the limit is refused before reading a byte; the unread rest is left for the
 * server, which still answers 413 on that connection. A client that goes away mid-body is
 * `client_closed`; any other read failure `body_read_failed`.
 */
export const readBody = async (incoming: IncomingMessage, limit: number): Promise<Buffer> => {
  let body: Buffer;
  try {
    body = await readCapped(incoming, {
      limit,
      declared: incoming.headers['content-length'],
      tooLarge: () => tooLarge(limit),
      rest: 'leave',
    });
  } catch (err) {
    if (err instanceof SidecarError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || !incoming.complete) {
      throw new SidecarError('client closed the connection', {
        status: 400,
        code: 'client_closed',
        cause: err,
      });
    }
    throw new SidecarError('request body could not be read', {
      status: 400,
      code: 'body_read_failed',
      cause: err,
    });
  }
  // A body that ended without all its bytes is never proxied (nor signed).
  if (!incoming.complete)
    throw new SidecarError('client closed the connection', { status: 400, code: 'client_closed' });
  return body;
};
