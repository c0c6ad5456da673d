import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readCapped } from '../../src/bytes/index.js';

const tooLarge = () => new Error('too large');
const bytes = (...chunks: string[]) => chunks.map((c) => new TextEncoder().encode(c));

/** A web stream that records whether it was read and whether it was cancelled. */
const webStream = (chunks: Uint8Array[]) => {
  const seen = { pulls: 0, cancelled: false };
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      seen.pulls++;
      const next = chunks[i++];
      if (next === undefined) controller.close();
      else controller.enqueue(next);
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { stream, seen };
};

const busy = new Error('busy');
/** A read whose per-chunk hook refuses the first chunk. */
const refusedByEach = (source: AsyncIterable<Uint8Array>) =>
  readCapped(source, {
    limit: 10,
    tooLarge,
    each: () => {
      throw busy;
    },
  });

describe('readCapped', () => {
  it('returns the exact bytes of a Node stream and of a web stream, up to and at the limit', async () => {
    const node = await readCapped(Readable.from(bytes('ab', 'cd', 'e')), { limit: 5, tooLarge });
    expect(node.toString()).toBe('abcde');
    const { stream } = webStream(bytes('é', '✓'));
    const web = await readCapped(stream, { limit: 5, tooLarge });
    expect(web).toEqual(Buffer.from('é✓'));
    expect(await readCapped(null, { limit: 0, tooLarge })).toEqual(Buffer.alloc(0));
  });

  it('refuses a declared length over the limit before reading a byte, and cancels the source', async () => {
    const { stream, seen } = webStream(bytes('x'));
    await expect(readCapped(stream, { limit: 4, declared: '5', tooLarge })).rejects.toThrow('too large');
    expect(seen.pulls).toBeLessThanOrEqual(1); // the stream's own start-up pull, no read of ours
    await Promise.resolve();
    expect(seen.cancelled).toBe(true);
    // A declared length within the limit, or none, is only a claim: the bytes decide.
    expect((await readCapped(Readable.from(bytes('abc')), { limit: 4, declared: 4, tooLarge })).length).toBe(
      3,
    );
    expect(
      (await readCapped(Readable.from(bytes('abc')), { limit: 4, declared: null, tooLarge })).length,
    ).toBe(3);
  });

  it('refuses a body that grows past the limit at the chunk that crosses it, and stops the source', async () => {
    const node = new PassThrough();
    node.write('abc');
    node.write('def');
    await expect(readCapped(node, { limit: 5, tooLarge })).rejects.toThrow('too large');
    await new Promise((resolve) => setImmediate(resolve));
    expect(node.destroyed).toBe(true);

    const { stream, seen } = webStream(bytes('abc', 'def', 'ghi'));
    await expect(readCapped(stream, { limit: 5, declared: '3', tooLarge })).rejects.toThrow('too large');
    await Promise.resolve();
    expect(seen.cancelled).toBe(true);
    expect(seen.pulls).toBeLessThan(4);
  });

  it("with rest: 'leave', leaves a Node stream open and unread for its owner", async () => {
    const node = new PassThrough();
    node.write('abcdef');
    await expect(readCapped(node, { limit: 5, rest: 'leave', tooLarge })).rejects.toThrow('too large');
    await expect(
      readCapped(new PassThrough(), { limit: 5, declared: 6, rest: 'leave', tooLarge }),
    ).rejects.toThrow('too large');
    await new Promise((resolve) => setImmediate(resolve));
    expect(node.destroyed).toBe(false);
    node.destroy();
  });

  it("passes the source's own error on unchanged", async () => {
    const node = new PassThrough();
    node.write('ab');
    const cut = Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
    setImmediate(() => node.destroy(cut));
    await expect(readCapped(node, { limit: 100, tooLarge })).rejects.toBe(cut);
  });

  it("with rest: 'leave', a server can still answer 413 on the connection of a request body it refused", async () => {
    const server = createServer((req, res) => {
      readCapped(req, { limit: 1024, declared: req.headers['content-length'], rest: 'leave', tooLarge }).then(
        () => res.end('read'),
        () => res.writeHead(413, { connection: 'close' }).end('too large'),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const send = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ port, host: '127.0.0.1', method: 'POST', headers }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        // Chunked, so only the bytes reveal the size; then the declared-length case.
        req.write(Buffer.alloc(800));
        req.end(Buffer.alloc(800));
      });
    try {
      expect(await send({})).toEqual({ status: 413, body: 'too large' });
      expect(await send({ 'content-length': '1600' })).toEqual({ status: 413, body: 'too large' });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('hands each chunk length to `each` before keeping it, Node and web streams alike; a throw stops the read', async () => {
    for (const source of [
      () => Readable.from(bytes('ab', 'cd')),
      () => webStream(bytes('ab', 'cd')).stream,
    ]) {
      const seen: number[] = [];
      const body = await readCapped(source(), { limit: 10, tooLarge, each: (n) => seen.push(n) });
      expect(Buffer.from(body).toString()).toBe('abcd');
      expect(seen).toEqual([2, 2]);
    }
    const node = new PassThrough();
    node.write('abc');
    await expect(refusedByEach(node)).rejects.toBe(busy);
    await new Promise((resolve) => setImmediate(resolve));
    expect(node.destroyed).toBe(true);
  });

  it('gives up on a Node stream that sends nothing for `idle.ms`, and the timer restarts with each chunk', async () => {
    const node = new PassThrough();
    const stalled = new Error('stalled');
    const started = Date.now();
    const reading = readCapped(node, { limit: 100, tooLarge, idle: { ms: 60, error: () => stalled } });
    // Chunks every 30 ms for 120 ms: each restarts the 60 ms timer, so the read outlives it.
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      node.write('x');
    }
    await expect(reading).rejects.toBe(stalled);
    expect(Date.now() - started).toBeGreaterThanOrEqual(120);
    expect(node.destroyed).toBe(true);
  });

  it('refuses a Node stream that closes before its end, or was destroyed before the read', async () => {
    const node = new PassThrough();
    node.write('ab');
    setImmediate(() => node.destroy());
    await expect(readCapped(node, { limit: 100, tooLarge })).rejects.toThrow('closed before its end');
    const gone = new PassThrough();
    gone.destroy();
    await expect(readCapped(gone, { limit: 100, tooLarge })).rejects.toThrow('closed before its end');
  });

  it('a web stream too: a stall gives `idle.error()` and a refusal by `each` stops it, both cancelling the source', async () => {
    let cancelled = 0;
    const stalls = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(new TextEncoder().encode('a')),
      cancel: () => {
        cancelled += 1;
      },
    });
    const stalled = new Error('stalled');
    await expect(
      readCapped(stalls, { limit: 10, tooLarge, idle: { ms: 50, error: () => stalled } }),
    ).rejects.toBe(stalled);
    const { stream, seen } = webStream(bytes('ab', 'cd'));
    await expect(refusedByEach(stream)).rejects.toBe(busy);
    await new Promise((resolve) => setImmediate(resolve));
    expect({ stalledCancelled: cancelled, refusedCancelled: seen.cancelled }).toEqual({
      stalledCancelled: 1,
      refusedCancelled: true,
    });
  });
});
