import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface AgentRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type AgentHandler = (req: AgentRequest, res: ServerResponse) => void;

export interface FakeAgent {
  socketPath: string;
  requests: AgentRequest[];
  close(): Promise<void>;
}

/** A fresh temp dir for a unix socket path (kept short: sun_path is ~108 bytes). */
export const tempSocketPath = (name: string): { path: string; cleanup: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), 'teeml-'));
  return { path: join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

/**
 * A real HTTP/1.1 server on a unix socket in a temp dir, standing in for the dstack guest agent.
 * The handler sees the exact request bytes.
 */
export const startFakeAgent = async (handler: AgentHandler): Promise<FakeAgent> => {
  const { path, cleanup } = tempSocketPath('dstack.sock');
  const requests: AgentRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(request);
      handler(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    socketPath: path,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          cleanup();
          resolve();
        });
      }),
  };
};

/** Answers 200 with a JSON body given as bytes or as a value. */
export const sendJson = (res: ServerResponse, body: Buffer | string | object, status = 200): void => {
  const bytes = Buffer.isBuffer(body)
    ? body
    : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length) });
  res.end(bytes);
};
