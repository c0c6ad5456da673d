import { fileURLToPath } from 'node:url';
import type { CallOptions, Client, ServiceError } from '@grpc/grpc-js';
import { type SidecarError, unavailableIn } from '../errors/index.js';
import { lazyRequire } from '../lazy/index.js';
import { TAPP_MAX_NONCE_BYTES } from './runtime-data.js';

/** The gRPC stack is only needed on 0G Tapp: loaded when a client is first made. */
const grpc = lazyRequire<typeof import('@grpc/grpc-js')>('@grpc/grpc-js');
const protoLoader = lazyRequire<typeof import('@grpc/proto-loader')>('@grpc/proto-loader');

/**
 * gRPC client for 0G Tapp's `tapp_service.TappService` (docs/platforms.md, 0G Tapp row), over
 * `@grpc/grpc-js` with the proto in this folder (`tapp-service.proto`, copied from 0g-tapp; see its
 * header). Local only: plaintext on the unix socket or a loopback port, the way Tapp serves apps.
 * Every call has a deadline and honours an AbortSignal. Errors become SidecarError 503 naming the
 * RPC and the gRPC status, never a key.
 */

export interface TappClientOptions {
  /** A `unix://` socket (DEFAULT_TAPP_ENDPOINT) or `host:port` (Tapp's TCP listener, :50051). */
  endpoint: string;
  /** Deadline per call in milliseconds. */
  timeoutMs?: number;
  /** Where the .proto lives; defaults to the file beside this module (copied into dist by the build). */
  protoPath?: string;
}

export const DEFAULT_TAPP_ENDPOINT = 'unix:///run/tapp/tapp.sock';
const DEFAULT_TIMEOUT_MS = 30_000;

export const TAPP_PROTO_PATH = fileURLToPath(new URL('./tapp-service.proto', import.meta.url));

export interface TappEvidenceResponse {
  evidence: Uint8Array;
  teeType: string;
  /** Unix seconds, as Tapp reports them. */
  timestamp: string;
}

export interface TappSecretKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  ethAddress: Uint8Array;
}

/** GetAppTlsCert's answer (the private key is PEM text: it is what a TLS server is handed). */
export interface TappTlsCert {
  keyPem: string;
  certPem: string;
  /** `ca` or `self-signed`. */
  issuer: string;
  /** sha256 of the SubjectPublicKeyInfo as Tapp states it (hex, possibly `0x`-prefixed). */
  publicKeySha256: string;
  /** `local` (changes when the instance restarts) or `kms`. */
  keySource: string;
}

type Rpc = 'GetEvidence' | 'GetAppSecretKey' | 'GetAppTlsCert';
type Unary = (
  request: object,
  options: CallOptions,
  callback: (error: ServiceError | null, response?: Record<string, unknown>) => void,
) => { cancel(): void };

let statusNames: Record<number, string> | undefined;
/** gRPC status code → name, built on first use (the gRPC module loads lazily). */
const statusName = (code: number): string | undefined => {
  statusNames ??= Object.fromEntries(
    Object.entries(grpc().status)
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]) => [v as number, k]),
  );
  return statusNames[code];
};

const failure = (rpc: Rpc, reason: string, code: string, cause?: unknown): SidecarError =>
  unavailableIn(`tapp ${rpc} failed: `)(reason, code, {}, cause);

const bytesField = (value: unknown): Uint8Array =>
  value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array(0);

export class TappClient {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly client: Client & Record<Rpc, Unary>;

  constructor(options: TappClientOptions) {
    this.endpoint = options.endpoint;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const definition = protoLoader().loadSync(options.protoPath ?? TAPP_PROTO_PATH, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
    });
    const pkg = grpc().loadPackageDefinition(definition) as unknown as {
      tapp_service: {
        TappService: new (
          target: string,
          creds: ReturnType<ReturnType<typeof grpc>['credentials']['createInsecure']>,
        ) => Client;
      };
    };
    this.client = new pkg.tapp_service.TappService(
      options.endpoint,
      grpc().credentials.createInsecure(),
    ) as Client & Record<Rpc, Unary>;
  }

  /** Evidence whose runtime_data carries `nonce` (≤ 64 bytes). */
  async getEvidence(appId: string, nonce: Uint8Array, signal?: AbortSignal): Promise<TappEvidenceResponse> {
    if (nonce.length > TAPP_MAX_NONCE_BYTES) {
      throw new RangeError(
        `"nonce" expected at most ${TAPP_MAX_NONCE_BYTES} bytes, got length=${nonce.length}`,
      );
    }
    const answer = await this.call('GetEvidence', { app_id: appId, nonce: Buffer.from(nonce) }, signal);
    return {
      evidence: bytesField(answer['evidence']),
      teeType: typeof answer['tee_type'] === 'string' ? answer['tee_type'] : '',
      timestamp: String(answer['timestamp'] ?? '0'),
    };
  }

  /** The app's Ethereum key. Tapp measures each call into RTMR3, so call it once per start. */
  async getAppSecretKey(appId: string, signal?: AbortSignal): Promise<TappSecretKey> {
    const answer = await this.call(
      'GetAppSecretKey',
      { app_id: appId, key_type: 'ethereum', x25519: false },
      signal,
    );
    return {
      privateKey: bytesField(answer['private_key']),
      publicKey: bytesField(answer['public_key']),
      ethAddress: bytesField(answer['eth_address']),
    };
  }

  /** The app's TLS key and certificate (Tapp ≥ 0.4.0; older ones answer UNIMPLEMENTED). */
  async getAppTlsCert(appId: string, signal?: AbortSignal): Promise<TappTlsCert> {
    const answer = await this.call('GetAppTlsCert', { app_id: appId }, signal);
    const text = (key: string): string => (typeof answer[key] === 'string' ? (answer[key] as string) : '');
    return {
      keyPem: text('key_pem'),
      certPem: text('cert_pem'),
      issuer: text('issuer'),
      publicKeySha256: text('public_key_sha256'),
      keySource: text('key_source'),
    };
  }

  close(): void {
    this.client.close();
  }

  private call(rpc: Rpc, request: object, signal?: AbortSignal): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(failure(rpc, 'aborted', 'tapp_aborted', signal.reason));
        return;
      }
      let aborted = false;
      const onAbort = (): void => {
        aborted = true;
        call.cancel();
      };
      const call = this.client[rpc].call(
        this.client,
        request,
        { deadline: Date.now() + this.timeoutMs },
        (error, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (error) {
            if (aborted) return reject(failure(rpc, 'aborted', 'tapp_aborted', signal?.reason));
            if (error.code === grpc().status.DEADLINE_EXCEEDED) {
              return reject(failure(rpc, `no answer within ${this.timeoutMs} ms`, 'tapp_timeout', error));
            }
            const name = statusName(error.code) ?? String(error.code);
            const code = error.code === grpc().status.UNAVAILABLE ? 'tapp_unavailable' : 'tapp_error';
            return reject(failure(rpc, `gRPC status ${name}`, code, error));
          }
          if (response === undefined || response['success'] !== true) {
            // Tapp's own message may name the app or the key type; it stays out of ours.
            return reject(failure(rpc, 'the service reported failure', 'tapp_error'));
          }
          resolve(response);
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
