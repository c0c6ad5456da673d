/**
 * A call aborted while its connection to the model server is still being opened (here: an https
 * model server that accepts TCP and never answers the TLS handshake). The call settles at once (504)
 * and frees its MAX_CONCURRENT_REQUESTS slot, but undici keeps the attempt until it connects or
 * times out (10 s): the pool is capped at MAX_CONCURRENT_REQUESTS connections, so attempts never
 * outnumber the slots however many clients send and leave (before the cap: one per aborted call).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestSidecar, type TestSidecar } from '../e2e/harness.js';
import { type RawServer, sleep, startRawServer } from './raw-server.js';

let stalling: Server;
const open = new Set<Socket>();
let sidecar: TestSidecar;

beforeAll(async () => {
  // Takes every connection and never answers its TLS ClientHello: the handshake never ends.
  stalling = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
  const address = stalling.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  sidecar = await startTestSidecar({
    UPSTREAM_URL: `https://127.0.0.1:${port}`,
    MAX_CONCURRENT_REQUESTS: '2',
    UPSTREAM_TIMEOUT_MS: '200',
  });
}, 30_000);

afterAll(async () => {
  await sidecar?.close();
  for (const socket of open) socket.destroy();
  stalling?.close();
});

describe('calls that time out while their connection is still opening', () => {
  it('leave no more connection attempts than MAX_CONCURRENT_REQUESTS', async () => {
    const statuses: number[] = [];
    for (let round = 0; round < 10; round++) {
      const batch = await Promise.all([
        postJson(`${sidecar.url}/v1/chat/completions`, { model: 'm', messages: [] }),
        postJson(`${sidecar.url}/v1/chat/completions`, { model: 'm', messages: [] }),
      ]);
      statuses.push(...batch.map((r) => r.status));
    }
    await sleep(100);
    expect([...new Set(statuses)]).toEqual([504]);
    expect(open.size).toBeGreaterThan(0);
    expect(open.size).toBeLessThanOrEqual(2);
  }, 30_000);
});

describe('calls aborted once their request is out', () => {
  let up: RawServer;
  let side: TestSidecar;
  beforeAll(async () => {
    up = await startRawServer(() => undefined);
    side = await startTestSidecar({
      UPSTREAM_URL: up.url,
      MAX_CONCURRENT_REQUESTS: '8',
      UPSTREAM_TIMEOUT_MS: '200',
    });
  });
  afterAll(async () => {
    await side?.close();
    await up?.close();
  });

  it('8 concurrent calls that time out: each aborted call costs at most one reopened connection', async () => {
    const all = await Promise.all(
      Array.from({ length: 8 }, () =>
        postJson(`${side.url}/v1/chat/completions`, { model: 'm', messages: [] }),
      ),
    );
    expect(all.every((r) => r.status === 504)).toBe(true);
    await sleep(300);
    // Each aborted request's connection is closed; undici may open one in its place for the pool
    // (idle, closed after its keep-alive timeout): bounded, never a request sent twice.
    expect(up.requests.length).toBe(8);
    expect(up.accepted).toBeGreaterThanOrEqual(8);
    expect(up.accepted).toBeLessThanOrEqual(16);
  });
});
