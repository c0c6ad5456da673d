import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rawRequest, sidecarOverUpstream } from './harness.js';

/**
 * A client that sends its request and then never reads (its connection stays open): the answer's
 * writes back up, and without a bound the request, and its one slot at the model server, would be
 * held for as long as the client liked. CLIENT_STALL_TIMEOUT_MS closes such a connection and frees
 * the slot; nothing is signed for it.
 */
let upstreamClosed = 0;
/** Larger than loopback's socket buffers on both ends can hold (Linux grows a receiver's to 32 MiB), so the writes really back up. */
const BIG = 96 * 1024 * 1024;
const stack = sidecarOverUpstream(
  (_req, body, res) => {
    const p = JSON.parse(body.toString()) as { tag: string; stream?: boolean };
    res.on('close', () => {
      upstreamClosed++;
    });
    if (p.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const line = `data: {"id":"chatcmpl-${p.tag}","object":"chat.completion.chunk","choices":[{"delta":{"content":"${'x'.repeat(60_000)}"}}]}\n\n`;
      let n = 0;
      const pump = (): void => {
        while (n < 600) {
          n++;
          if (!res.write(line)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end('data: [DONE]\n\n');
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    const pad = p.tag.startsWith('stall') ? 'y'.repeat(BIG) : '';
    res.end(`{"id":"chatcmpl-${p.tag}","object":"chat.completion","pad":"${pad}"}`);
  },
  {
    CLIENT_STALL_TIMEOUT_MS: '300',
    MAX_UPSTREAM_BODY_BYTES: String(128 * 1024 * 1024),
    MAX_CONCURRENT_REQUESTS: '1',
  },
);

/** Sends one request and never reads its answer; the connection stays open until destroyed. */
const nonReader = (body: string): Socket => {
  const { port } = new URL(stack.sidecar.url);
  const s = connect(Number(port), '127.0.0.1', () => {
    s.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    s.pause();
  });
  s.on('error', () => undefined);
  return s;
};

/** The access lines of requests whose client left before the end (status 499, nothing signed). */
const gone = (): number =>
  stack.sidecar.logs
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l['msg'] === 'proxied' && l['status'] === 499 && l['signed'] === false).length;

describe('a client that stops reading', () => {
  it('JSON: its connection is closed and its model server slot freed; nothing is signed', async () => {
    const goneBefore = gone();
    const a = nonReader(JSON.stringify({ model: 'm', tag: 'stall-json' }));
    try {
      // Reading and hashing the 96 MiB answer takes a while; then the writes back up and, after
      // two checks 300 ms apart with nothing sent, the connection closes.
      for (let waited = 0; gone() === goneBefore && waited < 10_000; waited += 100)
        await new Promise((r) => setTimeout(r, 100));
      const next = await rawRequest(`${stack.sidecar.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', tag: 'after-json' }),
      });
      expect(next.status).toBe(200);
      expect(gone()).toBe(goneBefore + 1);
      expect((await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-stall-json`)).status).toBe(404);
    } finally {
      a.destroy();
    }
  }, 20_000);

  it('stream: the same, and its call to the model server is closed too', async () => {
    const closedBefore = upstreamClosed;
    const a = nonReader(JSON.stringify({ model: 'm', tag: 'stall-sse', stream: true }));
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const metrics = (await rawRequest(`${stack.sidecar.url}/metrics`)).body.toString();
      expect(Number(/teeml_proxy_in_flight (\d+)/.exec(metrics)?.[1])).toBe(0);
      expect(upstreamClosed).toBeGreaterThan(closedBefore);
      expect((await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-stall-sse`)).status).toBe(404);
    } finally {
      a.destroy();
    }
  }, 15_000);
});
