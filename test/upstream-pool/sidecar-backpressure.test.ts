/**
 * backpressure from a client that stops reading reaches the model server
 * (UpstreamResponse pauses undici's connection when its buffer is full). Without it the sidecar would
 * buffer everything the model server sends for a client that reads nothing.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type RawServer, sleep, startRawServer } from './raw-server.js';

let up: RawServer;
let sidecar: TestSidecar;
let upstreamSocket: Socket | undefined;
let stop = false;

beforeAll(async () => {
  up = await startRawServer((_req, s) => {
    upstreamSocket = s;
    s.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n');
    const event = `data: {"id":"chatcmpl-bp","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${'x'.repeat(60_000)}"}}]}\n\n`;
    const chunk = `${Buffer.byteLength(event).toString(16)}\r\n${event}\r\n`;
    const pump = (): void => {
      while (!stop && !s.destroyed) {
        if (!s.write(chunk)) {
          s.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: up.url, CLIENT_STALL_TIMEOUT_MS: '20000' });
});

afterAll(async () => {
  stop = true;
  await sidecar?.close();
  await up?.close();
});

describe('a client that reads nothing', () => {
  it('the model server cannot push more than a few buffers into the sidecar', async () => {
    let clientSocket: Socket | undefined;
    await new Promise<void>((resolve) => {
      const req = request(
        `${sidecar.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          clientSocket = res.socket;
          res.pause();
          resolve();
        },
      );
      req.end(JSON.stringify({ model: 'm', messages: [], stream: true }));
    });
    await sleep(1500);
    const s = upstreamSocket as Socket;
    const accepted = s.bytesWritten - s.writableLength;
    const heapMb = process.memoryUsage().rss / 1e6;
    process.stdout.write(`ACCEPTED ${accepted} RSS ${heapMb}\n`);
    stop = true;
    clientSocket?.destroy();
    // Kernel buffers on loopback (both hops) hold some MB; far less than 1.5 s of loopback writes.
    expect(accepted).toBeLessThan(48 * 1024 * 1024);
    expect(heapMb).toBeLessThan(2000);
  });
});
