/**
 * a hostile model server written byte by byte (raw-server.ts) in front of
 * a real sidecar. Nothing cut short is signed, every failure is a 5xx in the OpenAI shape, every
 * failed or aborted call frees its connection at the model server and its MAX_CONCURRENT_REQUESTS
 * slot, and no secret, prompt or completion reaches the logs.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  json,
  leaveAfterFirstChunk,
  postJson,
  type RawResponse,
  rawRequest,
  startTestSidecar,
  type TestSidecar,
} from '../e2e/harness.js';
import { type RawRequest, type RawServer, sleep, startRawServer, waitFor } from './raw-server.js';

const API_KEY = 'sk-upstream-secret-key-7f3a';
const PROMPT = 'prompt-secret-text-91b2';
const COMPLETION = 'completion-secret-text-c4d8';

const answerJson = (id: string) =>
  `{"id":"${id}","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"${COMPLETION}"}}]}`;
const head = (status: string, fields: string) => `HTTP/1.1 ${status}\r\n${fields}\r\n`;
const ok = (body: string, extra = '') =>
  `${head('200 OK', `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}`)}${body}`;
const sse = (id: string, text: string) =>
  `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${text}"}}]}\n\n`;

const timers = new Set<NodeJS.Timeout>();
const every = (ms: number, socket: Socket, fn: () => void) => {
  const t = setInterval(() => {
    if (socket.destroyed) {
      clearInterval(t);
      timers.delete(t);
      return;
    }
    fn();
  }, ms);
  timers.add(t);
};

const scripts: Record<string, (req: RawRequest, s: Socket) => void> = {
  normal: (_r, s) => s.write(ok(answerJson(`chatcmpl-ok-${Math.random().toString(36).slice(2)}`))),
  'cl-short': (_r, s) => {
    s.write(
      `${head('200 OK', 'content-type: application/json\r\ncontent-length: 500\r\n')}${answerJson('chatcmpl-cl')}`,
    );
    setTimeout(() => s.end(), 30);
  },
  'chunk-cut': (_r, s) => {
    const b = answerJson('chatcmpl-chunk');
    s.write(
      `${head('200 OK', 'content-type: application/json\r\ntransfer-encoding: chunked\r\n')}${b.length.toString(16)}\r\n${b}\r\n`,
    );
    setTimeout(() => s.end(), 30);
  },
  'chunk-rst': (_r, s) => {
    const b = answerJson('chatcmpl-chunkrst');
    s.write(
      `${head('200 OK', 'content-type: application/json\r\nconnection: close\r\ntransfer-encoding: chunked\r\n')}${b.length.toString(16)}\r\n${b}\r\n`,
    );
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'stream-cut': (_r, s) => {
    const b = sse('chatcmpl-streamcut', 'a');
    s.write(
      `${head('200 OK', 'content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n')}${b.length.toString(16)}\r\n${b}\r\n`,
    );
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'cl-te': (_r, s) => {
    const b = answerJson('chatcmpl-clte');
    s.write(
      `${head('200 OK', `content-type: application/json\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n`)}${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
    );
  },
  'trailer-sig': (_r, s) => {
    const b = answerJson('chatcmpl-trailer');
    s.write(
      `${head('200 OK', 'content-type: application/json\r\ntransfer-encoding: chunked\r\ntrailer: x-teeml-signature\r\n')}${b.length.toString(16)}\r\n${b}\r\n0\r\nx-teeml-signature: forged\r\nx-teeml-verification: verified\r\n\r\n`,
    );
  },
  'garbage-same-segment': (_r, s) => {
    s.write(ok(answerJson('chatcmpl-garbage1')) + ok(answerJson('chatcmpl-smuggled')));
  },
  'garbage-later': (_r, s) => {
    s.write(ok(answerJson('chatcmpl-garbage2')));
    setTimeout(() => {
      if (!s.destroyed) s.write(ok(answerJson('chatcmpl-smuggled-later')));
    }, 100);
  },
  '103-flood': (_r, s) => {
    s.write(
      `${head('103 Early Hints', 'link: </x>; rel=preload\r\n').repeat(2000)}${ok(answerJson('chatcmpl-103'))}`,
    );
  },
  '103-forever': (_r, s) => every(10, s, () => s.write(head('103 Early Hints', 'link: </x>\r\n'))),
  '100-continue': (_r, s) => s.write(`${head('100 Continue', '')}${ok(answerJson('chatcmpl-100'))}`),
  '101': (_r, s) => s.write(head('101 Switching Protocols', 'upgrade: websocket\r\nconnection: upgrade\r\n')),
  'huge-header': (_r, s) => s.write(ok(answerJson('chatcmpl-huge'), `x-big: ${'a'.repeat(70_000)}\r\n`)),
  'too-large': (_r, s) => s.write(ok(`{"id":"chatcmpl-big","pad":"${'x'.repeat(20_000)}"}`)),
  'too-large-chunked-forever': (_r, s) => {
    s.write(head('200 OK', 'content-type: application/json\r\ntransfer-encoding: chunked\r\n'));
    every(5, s, () => s.write(`400\r\n${'x'.repeat(1024)}\r\n`));
  },
  'gzip-bomb': (_r, s) => {
    const z = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    s.write(
      head(
        '200 OK',
        `content-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: ${z.length}\r\n`,
      ),
    );
    s.write(z);
  },
  'gzip-garbage': (_r, s) =>
    s.write(
      ok('this is not gzip at all', 'content-encoding: gzip\r\n').replace(
        'content-type: application/json',
        'content-type: application/json',
      ),
    ),
  'gzip-cut': (_r, s) => {
    const z = gzipSync(Buffer.from(answerJson('chatcmpl-gzcut')));
    s.write(
      head(
        '200 OK',
        'content-type: application/json\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n',
      ),
    );
    const half = z.subarray(0, z.length >> 1);
    s.write(`${half.length.toString(16)}\r\n`);
    s.write(half);
    s.write('\r\n');
    setTimeout(() => s.resetAndDestroy(), 50);
  },
  'gzip-stream-cut': (_r, s) => {
    const z = gzipSync(Buffer.from(sse('chatcmpl-gzs', 'a').repeat(50)));
    s.write(
      head(
        '200 OK',
        'content-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n',
      ),
    );
    const half = z.subarray(0, z.length >> 1);
    s.write(`${half.length.toString(16)}\r\n`);
    s.write(half);
    s.write('\r\n');
    setTimeout(() => s.end(), 50);
  },
  'br-garbage-complete': (_r, s) => s.write(ok('garbage-not-brotli', 'content-encoding: br\r\n')),
  never: () => undefined,
  'slow-stream': (_r, s) => {
    s.write(head('200 OK', 'content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n'));
    let n = 0;
    every(20, s, () => {
      const b = sse('chatcmpl-slow', `t${n++}`);
      s.write(`${b.length.toString(16)}\r\n${b}\r\n`);
    });
  },
  'repeated-fields': (_r, s) =>
    s.write(
      ok(
        answerJson('chatcmpl-rep'),
        'x-a: 1\r\nx-a: 2\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nzg-res-key: chatcmpl-victim\r\nzg-res-key: v2\r\n' +
          'x-teeml-verification: verified\r\nx-teeml-signature: forged\r\ncontent-type: text/event-stream\r\n' +
          'location: http://evil\r\nconnection: x-hop\r\nx-hop: secret\r\n',
      ),
    ),
};

let up: RawServer;
let sidecar: TestSidecar;
/** The model server's connections that carried a non-normal scenario since the last check. */
const hostileSockets = new Set<Socket>();

beforeAll(async () => {
  up = await startRawServer((req, s) => {
    const scenario = (/"scenario":"([^"]+)"/.exec(req.body.toString()) ?? [])[1] ?? 'normal';
    if (scenario !== 'normal') hostileSockets.add(s);
    (scripts[scenario] ?? scripts.normal)?.(req, s);
  });
  sidecar = await startTestSidecar({
    UPSTREAM_URL: up.url,
    UPSTREAM_API_KEY: API_KEY,
    MAX_CONCURRENT_REQUESTS: '2',
    UPSTREAM_TIMEOUT_MS: '600',
    MAX_UPSTREAM_BODY_BYTES: '8192',
  });
}, 30_000);

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  await sidecar?.close();
  await up?.close();
});

const chat = (scenario: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  postJson(
    `${sidecar.url}/v1/chat/completions`,
    { model: 'm', messages: [{ role: 'user', content: PROMPT }], scenario, ...extra },
    headers,
  );

const lookup = (id: string) =>
  rawRequest(`${sidecar.url}/signature/${encodeURIComponent(id)}?signing_algo=ecdsa`);

const expectUnsigned = async (res: RawResponse) => {
  const id = res.headers['zg-res-key'];
  if (typeof id === 'string') expect((await lookup(id)).status).toBe(404);
  expect(res.status).toBeGreaterThanOrEqual(500);
};

/** Every connection that carried a hostile answer is closed once its call is over (none kept in the pool). */
const upstreamIdle = async () => {
  const sockets = [...hostileSockets];
  hostileSockets.clear();
  expect(sockets.length).toBeGreaterThan(0);
  await waitFor(() => sockets.every((s) => !up.open.has(s)), 3000);
};

/** Both MAX_CONCURRENT_REQUESTS slots are free: two normal calls at once both succeed. */
const slotsFree = async () => {
  const [a, b] = await Promise.all([chat('normal'), chat('normal')]);
  expect([a.status, b.status]).toEqual([200, 200]);
};

describe('a cut answer is never signed; its connection and slot are freed', () => {
  for (const scenario of ['cl-short', 'chunk-cut', 'chunk-rst', 'stream-cut', 'cl-te']) {
    it(scenario, async () => {
      if (scenario === 'stream-cut') {
        // Headers went out before the cut: the client's body is broken off, no record.
        const failed = await chat(scenario, { stream: true }).then(
          () => false,
          () => true,
        );
        expect(failed).toBe(true);
        expect((await lookup('chatcmpl-streamcut')).status).toBe(404);
      } else {
        const res = await chat(scenario);
        await expectUnsigned(res);
        expect(json<{ error: { code: string } }>(res).error.code).toMatch(/^upstream_/);
      }
      await upstreamIdle();
      await slotsFree();
    });
  }
});

describe('framing and fields', () => {
  it('an upstream trailer never reaches the client, asked for a trailer or not', async () => {
    const plain = await new Promise<{ trailers: Record<string, unknown>; status: number; id: unknown }>(
      (resolve) => {
        const req = request(
          `${sidecar.url}/v1/chat/completions`,
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-teeml-signature-trailer': 'ecdsa' },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve({ trailers: res.trailers, status: res.statusCode ?? 0, id: res.headers['zg-res-key'] }),
            );
          },
        );
        req.end(JSON.stringify({ model: 'm', messages: [], scenario: 'trailer-sig' }));
      },
    );
    expect(plain.status).toBe(200);
    expect(plain.trailers['x-teeml-signature']).not.toBe('forged');
    expect(plain.trailers['x-teeml-verification']).toBeUndefined();
    const noTrailer = await chat('trailer-sig');
    expect(noTrailer.status).toBe(200);
    expect(noTrailer.headers['x-teeml-signature']).toBeUndefined();
  });

  it('repeated / forbidden fields: none of the upstream’s own x-teeml-*, zg-res-key, cookies, location, hop-by-hop', async () => {
    const res = await chat('repeated-fields');
    expect(res.status).toBe(200);
    expect(res.headers['zg-res-key']).toBe('chatcmpl-rep');
    expect(res.headers['x-teeml-verification']).toBeUndefined();
    expect(res.headers['x-teeml-signature']).toBeUndefined();
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['x-hop']).toBeUndefined();
    // node:http keeps the first content-type (a second one is dropped): still JSON, signed.
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-a']).toBe('1, 2');
    expect((await lookup('chatcmpl-rep')).status).toBe(200);
  });

  it('bytes after a complete answer in the same segment are not the next answer', async () => {
    const first = await chat('garbage-same-segment');
    expect(first.status).toBe(200);
    const second = await chat('normal');
    expect(second.status).toBe(200);
    expect(second.body.toString()).not.toContain('smuggled');
  });

  it('bytes arriving later on the idle kept-alive connection are not the next answer', async () => {
    const first = await chat('garbage-later');
    expect(first.status).toBe(200);
    await sleep(250);
    const second = await chat('normal');
    expect(second.status).toBe(200);
    expect(second.body.toString()).not.toContain('smuggled');
  });

  it('2000 × 103 before the answer: the answer is relayed and signed', async () => {
    const res = await chat('103-flood');
    expect(res.status).toBe(200);
    expect((await lookup('chatcmpl-103')).status).toBe(200);
  });

  it('103 forever: UPSTREAM_TIMEOUT_MS still ends it, the connection closes, slots free', async () => {
    const res = await chat('103-forever');
    expect(res.status).toBe(504);
    await upstreamIdle();
    await slotsFree();
  });

  it('101 to a plain request: 502, nothing relayed', async () => {
    const res = await chat('101');
    expect(res.status).toBe(502);
    expect(json<{ error: { code: string } }>(res).error.code).toBe('upstream_bad_response');
    await upstreamIdle();
  });

  it('a 100 Continue nobody asked for: a 502 in the OpenAI shape, nothing signed, slots free', async () => {
    // undici refuses an unexpected 100 (node:http skipped it); the sidecar never sends Expect, so a
    // model server that sends one is not speaking to it properly.
    const res = await chat('100-continue');
    await expectUnsigned(res);
    expect(json<{ error: { code: string } }>(res).error.code).toMatch(/^upstream_/);
    await slotsFree();
  });

  it('70 KB of headers: a 502 in the OpenAI shape, no crash', async () => {
    const res = await chat('huge-header');
    expect(res.status).toBe(502);
    expect(json<{ error: { code: string } }>(res).error.code).toMatch(/^upstream_/);
    await slotsFree();
  });
});

describe('size limits', () => {
  for (const scenario of ['too-large', 'too-large-chunked-forever', 'gzip-bomb']) {
    it(`${scenario}: 502 upstream_too_large, nothing signed, slots free`, async () => {
      const res = await chat(scenario);
      await expectUnsigned(res);
      expect(json<{ error: { code: string } }>(res).error.code).toBe('upstream_too_large');
      // An answer still arriving is cut (its connection closed); one that had fully arrived
      // (undici read it to its end before the sidecar refused it) may stay pooled: it is complete.
      if (scenario === 'too-large-chunked-forever') await upstreamIdle();
      else hostileSockets.clear();
      await slotsFree();
    });
  }
});

describe('encoded bodies', () => {
  for (const scenario of ['gzip-garbage', 'gzip-cut', 'br-garbage-complete']) {
    it(`${scenario}: 502, nothing signed, no crash`, async () => {
      const res = await chat(scenario);
      await expectUnsigned(res);
      await slotsFree();
    });
  }
  it('gzip-stream-cut: the stream breaks off, nothing signed, no crash', async () => {
    const broke = await chat('gzip-stream-cut', { stream: true }).then(
      (r) => r.status >= 500 || !r.body.toString().includes('[DONE]'),
      () => true,
    );
    expect(broke).toBe(true);
    expect((await lookup('chatcmpl-gzs')).status).toBe(404);
    await slotsFree();
  });
});

describe('resources', () => {
  it('an upstream that never answers: 504 within UPSTREAM_TIMEOUT_MS, repeatedly, slots freed', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await chat('never');
      expect(res.status).toBe(504);
    }
    await upstreamIdle();
    await slotsFree();
  });

  it('clients that leave mid-stream: the model server’s connections close, slots free', async () => {
    const before = up.accepted;
    for (let i = 0; i < 10; i++) {
      await leaveAfterFirstChunk(`${sidecar.url}/v1/chat/completions`, {
        model: 'm',
        messages: [],
        stream: true,
        scenario: 'slow-stream',
      });
    }
    await upstreamIdle();
    expect(up.accepted - before).toBeLessThanOrEqual(10);
    await slotsFree();
  });

  it('many concurrent slow answers: at most MAX_CONCURRENT_REQUESTS reach the model server', async () => {
    const before = up.accepted;
    const all = await Promise.all(Array.from({ length: 8 }, () => chat('never')));
    const statuses = all.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 504).length).toBe(2);
    expect(statuses.filter((s) => s === 429 || s === 503).length).toBe(6);
    expect(up.accepted - before).toBeLessThanOrEqual(2);
    await upstreamIdle();
    await slotsFree();
  });

  it('the model server gets the API key; the logs never show it, the prompt or the completion', async () => {
    const last = up.requests.at(-1);
    expect(last?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    const logs = sidecar.logs.join('');
    expect(logs).not.toContain(API_KEY);
    expect(logs).not.toContain(PROMPT);
    expect(logs).not.toContain(COMPLETION);
  });
});

describe('an upstream that does not read the request body', () => {
  let noRead: RawServer;
  let side: TestSidecar;
  beforeAll(async () => {
    noRead = await startRawServer();
    noRead.headOnly = true;
    side = await startTestSidecar({
      UPSTREAM_URL: `http://user:pa%3Ass-secret@127.0.0.1:${noRead.port}`,
      MAX_CONCURRENT_REQUESTS: '1',
      UPSTREAM_TIMEOUT_MS: '600',
      MAX_BODY_BYTES: String(16 * 1024 * 1024),
    });
  });
  afterAll(async () => {
    await side?.close();
    await noRead?.close();
  });

  const big = (scenario: string) =>
    postJson(`${side.url}/v1/chat/completions`, {
      model: 'm',
      messages: [{ role: 'user', content: 'x'.repeat(8 * 1024 * 1024) }],
      scenario,
    });

  it('never answers: 504, the connection closes, the slot is freed', async () => {
    const used = new Set<Socket>();
    noRead.script = (_r, s) => {
      used.add(s);
    };
    for (let i = 0; i < 3; i++) expect((await big('stall')).status).toBe(504);
    expect(used.size).toBe(3);
    // The server paused its sockets: drain them, and each must then see the sidecar's close.
    for (const s of noRead.open) s.resume();
    await waitFor(() => [...used].every((s) => !noRead.open.has(s)), 3000);
  });

  it('answers before reading the body: relayed or a 502, never a crash, slot freed', async () => {
    noRead.script = (req, s) => {
      expect(req.headers.authorization).toBe(`Basic ${Buffer.from('user:pa:ss-secret').toString('base64')}`);
      s.write(ok(answerJson(`chatcmpl-early-${Math.random().toString(36).slice(2)}`)));
    };
    const res = await big('early');
    expect([200, 502]).toContain(res.status);
    // (The early answer's connection is one this test server no longer reads: close it.)
    for (const sock of noRead.open) sock.destroy();
    noRead.headOnly = false;
    await sleep(50);
    noRead.script = (_r, s) =>
      s.write(ok(answerJson(`chatcmpl-after-${Math.random().toString(36).slice(2)}`)));
    const again = await postJson(`${side.url}/v1/chat/completions`, { model: 'm', messages: [] });
    expect(again.status).toBe(200);
    expect(side.logs.join('')).not.toContain('pa:ss-secret');
    expect(side.logs.join('')).not.toContain('pa%3Ass-secret');
  });
});
