/**
 * dispatchCall (src/proxy/dispatch.ts): one request through undici's pool, its answer as a Node
 * stream that reads like node:http's message. Against raw TCP servers, so the bytes on the wire are
 * exactly the test's.
 */
import { get } from 'node:http';
import type { Socket } from 'node:net';
import type { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { callPool, dispatchCall, Upstream, type UpstreamResponse } from '../../src/proxy/index.js';
import { type RawServer, startRawServer, waitFor } from '../upstream-pool/raw-server.js';

const servers: RawServer[] = [];
const pools: Pool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A raw TCP server that answers each request with `answer(socket)`: the bytes are the test's. */
const rawServer = async (answer: (socket: Socket) => void): Promise<RawServer> => {
  const server = await startRawServer((_req, socket) => answer(socket));
  servers.push(server);
  return server;
};

const poolFor = (port: number, connections?: number): Pool => {
  const pool = callPool(`http://127.0.0.1:${port}`, connections === undefined ? {} : { connections });
  pools.push(pool);
  return pool;
};

const call = (pool: Pool, port: number, path = '/x') =>
  dispatchCall(
    pool,
    { origin: `http://127.0.0.1:${port}`, method: 'POST', path, headers: {}, body: Buffer.from('{}') },
    (err) => new Error(`failed: ${err.message}`),
  );

const bodyOf = async (res: UpstreamResponse): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
};

/** node:http's own reading of the same answer, for comparison. */
const nodeHeadersOf = (port: number): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => {
      res.resume();
      resolve({ ...res.headers });
    }).on('error', reject);
  });

describe('dispatchCall', () => {
  it('folds repeated fields exactly as node:http does', async () => {
    const { port } = await rawServer((socket) => {
      socket.write(
        'HTTP/1.1 200 OK\r\n' +
          'Content-Type: application/json\r\nContent-Type: text/html\r\n' +
          'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n' +
          'X-Thing: one\r\nx-thing: two\r\n' +
          'Cookie: c=3\r\nCookie: d=4\r\n' +
          'Server: first\r\nServer: second\r\n' +
          'Retry-After: 1\r\nRetry-After: 2\r\n' +
          'X-Single: only\r\nContent-Length: 2\r\n\r\n{}',
      );
    });
    const expected = await nodeHeadersOf(port);
    const res = await call(poolFor(port), port).response;
    expect(await bodyOf(res)).toBe('{}');
    const { date: _ignored, ...headers } = res.headers;
    expect(headers).toEqual(expected);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(headers['x-thing']).toBe('one, two');
    expect(headers.cookie).toBe('c=3; d=4');
    expect(res.complete).toBe(true);
  });

  it('skips an informational answer and reads the real one after it', async () => {
    const { port } = await rawServer((socket) => {
      socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n');
      socket.write('HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello');
    });
    const res = await call(poolFor(port), port).response;
    expect(res.statusCode).toBe(201);
    expect(await bodyOf(res)).toBe('hello');
  });

  it('keeps the trailers of a chunked answer, once it ended', async () => {
    const { port } = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sig\r\n\r\n3\r\nabc\r\n');
      setTimeout(() => socket.write('0\r\nX-Sig: signed\r\n\r\n'), 50);
    });
    const res = await call(poolFor(port), port).response;
    expect(res.trailers).toBeUndefined();
    expect(await bodyOf(res)).toBe('abc');
    expect(res.trailers).toEqual({ 'x-sig': 'signed' });
  });

  it('errs the body of an answer cut short, which is never complete', async () => {
    const { port } = await rawServer((socket) => {
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..');
    });
    const res = await call(poolFor(port), port).response;
    await expect(bodyOf(res)).rejects.toThrow();
    expect(res.complete).toBe(false);
  });

  it('rejects through `failure` when the connection closes without an answer', async () => {
    const { port } = await rawServer((socket) => socket.destroy());
    await expect(call(poolFor(port), port).response).rejects.toThrow(/^failed: /);
  });

  it('an abort while the call waits for a pooled connection rejects at once and sends nothing', async () => {
    let hold: Socket | undefined;
    const { port, requests } = await rawServer((socket) => {
      hold = socket; // the first request is never answered: its connection stays busy
    });
    const pool = poolFor(port, 1);
    const first = call(pool, port, '/first');
    await expect.poll(() => requests.length).toBe(1);
    const second = call(pool, port, '/second');
    second.abort(new Error('client gone'));
    await expect(second.response).rejects.toThrow('client gone');
    first.abort(new Error('done'));
    await expect(first.response).rejects.toThrow('done');
    hold?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(requests.map((r) => r.path)).toEqual(['/first']);
  });

  it('destroying the answer before its end closes its connection', async () => {
    const { port, open } = await rawServer((socket) => {
      // A body that never ends: only closing the connection stops it.
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n');
    });
    const res = await call(poolFor(port), port).response;
    await waitFor(() => open.size === 1);
    res.destroy();
    await waitFor(() => open.size === 0);
    expect(res.complete).toBe(false);
  });

  it('an abort after the head errs the body with the abort reason', async () => {
    const { port } = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n');
    });
    const pending = call(poolFor(port), port);
    const res = await pending.response;
    const reading = bodyOf(res);
    pending.abort(new Error('upstream timed out'));
    await expect(reading).rejects.toThrow('upstream timed out');
  });
});

describe('Upstream: the credentials it sends the model server', () => {
  const answerOk = (socket: Socket): void => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}');
  };

  it('sends user:password from UPSTREAM_URL as Basic credentials, as node:http did', async () => {
    const { port, requests } = await rawServer(answerOk);
    const upstream = new Upstream({ baseUrl: `http://vllm:p%40ss@127.0.0.1:${port}/v1` });
    const res = await upstream.call('POST', '/chat/completions', '', {}, Buffer.from('{}')).response;
    await bodyOf(res);
    upstream.close();
    expect(requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from('vllm:p@ss').toString('base64')}`);
    expect(`${requests[0]?.method} ${requests[0]?.path}`).toBe('POST /v1/chat/completions');
  });

  it('UPSTREAM_API_KEY wins over URL credentials; a plain URL sends none', async () => {
    const { port, requests } = await rawServer(answerOk);
    for (const upstream of [
      new Upstream({ baseUrl: `http://vllm:secret@127.0.0.1:${port}`, apiKey: 'k-1' }),
      new Upstream({ baseUrl: `http://127.0.0.1:${port}` }),
    ]) {
      await bodyOf(await upstream.call('POST', '/completions', '?a=1', {}, Buffer.from('{}')).response);
      upstream.close();
    }
    expect(requests[0]?.headers.authorization).toBe('Bearer k-1');
    expect(requests[1]?.headers.authorization).toBeUndefined();
    expect(`${requests[1]?.method} ${requests[1]?.path}`).toBe('POST /v1/completions?a=1');
  });
});
