import type { IncomingMessage } from 'node:http';
import { SidecarError } from '../errors/index.js';

export const tooLarge = (limit: number): SidecarError =>
  new SidecarError(`request body exceeds the limit of ${limit} bytes`, {
    status: 413,
    code: 'request_too_large',
  });

/**
 * Reads a request body as the exact bytes received, up to `limit`. A declared Content-Length over
 * the limit is refused before reading a byte.
 */
export const readBody = (incoming: IncomingMessage, limit: number): Promise<Buffer> => {
  const declared = incoming.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        incoming.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(
        new SidecarError('request body could not be read', {
          status: 400,
          code: 'body_read_failed',
          cause: err,
        }),
      );
    };
    const onClose = (): void => {
      if (incoming.complete) return;
      cleanup();
      reject(new SidecarError('client closed the connection', { status: 400, code: 'client_closed' }));
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
};
