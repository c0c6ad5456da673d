import { createHash } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, startTestSidecar, type TestSidecar } from './harness.js';

/** A raw-socket upstream that sends its own trailers / cut streams; the client asks for a trailer. */
let raw: Server;
let sidecar: TestSidecar;
const FORGED = 'eyJ0ZXh0IjoiZm9yZ2VkIn0';
beforeAll(async () => {
  raw = createServer((sock) => {
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const tag = /"tag":"([^"]+)"/.exec(buf)?.[1] ?? '';
      buf = '';
      const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
      if (tag.startsWith('json')) {
        const b = `{"id":"chatcmpl-${tag}","object":"chat.completion","choices":[]}`;
        sock.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\ntrailer: x-teeml-signature\r\n\r\n` +
            `${chunk(b)}0\r\nx-teeml-signature: ${FORGED}\r\n\r\n`,
        );
      } else if (tag.startsWith('err')) {
        sock.write(
          `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nx-teeml-signature: ${FORGED}\r\n\r\n` +
            `${chunk('{"error":{"message":"x"}}')}0\r\nx-teeml-signature: ${FORGED}\r\n\r\n`,
        );
      } else {
        // A stream with no [DONE], ended cleanly by the upstream.
        sock.write(
          `HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n` +
            `${chunk(`data: {"id":"chatcmpl-${tag}","object":"chat.completion.chunk","choices":[]}\n\n`)}0\r\n\r\n`,
        );
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
  const port = (raw.address() as { port: number }).port;
  sidecar = await startTestSidecar({ UPSTREAM_URL: `http://127.0.0.1:${port}` });
});
afterAll(async () => {
  await sidecar.close();
  raw.close();
});

const exchange = (tag: string): Promise<string> =>
  new Promise((resolve) => {
    const { port } = new URL(sidecar.url);
    const body = JSON.stringify({ model: 'm', messages: [], tag });
    const chunks: Buffer[] = [];
    const s = connect(Number(port), '127.0.0.1', () =>
      s.write(
        `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n` +
          `x-teeml-signature-trailer: ecdsa\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      ),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', () => undefined);
  });

describe('hostile upstream vs the signature trailer', () => {
  it('an upstream trailer named x-teeml-signature never reaches the client; ours covers the bytes sent', async () => {
    const got = await exchange('json-1');
    expect(got).not.toContain(FORGED);
    const trailer = /\r\nx-teeml-signature: (\S+)\r\n/i.exec(got)?.[1];
    const text = JSON.parse(Buffer.from(trailer ?? '', 'base64url').toString()).text as string;
    const b = '{"id":"chatcmpl-json-1","object":"chat.completion","choices":[]}';
    expect(text.split(':')[1]).toBe(createHash('sha256').update(b).digest('hex'));
    const look = await rawRequest(`${sidecar.url}/v1/signature/chatcmpl-json-1`);
    expect(JSON.parse(look.body.toString()).text).toBe(text);
  });

  it('an upstream error with its own x-teeml-signature header/trailer passes through without it', async () => {
    const got = await exchange('err-1');
    expect(got).toContain(' 400 ');
    expect(got).not.toContain(FORGED);
  });

  it('a stream the upstream ends without [DONE] gets no trailer and no record', async () => {
    const got = await exchange('stream-1');
    expect(got).toContain('chatcmpl-stream-1');
    expect(got).not.toMatch(/x-teeml-signature: /i);
    expect((await rawRequest(`${sidecar.url}/v1/signature/chatcmpl-stream-1`)).status).toBe(404);
  });
});
