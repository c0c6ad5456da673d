import { runWithDeadline } from '../concurrency/index.js';
import { lazyRequire } from '../lazy/index.js';
import { claimToken } from './claim-token.js';
import type { SignatureClaim, SignatureRecord, SignatureStore } from './signature-store.js';
import { signatureRecordSchema } from './signed-text.js';

/** The Redis client is only needed with REDIS_URL: loaded when a store is made. */
const redis = lazyRequire<typeof import('@redis/client')>('@redis/client');

/**
 * A signature store in Redis, so records outlive a sidecar restart and every replica behind a load
 * balancer finds the records the others made (docs/protocol.md: a client may fetch `/signature/{id}`
 * from any replica).
 *
 * Client library: `@redis/client`, the core of node-redis, maintained by Redis itself and the
 * client Redis recommends for new projects (ioredis is in best-effort maintenance). We take the core
 * package rather than `redis`, which adds the search/JSON/bloom/time-series modules we do not use;
 * it has no runtime dependencies (docs/architecture.md, code habit 9).
 *
 * Layout: one string key per id, `<prefix><lower-cased id>`, expiry `PX <ttl ms>` so Redis's own clock
 * expires it and no sweeper is needed. The value is `claim:<token>` from the moment a response claims
 * the id (`SET … NX`: atomic across every replica sharing this Redis) and the record as JSON once it
 * is signed. A record is written only over its own claim or an absent key (one Lua script, so the
 * check and the write are one step): no response can replace another's record.
 *
 * This store fails loudly: a command that errors or outlives `commandTimeoutMs` rejects. The sidecar
 * does not use it alone but behind TieredSignatureStore (tiered.ts), which turns a down Redis into
 * buffered writes and local reads.
 */

/** What this store needs of a Redis client; node-redis's client satisfies it, tests may inject one. */
export interface RedisClientLike {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  /** Graceful: waits for replies to commands already sent. */
  close(): Promise<void>;
  /** Immediate: drops the socket and fails whatever is still waiting. */
  destroy(): void;
  on(event: 'ready' | 'error' | 'end', listener: (arg: unknown) => void): unknown;
  set(
    key: string,
    value: string,
    options: { expiration: { type: 'PX'; value: number }; condition?: 'NX' },
  ): Promise<unknown>;
  get(key: string): Promise<string | null>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  ping(): Promise<unknown>;
}

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). Never logged: it may hold a password. */
  url?: string;
  /** An already built client (tests); when given, `url` is ignored and this store owns the client. */
  client?: RedisClientLike;
  /** Prepended to every key, so one Redis can serve several deployments. */
  keyPrefix?: string;
  ttlMs: number;
  /**
   * Upper bound on one command, reply included. node-redis's own `timeout` option only covers the
   * wait before a command is written, not the wait for its reply (a hung Redis keeps the socket open
   * and never answers), so the bound is enforced here.
   */
  commandTimeoutMs?: number;
  /**
   * Connection errors, as node-redis reports them (messages carry host:port, never the password).
   * While down the client retries every ≤ 2 s; each distinct message is reported once until the next
   * successful connection, so a long outage does not flood the log.
   */
  onError?: (error: Error) => void;
}

export const DEFAULT_REDIS_KEY_PREFIX = 'teeml-sidecar:sig:';
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 250;

/** What a claimed, not yet signed id holds. */
const CLAIM_PREFIX = 'claim:';

/**
 * Fills a claim: writes the record when the key holds this claim or nothing (the claim expired, or
 * was made while Redis was unreachable); returns 0 and writes nothing when anything else holds it.
 */
const FILL_CLAIM = `local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

export class RedisCommandTimeoutError extends Error {
  override readonly name = 'RedisCommandTimeoutError';
}

/**
 * Reconnect forever, backing off to 2 s: a Redis restart must not need a sidecar restart. Meanwhile
 * commands fail at once (offline queue disabled) instead of piling up.
 */
const reconnectDelay = (retries: number): number => Math.min(50 * 2 ** Math.min(retries, 10), 2000);

const createNodeRedisClient = (url: string, commandTimeoutMs: number): RedisClientLike =>
  redis().createClient({
    url,
    // A command issued while disconnected fails immediately: the caller buffers it, the request
    // path never waits for a reconnect.
    disableOfflineQueue: true,
    // A hung Redis must not grow an unbounded backlog of unsent commands.
    commandsQueueMaxLength: 1000,
    socket: {
      connectTimeout: Math.max(commandTimeoutMs * 4, 1000),
      reconnectStrategy: reconnectDelay,
    },
  }) as unknown as RedisClientLike;

export class RedisSignatureStore implements SignatureStore {
  private readonly client: RedisClientLike;
  private readonly prefix: string;
  private readonly commandTimeoutMs: number;
  private connecting: Promise<unknown> | undefined;
  private closed = false;
  private readonly readyListeners: Array<() => void> = [];
  private readonly reported = new Set<string>();

  constructor(private readonly options: RedisStoreOptions) {
    if (!(options.ttlMs >= 1)) throw new RangeError('ttlMs must be ≥ 1');
    this.prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
    if (options.client !== undefined) {
      this.client = options.client;
    } else if (options.url !== undefined) {
      this.client = createNodeRedisClient(options.url, this.commandTimeoutMs);
    } else {
      throw new TypeError('RedisSignatureStore needs a url or a client');
    }
    // node-redis emits 'error' on every failed (re)connect; an EventEmitter without an 'error'
    // listener would crash the process.
    this.client.on('error', (error) => {
      const err = error instanceof Error ? error : new Error(String(error));
      if (this.reported.has(err.message) || this.reported.size > 100) return;
      this.reported.add(err.message);
      options.onError?.(err);
    });
    this.client.on('ready', () => {
      this.reported.clear();
      for (const listener of this.readyListeners) listener();
    });
  }

  /** True when connected: a command sent now can succeed; false means it would fail at once. */
  get ready(): boolean {
    return this.client.isReady;
  }

  /** Called when connected, the first time and after every reconnect. */
  onReady(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  get keyPrefix(): string {
    return this.prefix;
  }

  /**
   * Starts connecting and returns at once; the client keeps reconnecting in the background. Resolves
   * when first connected (callers may ignore it: it never rejects).
   */
  connect(): Promise<void> {
    this.connecting ??= this.client.connect().catch(() => undefined);
    return this.connecting.then(() => undefined);
  }

  key(id: string): string {
    return this.prefix + id.toLowerCase();
  }

  async claim(id: string): Promise<SignatureClaim | undefined> {
    return this.claimWith(id, claimToken());
  }

  /** Claims with a given token (the tiered store uses the token of its local claim). */
  async claimWith(id: string, token: string): Promise<SignatureClaim | undefined> {
    const reply = await this.bounded(
      this.client.set(this.key(id), CLAIM_PREFIX + token, {
        expiration: { type: 'PX', value: this.options.ttlMs },
        condition: 'NX',
      }),
    );
    return reply === null ? undefined : { id, token };
  }

  async put(claim: SignatureClaim, record: SignatureRecord): Promise<boolean> {
    return this.putFor(claim, record, this.options.ttlMs);
  }

  /** Fills a claim with an explicit lifetime: a replayed write keeps only what is left of its TTL. */
  async putFor(claim: SignatureClaim, record: SignatureRecord, ttlMs: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttlMs));
    const reply = await this.bounded(
      this.client.eval(FILL_CLAIM, {
        keys: [this.key(claim.id)],
        arguments: [CLAIM_PREFIX + claim.token, JSON.stringify(record), String(px)],
      }),
    );
    return Number(reply) === 1;
  }

  async get(id: string): Promise<SignatureRecord | undefined> {
    const raw = await this.bounded(this.client.get(this.key(id)));
    if (raw === null || raw.startsWith(CLAIM_PREFIX)) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      this.options.onError?.(new Error('redis: a stored signature record is not JSON; ignored'));
      return undefined;
    }
    const parsed = signatureRecordSchema.safeParse(value);
    if (!parsed.success) {
      this.options.onError?.(new Error('redis: a stored signature record is malformed; ignored'));
      return undefined;
    }
    return parsed.data;
  }

  async ping(): Promise<void> {
    await this.bounded(this.client.ping());
  }

  /** Closes gracefully within `graceMs`, then drops the socket (a hung Redis must not hang shutdown). */
  async close(graceMs = this.commandTimeoutMs * 4): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.isReady) {
      try {
        await bounded(this.client.close(), graceMs);
        return;
      } catch {
        // Hung or gone: fall through and drop the socket.
      }
    }
    try {
      this.client.destroy();
    } catch {
      // Never connected, or already closed: nothing to drop.
    }
  }

  private bounded<T>(command: Promise<T>): Promise<T> {
    return bounded(command, this.commandTimeoutMs);
  }
}

/** A Redis promise under a deadline (the loser's later rejection is swallowed, see runWithDeadline). */
const bounded = <T>(promise: Promise<T>, ms: number): Promise<T> =>
  runWithDeadline(() => promise, {
    timeoutMs: ms,
    timeoutError: () => new RedisCommandTimeoutError(`redis: no answer within ${ms} ms`),
  });
