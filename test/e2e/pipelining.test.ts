import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rawRequest, sidecarOverUpstream, startTestSidecar, startUpstream } from './harness.js';

/**
 * Two requests pipelined on one connection, the first answer slow and the second fast: Node holds
 * the second response (no socket of its own yet) until the first ends. The second must still end
 * whole, with its trailer when asked, and be stored (proxy.ts `finish` waits for its turn on the
 * connection; it used to give up at once and leave the answer unended).
 */
const stack = sidecarOverUpstream((_req, body, res) => {
  const p = JSON.parse(body.toString()) as { tag: string; delay?: number; stream?: boolean };
  setTimeout(() => {
    if (p.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: {"id":"chatcmpl-${p.tag}","object":"chat.completion.chunk","choices":[]}\n\n`);
      res.end('data: [DONE]\n\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"id":"chatcmpl-${p.tag}","object":"chat.completion","choices":[]}`);
  }, p.delay ?? 0);
});

let hostOf = (port: string) => `127.0.0.1:${port}`;
const req = (port: string, body: string, extra = '') =>
  `POST /v1/chat/completions HTTP/1.1\r\nhost: ${hostOf(port)}\r\ncontent-type: application/json\r\n${extra}` +
  `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** Sends both requests in one write, reads for `ms`, returns what came back. */
const pipelined = (a: string, b: string, ms: number, extra = ''): Promise<string> =>
  new Promise((resolve) => {
    const { port } = new URL(stack.sidecar.url);
    const chunks: Buffer[] = [];
    const s = connect(Number(port), '127.0.0.1', () => s.write(req(port, a, extra) + req(port, b, extra)));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, ms);
  });

describe('pipelined requests', () => {
  it('JSON: the second (fast) answer of two pipelined requests is delivered whole and signed', async () => {
    const got = await pipelined(
      JSON.stringify({ model: 'm', messages: [], tag: 'p-slow-1', delay: 300 }),
      JSON.stringify({ model: 'm', messages: [], tag: 'p-fast-1' }),
      1500,
    );
    expect(got).toContain('chatcmpl-p-slow-1');
    // Second answer's body (and its signature lookup) should be there.
    expect(got).toContain('{"id":"chatcmpl-p-fast-1"');
    expect((await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-p-fast-1`)).status).toBe(200);
  });

  it('JSON + trailer: the second pipelined answer ends with its trailer and is stored', async () => {
    const got = await pipelined(
      JSON.stringify({ model: 'm', messages: [], tag: 'p-slow-2', delay: 300 }),
      JSON.stringify({ model: 'm', messages: [], tag: 'p-fast-2' }),
      1500,
      'x-teeml-signature-trailer: ecdsa\r\n',
    );
    expect(got).toContain('chatcmpl-p-slow-2');
    expect(got).toContain('{"id":"chatcmpl-p-fast-2"');
    expect(got.match(/x-teeml-signature: /gi)?.length).toBe(2);
    expect((await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-p-fast-2`)).status).toBe(200);
  });

  it('stream + trailer: the second pipelined stream is terminated and signed', async () => {
    const got = await pipelined(
      JSON.stringify({ model: 'm', messages: [], tag: 'p-slow-3', delay: 300, stream: true }),
      JSON.stringify({ model: 'm', messages: [], tag: 'p-fast-3', stream: true }),
      1500,
      'x-teeml-signature-trailer: ecdsa\r\n',
    );
    expect(got).toContain('chatcmpl-p-fast-3');
    expect(got.match(/x-teeml-signature: /gi)?.length).toBe(2);
    expect((await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-p-fast-3`)).status).toBe(200);
  });
});

describe('pipelined requests through the router (Host the adapter rewrites)', () => {
  it('router JSON: the second (fast) answer of two pipelined requests is delivered whole', async () => {
    hostOf = (port) => `LOCALHOST:${port}`;
    const got = await pipelined(
      JSON.stringify({ model: 'm', messages: [], tag: 'r-slow-1', delay: 300 }),
      JSON.stringify({ model: 'm', messages: [], tag: 'r-fast-1' }),
      1500,
    );
    hostOf = (port) => `127.0.0.1:${port}`;
    expect(got).toContain('chatcmpl-r-slow-1');
    expect(got).toContain('{"id":"chatcmpl-r-fast-1"');
  });
});

describe('many pipelined requests on one connection', () => {
  it('are all answered with their trailers, in order, and the sidecar warns of no listener leak', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.name);
    };
    process.on('warning', onWarning);
    try {
      const { port } = new URL(stack.sidecar.url);
      const bodies = Array.from({ length: 30 }, (_, i) =>
        JSON.stringify({ model: 'm', messages: [], tag: `many-${i}`, delay: i === 0 ? 200 : 0 }),
      );
      const got = await new Promise<string>((resolve) => {
        const chunks: Buffer[] = [];
        const s = connect(Number(port), '127.0.0.1', () =>
          s.write(bodies.map((b) => req(port, b, 'x-teeml-signature-trailer: ecdsa\r\n')).join('')),
        );
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('error', () => undefined);
        setTimeout(() => {
          s.destroy();
          resolve(Buffer.concat(chunks).toString('latin1'));
        }, 1500);
      });
      const ids = [...got.matchAll(/\{"id":"chatcmpl-(many-\d+)"/g)].map((m) => m[1]);
      expect(ids).toEqual(bodies.map((_, i) => `many-${i}`));
      expect(got.match(/x-teeml-signature: /gi)?.length).toBe(30);
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('a client that leaves while its pipelined request waits its turn', () => {
  it('has the model server call of the waiting request closed too', async () => {
    let heldClosed: () => void = () => undefined;
    const closed = new Promise<boolean>((resolve) => {
      heldClosed = () => resolve(true);
      setTimeout(() => resolve(false), 2500);
    });
    const held = await startUpstream((_req, body, res) => {
      const p = JSON.parse(body.toString()) as { tag: string; hold?: boolean };
      if (p.hold !== true) {
        setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`{"id":"chatcmpl-${p.tag}","object":"chat.completion","choices":[]}`);
        }, 400);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: {"id":"chatcmpl-${p.tag}","object":"chat.completion.chunk","choices":[]}\n\n`);
      const timer = setInterval(() => res.write(': keep-alive\n\n'), 10);
      res.on('close', () => {
        clearInterval(timer);
        heldClosed();
      });
    });
    const s = await startTestSidecar({ UPSTREAM_URL: held.url });
    try {
      const { port } = new URL(s.url);
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(
          req(port, JSON.stringify({ model: 'm', messages: [], tag: 'leave-slow' })) +
            req(
              port,
              JSON.stringify({ model: 'm', messages: [], tag: 'leave-held', stream: true, hold: true }),
            ),
        ),
      );
      socket.on('error', () => undefined);
      await new Promise((r) => setTimeout(r, 150));
      socket.destroy();
      // The held stream's answer waits behind the first; its client is gone, so its call must end
      // now, not when the model server finishes (here: never).
      expect(await closed).toBe(true);
    } finally {
      await s.close();
      await held.close();
    }
  });
});
