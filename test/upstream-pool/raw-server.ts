/**
 * A raw-socket HTTP/1.1 server for the tests of hostile peers: it parses just enough of each request (head, and a
 * Content-Length body) and hands it with its socket to `script`, which writes whatever bytes it likes.
 * It counts every connection it accepted and those still open.
 */

import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** 0-based index of the connection it came on, and of the request on that connection. */
  conn: number;
  nth: number;
}

export type Script = (req: RawRequest, socket: Socket) => void;

export interface RawServer {
  url: string;
  port: number;
  server: Server;
  script: Script;
  /** When true, the request body is not read (the script is called after the head). */
  headOnly: boolean;
  /** When true, nothing is read from new connections at all. */
  noRead: boolean;
  accepted: number;
  open: Set<Socket>;
  requests: RawRequest[];
  close(): Promise<void>;
}

export const startRawServer = (script: Script = () => undefined): Promise<RawServer> =>
  new Promise((resolve) => {
    const open = new Set<Socket>();
    const state = {
      script,
      headOnly: false,
      noRead: false,
      accepted: 0,
      open,
      requests: [] as RawRequest[],
    };
    const server = createServer((socket) => {
      const conn = state.accepted++;
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
      if (state.noRead) {
        socket.pause();
        return;
      }
      let buf = Buffer.alloc(0);
      let nth = 0;
      let pending: { head: RawRequest; need: number } | undefined;
      const pump = (): void => {
        for (;;) {
          if (pending === undefined) {
            const end = buf.indexOf('\r\n\r\n');
            if (end === -1) return;
            const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
            buf = buf.subarray(end + 4);
            const [method = '', path = ''] = (lines[0] ?? '').split(' ');
            const headers: Record<string, string> = {};
            for (const l of lines.slice(1)) {
              const i = l.indexOf(':');
              headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
            }
            const need = Number(headers['content-length'] ?? '0');
            pending = { head: { method, path, headers, body: Buffer.alloc(0), conn, nth: nth++ }, need };
            if (state.headOnly) {
              const head = pending.head;
              pending = undefined;
              state.requests.push(head);
              socket.removeListener('data', onData);
              socket.pause();
              state.script(head, socket);
              return;
            }
          }
          if (buf.length < pending.need) return;
          const req = pending.head;
          req.body = buf.subarray(0, pending.need);
          buf = buf.subarray(pending.need);
          pending = undefined;
          state.requests.push(req);
          state.script(req, socket);
        }
      };
      const onData = (c: Buffer): void => {
        buf = Buffer.concat([buf, c]);
        pump();
      };
      socket.on('data', onData);
    });
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve(
        Object.assign(state, {
          url: `http://127.0.0.1:${port}`,
          port,
          server,
          close: () =>
            new Promise<void>((done) => {
              for (const s of open) s.destroy();
              server.close(() => done());
            }),
        }) as RawServer,
      );
    });
  });

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> => {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await sleep(10);
  }
};
