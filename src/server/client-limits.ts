import type { IncomingMessage } from 'node:http';
import { RateWindow } from '../concurrency/index.js';
import { SidecarError } from '../errors/index.js';

export interface ClientLimitOptions {
  /** Requests per client per minute; 0 disables. */
  perMinute: number;
  /** Take the client from the first X-Forwarded-For hop (only behind a trusted proxy). */
  trustProxy: boolean;
  /** Which limit this is, for the error code. */
  name: 'proxy' | 'attestation';
}

/** The client a limit applies to: the TCP peer, or the first forwarded hop when trusted. */
export const clientKey = (incoming: IncomingMessage, trustProxy: boolean): string => {
  if (trustProxy) {
    const forwarded = incoming.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first !== undefined && first !== '') return first;
  }
  return incoming.socket.remoteAddress ?? 'unknown';
};

/**
 * A per-client fixed-window limit (concurrency/RateWindow: memory bounded by the clients active in
 * one window, clock injectable). Over the limit: 429 in the OpenAI shape with Retry-After.
 */
export class ClientLimit {
  private readonly window: RateWindow | undefined;

  constructor(private readonly options: ClientLimitOptions & { now?: () => number }) {
    this.window =
      options.perMinute > 0
        ? new RateWindow({
            limit: options.perMinute,
            windowMs: 60_000,
            ...(options.now === undefined ? {} : { now: options.now }),
          })
        : undefined;
  }

  /** Counts one request for this client; throws 429 (with `retryAfterSeconds` in details) when spent. */
  take(incoming: IncomingMessage): void {
    if (this.window === undefined) return;
    const verdict = this.window.take(clientKey(incoming, this.options.trustProxy));
    if (verdict.ok) return;
    throw new SidecarError(`rate limit reached for ${this.options.name} requests; retry later`, {
      status: 429,
      code: `${this.options.name}_rate_limited`,
      details: { retryAfterSeconds: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)) },
    });
  }
}
