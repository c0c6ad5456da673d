import { appendFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import {
  DirectLink,
  type Gateway,
  type GatewayOptions,
  type Policy,
  parsePolicy,
  startGateway,
} from '../../src/gateway/index.js';
import { createLogger } from '../../src/log/index.js';

/** A policy for the simulated test sidecar: simulation allowed, NRAS not consulted. */
export const testPolicy = (extra: Record<string, unknown> = {}): Policy =>
  parsePolicy(JSON.stringify({ allowSimulated: true, offline: true, ...extra }));

export interface TestGateway extends Gateway {
  logs: string[];
}

/**
 * Starts a real gateway on a free loopback port in front of `provider`. Its log lines are kept (tests
 * assert the check id is logged) and go to the suite-wide secrets grep like the sidecar's.
 */
export const startTestGateway = async (
  provider: string,
  options: Partial<GatewayOptions> & { headers?: Record<string, string>; apiKey?: string } = {},
): Promise<TestGateway> => {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = chunk.toString('utf8');
      logs.push(line);
      const dir = process.env.TEEML_TEST_LOG_DIR;
      if (dir !== undefined) appendFileSync(`${dir}/${process.pid}.log`, line);
      done();
    },
  });
  const { headers, apiKey, ...rest } = options;
  const gateway = await startGateway({
    link: new DirectLink({
      provider,
      ...(headers === undefined ? {} : { headers }),
      ...(apiKey === undefined ? {} : { apiKey }),
    }),
    policy: testPolicy(),
    logger: createLogger('debug', sink),
    host: '127.0.0.1',
    port: 0,
    ...rest,
  });
  return Object.assign(gateway, { logs });
};

export interface Exchange {
  method: string;
  path: string;
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type Mutation = (exchange: Exchange) => Exchange | undefined;

export interface Mitm {
  url: string;
  /** Rewrites the request path before forwarding (e.g. another nonce), or sends it to another target. */
  route: (path: string) => { target: string; path: string };
  /** Changes request headers on their way to the provider (e.g. swaps the E2EE client key). */
  rewriteHeaders: (path: string, headers: IncomingMessage['headers']) => IncomingMessage['headers'];
  /** Changes a request body on its way to the provider (a broker that re-serializes). */
  rewriteRequest: (path: string, body: Buffer) => Buffer;
  /** Changes an answer on its way back; undefined leaves it. */
  mutate: Mutation;
  /** Every request forwarded, with its exact body and the headers it came with. */
  seen: Array<{ method: string; path: string; body: Buffer; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

/**
 * A man in the middle on loopback between the gateway and the sidecar: forwards every request,
 * buffers the answer, lets the test change it, and sends it on. By default it changes nothing.
 */
export const startMitm = (target: string): Promise<Mitm> =>
  new Promise((resolve) => {
    const mitm: Omit<Mitm, 'url' | 'close'> = {
      route: (path) => ({ target, path }),
      rewriteRequest: (_path, body) => body,
      rewriteHeaders: (_path, headers) => headers,
      mutate: () => undefined,
      seen: [],
    };
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const method = req.method ?? 'GET';
        const { target: to, path } = mitm.route(req.url ?? '/');
        const body = mitm.rewriteRequest(path, Buffer.concat(chunks));
        mitm.seen.push({ method, path, body, headers: req.headers });
        const headers = mitm.rewriteHeaders(path, { ...req.headers });
        delete headers.host;
        delete headers['content-length'];
        if (body.length > 0) headers['content-length'] = String(body.length);
        const upstream = request(`${to}${path}`, { method, headers }, (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (c: Buffer) => parts.push(c));
          answer.on('end', () => {
            const original: Exchange = {
              method,
              path,
              status: answer.statusCode ?? 502,
              headers: answer.headers,
              body: Buffer.concat(parts),
            };
            const changed = mitm.mutate(original) ?? original;
            const out = { ...changed.headers };
            delete out['content-length'];
            delete out['transfer-encoding'];
            delete out.connection;
            delete out['keep-alive'];
            // A buffering proxy: it drops the answer's trailers (the signature record), and with
            // them the header announcing them.
            delete out.trailer;
            res.writeHead(changed.status, { ...out, 'content-length': String(changed.body.length) });
            res.end(changed.body);
          });
        });
        upstream.on('error', () => {
          res.writeHead(502);
          res.end();
        });
        upstream.end(body);
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(
        Object.assign(mitm, {
          url: `http://127.0.0.1:${port}`,
          close: () =>
            new Promise<void>((done) => {
              server.closeAllConnections();
              server.close(() => done());
            }),
        }),
      );
    });
  });
