import type { X509Certificate } from 'node:crypto';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Agent, type AgentOptions, request } from 'node:https';
import { type Duplex, Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { nullBody, toHex } from '../bytes/index.js';
import { spkiSha256 } from './identity.js';

export interface PeerCertificate {
  certificate: X509Certificate;
  spkiSha256: Uint8Array;
  /** `spkiSha256` as lowercase hex (compare with a report's `tls_cert_fingerprint`). */
  fingerprint: string;
}

export interface PeerResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** The certificate presented on the connection that carried this response. */
  peer: PeerCertificate;
  /** What came after the last body byte (docs/protocol.md, "The signature in a trailer"). */
  trailers: IncomingHttpHeaders;
}

export interface TlsPeerChannelOptions {
  /** Largest body read. */
  maxBytes?: number;
  /** Deadline per request (connect + whole answer), ms. */
  timeoutMs?: number;
  /** Extra https.Agent options (tests: `lookup`, `servername`). */
  agent?: AgentOptions;
}

const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 120_000;

const peerOf = (socket: TLSSocket): PeerCertificate | undefined => {
  const certificate = socket.getPeerX509Certificate();
  if (certificate === undefined) return undefined;
  const spki = spkiSha256(certificate);
  return { certificate, spkiSha256: spki, fingerprint: toHex(spki) };
};

/**
 * Each connection's certificate, read at the end of its handshake: Node no longer exposes the peer
 * certificate of a keep-alive socket once its first response is done.
 */
const peers = new WeakMap<object, PeerCertificate>();
const peerOfSocket = (socket: TLSSocket): PeerCertificate | undefined => peers.get(socket) ?? peerOf(socket);

/** The message each `fetch` answer came from: its trailers are read once its body was read whole. */
const messages = new WeakMap<Response, IncomingMessage>();

export class PeerCertificateError extends Error {
  override readonly name = 'PeerCertificateError';
}

/**
 * HTTPS to one provider over **one** TLS connection at a time (an https.Agent with keep-alive and
 * maxSockets 1), exposing the certificate of the connection each answer came on. A verifier fetches
 * the attestation report with it and compares the report's `tls_cert_fingerprint` with the peer
 * certificate of that same connection: two connections could reach two replicas behind a load
 * balancer (NEAR's tls_verifier.ts reads the certificate from the response's socket for that
 * reason).
 *
 * CA validation is off: trust comes from the attestation, not a CA (self-signed certificates are
 * expected). Once `pin`ned to the attested fingerprint, a connection is handed to a request only
 * after its handshake shows that key, so no request bytes (a prompt) go to any other peer.
 */
export class TlsPeerChannel {
  private readonly agent: Agent;
  private pinned: string | undefined;
  private readonly maxBytes: number;
  private readonly timeoutMs: number;

  constructor(options: TlsPeerChannelOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const channel = this;
    class OneConnectionAgent extends Agent {
      override createConnection(
        opts: Parameters<Agent['createConnection']>[0],
        oncreate?: (err: Error | null, socket: Duplex) => void,
      ): Duplex | null | undefined {
        const socket = super.createConnection(opts) as TLSSocket;
        const pin = channel.pinned;
        socket.once('secureConnect', () => {
          const peer = peerOf(socket);
          if (peer !== undefined) peers.set(socket, peer);
        });
        if (pin === undefined || oncreate === undefined) return socket;
        // Pinned: hand the socket over only after the handshake showed the attested key.
        socket.once('secureConnect', () => {
          const peer = peers.get(socket);
          if (peer?.fingerprint === pin) {
            oncreate(null, socket);
            return;
          }
          socket.destroy();
          oncreate(new PeerCertificateError("the server's TLS certificate is not the attested one"), socket);
        });
        socket.once('error', (error) => {
          if (socket.listenerCount('secureConnect') === 0) return;
          oncreate(error, socket);
        });
        return undefined;
      }
    }
    this.agent = new OneConnectionAgent({
      keepAlive: true,
      maxSockets: 1,
      maxFreeSockets: 1,
      // Every connection shows its certificate: a resumed TLS 1.3 session sends none.
      maxCachedSessions: 0,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      ...options.agent,
    });
  }

  /**
   * From now on every connection must present this key (sha256 of its SPKI, hex). An idle
   * connection that shows another is closed.
   */
  pin(fingerprint: string): void {
    this.pinned = fingerprint.toLowerCase();
    for (const sockets of Object.values(this.agent.freeSockets)) {
      for (const socket of sockets ?? []) {
        if (peerOfSocket(socket as TLSSocket)?.fingerprint !== this.pinned) socket.destroy();
      }
    }
  }

  /** One whole answer (at most `maxBytes`) over this channel, with the certificate its connection showed. */
  async request(
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
  ): Promise<PeerResponse> {
    const target = new URL(url);
    const { req, response } = this.send(
      target,
      { method: init.method ?? 'GET', headers: init.headers ?? {}, body: init.body },
      'whole',
    );
    const res = await response;
    const peer = this.peerOf(res) as PeerCertificate;
    return new Promise<PeerResponse>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBytes) {
          res.destroy();
          reject(new Error(`answer from ${target.pathname} exceeds ${this.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: toHeaders(res.headers),
          body: new Uint8Array(Buffer.concat(chunks, size)),
          peer,
          trailers: res.trailers,
        }),
      );
      res.on('error', reject);
      // The channel's timeout still runs while the body comes (a whole answer): its error is the request's.
      req.on('error', reject);
    });
  }

  /** The certificate the answer's connection showed, or why it is refused (none, or not the pinned key). */
  private peerOf(res: IncomingMessage): PeerCertificate | PeerCertificateError {
    const peer = peerOfSocket(res.socket as TLSSocket);
    if (peer === undefined) return new PeerCertificateError('the server presented no certificate');
    if (this.pinned !== undefined && peer.fingerprint !== this.pinned)
      return new PeerCertificateError("the server's TLS certificate is not the attested one");
    return peer;
  }

  /**
   * The message a response of a channel's `fetch` came from (its `trailers` are filled once its body
   * was read to the end: docs/protocol.md, "The signature in a trailer"); undefined for any other.
   */
  static messageOf(response: Response): IncomingMessage | undefined {
    return messages.get(response);
  }

  /** The fingerprint connections are pinned to, if any. */
  get pinnedFingerprint(): string | undefined {
    return this.pinned;
  }

  /**
   * One request over this channel as node messages: `req` at once (destroy it to abort), and the
   * answer message once its headers came over a connection whose certificate passed the pin (a
   * `PeerCertificateError` otherwise). The body flows as it arrives and keeps its trailers
   * (`res.trailers` once complete): the gateway reads provider answers this way, with no web
   * Response per answer (issue 23).
   */
  send(
    target: URL,
    init: { method: string; headers: Record<string, string>; body?: Uint8Array | undefined },
    read: 'streaming' | 'whole' = 'streaming',
  ): { req: ClientRequest; response: Promise<IncomingMessage> } {
    if (target.protocol !== 'https:') throw new TypeError('"url" must be https');
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = String(init.body.byteLength);
    let req!: ClientRequest;
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req = request(
        target,
        { method: init.method, headers, agent: this.agent, timeout: this.timeoutMs },
        (res) => {
          const peer = this.peerOf(res);
          if (peer instanceof PeerCertificateError) {
            res.destroy();
            reject(peer);
            return;
          }
          // Once the headers are in, a streamed answer may take as long as it streams.
          if (read === 'streaming') req.setTimeout(0);
          resolve(res);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(
        init.body === undefined
          ? undefined
          : Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength),
      );
    });
    return { req, response };
  }

  /**
   * A `fetch` over this channel for code written against fetch (`send` behind it). The answer
   * streams (a proxied SSE answer flows as it arrives); it resolves once the headers came over a
   * connection whose certificate passed the pin, and `init.signal` aborts the request.
   */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const target = new URL(input instanceof Request ? input.url : String(input));
    if (target.protocol !== 'https:') throw new TypeError('"url" must be https');
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, key) => {
      headers[key] = value;
    });
    const body =
      init?.body === undefined || init.body === null
        ? undefined
        : typeof init.body === 'string'
          ? new TextEncoder().encode(init.body)
          : init.body instanceof Uint8Array
            ? init.body
            : new Uint8Array(await new Response(init.body).arrayBuffer());
    const signal = init?.signal ?? undefined;
    signal?.throwIfAborted();
    const method = init?.method ?? 'GET';
    const { req, response } = this.send(target, { method, headers, body });
    const abort = (): void => {
      req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', abort, { once: true });
    req.once('close', () => signal?.removeEventListener('abort', abort));
    const res = await response;
    const empty = nullBody(res.statusCode ?? 0, method);
    const answer = new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
      status: res.statusCode ?? 0,
      headers: toHeaders(res.headers),
    });
    if (empty) res.resume();
    messages.set(answer, res);
    return answer;
  };

  close(): void {
    this.agent.destroy();
  }
}

const toHeaders = (raw: IncomingHttpHeaders): Headers => {
  const headers = new Headers();
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(key, v);
  }
  return headers;
};
