import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A tiny OpenAI-compatible model server for machines with no vLLM: deterministic text, JSON and SSE,
 * shaped like vLLM's answers (ids, usage, `[DONE]`, the usage chunk with `choices: []` when
 * `stream_options.include_usage` is set). Every answer says it comes from a demo.
 */
export const DEMO_MODEL = 'teeml-demo';
const FINGERPRINT = 'teeml-sidecar-demo-upstream';
const MAX_BODY = 1024 * 1024;

interface DemoRequest {
  model?: unknown;
  messages?: unknown;
  prompt?: unknown;
  input?: unknown;
  stream?: unknown;
  max_tokens?: unknown;
  stream_options?: { include_usage?: unknown };
  tools?: unknown;
  tool_choice?: unknown;
}

/**
 * The word by which a demo answer shows what the model received: `heard:` and the first 8 bytes of
 * sha256 over the last message's text (chat) or the prompt (completions), hex. A client that sent
 * that text end-to-end encrypted can check, once it decrypts the answer, that the model got the
 * plaintext and nothing else.
 */
export const demoHeard = (text: string): string =>
  `heard:${createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16)}`;

const lastText = (body: DemoRequest): string => {
  if (typeof body.prompt === 'string') return body.prompt;
  if (Array.isArray(body.messages)) {
    const last = body.messages.at(-1) as { content?: unknown } | undefined;
    if (typeof last?.content === 'string') return last.content;
  }
  return '';
};

/**
 * The demo's tool call, made only when the request forces one (`tool_choice: "required"` or a named
 * function) and offers tools: it calls the named (else the first) function with `{"echo": <the last
 * message's text>}` as arguments, so a client can see exactly what a tool would receive.
 */
const demoToolCall = (body: DemoRequest): { name: string; arguments: string } | undefined => {
  if (!Array.isArray(body.tools) || body.tools.length === 0) return undefined;
  const choice = body.tool_choice as { function?: { name?: unknown } } | string | undefined;
  let name: unknown;
  if (typeof choice === 'object' && choice !== null) name = choice.function?.name;
  else if (choice === 'required') name = (body.tools[0] as { function?: { name?: unknown } }).function?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  return { name, arguments: JSON.stringify({ echo: lastText(body) }) };
};

/** Deterministic words derived from the request, so the same request gives the same answer. */
const demoWords = (body: Uint8Array, heard: string, count: number): string[] => {
  const seed = createHash('sha256').update(body).digest();
  const vocab = [
    'verified',
    'inference',
    'inside',
    'a',
    'trusted',
    'domain',
    'signed',
    'by',
    'the',
    'sidecar',
  ];
  const words = ['[demo', 'upstream]', heard];
  for (let i = 0; words.length < count; i++)
    words.push(vocab[(seed[i % seed.length] ?? 0) % vocab.length] ?? 'demo');
  return words;
};

/** Random, as vLLM's are: two identical requests in one millisecond must not share an id. */
const idFor = (prefix: string): string => `${prefix}-${randomBytes(12).toString('hex')}`;

const send = (res: ServerResponse, status: number, value: unknown): void => {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

/** OpenAI's error `code` is a string or null, never the HTTP status. */
const DEMO_ERROR_CODES: Record<number, string> = {
  400: 'invalid_request',
  404: 'not_found',
  413: 'request_too_large',
};

const error = (res: ServerResponse, status: number, message: string): void =>
  send(res, status, {
    error: { message, type: 'invalid_request_error', param: null, code: DEMO_ERROR_CODES[status] ?? null },
  });

const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer): void => {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (req.method === 'GET' && path === '/v1/models') {
    send(res, 200, {
      object: 'list',
      data: [{ id: DEMO_MODEL, object: 'model', created: 0, owned_by: FINGERPRINT, max_model_len: 4096 }],
    });
    return;
  }
  if (req.method !== 'POST') {
    error(res, 404, 'not found');
    return;
  }
  let body: DemoRequest;
  try {
    body = JSON.parse(raw.toString('utf8')) as DemoRequest;
  } catch {
    error(res, 400, 'invalid JSON');
    return;
  }
  const model = typeof body.model === 'string' ? body.model : DEMO_MODEL;
  const maxTokens =
    typeof body.max_tokens === 'number' && body.max_tokens > 0 ? Math.min(body.max_tokens, 256) : 16;
  const words = demoWords(raw, demoHeard(lastText(body)), Math.max(3, maxTokens));
  const created = Math.floor(Date.now() / 1000);
  const usage = {
    prompt_tokens: Math.ceil(raw.length / 4),
    completion_tokens: words.length,
    total_tokens: 0,
  };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;

  if (path === '/v1/embeddings') {
    const vector = Array.from(createHash('sha256').update(raw).digest())
      .slice(0, 8)
      .map((b) => b / 255);
    send(res, 200, {
      id: idFor('embd'),
      object: 'list',
      model,
      data: [{ object: 'embedding', index: 0, embedding: vector }],
      usage: { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens },
    });
    return;
  }
  const chat = path === '/v1/chat/completions';
  if (!chat && path !== '/v1/completions') {
    error(res, 404, 'not found');
    return;
  }
  if (chat && !Array.isArray(body.messages)) {
    error(res, 400, '"messages" must be an array');
    return;
  }
  const id = idFor(chat ? 'chatcmpl' : 'cmpl');
  const object = chat ? 'chat.completion' : 'text_completion';

  const call = chat ? demoToolCall(body) : undefined;
  if (call !== undefined) {
    sendToolCall(res, body.stream === true, call, { id, created, model });
    return;
  }
  if (body.stream !== true) {
    const text = words.join(' ');
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: 'length' }
      : { index: 0, text, logprobs: null, finish_reason: 'length' };
    send(res, 200, { id, object, created, model, system_fingerprint: FINGERPRINT, choices: [choice], usage });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const chunkObject = chat ? 'chat.completion.chunk' : 'text_completion';
  const event = (choices: unknown[], extra: Record<string, unknown> = {}): string =>
    `data: ${JSON.stringify({ id, object: chunkObject, created, model, system_fingerprint: FINGERPRINT, choices, ...extra })}\n\n`;
  const parts: string[] = [];
  if (chat)
    parts.push(
      event([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    );
  words.forEach((word, i) => {
    const piece = i === 0 ? word : ` ${word}`;
    const last = i === words.length - 1 ? 'length' : null;
    parts.push(
      event([
        chat
          ? { index: 0, delta: { content: piece }, logprobs: null, finish_reason: last }
          : { index: 0, text: piece, logprobs: null, finish_reason: last },
      ]),
    );
  });
  if (body.stream_options?.include_usage === true) parts.push(event([], { usage }));
  parts.push('data: [DONE]\n\n');
  let i = 0;
  const next = (): void => {
    if (res.destroyed) return;
    const part = parts[i++];
    if (part === undefined) {
      res.end();
      return;
    }
    res.write(part);
    setImmediate(next);
  };
  next();
};

/** A tool call answer, JSON or SSE (name first, arguments in two pieces, as vLLM streams them). */
const sendToolCall = (
  res: ServerResponse,
  stream: boolean,
  call: { name: string; arguments: string },
  meta: { id: string; created: number; model: string },
): void => {
  const callId = idFor('call');
  const base = { ...meta, system_fingerprint: FINGERPRINT };
  if (!stream) {
    const message = {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: callId, type: 'function', function: call }],
    };
    send(res, 200, {
      ...base,
      object: 'chat.completion',
      choices: [{ index: 0, message, logprobs: null, finish_reason: 'tool_calls' }],
    });
    return;
  }
  const half = Math.ceil(call.arguments.length / 2);
  const deltas = [
    {
      role: 'assistant',
      tool_calls: [{ index: 0, id: callId, type: 'function', function: { name: call.name, arguments: '' } }],
    },
    { tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(0, half) } }] },
    { tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(half) } }] },
  ];
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  deltas.forEach((delta, i) => {
    const finish = i === deltas.length - 1 ? 'tool_calls' : null;
    const chunk = {
      ...base,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  });
  res.end('data: [DONE]\n\n');
};

export interface DemoUpstream {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Starts the demo upstream on loopback (port 0 = any free port). */
export const startDemoUpstream = (port = 0): Promise<DemoUpstream> =>
  new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      let total = 0;
      req.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total <= MAX_BODY) chunks.push(chunk);
      });
      req.on('end', () => {
        if (total > MAX_BODY) {
          error(res, 413, 'body too large');
          return;
        }
        handle(req, res, Buffer.concat(chunks));
      });
    });
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${bound}`,
        server,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
