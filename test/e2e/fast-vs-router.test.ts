import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from './harness.js';

/** Raw-socket comparisons of the fast path (plain Host) and the router (Host `LOCALHOST:port`). */
let upstream: TestUpstream;
let sidecar: TestSidecar;
let release: (() => void) | undefined;
beforeAll(async () => {
  upstream = await startUpstream((req, _b, res) => {
    const send = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"object":"chat.completion","choices":[],"u":${JSON.stringify(req.url)}}`);
    };
    if (req.headers['x-hold'] === '1') release = send;
    else send();
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
});
afterAll(async () => {
  await upstream.close();
});

const exchange = (raw: (host: string) => string, host: string, ms = 600): Promise<string> =>
  new Promise((resolve) => {
    const { port } = new URL(sidecar.url);
    const chunks: Buffer[] = [];
    let closed = false;
    const s = connect(Number(port), '127.0.0.1', () => s.write(raw(host.replace('PORT', port))));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => {
      closed = true;
    });
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      resolve(`${Buffer.concat(chunks).toString('latin1')}${closed ? '\n<closed by server>' : ''}`);
    }, ms);
  });

/** The moving parts of an answer: the date, fresh request ids, response ids. */
const norm = (s: string) =>
  s
    .replace(/^date: .*$/gim, 'date: <d>')
    .replace(/^x-request-id: [0-9a-f-]{36}$/gim, 'x-request-id: <uuid>')
    .replace(/chatcmpl-[A-Za-z0-9]+/g, 'chatcmpl-<id>')
    .replace(/^zg-res-key: .*$/gim, 'zg-res-key: <id>');

const both = async (raw: (host: string) => string) => ({
  straight: norm(await exchange(raw, '127.0.0.1:PORT')),
  routed: norm(await exchange(raw, 'LOCALHOST:PORT')),
});

const body = '{"model":"m","messages":[]}';
const post =
  (extraHead: string, target = '/v1/chat/completions', version = '1.1') =>
  (host: string) =>
    `POST ${target} HTTP/${version}\r\nhost: ${host}\r\ncontent-type: application/json\r\n${extraHead}` +
    `content-length: ${body.length}\r\n\r\n${body}`;

describe('fast path vs router, byte for byte', () => {
  for (const [name, raw] of [
    ['duplicate x-request-id', post('x-request-id: a\r\nx-request-id: b\r\n')],
    ['200-char x-request-id', post(`x-request-id: ${'a'.repeat(200)}\r\n`)],
    ['query with fragment', post('', '/v1/chat/completions?x=1#frag')],
    ['empty query', post('', '/v1/chat/completions?')],
    ['HTTP/1.0', post('')],
    ['HTTP/1.0 keep-alive', post('connection: keep-alive\r\n', '/v1/chat/completions', '1.0')],
    ['expect 100-continue', post('expect: 100-continue\r\n')],
    ['bad trailer value', post('x-teeml-signature-trailer: none\r\n')],
  ] as const) {
    it(`same answer: ${name}`, async () => {
      const { straight, routed } = await both(raw);
      expect(straight).toBe(routed);
    });
  }

  it('same answer during a SIGTERM drain (503 shutting_down, connection close)', async () => {
    const held = exchange(post('x-hold: 1\r\n'), '127.0.0.1:PORT', 3000);
    await new Promise((r) => setTimeout(r, 200));
    const closing = sidecar.close(5_000);
    await new Promise((r) => setTimeout(r, 50));
    const { straight, routed } = await both(post(''));
    release?.();
    await held;
    await closing;
    expect(straight).toContain('shutting_down');
    expect(straight).toBe(routed);
  });
});
