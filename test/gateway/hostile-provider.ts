/**
 * A hostile provider between the gateway and a real sidecar: every request is forwarded to the
 * sidecar (answers buffered, trailers dropped), except those `raw` claims, which it answers by
 * writing bytes straight onto the connection (framing lies, stalls, bad status lines).
 */
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { startTestSidecar, startUpstream, type TestSidecar, type TestUpstream } from '../e2e/harness.js';
import { startTestGateway, type TestGateway } from './harness.js';

export interface Hostile {
  url: string;
  /** Answers a request itself by writing to its socket; false: forward it. */
  raw: (req: IncomingMessage, body: Buffer, socket: Socket) => boolean;
  /** Connections the gateway opened that are still open. */
  open: Set<Socket>;
  /** Requests seen, by path. */
  seen: string[];
  close(): Promise<void>;
}

export const startHostile = (target: string): Promise<Hostile> =>
  new Promise((resolve) => {
    const open = new Set<Socket>();
    const hostile: Omit<Hostile, 'url' | 'close'> = { raw: () => false, open, seen: [] };
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        hostile.seen.push(req.url ?? '');
        if (hostile.raw(req, body, req.socket)) return;
        const headers = { ...req.headers };
        delete headers.host;
        const upstream = request(`${target}${req.url}`, { method: req.method, headers }, (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (c: Buffer) => parts.push(c));
          answer.on('end', () => {
            const out = { ...answer.headers };
            for (const h of ['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'trailer'])
              delete out[h];
            const b = Buffer.concat(parts);
            res.writeHead(answer.statusCode ?? 502, { ...out, 'content-length': String(b.length) });
            res.end(b);
          });
        });
        upstream.on('error', () => {
          res.writeHead(502);
          res.end();
        });
        upstream.end(body);
      });
    });
    server.on('connection', (s: Socket) => {
      open.add(s);
      s.on('close', () => open.delete(s));
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(
        Object.assign(hostile, {
          url: `http://127.0.0.1:${port}`,
          close: () =>
            new Promise<void>((done) => {
              for (const s of open) s.destroy();
              server.closeAllConnections();
              server.close(() => done());
            }),
        }),
      );
    });
  });

/** The user field of a chat request (the test's case name), if readable. */
export const caseOf = (body: Buffer): string => {
  try {
    return (JSON.parse(body.toString()) as { user?: string }).user ?? '';
  } catch {
    return '';
  }
};

/** A vLLM stand-in's chat answer. */
export const chatAnswer = (id: string): string =>
  JSON.stringify({
    id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });

/** The hostile provider's whole test stack: a vLLM stand-in, a real sidecar over it, the hostile provider in front, a gateway to that. */
export interface HostileStack {
  upstream: TestUpstream;
  sidecar: TestSidecar;
  hostile: Hostile;
  gateway: TestGateway;
  close(): Promise<void>;
}

/** Starts the stack: honest chat answers unless `hostile.raw` claims the request. */
export const startHostileStack = async (
  gatewayOptions: Parameters<typeof startTestGateway>[1] = {},
): Promise<HostileStack> => {
  const upstream = await startUpstream((_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(chatAnswer(`chatcmpl-${Math.random().toString(36).slice(2)}`));
  });
  const sidecar = await startTestSidecar({ UPSTREAM_URL: upstream.url });
  const hostile = await startHostile(sidecar.url);
  const gateway = await startTestGateway(hostile.url, gatewayOptions);
  return {
    upstream,
    sidecar,
    hostile,
    gateway,
    close: async () => {
      await gateway.close();
      await hostile.close();
      await sidecar.close();
      await upstream.close();
    },
  };
};
