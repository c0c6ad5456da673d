import { connect, type Socket } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, sidecarOverUpstream } from './harness.js';

/**
 * Pipelined requests and resets against the rule that a record is stored only for an answer handed
 * whole to the socket: resets mid-answer with answers queued behind, a broken stream mid-pipeline,
 * a 413 in a pipeline, and hundreds of keep-alive requests on one socket (one close listener).
 */
const serverSockets: Socket[] = [];
const upstreamClosed = new Set<string>();
const stack = sidecarOverUpstream(
  (_req, body, res) => {
    const p = JSON.parse(body.toString()) as {
      tag: string;
      delay?: number;
      stream?: boolean;
      big?: number;
      fail?: boolean;
      status?: number;
    };
    res.on('close', () => upstreamClosed.add(p.tag));
    setTimeout(() => {
      if (p.status !== undefined) {
        res.writeHead(p.status, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"nope"}}');
        return;
      }
      if (p.stream === true) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `data: {"id":"chatcmpl-${p.tag}","object":"chat.completion.chunk","choices":[{"delta":{"content":"${'z'.repeat(p.big ?? 10)}"}}]}\n\n`,
        );
        if (p.fail === true) {
          setTimeout(() => res.destroy(), 50);
          return;
        }
        res.end('data: [DONE]\n\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        `{"id":"chatcmpl-${p.tag}","object":"chat.completion","pad":"${'y'.repeat(p.big ?? 0)}","choices":[]}`,
      );
    }, p.delay ?? 0);
  },
  { MAX_BODY_BYTES: '2048' },
);
beforeAll(() => {
  stack.sidecar.server.on('connection', (s: Socket) => serverSockets.push(s));
});

const req = (port: string, body: string, extra = '', version = '1.1') =>
  `POST /v1/chat/completions HTTP/${version}\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n${extra}` +
  `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const port = () => new URL(stack.sidecar.url).port;
const lookup = async (tag: string) =>
  (await rawRequest(`${stack.sidecar.url}/v1/signature/chatcmpl-${tag}`)).status;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('pipelined: client resets', () => {
  it('reset mid-body of answer 1 while answers 2 (JSON) and 3 (stream+trailer) are queued: nothing stored but what was whole', async () => {
    const p = port();
    const bodies = [
      { tag: 'r1-a', delay: 200, big: 8 * 1024 * 1024 },
      { tag: 'r1-b' },
      { tag: 'r1-c', stream: true },
    ];
    const s = connect(Number(p), '127.0.0.1', () =>
      s.write(bodies.map((b) => req(p, JSON.stringify(b), 'x-teeml-signature-trailer: ecdsa\r\n')).join('')),
    );
    s.on('error', () => undefined);
    let got = 0;
    await new Promise<void>((resolve) => {
      s.on('data', (c: Buffer) => {
        got += c.length;
        if (got > 65536) {
          s.resetAndDestroy();
          resolve();
        }
      });
    });
    await sleep(500);
    const st = [await lookup('r1-a'), await lookup('r1-b'), await lookup('r1-c')];
    console.log('lookups', st, 'upstream closed', [...upstreamClosed]);
    expect(st).toEqual([404, 404, 404]);
  }, 10000);

  it('reset after answer 1 was read whole, answer 2 big and queued: answer 2 not stored', async () => {
    const p = port();
    const s = connect(Number(p), '127.0.0.1', () =>
      s.write(
        req(p, JSON.stringify({ tag: 'r2-a', delay: 100 })) +
          req(p, JSON.stringify({ tag: 'r2-b', delay: 300, big: 8 * 1024 * 1024 })),
      ),
    );
    s.on('error', () => undefined);
    let buf = '';
    await new Promise<void>((resolve) => {
      s.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        if (buf.includes('chatcmpl-r2-a","object":"chat.completion","pad":"","choices":[]}')) {
          s.pause();
          resolve();
        }
      });
    });
    await sleep(600);
    s.resetAndDestroy();
    await sleep(300);
    const st = [await lookup('r2-a'), await lookup('r2-b')];
    console.log('lookups', st);
    expect(st[1]).toBe(404);
  }, 10000);

  it('a pipelined stream that fails mid-way: the ones queued behind are not stored, the one before is', async () => {
    const p = port();
    const bodies = [
      { tag: 'f-a' },
      { tag: 'f-b', stream: true, fail: true, delay: 100 },
      { tag: 'f-c' },
      { tag: 'f-d', stream: true },
      { tag: 'f-e', status: 500 },
    ];
    const chunks: Buffer[] = [];
    const s = connect(Number(p), '127.0.0.1', () =>
      s.write(bodies.map((b) => req(p, JSON.stringify(b))).join('')),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    await new Promise((r) => s.on('close', r));
    const st = [];
    for (const b of bodies) st.push(await lookup(b.tag));
    const got = Buffer.concat(chunks).toString('latin1');
    console.log('lookups', st, 'got f-c?', got.includes('chatcmpl-f-c'));
    expect(st[0]).toBe(200);
    expect(st.slice(1)).toEqual([404, 404, 404, 404]);
  }, 10000);

  it('a 413 in the middle of a pipeline: what happens to the requests after it', async () => {
    const p = port();
    const big = JSON.stringify({ tag: 'x-big', pad: 'q'.repeat(5000) });
    const wire =
      req(p, JSON.stringify({ tag: 'x-a', delay: 100 })) +
      req(p, big) +
      req(p, JSON.stringify({ tag: 'x-c' }));
    const chunks: Buffer[] = [];
    const s = connect(Number(p), '127.0.0.1', () => s.write(wire));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    await Promise.race([new Promise((r) => s.on('close', r)), sleep(3000)]);
    const got = Buffer.concat(chunks).toString('latin1');
    console.log(got.replace(/\r\n/g, ' | ').slice(0, 1500));
    expect(await lookup('x-c')).toBe(404);
    console.log(
      'x-c reached upstream',
      stack.upstream.requests.some((r) => r.body.toString().includes('x-c')),
      'lookup',
      await lookup('x-c'),
      'x-c in reply',
      got.includes('chatcmpl-x-c'),
    );
    s.destroy();
  }, 10000);
});

describe('listener leaks', () => {
  it('400 sequential keep-alive requests (mixed) on one socket keep close listeners flat', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const p = port();
    const before = serverSockets.length;
    const s = connect(Number(p), '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise((r) => s.on('connect', r));
    const server = () => serverSockets[before]!;
    let base = -1;
    const counts: number[] = [];
    let buf = '';
    s.on('data', (c: Buffer) => (buf += c.toString('latin1')));
    for (let i = 0; i < 400; i++) {
      const kind = i % 4;
      const b =
        kind === 0
          ? { tag: `k-${i}` }
          : kind === 1
            ? { tag: `k-${i}`, stream: true }
            : kind === 2
              ? { tag: `k-${i}`, status: 400 }
              : { tag: `k-${i}`, stream: true };
      const extra = kind === 3 ? 'x-teeml-signature-trailer: ecdsa\r\n' : '';
      const marker = `k-${i}`;
      const start = buf.length;
      s.write(req(p, JSON.stringify(b), extra));
      for (let t = 0; t < 200; t++) {
        const tail = buf.slice(start);
        if (
          (kind === 2 && tail.includes('nope')) ||
          (kind === 0 && tail.includes(`${marker}","object"`)) ||
          ((kind === 1 || kind === 3) &&
            tail.includes('[DONE]') &&
            (kind === 1 ? tail.endsWith('0\r\n\r\n') : /x-teeml-signature: [^\r]+\r\n\r\n$/i.test(tail)))
        )
          break;
        await sleep(5);
      }
      await sleep(2);
      const n = server().listenerCount('close');
      if (base < 0) base = n;
      counts.push(n);
    }
    s.destroy();
    process.off('warning', onWarning);
    console.log(
      'close listeners: first',
      counts[0],
      'max',
      Math.max(...counts),
      'last',
      counts.at(-1),
      'warnings',
      warnings,
    );
    expect(Math.max(...counts)).toBe(counts[0]);
    expect(warnings).toEqual([]);
  }, 60000);

  it('HTTP/1.0 keep-alive: stream answer, then a JSON one on the same connection', async () => {
    const p = port();
    const chunks: Buffer[] = [];
    const s = connect(Number(p), '127.0.0.1', () =>
      s.write(
        req(
          p,
          JSON.stringify({ tag: 'h10-a', stream: true }),
          'connection: keep-alive\r\nx-teeml-signature-trailer: ecdsa\r\n',
          '1.0',
        ) + req(p, JSON.stringify({ tag: 'h10-b' }), 'connection: keep-alive\r\n', '1.0'),
      ),
    );
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    await Promise.race([new Promise((r) => s.on('close', r)), sleep(1500)]);
    s.destroy();
    const got = Buffer.concat(chunks).toString('latin1');
    console.log(got.replace(/\r\n/g, ' | ').slice(0, 1200));
    expect(await lookup('h10-b')).toBe(404);
    console.log('lookups', await lookup('h10-a'), await lookup('h10-b'));
  });
});
