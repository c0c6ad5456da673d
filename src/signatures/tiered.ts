import type { Logger } from '../log/index.js';
import type { MemorySignatureStore } from './memory.js';
import type { SignatureClaim, SignatureRecord, SignatureStore } from './signature-store.js';

/** What the tiered store needs of its shared tier (RedisSignatureStore in production). */
export interface RemoteSignatureStore extends SignatureStore {
  /** Connected now: a command can succeed. False means it would fail at once. */
  readonly ready: boolean;
  /** Claims with the token of the local claim, so either tier recognises the same claim. */
  claimWith(id: string, token: string): Promise<SignatureClaim | undefined>;
  /**
   * Fills a claim with an explicit lifetime in ms (a replayed write keeps only what is left of its
   * TTL). False when another response holds the id.
   */
  putFor(claim: SignatureClaim, record: SignatureRecord, ttlMs: number): Promise<boolean>;
  ping(): Promise<void>;
  /** Registers a listener for (re)connection. */
  onReady(listener: () => void): void;
  connect?(): Promise<void>;
}

export interface TieredStoreOptions {
  /** This replica's own records: always written, read first. */
  local: Pick<MemorySignatureStore, 'claimNow' | 'put' | 'get' | 'withdraw' | 'close'>;
  /** Shared by every replica (Redis): written through, read on a local miss. */
  remote: RemoteSignatureStore;
  ttlMs: number;
  /** Writes kept for replay while the remote tier is down; the oldest are dropped beyond it. 0: none. */
  retryBufferSize: number;
  /** How often a down remote tier is probed (besides at once on reconnect). */
  retryIntervalMs?: number;
  now?: () => number;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

interface Buffered {
  claim: SignatureClaim;
  record: SignatureRecord;
  /** On this process's clock (`now`). */
  expiresAt: number;
}

/** Replayed writes in flight at once: enough to drain thousands in a few round trips, bounded memory. */
const REPLAY_BATCH = 64;

/**
 * Write-through, two tiers: this replica's memory, and a shared remote store.
 *
 * Why: the memory tier answers this replica's clients even when the remote is down, and a client that
 * races the end of a stream (docs/protocol.md) is answered from memory without a network round trip; the
 * remote tier makes records survive a restart and lets any replica behind a load balancer answer.
 *
 * When the remote tier is down (refused, disconnected, or slower than its command timeout):
 * - `put` still succeeds: the record is in memory, and the remote write goes to a bounded FIFO retry
 *   buffer, replayed in order when the remote answers again (on reconnect at once, else every
 *   `retryIntervalMs`), each with the TTL it has left; expired ones are dropped. When the buffer is
 *   full the oldest write is dropped (it stays in memory here, but other replicas will not find it).
 * - `get` answers from memory only; records other replicas made are not found (404) until it is back.
 * - After one failure the store stops sending until a probe succeeds, so a hung Redis costs at most
 *   one command timeout on the request path, not one per request.
 * - Nothing here rejects for a remote failure, and every remote promise is awaited or caught.
 *
 * Ids (signature-store.ts): a claim is made locally first (synchronously, so two responses on this
 * replica can never both take one id), then in the remote tier with the same token (`SET NX`, so two
 * replicas cannot either). While the remote tier is down, claims are made locally only: an id is then
 * unique on this replica, and when the buffered record is replayed it is written only if no other
 * replica took the id meanwhile. If one did, this replica withdraws its own record too (the id then
 * has no signature here: better none than one that another client's bytes do not match).
 *
 * Not covered: a remote that restarts without persistence loses what it held before; this replica
 * still serves those records from memory, other replicas do not (run Redis with `appendonly yes`).
 */
export class TieredSignatureStore implements SignatureStore {
  private readonly buffer: Buffered[] = [];
  private readonly now: () => number;
  private readonly retryIntervalMs: number;
  private remoteUp: boolean;
  private probing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private dropped = 0;
  private conflicted = 0;
  private replayed = 0;
  private waiters: Array<() => void> = [];
  private everUp = false;

  constructor(private readonly options: TieredStoreOptions) {
    if (options.retryBufferSize < 0) throw new RangeError('retryBufferSize must be ≥ 0');
    this.now = options.now ?? Date.now;
    this.retryIntervalMs = options.retryIntervalMs ?? 1000;
    this.remoteUp = options.remote.ready;
    this.everUp = this.remoteUp;
    options.remote.onReady(() => this.probeSoon(0));
    // Not awaited: the sidecar serves from memory while the remote tier connects.
    void options.remote.connect?.();
  }

  /** True while writes go straight to the remote tier. */
  get remoteAvailable(): boolean {
    return this.remoteUp;
  }

  /**
   * Resolves true once the remote tier is connected and answering, false after `timeoutMs`. A replica
   * that starts serving before this would answer 404 for records other replicas made; the sidecar
   * waits a bounded time at start and serves from memory if Redis is not there.
   */
  whenAvailable(timeoutMs: number): Promise<boolean> {
    if (this.remoteUp) return Promise.resolve(true);
    this.probeSoon(0);
    return new Promise((resolve) => {
      const done = (up: boolean) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== wake);
        resolve(up);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref();
      this.waiters.push(wake);
    });
  }

  /** Writes waiting for the remote tier. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Writes dropped because the buffer was full. */
  get droppedWrites(): number {
    return this.dropped;
  }

  /** Buffered writes that reached the remote tier later. */
  get replayedWrites(): number {
    return this.replayed;
  }

  async claim(id: string): Promise<SignatureClaim | undefined> {
    const claim = this.options.local.claimNow(id);
    if (claim === undefined || !this.remoteUp) return claim;
    try {
      // Taken on another replica: the local claim stays, so this replica never uses the id either.
      return (await this.options.remote.claimWith(id, claim.token)) === undefined ? undefined : claim;
    } catch (error) {
      this.markDown(error);
      return claim;
    }
  }

  async put(claim: SignatureClaim, record: SignatureRecord): Promise<boolean> {
    if (!(await this.options.local.put(claim, record))) return false;
    const expiresAt = this.now() + this.options.ttlMs;
    if (this.remoteUp) {
      try {
        if (await this.options.remote.putFor(claim, record, this.options.ttlMs)) return true;
        this.conflict(claim);
        return false;
      } catch (error) {
        this.markDown(error);
      }
    }
    this.enqueue({ claim, record, expiresAt });
    this.probeSoon(this.retryIntervalMs);
    return true;
  }

  /** Writes the remote tier refused because another replica holds the id. */
  get conflicts(): number {
    return this.conflicted;
  }

  async get(id: string): Promise<SignatureRecord | undefined> {
    const local = await this.options.local.get(id);
    if (local !== undefined || !this.remoteUp) return local;
    try {
      return await this.options.remote.get(id);
    } catch (error) {
      this.markDown(error);
      return undefined;
    }
  }

  /**
   * Stops probing, makes one last bounded attempt to hand buffered writes over (so a replica shutting
   * down during a Redis hiccup loses as little as it can), then closes both tiers.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.probing;
    if (this.buffer.length > 0 && this.options.remote.ready) await this.drain();
    if (this.buffer.length > 0) {
      this.options.logger?.warn(
        { lost: this.buffer.length },
        'signature store closing with writes the shared store never received; other replicas will not find them',
      );
    }
    await this.options.remote.close?.();
    await this.options.local.close?.();
  }

  private enqueue(entry: Buffered): void {
    if (this.options.retryBufferSize === 0) {
      this.countDrop();
      return;
    }
    while (this.buffer.length >= this.options.retryBufferSize) {
      this.buffer.shift();
      this.countDrop();
    }
    this.buffer.push(entry);
  }

  /** Another replica holds the id in the shared tier: withdraw this replica's record for it. */
  private conflict(claim: SignatureClaim): void {
    this.options.local.withdraw(claim.id);
    this.conflicted++;
    this.options.logger?.warn(
      { responseId: claim.id, conflicts: this.conflicted },
      'response id already held in the shared signature store by another replica: record withdrawn',
    );
  }

  private countDrop(): void {
    this.dropped++;
    // First and every 1000th: enough to notice, not enough to flood.
    if (this.dropped === 1 || this.dropped % 1000 === 0) {
      this.options.logger?.warn(
        { dropped: this.dropped },
        'signature retry buffer full: dropping the oldest write (kept in this replica only)',
      );
    }
  }

  private markDown(error: unknown): void {
    if (!this.remoteUp) return;
    this.remoteUp = false;
    this.options.logger?.warn(
      { err: error instanceof Error ? error.message : String(error) },
      'shared signature store unavailable: writes are buffered for replay, reads served from this replica',
    );
    this.probeSoon(this.retryIntervalMs);
  }

  private probeSoon(delayMs: number): void {
    if (this.closed) return;
    if (this.remoteUp && this.buffer.length === 0) return;
    if (delayMs === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    } else if (this.timer !== undefined) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.probe();
    }, delayMs);
    // A probe must never keep the process alive on its own.
    this.timer.unref();
  }

  /**
   * Single flight: one probe at a time; when it ends (in a later microtask, so after `probing` is
   * set even when it ends at once) the next is scheduled if still needed.
   */
  private probe(): Promise<void> {
    this.probing ??= this.tryRemote().finally(() => {
      this.probing = undefined;
      this.probeSoon(this.retryIntervalMs);
    });
    return this.probing;
  }

  /** Drains the buffer (or pings when it is empty), then marks the remote tier up. Never rejects. */
  private async tryRemote(): Promise<void> {
    if (!this.options.remote.ready) return;
    const wasDown = !this.remoteUp;
    const before = this.replayed;
    try {
      // Nothing to replay: a ping tells whether the remote answers again.
      if (this.buffer.length === 0) await this.options.remote.ping();
    } catch {
      return; // still down (refused or timed out): try again later
    }
    // drain() returns true only with the buffer empty, writes buffered meanwhile included.
    if (!(await this.drain())) return;
    this.remoteUp = true;
    for (const wake of this.waiters.splice(0)) wake();
    if (wasDown) {
      this.options.logger?.info(
        { replayed: this.replayed - before },
        this.everUp
          ? 'shared signature store available again; buffered writes replayed'
          : 'shared signature store connected',
      );
    }
    this.everUp = true;
  }

  /** Replays buffered writes in order, in batches. False when the remote failed (the rest stays buffered). */
  private async drain(): Promise<boolean> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, REPLAY_BATCH);
      const now = this.now();
      const live = batch.filter((entry) => entry.expiresAt > now);
      const results = await Promise.allSettled(
        live.map((entry) => this.options.remote.putFor(entry.claim, entry.record, entry.expiresAt - now)),
      );
      const failed = live.filter((_, i) => results[i]?.status === 'rejected');
      live.forEach((entry, i) => {
        const result = results[i];
        if (result?.status === 'fulfilled' && !result.value) this.conflict(entry.claim);
      });
      this.replayed += live.length - failed.length;
      if (failed.length > 0) {
        this.buffer.unshift(...failed);
        while (this.buffer.length > this.options.retryBufferSize) {
          this.buffer.shift();
          this.countDrop();
        }
        return false;
      }
    }
    return true;
  }
}
