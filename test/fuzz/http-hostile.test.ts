import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from '../e2e/harness.js';

/**
 * Hostile HTTP against a real sidecar, sent over a raw socket so nothing (URL parsing, header
 * validation) cleans the request up on the client side first. Every answer is a clear 4xx in the
 * OpenAI error shape, except where Node's HTTP parser answers before the app exists (malformed
 * header bytes: 400; header block too large: 431): there only the status is ours to check. After
 * each, the sidecar still serves.
 */

interface RawAnswer {
  status: number;
  headers: string;
  body: string;
}

let sidecar: TestSidecar;
let upstream: TestUpstream;
let port: number;

const send = (text: string | Buffer): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('end', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const split = raw.indexOf('\r\n\r\n');
      const head = split === -1 ? raw : raw.slice(0, split);
      let body = split === -1 ? '' : raw.slice(split + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(head)) body = dechunk(body);
      resolve({ status: Number(head.slice(9, 12)), headers: head, body });
    });
  });

const dechunk = (text: string): string => {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
};

const get = (target: string, headers: string[] = []): Promise<RawAnswer> =>
  send(
    `GET ${target} HTTP/1.1\r\nHost: sidecar\r\n${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`,
  );

const post = (target: string, body: string): Promise<RawAnswer> =>
  send(
    `POST ${target} HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );

/** The OpenAI error shape, with the status class we expect. */
const expectOpenAiError = (answer: RawAnswer, status: number, code?: string): void => {
  expect(answer.status).toBe(status);
  expect(answer.headers).toMatch(/\r\ncontent-type: application\/json/i);
  const parsed = JSON.parse(answer.body) as { error: Record<string, unknown> };
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof parsed.error['message']).toBe('string');
  expect(typeof parsed.error['type']).toBe('string');
  if (code !== undefined) expect(parsed.error['code']).toBe(code);
};

const expectStillServing = async (): Promise<void> => {
  const health = await get('/health');
  expect(health.status).toBe(200);
};

beforeAll(async () => {
  upstream = await startUpstream((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id":"chatcmpl-hostile","object":"chat.completion","choices":[]}');
  });
  sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url, MAX_HEADER_BYTES: '16384' });
  port = Number(new URL(sidecar.url).port);
});

afterAll(async () => {
  await sidecar.close(0);
  await upstream.close();
});

describe('path traversal', () => {
  it('resolves dot segments before routing: no path reaches anything but a public route or a 404', async () => {
    // The Node adapter builds a WHATWG URL, which removes `..` and `%2e%2e` segments, so these land
    // on the public report route itself; they can never address a path outside the routes.
    const canonical = await get('/attestation/report');
    expect(canonical.status).toBe(200);
    for (const target of [
      '/v1/../attestation/report',
      '/v1/%2e%2e/attestation/report',
      '/%2E%2E/v1/attestation/report',
    ]) {
      const answer = await get(target);
      expect(answer.status, target).toBe(200);
      expect(Object.keys(JSON.parse(answer.body) as object)).toEqual(
        Object.keys(JSON.parse(canonical.body) as object),
      );
    }
    expectOpenAiError(await get('/v1/../../etc/passwd'), 404, 'route_not_found');
    expectOpenAiError(await get('//v1/attestation/report'), 404, 'route_not_found');
    await expectStillServing();
  });

  it('never forwards a dot segment (plain or percent-encoded) or an empty segment upstream', async () => {
    const before = upstream.requests.length;
    for (const target of [
      '/v1/x/../../chat/completions',
      '/v1/%2e%2e/%2e%2e/admin',
      '/v1/chat/..%2f..%2fadmin',
      '/v1/chat/%2f%2fadmin',
    ]) {
      const answer = await post(target, '{"model":"m"}');
      expect(answer.status, target).toBeLessThan(500);
      if (answer.status >= 400) expectOpenAiError(answer, answer.status);
    }
    const forwarded = upstream.requests.slice(before).map((r) => r.url);
    expect(forwarded).toContain('/v1/chat/completions');
    for (const url of forwarded) expect(url).not.toMatch(/\.\.|%2e|\/\//i);
    await expectStillServing();
  });

  it('rejects signature ids with encoded slashes, dot segments, NULs or absurd length (400)', async () => {
    for (const id of [
      '..%2f..%2fetc%2fpasswd',
      'a%2Fb',
      '..%5c..%5cb',
      '%00',
      'a%0d%0ab',
      '%zz',
      'a'.repeat(300),
      '%E2%80%AE',
    ]) {
      expectOpenAiError(await get(`/v1/signature/${id}`), 400, 'invalid_chat_id');
    }
    // A whole `%2e%2e` segment is a dot segment: resolved away before routing, so no route matches.
    expectOpenAiError(await get('/v1/signature/%2e%2e'), 404, 'route_not_found');
    // Dots inside an id are legal id characters (a store key, never a file path): just not found.
    expectOpenAiError(await get('/v1/signature/a%2e%2e'), 404, 'chat_id_not_found');
    expectOpenAiError(await get('/v1/signature/chatcmpl-unknown'), 404, 'chat_id_not_found');
    await expectStillServing();
  });

  it('answers 400 for targets the adapter cannot turn into a URL (backslashes, asterisk form)', async () => {
    expect((await get('/v1\\..\\attestation/report')).status).toBe(400);
    expect((await send('OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status).toBe(400);
    await expectStillServing();
  });
});

describe('header injection and oversized headers', () => {
  it('refuses CR or LF inside a header value (Node answers 400 before the app)', async () => {
    for (const header of [
      'X-Request-Id: abc\rSet-Cookie: x=1',
      'X-Request-Id: abc\nInjected: 1',
      'X-Request-Id: a\0b',
    ]) {
      const answer = await get('/health', [header]);
      expect(answer.status).toBe(400);
      expect(answer.headers).not.toMatch(/set-cookie|injected/i);
    }
    await expectStillServing();
  });

  it('does not echo a request id that is not a plain token', async () => {
    for (const id of ['<script>alert(1)</script>', 'a'.repeat(500), 'é-unicode', 'has space']) {
      const answer = await get('/health', [`X-Request-Id: ${id}`]);
      expect(answer.status).toBe(200);
      const echoed = /\r\nx-request-id: ([^\r]*)/i.exec(answer.headers)?.[1];
      expect(echoed).toBeDefined();
      expect(echoed).not.toBe(id);
      expect(echoed).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    }
    const plain = await get('/health', ['X-Request-Id: trace-123']);
    expect(plain.headers).toMatch(/\r\nx-request-id: trace-123\r\n/i);
  });

  it('answers 431 to a header block beyond MAX_HEADER_BYTES, and to a huge request line', async () => {
    expect((await get('/health', [`X-Big: ${'a'.repeat(20_000)}`])).status).toBe(431);
    expect(
      (
        await get(
          '/health',
          Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'b'.repeat(60)}`),
        )
      ).status,
    ).toBe(431);
    expect((await get(`/attestation/report?x=${'a'.repeat(20_000)}`)).status).toBe(431);
    await expectStillServing();
  });
});

describe('query strings and nonces', () => {
  it('answers malformed nonces with 400 invalid_nonce naming the parameter', async () => {
    const bad = [
      'abc',
      'z'.repeat(64),
      `0x${'a'.repeat(64)}`,
      'a'.repeat(63),
      'a'.repeat(66),
      '%zz',
      '%00'.repeat(32),
      `${'a'.repeat(62)}%C3%A9`,
      ' '.repeat(64),
    ];
    for (const nonce of bad) {
      const answer = await get(`/v1/attestation/report?nonce=${nonce}`);
      expectOpenAiError(answer, 400, 'invalid_nonce');
      expect((JSON.parse(answer.body) as { error: { param: string } }).error.param).toBe('nonce');
    }
    await expectStillServing();
  });

  it('answers a bad signing_algo with 400 and ignores unknown parameters', async () => {
    expectOpenAiError(await get('/v1/attestation/report?signing_algo=rsa'), 400, 'invalid_signing_algo');
    expectOpenAiError(await get('/v1/signature/chatcmpl-x?signing_algo=%00'), 400, 'invalid_signing_algo');
    expect((await get(`/v1/attestation/report?model=a/b/c&x=${'%25'.repeat(2000)}&&&==&%zz`)).status).toBe(
      200,
    );
  });

  it('never answers 5xx or a non-OpenAI error to random paths and query strings', async () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}$/);
    const target = fc
      .tuple(
        fc.constantFrom('', '/v1'),
        fc.constantFrom(
          '/attestation/report',
          '/signature/',
          '/signature/chatcmpl-',
          '/models',
          '/health',
          '/',
          '/x/',
        ),
        fc.array(segment, { maxLength: 3 }),
        fc.array(
          fc.tuple(fc.constantFrom('nonce', 'signing_algo', 'signing_address', 'model', 'x'), segment),
          {
            maxLength: 3,
          },
        ),
      )
      .map(([prefix, route, rest, query]) => {
        const path = `${prefix}${route}${rest.join('/')}`;
        const qs = query.map(([k, v]) => `${k}=${v}`).join('&');
        return qs === '' ? path : `${path}?${qs}`;
      });
    await fc.assert(
      fc.asyncProperty(target, async (t) => {
        const answer = await get(t);
        expect(answer.status, t).toBeLessThan(500);
        if (answer.status >= 400 && answer.status !== 429) expectOpenAiError(answer, answer.status);
      }),
      { numRuns: 150, seed: 0x4057 },
    );
    await expectStillServing();
  });
});
