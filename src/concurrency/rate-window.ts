import { OldestFirst } from './oldest-first.js';

export interface RateWindowOptions {
  /** Events allowed per key and window. */
  limit: number;
  /** Window length; a key's window opens at its first event. */
  windowMs: number;
  /** Clock (tests inject one). */
  now?: () => number;
}

export type RateVerdict = { ok: true } | { ok: false; retryAfterMs: number };

/** One key's open window. */
interface Window {
  readonly key: string;
  readonly opened: number;
  count: number;
}

/**
 * A per-key fixed-window counter in memory: at most `limit` events per key per window, the window
 * opening at the key's first event. Memory stays bounded by the keys active within one window:
 * entries are kept in the order their windows opened (a reopened window moves to the back), so
 * expired ones are always at the front and are dropped as new events arrive (an OldestFirst: a plain
 * Map's iteration costs O(entries deleted) per look at its front).
 * Synchronous, with an injected clock, so limits are tested with fake time.
 */
export class RateWindow {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new OldestFirst<string, Window>();

  constructor(options: RateWindowOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new RangeError('"limit" expected an integer ≥ 1');
    }
    if (!(options.windowMs > 0)) throw new RangeError('"windowMs" expected a positive number');
    this.#limit = options.limit;
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
  }

  /** Keys with an open window (expired ones may linger until the next event). */
  get size(): number {
    return this.#windows.size;
  }

  /** Counts one event for `key`, or refuses it with the time until the key's window closes. */
  take(key: string): RateVerdict {
    const now = this.#now();
    for (let oldest = this.#windows.oldest(); oldest !== undefined; oldest = this.#windows.oldest()) {
      if (now - oldest.opened < this.#windowMs) break;
      this.#windows.delete(oldest.key);
    }
    const window = this.#windows.get(key);
    if (window === undefined) {
      this.#windows.add({ key, opened: now, count: 1 });
      return { ok: true };
    }
    if (window.count >= this.#limit) {
      return { ok: false, retryAfterMs: window.opened + this.#windowMs - now };
    }
    window.count++;
    return { ok: true };
  }
}
