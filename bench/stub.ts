/**
 * The stub upstream: an OpenAI-shaped server that costs as little as possible, so what a proxy in
 * front of it adds is what the bench sees. Bodies are built once at start.
 *
 * POST …?case=small            ~300-byte JSON completion
 * POST …?case=large            ~100 KB JSON completion
 * POST …?case=stream&chunks=N  SSE stream of N chunks then [DONE], written as fast as the socket takes
 * POST …?case=hold&chunks=N&every=MS  SSE stream, one chunk every MS ms (held-open streams)
 * `&id=X` sets the response id (distinct ids for the signature store); otherwise a fixed id.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const completion = (id: string, content: string): string =>
  JSON.stringify({
    id,
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'bench-model',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 12, completion_tokens: 40, total_tokens: 52 },
  });

/**
 * Every response gets its own id, as vLLM's do (`chatcmpl-` and a counter, fixed width). With one
 * fixed id the sidecar would find it taken from the second response on (ids are never reused) and
 * rewrite every answer with a fresh one: a path production does not take on every request.
 */
const ID_PREFIX = 'chatcmpl-bench';
const ID_TEMPLATE = `${ID_PREFIX}${'0'.repeat(19)}`;
let counter = 0;
const nextId = (): string => `${ID_PREFIX}${String(++counter).padStart(19, '0')}`;
/** A fixed body with the id's bytes rewritten per response (a copy: the socket may still hold the last). */
const withFreshId = (template: Buffer, at: number): Buffer => {
  const body = Buffer.from(template);
  body.write(nextId(), at, 'latin1');
  return body;
};
const small = Buffer.from(completion(ID_TEMPLATE, 'The quick brown fox jumps over the lazy dog. '.repeat(3)));
const large = Buffer.from(completion(ID_TEMPLATE, 'x'.repeat(100 * 1024)));
const idAt = small.indexOf(ID_TEMPLATE);
const chunk = (id: string, i: number): string =>
  `data: {"id":"${id}","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","choices":[{"index":0,"delta":{"content":"tok${i} "},"finish_reason":null}]}\n\n`;
const DONE = 'data: [DONE]\n\n';
const streamCache = new Map<number, Buffer[]>();
const CHUNK_ID_AT = chunk(ID_TEMPLATE, 0).indexOf(ID_TEMPLATE);
/** N chunks and [DONE], all carrying one fresh id. */
const freshStream = (n: number): Buffer[] => {
  let parts = streamCache.get(n);
  if (parts === undefined) {
    parts = Array.from({ length: n }, (_, i) => Buffer.from(chunk(ID_TEMPLATE, i)));
    streamCache.set(n, parts);
  }
  const id = nextId();
  const out = parts.map((p) => withFreshIdAs(p, CHUNK_ID_AT, id));
  out.push(Buffer.from(DONE));
  return out;
};
const withFreshIdAs = (template: Buffer, at: number, id: string): Buffer => {
  const body = Buffer.from(template);
  body.write(id, at, 'latin1');
  return body;
};

const server = createServer((req, res) => {
  // Drain the request body; the stub does not look at it.
  req.resume();
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://stub');
    const kase = url.searchParams.get('case') ?? 'small';
    const id = url.searchParams.get('id');
    const chunks = Number(url.searchParams.get('chunks') ?? '500');
    if (kase === 'small' || kase === 'large') {
      const body =
        id === null ? withFreshId(kase === 'small' ? small : large, idAt) : Buffer.from(completion(id, 'ok'));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    if (kase === 'stream') {
      // One write per chunk, as vLLM does; the socket coalesces what it can.
      for (const part of freshStream(chunks)) res.write(part);
      res.end();
      return;
    }
    const every = Number(url.searchParams.get('every') ?? '100');
    let i = 0;
    const streamId = id ?? nextId();
    const timer = setInterval(() => {
      if (i < chunks) {
        res.write(chunk(streamId, i++));
        return;
      }
      clearInterval(timer);
      res.end(DONE);
    }, every);
    res.on('close', () => clearInterval(timer));
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
