import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  json,
  postJson,
  rawRequest,
  startTestSidecar,
  startUpstream,
  type TestSidecar,
  type TestUpstream,
  writeSse,
} from './harness.js';

/**
 * The signing promise against a hostile upstream and hostile clients (SECURITY.md, "What is
 * guaranteed"): a signature served under an id attests exactly the bytes one client sent and
 * received, and nothing else is ever signed. Each test here failed before the hardening it covers.
 */

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const chat = (scenario: string, extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hi' }],
  scenario,
  ...extra,
});

interface SignatureBody {
  text: string;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> => {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

const chunk = (id: string, content: string) =>
  `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n`;

/** Releases for upstream answers that wait on the test (streams held open). */
const gates = new Map<string, () => void>();
const gate = (name: string): Promise<void> =>
  new Promise((resolve) => {
    gates.set(name, () => {
      gates.delete(name);
      resolve();
    });
  });

/** Opens a held stream; resolves `id` once the headers arrived (the id is then pending), `done` at its end. */
const openHeldStream = (base: string) => {
  let gotId: (id: string) => void = () => undefined;
  const id = new Promise<string>((resolve) => {
    gotId = resolve;
  });
  const done = new Promise<number>((resolve) => {
    const req = request(
      `${base}/v1/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        gotId(String(res.headers['zg-res-key']));
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.end(JSON.stringify(chat('held-stream', { stream: true })));
  });
  return { id, done };
};

let upstream: TestUpstream;
let sidecar: TestSidecar;

beforeAll(async () => {
  upstream = await startUpstream((req, body, res) => {
    const header = req.headers['x-scenario'];
    const scenario =
      typeof header === 'string'
        ? header
        : ((JSON.parse(body.toString() || '{}') as { scenario?: string }).scenario ?? '');
    switch (scenario) {
      case 'fixed-id':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"id":"chatcmpl-fixed","object":"chat.completion","n":${upstream.requests.length}}`);
        return;
      case 'fixed-id-upper':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"CHATCMPL-FIXED","object":"chat.completion"}');
        return;
      case 'fixed-stream':
        writeSse(res, [chunk('chatcmpl-fixed', 'a'), chunk('chatcmpl-fixed', 'b'), 'data: [DONE]\n\n']);
        return;
      case 'echo-request-id':
        // vLLM derives its completion id from the X-Request-Id it is sent.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"id":"chatcmpl-${req.headers['x-request-id'] ?? 'none'}","object":"chat.completion"}`);
        return;
      case 'sets-headers':
        res.writeHead(200, {
          'content-type': 'application/json',
          'zg-res-key': 'chatcmpl-victim',
          'set-cookie': 'session=stolen',
          'x-request-id': 'upstream-chosen',
          'x-teeml-verification': 'verified',
          'strict-transport-security': 'max-age=1',
          'x-model-detail': 'kept',
        });
        res.end('{"id":"chatcmpl-headers","object":"chat.completion"}');
        return;
      case 'error-with-key':
        res.writeHead(400, { 'content-type': 'application/json', 'zg-res-key': 'chatcmpl-victim' });
        res.end('{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}');
        return;
      case 'escaped-error':
        writeSse(res, [
          chunk('chatcmpl-esc', 'a'),
          'data: {"\\u0065rror":{"message":"oom"}}\n\n',
          'data: [DONE]\n\n',
        ]);
        return;
      case 'error-event':
        writeSse(res, [
          chunk('chatcmpl-evt', 'a'),
          'event: error\ndata: {"message":"oom"}\n\n',
          'data: [DONE]\n\n',
        ]);
        return;
      case 'after-done':
        writeSse(res, [chunk('chatcmpl-after', 'a'), 'data: [DONE]\n\n', chunk('chatcmpl-after', 'late')]);
        return;
      case 'redirect':
        res.writeHead(302, { location: 'http://169.254.169.254/', 'content-type': 'application/json' });
        res.end('{"id":"chatcmpl-redirect"}');
        return;
      case 'created':
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end('{"id":"chatcmpl-created","object":"chat.completion"}');
        return;
      case 'no-content':
        res.writeHead(204);
        res.end();
        return;
      case 'switch':
        res.writeHead(101, { connection: 'upgrade', upgrade: 'websocket' });
        res.flushHeaders();
        return;
      case 'fake-gzip':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end('{"id":"chatcmpl-notgzip"}');
        return;
      case 'truncated':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"id":"chatcmpl-trunc",');
        setTimeout(() => res.socket?.destroy(), 10);
        return;
      case 'long-line':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: {"pad":"${'x'.repeat(8192)}"}\n\n`);
        return;
      case 'comments-first':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(': keep-alive padding\n'.repeat(1000));
        return;
      case 'big':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"id":"chatcmpl-big","pad":"${'x'.repeat(16 * 1024 * 1024)}"}`);
        return;
      case 'held-stream': {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(chunk(`chatcmpl-held${upstream.requests.length}`, 'a'));
        void gate('held-stream').then(() => {
          res.end('data: [DONE]\n\n');
        });
        return;
      }
      case 'transcription':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"text":"hello"}');
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"id":"chatcmpl-default","object":"chat.completion"}');
    }
  });
  sidecar = await startTestSidecar({
    UPSTREAM_URL: upstream.url,
    UPSTREAM_TIMEOUT_MS: '1000',
    MAX_SSE_LINE_BYTES: '4096',
    MAX_UPSTREAM_BODY_BYTES: String(64 * 1024 * 1024),
  });
});

afterAll(async () => {
  for (const release of gates.values()) release();
  await sidecar.close(0);
  await upstream.close();
});

const post = (scenario: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
  postJson(`${sidecar.url}/v1/chat/completions`, chat(scenario, extra), headers);

const signatureOf = (base: string, id: string) =>
  rawRequest(`${base}/v1/signature/${encodeURIComponent(id)}`);

/** Signed text for the pair, computed from the bytes this client sent and received. */
const expectedText = (sent: unknown, received: Buffer) => `${sha(JSON.stringify(sent))}:${sha(received)}`;

describe('1. no record can be replaced by another response', () => {
  it('gives a repeated upstream id a fresh id, and the first record still matches the first client', async () => {
    const first = await post('fixed-id');
    const second = await post('fixed-id');
    const third = await post('fixed-id-upper');
    expect(first.headers['zg-res-key']).toBe('chatcmpl-fixed');
    const ids = [first, second, third].map((r) => String(r.headers['zg-res-key']));
    expect(new Set(ids.map((id) => id.toLowerCase())).size).toBe(3);
    for (const [res, id] of [
      [second, ids[1]],
      [third, ids[2]],
    ] as const) {
      // The fresh id is in the body the client received (and hashed), first key.
      const body = json<{ id: string }>(res);
      expect(body.id).toBe(id);
      expect(Object.keys(body)[0]).toBe('id');
      expect(res.body.includes('chatcmpl-fixed"')).toBe(false);
    }
    for (const [res, scenario] of [
      [first, 'fixed-id'],
      [second, 'fixed-id'],
      [third, 'fixed-id-upper'],
    ] as const) {
      const sig = json<SignatureBody>(await signatureOf(sidecar.url, String(res.headers['zg-res-key'])));
      expect(sig.text).toBe(expectedText(chat(scenario), res.body));
    }
  });

  it('gives a stream whose id is taken a fresh id in every chunk', async () => {
    await post('fixed-id'); // makes sure chatcmpl-fixed is taken
    const res = await post('fixed-stream', {}, { stream: true });
    const id = String(res.headers['zg-res-key']);
    expect(id).not.toBe('chatcmpl-fixed');
    const text = res.body.toString();
    expect(text).not.toContain('chatcmpl-fixed');
    expect(text.match(new RegExp(`"id":"${id}"`, 'g'))).toHaveLength(2);
    const sig = json<SignatureBody>(await signatureOf(sidecar.url, id));
    expect(sig.text).toBe(expectedText(chat('fixed-stream', { stream: true }), res.body));
  });

  it('does not forward the client X-Request-Id, so a client cannot choose the id vLLM derives', async () => {
    const res = await post('echo-request-id', { 'x-request-id': 'victim-id' });
    expect(upstream.requests.at(-1)?.headers['x-request-id']).toBeUndefined();
    expect(res.headers['zg-res-key']).toBe('chatcmpl-none');
    // The client still gets its request id back for its own logs.
    expect(res.headers['x-request-id']).toBe('victim-id');
  });
});

describe('2. ZG-Res-Key and the sidecar headers are the sidecar own', () => {
  it('never relays upstream ZG-Res-Key, cookies, x-request-id, x-teeml-* or HSTS', async () => {
    const res = await post('sets-headers');
    expect(res.headers['zg-res-key']).toBe('chatcmpl-headers');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-request-id']).not.toBe('upstream-chosen');
    expect(res.headers['x-teeml-verification']).toBeUndefined();
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['x-model-detail']).toBe('kept');
    const error = await post('error-with-key');
    expect(error.status).toBe(400);
    expect(error.headers['zg-res-key']).toBeUndefined();
  });
});

describe('3. only what reached the client is signed', () => {
  it('a client that leaves half-way through a large JSON answer gets no record', async () => {
    const { port } = new URL(sidecar.url);
    const body = JSON.stringify(chat('big'));
    // The client sends its request and never reads: the sidecar can hand the kernel no more than its
    // socket buffers hold (a few MB of the 16 MB answer) before the client leaves.
    const socket: Socket = connect(Number(port), '127.0.0.1');
    socket.pause();
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor(() => upstream.requests.some((r) => r.body.toString() === body));
    await new Promise((r) => setTimeout(r, 300));
    socket.destroy();
    await waitFor(() => sidecar.logs.some((l) => l.includes('"status":499')));
    expect((await signatureOf(sidecar.url, 'chatcmpl-big')).status).toBe(404);
  });

  it('a signature is there as soon as the client has the last byte (it waits for the pending id)', async () => {
    const res = await post('default');
    const id = String(res.headers['zg-res-key']);
    const sig = await signatureOf(sidecar.url, id);
    expect(sig.status).toBe(200);
    expect(json<SignatureBody>(sig).text).toBe(expectedText(chat('default'), res.body));
  });
});

describe('4. errored streams are never signed', () => {
  it.each([
    ['escaped-error', 'chatcmpl-esc'],
    ['error-event', 'chatcmpl-evt'],
    ['after-done', 'chatcmpl-after'],
  ])('%s: delivered, but no signature', async (scenario, id) => {
    const res = await post(scenario, {}, { stream: true });
    expect(res.status).toBe(200);
    expect(res.headers['zg-res-key']).toBe(id);
    expect((await signatureOf(sidecar.url, id)).status).toBe(404);
  });
});

describe('5. which statuses are signed', () => {
  it('relays 201 signed, 204 unsigned, and turns a redirect into a 502 without its Location', async () => {
    const created = await post('created');
    expect(created.status).toBe(201);
    expect((await signatureOf(sidecar.url, 'chatcmpl-created')).status).toBe(200);
    const empty = await post('no-content');
    expect(empty.status).toBe(204);
    expect(empty.headers['zg-res-key']).toBeUndefined();
    const redirect = await post('redirect');
    expect(redirect.status).toBe(502);
    expect(redirect.headers.location).toBeUndefined();
    expect(json(redirect)).toMatchObject({
      error: { code: 'upstream_bad_response', type: 'upstream_error' },
    });
    expect((await signatureOf(sidecar.url, 'chatcmpl-redirect')).status).toBe(404);
  });
});

describe('6. stream buffers are bounded; upstream faults are 502s', () => {
  it('cuts a stream that sends too much before its first event, and one with an over-long line', async () => {
    for (const scenario of ['comments-first', 'long-line']) {
      const res = await post(scenario, {}, { stream: true });
      expect(res.status).toBe(502);
      expect(json(res)).toMatchObject({ error: { code: 'upstream_bad_stream', type: 'upstream_error' } });
    }
  });

  it('answers a body that is not the gzip it claims, or is cut short, with 502', async () => {
    for (const scenario of ['fake-gzip', 'truncated']) {
      const res = await post(scenario);
      expect(res.status).toBe(502);
      expect(json(res)).toMatchObject({ error: { code: 'upstream_bad_response' } });
    }
  });
});

describe('7. an upstream 101 ends in a 502 and frees its slot', () => {
  it('settles every switch-protocols answer; the server stays answerable', async () => {
    const s = await startTestSidecar({
      UPSTREAM_URL: upstream.url,
      UPSTREAM_TIMEOUT_MS: '1000',
      MAX_CONCURRENT_REQUESTS: '2',
    });
    cleanups.push(() => s.close(0));
    for (let i = 0; i < 4; i++) {
      const res = await postJson(`${s.url}/v1/chat/completions`, chat('switch'));
      expect(res.status).toBe(502);
    }
    expect((await rawRequest(`${s.url}/health`)).status).toBe(200);
    expect((await postJson(`${s.url}/v1/chat/completions`, chat('default'))).status).toBe(200);
  });
});

describe('8. signature lookups cannot starve the server', () => {
  it('waiting lookups have their own per-client budget; /health and the cached report always answer', async () => {
    const s = await startTestSidecar({
      UPSTREAM_URL: upstream.url,
      MAX_CONCURRENT_REQUESTS: '4',
      MAX_PENDING_LOOKUPS_PER_CLIENT: '2',
    });
    cleanups.push(() => s.close(0));
    // A stream that stays open: its id is pending, so lookups for it wait.
    const stream = openHeldStream(s.url);
    const heldId = await stream.id;
    const lookups = Array.from({ length: 6 }, () => signatureOf(s.url, heldId));
    const refused = await Promise.race([
      Promise.all(lookups.slice(2)),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('lookups did not answer')), 3000)),
    ]);
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(json(r)).toMatchObject({ error: { code: 'lookup_limit' } });
    }
    expect((await rawRequest(`${s.url}/health`)).status).toBe(200);
    expect((await rawRequest(`${s.url}/attestation/report`)).status).toBe(200);
    gates.get('held-stream')?.();
    expect(await stream.done).toBe(200);
    const waited = await Promise.all(lookups.slice(0, 2));
    for (const r of waited) expect(r.status).toBe(200);
  });
});

describe('9. hostile JSON is cheap to refuse', () => {
  it('refuses a deeply nested request body before parsing it', async () => {
    const depth = 200_000;
    const body = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const res = await postJson(`${sidecar.url}/v1/chat/completions`, body);
    expect(res.status).toBe(400);
    expect(json(res)).toMatchObject({ error: { code: 'json_too_deep', type: 'invalid_request_error' } });
    expect(upstream.requests.some((r) => r.body.length === body.length)).toBe(false);
  });
});

describe('10. lookups are answered during a SIGTERM drain', () => {
  it('a stream that finishes in the grace period can still be looked up, on a new connection', async () => {
    const s = await startTestSidecar({ UPSTREAM_URL: upstream.url });
    const stream = openHeldStream(s.url);
    const id = await stream.id;
    const closing = s.close(5_000);
    // New work is refused while draining ...
    await waitFor(async () => (await rawRequest(`${s.url}/health`)).status === 503);
    gates.get('held-stream')?.();
    expect(await stream.done).toBe(200);
    // ... but the signature of the stream that finished is still served.
    const sig = await rawRequest(`${s.url}/v1/signature/${id}`, { headers: { connection: 'close' } });
    expect(sig.status).toBe(200);
    await closing;
  });
});

describe('errors found alongside', () => {
  it('proxies multipart bodies (audio transcriptions) and signs their raw bytes', async () => {
    const boundary = 'xyzzy';
    const body = Buffer.from(
      `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\0\x01\x02\r\n--${boundary}--\r\n`,
      'latin1',
    );
    const res = await rawRequest(`${sidecar.url}/v1/audio/transcriptions`, {
      method: 'POST',
      body: Buffer.concat([body]),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'x-scenario': 'transcription' },
    });
    expect(res.status).toBe(200);
    expect(upstream.requests.at(-1)?.body.equals(body)).toBe(true);
    const id = String(res.headers['zg-res-key']);
    const sig = json<SignatureBody>(await signatureOf(sidecar.url, id));
    expect(sig.text).toBe(`${sha(body)}:${sha(res.body)}`);
  });

  it('answers `POST *` and other unroutable request targets in the OpenAI error shape', async () => {
    const { port } = new URL(sidecar.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.end('POST * HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n');
      });
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
      });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as unknown;
    expect(body).toMatchObject({
      error: { code: 'malformed_request', type: 'invalid_request_error', param: null },
    });
  });

  it('names what is wrong with a malformed nonce, without echoing it', async () => {
    const prefixed = await rawRequest(`${sidecar.url}/attestation/report?nonce=0x${'ab'.repeat(32)}`);
    expect(prefixed.status).toBe(400);
    expect(json<{ error: { message: string } }>(prefixed).error.message).toBe(
      '"nonce" expected plain hex without a 0x prefix',
    );
    const odd = await rawRequest(`${sidecar.url}/attestation/report?nonce=${'a'.repeat(63)}`);
    expect(json<{ error: { message: string } }>(odd).error.message).toBe(
      '"nonce" expected an even number of hex digits, got 63',
    );
  });
});
