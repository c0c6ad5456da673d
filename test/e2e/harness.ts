import { appendFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log/index.js';
import { type Sidecar, type SidecarOverrides, startSidecar } from '../../src/server/index.js';

/** Every log line written by sidecars in this test process (the secrets test greps them). */
export const capturedLogs: string[] = [];

export interface TestSidecar extends Sidecar {
  logs: string[];
}

/** Starts the real sidecar on a free loopback port with the given environment on top of test defaults. */
export const startTestSidecar = async (
  env: Record<string, string> = {},
  overrides: SidecarOverrides = {},
): Promise<TestSidecar> => {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'debug', ...env });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = chunk.toString('utf8');
      logs.push(line);
      capturedLogs.push(line);
      // Every line of the whole suite also goes to one file per worker; test/global-setup.ts greps
      // them all for secrets, prompts and completions when the run ends.
      const dir = process.env.TEEML_TEST_LOG_DIR;
      if (dir !== undefined) appendFileSync(`${dir}/${process.pid}.log`, line);
      done();
    },
  });
  const sidecar = await startSidecar(config, createLogger(config.LOG_LEVEL, sink), overrides);
  return Object.assign(sidecar, { logs });
};

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

export interface TestUpstream {
  url: string;
  server: Server;
  /** Each request as received, and the body bytes the handler wrote back (`sent`, in order). */
  requests: Array<{
    method: string;
    url: string;
    headers: IncomingMessage['headers'];
    body: Buffer;
    sent: Buffer[];
  }>;
  close(): Promise<void>;
}

/**
 * Keeps a copy of every body chunk a handler passes to `res.write` / `res.end`, so a test can
 * compare what a client received with the exact bytes the upstream sent.
 */
const recordWrites = (res: ServerResponse): Buffer[] => {
  const sent: Buffer[] = [];
  const keep = (chunk: unknown): void => {
    if (typeof chunk === 'string' || chunk instanceof Uint8Array) sent.push(Buffer.from(chunk));
  };
  const write = res.write as (...args: unknown[]) => boolean;
  const end = res.end as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    keep(chunk);
    return write.call(res, chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    keep(chunk);
    return end.call(res, chunk, ...rest);
  }) as ServerResponse['end'];
  return sent;
};

/** A real HTTP server standing in for vLLM; `handler` scripts its behaviour per test. */
export const startUpstream = (handler: Handler): Promise<TestUpstream> =>
  new Promise((resolve) => {
    const requests: TestUpstream['requests'] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      const sent = recordWrites(res);
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, sent });
        handler(req, body, res);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        server,
        requests,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });

export interface RawResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** An HTTP request that returns the exact bytes received (no decoding, no parsing). */
export const rawRequest = (
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });

export const postJson = (
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> => {
  const bytes = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return rawRequest(url, {
    method: 'POST',
    body: bytes,
    headers: { 'content-type': 'application/json', ...headers },
  });
};

/**
 * POSTs `body` as JSON and leaves (destroys the request) once the first answer bytes arrived: a
 * client that goes away mid-answer. Rejects when no byte comes within 5 s or the request fails first.
 */
export const leaveAfterFirstChunk = (url: string, body: unknown): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      res.once('data', () => {
        clearTimeout(timer);
        req.destroy();
        resolve();
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no answer bytes within 5 s'));
    }, 5000);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(JSON.stringify(body));
  });

export const json = <T = Record<string, unknown>>(res: RawResponse): T =>
  JSON.parse(res.body.toString('utf8')) as T;

/** Writes SSE events from an upstream one by one, then ends (or not). */
export const writeSse = (res: ServerResponse, events: string[], end = true): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const e of events) res.write(e);
  if (end) res.end();
};

/**
 * A real sidecar in front of a scriptable upstream for a whole test file: both started before its
 * tests and closed after them. `env` is added to the sidecar's (UPSTREAM_URL is the upstream's).
 */
export const sidecarOverUpstream = (
  handler: Handler,
  env: Record<string, string> = {},
): { readonly sidecar: TestSidecar; readonly upstream: TestUpstream } => {
  const stack = {} as { sidecar: TestSidecar; upstream: TestUpstream };
  beforeAll(async () => {
    stack.upstream = await startUpstream(handler);
    stack.sidecar = await startTestSidecar({ UPSTREAM_URL: stack.upstream.url, ...env });
  });
  afterAll(async () => {
    await stack.sidecar?.close();
    await stack.upstream?.close();
  });
  return stack;
};
