import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import { hashMessage, recoverAddress } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemorySignatureStore } from '../../src/signatures/index.js';
import { signatureFromTrailer } from '../../src/verifier/index.js';
import { SECRET_MARKERS } from '../secrets.js';
import {
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
} from './harness.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Each request names its own id (`tag`), so ids are never taken and every answer is deterministic. */
const answerOf = (tag: string) =>
  JSON.stringify(
    { id: `chatcmpl-${tag}`, object: 'chat.completion', choices: [{ index: 0, message: { content: 'hi' } }] },
    null,
    1,
  );
const eventsOf = (tag: string) => [
  `data: {"id":"chatcmpl-${tag}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n`,
  'data: [DONE]\n\n',
];

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((_req, body, res) => {
    const parsed = JSON.parse(body.toString()) as { stream?: boolean; tag: string; slow?: boolean };
    if (parsed.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const [first, done] = eventsOf(parsed.tag);
      res.write(first);
      if (parsed.slow === true) {
        const timer = setInterval(() => res.write(': keep-alive\n\n'), 10);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.end(done);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(answerOf(parsed.tag));
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
});

afterAll(async () => {
  await sidecar.close();
  await upstream.close();
});

const bodyOf = (tag: string, stream = false) =>
  JSON.stringify({ model: 'm', messages: [{ role: 'user', content: SECRET_MARKERS.prompt }], tag, stream });

/** The exact bytes of one HTTP exchange over a raw socket (HTTP/1.x, the connection closes after). */
const rawExchange = (head: string, body: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const { port } = new URL(sidecar.url);
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`${head}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
  });

/** The moving parts of a response head: the date and the request id the sidecar makes. */
const normalized = (raw: string) =>
  raw.replace(/^date: .*$/im, 'date: <date>').replace(/^x-request-id: .*$/im, 'x-request-id: <id>');

/** A chunked body's bytes, and what follows its last (empty) chunk: the trailer section. */
const dechunked = (raw: string): { body: string; after: string } => {
  let body = '';
  let rest = raw;
  for (;;) {
    const line = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, line), 16);
    if (line < 0 || Number.isNaN(size)) throw new Error('not a chunked body');
    rest = rest.slice(line + 2);
    if (size === 0) return { body, after: rest };
    body += rest.slice(0, size);
    rest = rest.slice(size + 2);
  }
};

interface Received {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  trailers: Record<string, string | undefined>;
}

const post = (body: string, headers: Record<string, string>, base = sidecar.url): Promise<Received> =>
  new Promise((resolve, reject) => {
    const req = request(
      `${base}/v1/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            trailers: res.trailers,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });

const lookup = (id: string, algo: string) =>
  rawRequest(`${sidecar.url}/v1/signature/${id}?signing_algo=${algo}`);

describe('a client that does not ask for the trailer', () => {
  it('gets exactly the bytes it got before: JSON with Content-Length, SSE without a Trailer field', async () => {
    const head =
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json';
    const json = normalized(await rawExchange(head, bodyOf('plain1')));
    expect(json).toBe(
      [
        'HTTP/1.1 200 OK',
        'x-request-id: <id>',
        'content-type: application/json',
        `content-length: ${answerOf('plain1').length}`,
        'zg-res-key: chatcmpl-plain1',
        'date: <date>',
        'Connection: close',
        '',
        answerOf('plain1'),
      ].join('\r\n'),
    );
    const sse = normalized(await rawExchange(head, bodyOf('plain2', true)));
    const end = sse.indexOf('\r\n\r\n');
    const [sseHead, chunked] = [sse.slice(0, end), sse.slice(end + 4)];
    expect(sseHead).toBe(
      [
        'HTTP/1.1 200 OK',
        'x-request-id: <id>',
        'content-type: text/event-stream',
        'cache-control: no-cache',
        'x-accel-buffering: no',
        'zg-res-key: chatcmpl-plain2',
        'date: <date>',
        'Connection: close',
        'Transfer-Encoding: chunked',
      ].join('\r\n'),
    );
    // Chunk sizes follow the socket's timing; the bytes, and the empty last chunk with no trailer
    // field after it, do not.
    const { body, after } = dechunked(chunked);
    expect(body).toBe(eventsOf('plain2').join(''));
    expect(after).toBe('\r\n');
  });
});

describe('a client that asks for the signature in a trailer', () => {
  it('JSON: the same body, chunked, and after it the record GET /signature/{id} serves', async () => {
    const sent = bodyOf('trailer1');
    const res = await post(sent, { 'x-teeml-signature-trailer': 'ecdsa' });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(answerOf('trailer1'));
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers.trailer).toBe('x-teeml-signature');
    expect(res.headers['zg-res-key']).toBe('chatcmpl-trailer1');
    const got = signatureFromTrailer(res, 'ecdsa');
    expect(got).toBeDefined();
    const served = await lookup('chatcmpl-trailer1', 'ecdsa');
    expect(Buffer.from(got?.json ?? []).toString()).toBe(served.body.toString());
    expect(got?.record.text).toBe(`${sha(sent)}:${sha(res.body)}`);
    expect(recoverAddress(hashMessage(got?.record.text ?? ''), got?.record.signature ?? '')).toBe(
      sidecar.signingAddress,
    );
  });

  it('stream: every event, then the ed25519 record in the trailer, equal to the lookup', async () => {
    const sent = bodyOf('trailer2', true);
    const res = await post(sent, { 'x-teeml-signature-trailer': 'ED25519' });
    expect(res.body.toString()).toBe(eventsOf('trailer2').join(''));
    expect(res.headers.trailer).toBe('x-teeml-signature');
    const got = signatureFromTrailer(res, 'ed25519');
    const served = await lookup('chatcmpl-trailer2', 'ed25519');
    expect(served.status).toBe(200);
    expect(Buffer.from(got?.json ?? []).toString()).toBe(served.body.toString());
    expect(got?.record.text).toBe(`${sha(sent)}:${sha(res.body)}`);
    expect(got?.record.signing_algo).toBe('ed25519');
    // The reader refuses a record for another algorithm than the one asked for.
    expect(() => signatureFromTrailer(res, 'ecdsa')).toThrow(/not the ecdsa record/);
  });

  it('refuses a value other than ecdsa or ed25519 with 400, before the model server is called', async () => {
    const before = upstream.requests.length;
    const res = await post(bodyOf('trailer3'), { 'x-teeml-signature-trailer': 'rsa' });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({
      error: { code: 'invalid_signature_trailer', param: 'X-Teeml-Signature-Trailer' },
    });
    expect(upstream.requests.length).toBe(before);
    expect((await lookup('chatcmpl-trailer3', 'ecdsa')).status).toBe(404);
  });

  it('HTTP/1.0 (no chunked encoding, so no trailer): today’s answer with Content-Length', async () => {
    const head =
      'POST /v1/chat/completions HTTP/1.0\r\nhost: x\r\ncontent-type: application/json\r\nx-teeml-signature-trailer: ecdsa';
    const raw = normalized(await rawExchange(head, bodyOf('trailer4')));
    expect(raw).toContain(`content-length: ${answerOf('trailer4').length}\r\n`);
    expect(raw.toLowerCase()).not.toContain('trailer:');
    expect(raw.endsWith(answerOf('trailer4'))).toBe(true);
    expect((await lookup('chatcmpl-trailer4', 'ecdsa')).status).toBe(200);
  });

  it('a client that leaves mid-stream gets no record, with or without the trailer asked', async () => {
    const upstreamClosed = new Promise<void>((resolve) => {
      upstream.server.once('request', (_req, res) => res.on('close', () => resolve()));
    });
    await new Promise<void>((resolve, reject) => {
      const req = request(
        `${sidecar.url}/v1/chat/completions`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-teeml-signature-trailer': 'ecdsa' },
        },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end(JSON.stringify({ ...JSON.parse(bodyOf('trailer5', true)), slow: true }));
      setTimeout(() => reject(new Error('no data')), 5000);
    });
    await upstreamClosed;
    expect((await lookup('chatcmpl-trailer5', 'ecdsa')).status).toBe(404);
  });
});

describe('a record the store refuses after the answer was sent', () => {
  it('the answer keeps the trailer it was sent with (a valid signature over what the client got); the lookup answers 404', async () => {
    const memory = new MemorySignatureStore({ ttlMs: 60_000, capacity: 100 });
    const failing = {
      claim: (id: string) => memory.claim(id),
      get: (id: string) => memory.get(id),
      put: async () => {
        throw new Error('store unreachable');
      },
    };
    const s = await startTestSidecar({ UPSTREAM_URL: upstream.url }, { store: failing });
    try {
      for (const [tag, stream] of [
        ['refused1', false],
        ['refused2', true],
      ] as const) {
        const sent = bodyOf(tag, stream);
        const res = await post(sent, { 'x-teeml-signature-trailer': 'ecdsa' }, s.url);
        expect(res.status).toBe(200);
        const got = signatureFromTrailer(res, 'ecdsa');
        expect(got?.record.text).toBe(`${sha(sent)}:${sha(res.body)}`);
        expect(recoverAddress(hashMessage(got?.record.text ?? ''), got?.record.signature ?? '')).toBe(
          s.signingAddress,
        );
        expect((await rawRequest(`${s.url}/v1/signature/chatcmpl-${tag}`)).status).toBe(404);
      }
      expect(s.logs.filter((l) => l.includes('signature store write failed'))).toHaveLength(2);
    } finally {
      await s.close();
    }
  });
});
