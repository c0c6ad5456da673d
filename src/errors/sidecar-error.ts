/**
 * The one error base class. Every failure the outside world can see is a SidecarError (or becomes a
 * generic 500). Fields are structured so that the single `app.onError` can render the OpenAI error
 * shape `{"error":{"message","type","param":null,"code"}}` (docs/protocol.md, Errors).
 *
 * Messages name the field or the system that failed; they never carry request or response content,
 * tokens or keys (docs/architecture.md, code habit 6).
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found'
  | 'rate_limit_error'
  | 'upstream_error'
  | 'service_unavailable'
  | 'timeout_error'
  | 'server_error';

export interface SidecarErrorOptions {
  status: number;
  code: string;
  type?: ErrorType;
  param?: string | null;
  /** Extra context for logs only; never rendered to clients. Must not hold secrets or user content. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

const typeForStatus = (status: number): ErrorType => {
  if (status === 401 || status === 403) return 'authentication_error';
  if (status === 404) return 'not_found';
  if (status === 408) return 'timeout_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 502) return 'upstream_error';
  if (status === 503) return 'service_unavailable';
  if (status === 504) return 'timeout_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
};

export class SidecarError extends Error {
  override readonly name: string = 'SidecarError';
  readonly status: number;
  readonly code: string;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: SidecarErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.code = options.code;
    this.type = options.type ?? typeForStatus(options.status);
    this.param = options.param ?? null;
    this.details = options.details;
  }

  /** The OpenAI error body. */
  toBody(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, code = 'invalid_request', param: string | null = null) =>
  new SidecarError(message, { status: 400, code, param });

export const notFound = (message: string, code = 'not_found') =>
  new SidecarError(message, { status: 404, code });

export interface UnavailableOptions {
  /** Context for logs only; never rendered. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * A 503: a TEE, GPU or platform service the sidecar depends on did not give what it must. The one
 * constructor of these errors; providers bind their message prefix and log details with
 * `unavailableIn` instead of writing their own.
 */
export const unavailable = (message: string, code: string, options: UnavailableOptions = {}): SidecarError =>
  new SidecarError(message, {
    status: 503,
    code,
    ...(options.details === undefined ? {} : { details: options.details }),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });

/**
 * `unavailable` bound to one dependency: every error starts with `prefix` (e.g. "dstack GetQuote
 * failed: ") and carries `base` in its log details, merged with the call's own.
 */
export const unavailableIn =
  (prefix: string, base: Record<string, unknown> = {}) =>
  (message: string, code: string, details: Record<string, unknown> = {}, cause?: unknown): SidecarError => {
    const merged = { ...base, ...details };
    return unavailable(`${prefix}${message}`, code, {
      ...(Object.keys(merged).length === 0 ? {} : { details: merged }),
      cause,
    });
  };
