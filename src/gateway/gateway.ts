import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SidecarError } from '../errors/index.js';
import type { Attestation, Attestor } from './attestor.js';
import { BrowserGuard } from './browser-guard.js';
import { createEngine, type EngineOptions } from './engine.js';
import type { Circuit } from './gateway-state.js';
import type { ReceiptLog } from './receipts.js';
import { gatewayRoutes } from './routes.js';
import type { GatewayCounters } from './status-page.js';

export interface GatewayOptions extends EngineOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** More Host names the gateway answers to besides loopback and its listen address (`--allowed-host`). */
  allowedHosts?: readonly string[];
  /** Web origins a browser may call the gateway from (`--allow-origin`); none by default. */
  allowOrigins?: readonly string[];
  /** Bearer token the gateway requires on /v1/* (required off loopback; the CLI enforces it). */
  authToken?: string;
}

export interface Gateway {
  url: string;
  server: Server;
  attestor: Attestor;
  counters: Readonly<GatewayCounters>;
  receipts: ReceiptLog;
  /** Whether new requests are refused after a failed answer, and why. */
  circuit(): Circuit;
  /** Runs an attestation now (as the timer does). */
  attestNow(): Promise<Attestation>;
  /** Since when the provider has not answered (report or request), if it does not now. */
  unreachableSince(): number | undefined;
  /** When stream events reach the user, in words, for the trusted attestation (stream-release.ts). */
  streamRelease(): string;
  close(): Promise<void>;
}

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '::1' || host.startsWith('127.');

/**
 * The gateway: a local OpenAI endpoint that attests its provider before trusting it, keeps
 * attesting, and verifies every signed answer against the attested key before the user's tools see
 * it (issue 14). It is the engine (engine.ts: the same one `teeml-sidecar/client` hands out as a
 * `fetch`) behind an HTTP listener (routes.ts: the browser guard, the bearer token, the status page
 * and /health, then `engine.fetch`).
 */
export const startGateway = async (options: GatewayOptions): Promise<Gateway> => {
  const engine = createEngine(options);
  const server: Server = createServer(
    gatewayRoutes({
      engine,
      authToken: options.authToken,
      guard: browserGuardOf((): Server => server, options),
    }),
  );
  try {
    await listen(server, options);
  } catch (error) {
    await engine.close();
    throw error;
  }
  const url = urlOf(server);
  await engine.start();
  return {
    url,
    server,
    attestor: engine.attestor,
    counters: engine.counters,
    receipts: engine.receipts,
    circuit: engine.circuit,
    attestNow: engine.attestNow,
    unreachableSince: engine.unreachableSince,
    streamRelease: engine.streamRelease,
    close: async () => {
      server.closeAllConnections();
      await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), engine.close()]);
    },
  };
};

/** The browser guard for the address the server listens on (known once it listens). */
const browserGuardOf = (server: () => Server, options: GatewayOptions): BrowserGuard => {
  // Read once the server listens (requests come only then), not per request: the listening
  // address does not change, and asking Node for it showed up in the gateway's profile.
  let known: AddressInfo | undefined;
  const address = (): AddressInfo => {
    known ??= server().address() as AddressInfo;
    return known;
  };
  return new BrowserGuard({
    port: () => address().port,
    listenAddress: () => address().address,
    ...(options.allowedHosts === undefined ? {} : { allowedHosts: options.allowedHosts }),
    ...(options.allowOrigins === undefined ? {} : { allowOrigins: options.allowOrigins }),
  });
};

const urlOf = (server: Server): string => {
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
};

/** Listens, and refuses to serve off loopback without a token: the gateway spends the user's key. */
const listen = async (server: Server, options: GatewayOptions): Promise<void> => {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8090, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  if (options.authToken === undefined && !isLoopback(address.address)) {
    server.close();
    throw new SidecarError('the gateway needs --auth-token to listen off loopback', {
      status: 500,
      code: 'auth_token_required',
    });
  }
};
