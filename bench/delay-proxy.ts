/**
 * A TCP proxy that adds RTT/2 to every byte in each direction, for the bench's wide-area rows: what
 * a user in Europe sees from a provider in the US east is ~50 ms RTT. Bytes keep their order (every
 * chunk waits the same time, and timers with one delay fire in the order they were set); TLS passes
 * through untouched, so the client still sees the sidecar's own certificate. Bench only.
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface DelayProxy {
  port: number;
  close(): Promise<void>;
}

const relay = (from: Socket, to: Socket, oneWayMs: number): void => {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, oneWayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), oneWayMs));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), oneWayMs + 1));
};

export const startDelayProxy = (targetPort: number, rttMs: number): Promise<DelayProxy> =>
  new Promise((resolve) => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((client) => {
      client.setNoDelay(true);
      const upstream = connect(targetPort, '127.0.0.1');
      upstream.setNoDelay(true);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      }
      relay(client, upstream, rttMs / 2);
      relay(upstream, client, rttMs / 2);
    });
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
