import type { IncomingMessage } from 'node:http';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
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
 * A per-client fixed-window limit (rate-limiter-flexible's in-memory limiter, which bounds its own
 * storage by expiring keys). Over the limit: 429 in the OpenAI shape with Retry-After.
 */
export class ClientLimit {
  private readonly limiter: RateLimiterMemory | undefined;

  constructor(private readonly options: ClientLimitOptions) {
    this.limiter =
      options.perMinute > 0 ? new RateLimiterMemory({ points: options.perMinute, duration: 60 }) : undefined;
  }

  /** Consumes one point for this client; throws 429 (with `retryAfterSeconds` in details) when spent. */
  async take(incoming: IncomingMessage): Promise<void> {
    if (this.limiter === undefined) return;
    try {
      await this.limiter.consume(clientKey(incoming, this.options.trustProxy));
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      throw new SidecarError(`rate limit reached for ${this.options.name} requests; retry later`, {
        status: 429,
        code: `${this.options.name}_rate_limited`,
        details: { retryAfterSeconds: Math.ceil(err.msBeforeNext / 1000) },
      });
    }
  }
}
