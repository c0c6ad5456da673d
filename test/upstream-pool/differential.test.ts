/**
 * the same hostile model-server answers read through node:http (the state
 * before, 9b3ed2c) and through dispatchCall over an undici Pool (after). Wherever the two differ in
 * what a consumer can see (status, folded headers, body, completeness, error), the difference is
 * listed; the test pins the differences that matter (see the report).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callPool, dispatchCall } from '../../src/proxy/dispatch.js';
import { type RawServer, sleep, startRawServer } from './raw-server.js';

interface Outcome {
  status?: number | undefined;
  headers?: IncomingHttpHeaders | undefined;
  trailers?: IncomingHttpHeaders | undefined;
  body?: string | undefined;
  complete?: boolean | undefined;
  error?: string | undefined;
}

type Answer = (socket: Socket) => void;

const cases: Record<string, Answer> = {
  'close-delimited, FIN': (s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"id":"a"');
    setTimeout(() => s.end(), 30);
  },
  'close-delimited, RST after the bytes arrived': (s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"id":"a"');
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'http/1.0 close-delimited, RST': (s) => {
    s.write('HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"id":"a"');
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'content-length short, FIN': (s) => {
    s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"id":"a"}');
    setTimeout(() => s.end(), 30);
  },
  'content-length short, connection close, RST': (s) => {
    s.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100\r\n\r\n{"id":"a"}');
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'chunked without last chunk, FIN': (s) => {
    s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => s.end(), 30);
  },
  'chunked without last chunk, connection close, RST': (s) => {
    s.write('HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'content-length and transfer-encoding': (s) =>
    s.end(
      'HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    ),
  'duplicate content-length, same value': (s) =>
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello'),
  'duplicate content-length, different': (s) =>
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 2\r\n\r\nhello'),
  'transfer-encoding: gzip, chunked': (s) =>
    s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
  'transfer-encoding: chunked, identity (not last)': (s) =>
    s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, identity\r\n\r\nhello'),
  'repeated fields': (s) =>
    s.end(
      'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-type: text/event-stream\r\n' +
        'x-a: 1\r\nx-a: 2\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nzg-res-key: v1\r\nzg-res-key: v2\r\n' +
        'x-teeml-verification: verified\r\ncookie: c=1\r\ncookie: d=2\r\nserver: s1\r\nserver: s2\r\n' +
        'content-length: 2\r\n\r\n{}',
    ),
  'header value with obs-fold': (s) =>
    s.end('HTTP/1.1 200 OK\r\nx-a: one\r\n  two\r\ncontent-length: 2\r\n\r\n{}'),
  'header name with space before colon': (s) =>
    s.end('HTTP/1.1 200 OK\r\nx-a : one\r\ncontent-length: 2\r\n\r\n{}'),
  'header value with NUL': (s) => s.end('HTTP/1.1 200 OK\r\nx-a: o\0ne\r\ncontent-length: 2\r\n\r\n{}'),
  'bare LF line endings': (s) => s.end('HTTP/1.1 200 OK\ncontent-length: 2\n\n{}'),
  '__proto__ and constructor fields': (s) =>
    s.end(
      'HTTP/1.1 200 OK\r\n__proto__: x\r\n__proto__: y\r\nconstructor: z\r\nconstructor: w\r\ncontent-length: 2\r\n\r\n{}',
    ),
  '100 Continue then 200': (s) =>
    s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}'),
  '103 x 200 then 200': (s) =>
    s.end(
      `${'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n'.repeat(200)}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}`,
    ),
  '101 to a plain request': (s) =>
    s.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n'),
  'status 999': (s) => s.end('HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\n{}'),
  'trailers on chunked': (s) =>
    s.end(
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-teeml-signature\r\n\r\n2\r\n{}\r\n0\r\n' +
        'x-teeml-signature: forged\r\nx-teeml-signature: again\r\ncontent-length: 99\r\n\r\n',
    ),
  'bytes after a content-length body in the same segment': (s) =>
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]'),
  'huge header (70 KB)': (s) =>
    s.end(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}\r\ncontent-length: 2\r\n\r\n{}`),
  '204 with a body': (s) => s.end('HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nhello'),
  '304 with content-length (RFC 9110 15.4.5 allows it)': (s) =>
    s.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 1234\r\n\r\n'),
  '205 with a body': (s) => s.end('HTTP/1.1 205 Reset\r\ncontent-length: 5\r\n\r\nhello'),
};

let server: RawServer;
let pool: Pool;
beforeAll(async () => {
  server = await startRawServer();
  pool = callPool(server.url);
});
afterAll(async () => {
  await pool.destroy();
  await server.close();
});

const viaNode = (path: string): Promise<Outcome> =>
  new Promise((resolve) => {
    const out: Outcome = {};
    const req = httpRequest(
      `${server.url}${path}`,
      { method: 'POST', headers: { 'content-length': '2' } },
      (res) => {
        out.status = res.statusCode;
        out.headers = res.headers;
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString('latin1');
        });
        res.on('error', (e) => {
          out.error ??= `res: ${e.message}`;
        });
        res.on('close', () => {
          out.body = body;
          out.complete = res.complete;
          out.trailers = res.trailers;
          resolve(out);
        });
      },
    );
    req.on('error', (e) => {
      out.error ??= `req: ${(e as Error).message}`;
      setTimeout(() => resolve(out), 20);
    });
    // Node settles neither 'response' nor 'error' on a 101 without an 'upgrade' listener: time out.
    setTimeout(() => resolve({ ...out, error: out.error ?? 'nothing within 1s' }), 1000);
    req.end('{}');
  });

const viaUndici = async (path: string): Promise<Outcome> => {
  const out: Outcome = {};
  const call = dispatchCall(
    pool,
    { origin: server.url, method: 'POST', path, headers: { 'content-length': '2' }, body: Buffer.from('{}') },
    (e) => e,
  );
  const timer = setTimeout(() => call.abort(new Error('nothing within 1s')), 1000);
  try {
    const res = await call.response;
    out.status = res.statusCode;
    out.headers = res.headers;
    let body = '';
    await new Promise<void>((resolve) => {
      res.on('data', (c: Buffer) => {
        body += c.toString('latin1');
      });
      res.on('error', (e) => {
        out.error ??= `res: ${e.message}`;
      });
      res.on('close', () => resolve());
    });
    out.body = body;
    out.complete = res.complete;
    out.trailers = res.trailers;
  } catch (e) {
    out.error = `req: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
  return out;
};

const results: Record<string, { node: Outcome; undici: Outcome }> = {};

describe('node:http vs dispatchCall on the same bytes', () => {
  it('collects both outcomes for every case', async () => {
    for (const [name, answer] of Object.entries(cases)) {
      server.script = (_req, socket) => answer(socket);
      const node = await viaNode(`/${encodeURIComponent(name)}`);
      await sleep(20);
      const undici = await viaUndici(`/${encodeURIComponent(name)}`);
      await sleep(20);
      results[name] = { node, undici };
    }
    expect(Object.keys(results).length).toBe(Object.keys(cases).length);
  }, 60_000);

  it('held: a close-delimited body cut by a reset reads the same (both call it complete)', () => {
    const r = results['close-delimited, RST after the bytes arrived'];
    expect(r?.undici.complete).toBe(r?.node.complete);
    expect(r?.undici.body).toBe(r?.node.body);
  });

  it('held: repeated fields fold exactly as node:http folds them', () => {
    for (const name of [
      'repeated fields',
      '__proto__ and constructor fields',
      'header value with obs-fold',
    ]) {
      const r = results[name];
      expect(r?.undici.headers).toEqual(r?.node.headers);
    }
  });

  it('held: cut bodies are never complete through undici', () => {
    for (const name of [
      'content-length short, FIN',
      'content-length short, connection close, RST',
      'chunked without last chunk, FIN',
      'chunked without last chunk, connection close, RST',
      'content-length and transfer-encoding',
      'trailers on chunked',
    ])
      expect(results[name]?.undici.complete, name).not.toBe(true);
  });

  // Two answers undici refuses where node:http read them, accepted (docs/architecture.md): neither
  // comes from a model server answering a POST (the sidecar never sends Expect), and both end in a
  // clean failure of the call, never in a read of other bytes.
  it('a 304 carrying the Content-Length of the representation fails the call (node:http read it)', () => {
    const r = results['304 with content-length (RFC 9110 15.4.5 allows it)'];
    expect(r?.node.status).toBe(304);
    expect(r?.undici.error).toBeDefined();
    expect(r?.undici.complete).not.toBe(true);
  });

  it('a 100 Continue nobody asked for fails the call (node:http skipped it)', () => {
    const r = results['100 Continue then 200'];
    expect(r?.node.status).toBe(200);
    expect(r?.undici.status).toBeUndefined();
    expect(r?.undici.error).toBeDefined();
  });
});
