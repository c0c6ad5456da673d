import { request } from 'node:http';
import { z } from 'zod';
import { readCapped, toHex } from '../bytes/index.js';
import { runWithDeadline } from '../concurrency/index.js';
import { SidecarError, unavailableIn } from '../errors/index.js';

/**
 * Client for the Dstack guest agent: HTTP/1.1 + JSON over its unix socket (docs/platforms.md, Dstack row).
 *
 * Why our own client and not `@phala/dstack-sdk` (checked: 0.5.8):
 * - its `getQuote` hex-encodes whatever it is given, so a hex string is hex-encoded a second time
 *   (docs/architecture.md, "bytes handled as strings");
 * - over a unix socket it writes HTTP by hand with `Content-Length: payload.length`, the string's
 *   length, which is wrong as soon as a body is not ASCII, and concatenates response chunks as strings;
 * - it imports `@noble/curves` at the top level while declaring it an optional peer dependency (on
 *   our noble 2.x it would also resolve the wrong subpaths), reads `process.env` and prints warnings;
 * - it has no response size limit and no AbortSignal, and still offers the legacy tappd socket whose
 *   TdxQuote hashes report_data.
 * Three POST calls do not justify that. This client sends Buffer bodies with a byte-correct
 * Content-Length, has a deadline and AbortSignal support, caps the response size, and validates every
 * response with zod. It never talks to tappd.sock.
 *
 * Errors are SidecarError 503 whose message names the operation, never a key or a response body.
 */

export interface DstackClientOptions {
  /** Unix socket of the guest agent; compose mounts it at `/var/run/dstack.sock`. */
  socketPath: string;
  /** Per-call deadline in milliseconds (connect + response). */
  timeoutMs?: number;
  /** Largest response body accepted, in bytes. /Info with its certificates is ~60 kB. */
  maxResponseBytes?: number;
}

export const DEFAULT_DSTACK_SOCKET = '/var/run/dstack.sock';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

const hex = z.string().regex(/^(?:[0-9a-fA-F]{2})*$/, 'expected even-length hex');

/** `POST /GetQuote` answer. `vm_config` is absent on older guest agents. */
export const getQuoteResponseSchema = z.object({
  quote: hex.min(2),
  event_log: z.string(),
  report_data: hex.optional(),
  vm_config: z.string().optional(),
});
export type DstackQuoteResponse = z.output<typeof getQuoteResponseSchema>;

/** `POST /Info` answer; only the fields we rely on are required, the rest pass through. */
export const infoResponseSchema = z.looseObject({
  app_id: z.string(),
  instance_id: z.string().optional(),
  compose_hash: z.string().optional(),
  tcb_info: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
});
export type DstackInfo = z.output<typeof infoResponseSchema>;

/** `POST /GetKey` answer: a 32-byte key as hex and the KMS signature chain over it. */
export const getKeyResponseSchema = z.object({
  key: hex,
  signature_chain: z.array(hex),
});

/**
 * `POST /GetTlsKey` answer: a fresh key (PEM) and its certificate chain (PEM, leaf first) signed by
 * the app's KMS-derived CA (dstack guest agent API, `GetTlsKey`).
 */
export const getTlsKeyResponseSchema = z.object({
  key: z.string().min(1),
  certificate_chain: z.array(z.string().min(1)).min(1),
});

export interface DstackTlsKey {
  /** PEM private key. */
  key: string;
  /** PEM certificates, leaf first. */
  certificateChain: string[];
}

export interface DstackKey {
  key: Uint8Array;
  signatureChain: Uint8Array[];
}

type Operation = 'GetQuote' | 'Info' | 'GetKey' | 'GetTlsKey';

/** 503s for one operation: "dstack <op> failed: <reason>". */
const failed = (op: Operation) => unavailableIn(`dstack ${op} failed: `);

const describeSocketError = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOENT') return 'guest agent socket not found';
  if (code === 'ECONNREFUSED') return 'guest agent refused the connection';
  if (code === 'EACCES') return 'permission denied on the guest agent socket';
  if (typeof code === 'string') return `socket error ${code}`;
  return 'socket error';
};

/** A response that broke off mid-body (the socket closed) or failed otherwise. */
const describeStreamError = (error: unknown): string =>
  (error as { code?: unknown } | null)?.code === 'ECONNRESET'
    ? 'response was cut off'
    : 'response stream failed';

export class DstackClient {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(options: DstackClientOptions) {
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /**
   * A quote whose report_data is `reportData` as given (right-padded with zeros to 64 bytes by the
   * agent, never hashed). Hex goes on the wire because that is the agent's JSON format.
   */
  async getQuote(reportData: Uint8Array, signal?: AbortSignal): Promise<DstackQuoteResponse> {
    if (reportData.length > 64) {
      throw new RangeError(`"reportData" expected at most 64 bytes, got length=${reportData.length}`);
    }
    const body = { report_data: toHex(reportData) };
    return this.call('GetQuote', body, getQuoteResponseSchema, signal);
  }

  /** App and TCB info (app_id, instance_id, compose_hash, tcb_info, …). */
  async info(signal?: AbortSignal): Promise<DstackInfo> {
    return this.call('Info', {}, infoResponseSchema, signal);
  }

  /**
   * A key derived by the KMS for this app and `path` (deterministic: same app + path → same key).
   * The key must be exactly 32 bytes.
   */
  async getKey(path: string, purpose: string, signal?: AbortSignal): Promise<DstackKey> {
    const answer = await this.call('GetKey', { path, purpose }, getKeyResponseSchema, signal);
    if (answer.key.length !== 64) {
      throw failed('GetKey')(`key expected 32 bytes, got length=${answer.key.length / 2}`, 'dstack_bad_key');
    }
    return {
      key: new Uint8Array(Buffer.from(answer.key, 'hex')),
      signatureChain: answer.signature_chain.map((s) => new Uint8Array(Buffer.from(s, 'hex'))),
    };
  }

  /**
   * A TLS server key and certificate for `subject` / `altNames`, for serving HTTPS from inside the
   * CVM. `usage_ra_tls` stays off: the attestation report binds the key, not a quote in the
   * certificate.
   */
  async getTlsKey(
    request: { subject: string; altNames: readonly string[] },
    signal?: AbortSignal,
  ): Promise<DstackTlsKey> {
    const answer = await this.call(
      'GetTlsKey',
      {
        subject: request.subject,
        alt_names: request.altNames,
        usage_ra_tls: false,
        usage_server_auth: true,
        usage_client_auth: false,
      },
      getTlsKeyResponseSchema,
      signal,
    );
    return { key: answer.key, certificateChain: answer.certificate_chain };
  }

  private async call<T extends z.ZodType>(
    op: Operation,
    payload: unknown,
    schema: T,
    signal?: AbortSignal,
  ): Promise<z.output<T>> {
    const raw = await this.post(op, Buffer.from(JSON.stringify(payload), 'utf8'), signal);
    let text: string;
    let json: unknown;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
      json = JSON.parse(text);
    } catch (error) {
      throw failed(op)(`response is not valid JSON (${raw.length} bytes)`, 'dstack_bad_response', {}, error);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined ? '' : ` (${issue.path.join('.') || 'body'}: ${issue.message})`;
      throw failed(op)(`unexpected response shape${where}`, 'dstack_bad_response');
    }
    return parsed.data;
  }

  /** One POST under the call deadline and the caller's signal; either one ends the HTTP request. */
  private async post(op: Operation, body: Buffer, signal?: AbortSignal): Promise<Buffer> {
    const fail = failed(op);
    if (signal?.aborted) throw fail('aborted', 'dstack_aborted', {}, signal.reason);
    return runWithDeadline((deadline) => this.exchange(op, body, deadline), {
      timeoutMs: this.timeoutMs,
      timeoutError: () => fail(`no answer within ${this.timeoutMs} ms`, 'dstack_timeout'),
      signal,
      abortError: () => fail('aborted', 'dstack_aborted', {}, signal?.reason),
    });
  }

  /** The HTTP exchange itself; `signal` (the deadline's) destroys the request when it fires. */
  private exchange(op: Operation, body: Buffer, signal: AbortSignal): Promise<Buffer> {
    const fail = failed(op);
    return new Promise<Buffer>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method: 'POST',
          path: `/${op}`,
          headers: {
            host: 'localhost',
            'content-type': 'application/json',
            // Bytes, not characters: the body is a Buffer.
            'content-length': String(body.byteLength),
          },
          signal,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            res.resume();
            reject(fail(`guest agent answered HTTP ${status}`, 'dstack_unavailable'));
            return;
          }
          readCapped(res, {
            limit: this.maxResponseBytes,
            declared: res.headers['content-length'],
            tooLarge: () =>
              fail(`response exceeds ${this.maxResponseBytes} bytes`, 'dstack_response_too_large'),
          }).then(resolve, (error: unknown) => {
            if (error instanceof SidecarError) reject(error);
            else reject(fail(describeStreamError(error), 'dstack_unavailable', {}, error));
          });
        },
      );
      req.on('error', (error) => reject(fail(describeSocketError(error), 'dstack_unavailable', {}, error)));
      req.end(body);
    });
  }
}
